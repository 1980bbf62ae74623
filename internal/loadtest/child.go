package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"candor/internal/server"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// ChildEnv is the environment variable that makes this program a target
// child: its value is the target (TargetServer or TargetBaseline) and the
// only argument the data folder. A command using this package calls
// [ChildMain] first thing in main (and in TestMain).
const ChildEnv = "CANDOR_LOAD_CHILD"

// IsChild reports whether this process was started as a target child.
func IsChild() bool { return os.Getenv(ChildEnv) != "" }

// ChildMain runs the target child and exits. The parent talks to it over
// standard input and output, one line at a time:
//
//	child:  addr HOST:PORT             once listening
//	parent: stats | stats-gc           child: stats {json}   (stats-gc collects garbage first)
//	parent: prof-start PATH | prof-stop    child: ok | err MESSAGE
//	parent: heap PATH | goroutines PATH    child: ok | err MESSAGE (profiles written to PATH)
//
// The child stops when its standard input ends: the parent closed it, or
// died.
func ChildMain() {
	target := os.Getenv(ChildEnv)
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "candor-load child: no data folder")
		os.Exit(2)
	}
	if err := runChild(target, os.Args[len(os.Args)-1], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "candor-load child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func openStore(ctx context.Context, path string) (store.Store, error) {
	return sqlstore.Open(ctx, path)
}

func runChild(target, dir string, in io.Reader, out, errOut io.Writer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := server.Open(ctx, dir, openStore)
	if err != nil {
		return err
	}
	// The server logs warnings and errors only: at Info it would log every
	// refusal, which is not what is measured.
	logger := slog.New(slog.NewJSONHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := d.Config()
	cfg.Logger = logger
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return errors.Join(err, d.Close())
	}
	// Both targets serve with the server's own TLS configuration: TLS 1.3,
	// HTTP/1.1, client certificates verified against the CA.
	tlsConfig := srv.TLSConfig(d.TLSCert)
	var handler http.Handler
	switch target {
	case TargetServer:
		handler = srv.Handler()
		defer d.Close()
	case TargetBaseline:
		// No storage: the relay never touches the database.
		if err := d.Close(); err != nil {
			return err
		}
		handler = newRelay(ctx).handler()
	default:
		return fmt.Errorf("unknown target %q", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// As cmd/candord's serve.
	hs := server.NewHTTPServer(handler, tlsConfig, nil)
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	w := bufio.NewWriter(out)
	reply := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		w.Flush()
	}
	reply("addr %s", ln.Addr())

	var prof *os.File
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch cmd {
		case "stats", "stats-gc":
			if cmd == "stats-gc" {
				runtime.GC()
			}
			b, _ := json.Marshal(readChildStats())
			reply("stats %s", b)
		case "prof-start":
			f, err := os.Create(arg)
			if err == nil {
				if err = pprof.StartCPUProfile(f); err != nil {
					f.Close()
				} else {
					prof = f
				}
			}
			if err != nil {
				reply("err %v", err)
			} else {
				reply("ok")
			}
		case "heap":
			f, err := os.Create(arg)
			if err == nil {
				runtime.GC()
				err = errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
			}
			if err != nil {
				reply("err %v", err)
			} else {
				reply("ok")
			}
		case "goroutines":
			f, err := os.Create(arg)
			if err == nil {
				err = errors.Join(pprof.Lookup("goroutine").WriteTo(f, 1), f.Close())
			}
			if err != nil {
				reply("err %v", err)
			} else {
				reply("ok")
			}
		case "prof-stop":
			if prof != nil {
				pprof.StopCPUProfile()
				prof.Close()
				prof = nil
			}
			reply("ok")
		default:
			reply("err unknown command %q", cmd)
		}
	}
	cancel() // ends live streams
	_ = hs.Close()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ChildStats is what a child says about itself.
type ChildStats struct {
	RSS        int64 `json:"rss_bytes"`      // VmRSS
	PeakRSS    int64 `json:"peak_rss_bytes"` // VmHWM
	GoTotal    int64 `json:"go_total_bytes"` // memory mapped by the Go runtime
	HeapLive   int64 `json:"heap_live_bytes"`
	HeapGoal   int64 `json:"heap_goal_bytes"`
	Stacks     int64 `json:"stack_bytes"`
	Goroutines int64 `json:"goroutines"`
}

func readChildStats() ChildStats {
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/gc/heap/goal:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(samples)
	val := func(i int) int64 {
		if samples[i].Value.Kind() == metrics.KindUint64 {
			return int64(samples[i].Value.Uint64())
		}
		return 0
	}
	rss, peak, _ := procMemory(os.Getpid())
	return ChildStats{RSS: rss, PeakRSS: peak, GoTotal: val(0), HeapLive: val(1), Goroutines: val(2), HeapGoal: val(3), Stacks: val(4)}
}

// child is a running target, from the parent's side.
type child struct {
	target string
	cmd    *exec.Cmd
	addr   string
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	mu     sync.Mutex // one command at a time
	errLog string     // the child's standard error
	waited chan error
	once   sync.Once
	err    error
}

// startChild starts this program again as target over dir.
func startChild(ctx context.Context, target, dir string, env []string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, dir)
	cmd.Env = append(append(os.Environ(), env...), ChildEnv+"="+target)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errLog := filepath.Join(dir, target+".log")
	ef, err := os.OpenFile(errLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = ef
	if err := cmd.Start(); err != nil {
		ef.Close()
		return nil, err
	}
	ef.Close()
	c := &child{target: target, cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout), errLog: errLog, waited: make(chan error, 1)}
	c.lines.Buffer(make([]byte, 64<<10), 1<<20)
	type result struct {
		addr string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		if !c.lines.Scan() {
			got <- result{err: fmt.Errorf("%s child ended before listening; see %s", target, errLog)}
			return
		}
		addr, ok := strings.CutPrefix(c.lines.Text(), "addr ")
		if !ok {
			got <- result{err: fmt.Errorf("%s child said %q", target, c.lines.Text())}
			return
		}
		got <- result{addr: addr}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			c.stop()
			return nil, r.err
		}
		c.addr = r.addr
	case <-time.After(60 * time.Second):
		c.stop()
		return nil, fmt.Errorf("%s child did not start listening", target)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
	go func() { c.waited <- cmd.Wait() }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// command sends one line and reads the answer.
func (c *child) command(line string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		return "", err
	}
	if !c.lines.Scan() {
		return "", fmt.Errorf("%s child stopped; see %s", c.target, c.errLog)
	}
	ans := c.lines.Text()
	if msg, ok := strings.CutPrefix(ans, "err "); ok {
		return "", errors.New(msg)
	}
	return ans, nil
}

func (c *child) stats(gc bool) (ChildStats, error) {
	cmd := "stats"
	if gc {
		cmd = "stats-gc"
	}
	ans, err := c.command(cmd)
	if err != nil {
		return ChildStats{}, err
	}
	var s ChildStats
	raw, ok := strings.CutPrefix(ans, "stats ")
	if !ok {
		return ChildStats{}, fmt.Errorf("%s child said %q", c.target, ans)
	}
	return s, json.Unmarshal([]byte(raw), &s)
}

// stop closes the child's input, which stops it, and waits a while. It
// may be called more than once.
func (c *child) stop() error {
	c.once.Do(func() { c.err = c.stop1() })
	return c.err
}

func (c *child) stop1() error {
	c.stdin.Close()
	if c.waited == nil || c.addr == "" {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		return nil
	}
	select {
	case err := <-c.waited:
		return err
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.waited
		return fmt.Errorf("%s child did not stop; killed", c.target)
	}
}

// logLines counts the lines of the child's standard error (warnings and
// errors of the server).
func (c *child) logLines() (int, string) {
	b, err := os.ReadFile(c.errLog)
	if err != nil || len(b) == 0 {
		return 0, ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return len(lines), lines[0]
}

// procMemory reads a process's resident set and its peak, in bytes.
func procMemory(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	return rss, peak, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux Go supports.
const clockTicks = 100

// procCPU reads the CPU time a process has used (user + system).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat does not parse", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat does not parse", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}
