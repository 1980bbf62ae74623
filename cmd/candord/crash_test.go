package main_test

// The crash test of docs/design/server.md, "Delivery": the real candord
// binary, killed with SIGKILL while devices stream messages through it,
// must lose nothing it acknowledged. It builds the binary with the
// toolchain running the test, runs it as a child process on 127.0.0.1,
// and drives it with real clients (package client).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"candor"
	"candor/client"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/pki"
	"candor/internal/server"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// How much the crash test sends, and how long it may take. The volume is
// what a 2-core CI machine gets through under -race in well under a
// minute; crashBudget bounds the whole test should something hang.
const (
	crashAckedAtEnd       = 100              // acknowledged sends after the last restart
	crashMinFailures      = 4                // failed sends seen before an outage ends
	crashMaxDowntime      = 5 * time.Second  // an outage ends by then even with fewer failures
	crashPhase            = 2 * time.Minute  // for the acknowledged sends of one phase
	crashConverge         = 60 * time.Second // for the live streams to deliver everything
	crashServerStart      = 60 * time.Second // for candord serve to listen
	crashBudget           = 5 * time.Minute
	crashSendRetryBackoff = 50 * time.Millisecond // between a failed send and the next
)

// crashPlan says when the server is killed, and for how long.
var crashPlan = []struct {
	acked  int  // acknowledged sends, since the last restart, before the SIGKILL
	outage bool // stay down until sends have failed, else restart at once
}{
	// Restarted at once: sends caught in flight retry (client.Send tries
	// three times over about 600ms) into the new server, which answers
	// with their position, or replay if the first try had landed.
	{acked: 300},
	// Down for longer than the client retries: sends in flight fail, and
	// their fate is unknown to their senders.
	{acked: 100, outage: true},
}

// crashDevice is one enrolled device of the test, with the sends it made.
type crashDevice struct {
	user candor.UserID
	name string
	c    *client.Client

	runDone chan error // Run's result

	connected    chan struct{} // closed at the first EventConnected
	connects     atomic.Int64
	lastConnect  atomic.Int64 // when, in Unix nanoseconds
	disconnects  atomic.Int64
	firstConnect sync.Once
}

func (d *crashDevice) String() string { return string(d.user) + "/" + d.name }

// crashSend is one call of client.Send and its outcome.
type crashSend struct {
	dev   *crashDevice
	group candor.GroupID
	text  string
	acked bool   // Send returned nil: the server acknowledged it
	seq   uint64 // its position in the group's log, when acked
	phase int    // how many times the server had been killed when it began
	err   error
}

// crashLog collects the test's logs (server and clients) for a failure
// report.
type crashLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *crashLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// tail returns the last n lines.
func (l *crashLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestCrashRecovery runs candord as a process, streams messages into two
// groups from four devices (three people, one with two devices) whose
// live streams run throughout, kills the server with SIGKILL mid-stream,
// restarts it on the same data folder and port, sends more, and checks
// that every message whose send was acknowledged reached every member
// device exactly once, at the position the server gave it, so in the same
// order for all; and that a message whose send failed is in any history
// at most once.
func TestCrashRecovery(t *testing.T) {
	crashTest(t, false)
}

// TestCrashRecoveryAcrossCommits is TestCrashRecovery with a fifth device,
// which sends nothing, rotating its keys in both groups (a commit) right
// after each restart: a send whose answer the crash lost is then retried
// into a new epoch, and must be answered as a replay, not encrypted again.
func TestCrashRecoveryAcrossCommits(t *testing.T) {
	crashTest(t, true)
}

// crashTest runs the crash scenario; commits adds the device that rotates
// its keys after each restart.
func crashTest(t *testing.T, commits bool) {
	if testing.Short() {
		t.Skip("builds and runs the server as a process; skipped with -short")
	}
	// Not parallel: it wants the machine's cores for itself, to stay
	// within its time bounds on a small CI runner.
	ctx, cancel := context.WithTimeout(t.Context(), crashBudget)
	defer cancel()
	start := time.Now()

	bin := buildCandord(ctx, t)
	base := t.TempDir()
	data := filepath.Join(base, "data")
	var clientLog crashLog
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client logs (tail):\n%s", clientLog.tail(80))
		}
	})
	if out, err := candordCmd(ctx, bin, "init", "--data", data, "--org", "Example Bank", "--host", "127.0.0.1"); err != nil {
		t.Fatalf("candord init: %v\n%s", err, out)
	}
	holdCeremonyIn(ctx, t, data)
	srv := startCandord(ctx, t, bin, data, "127.0.0.1:0", filepath.Join(base, "serve-1.log"))
	addr := srv.addr
	t.Logf("candord serve listening on %s, %v after the test began", addr, srv.started.Sub(start).Round(time.Millisecond))

	// Three people, four devices, which send; and with commits a fourth
	// person, whose device commits and does not send.
	type device struct {
		user candor.UserID
		name string
	}
	people := []device{{"alice", "laptop"}, {"alice", "phone"}, {"bob", "laptop"}, {"carol", "desk"}}
	others := []candor.UserID{"carol"}
	if commits {
		people = append(people, device{"dave", "tablet"})
		others = append(others, "dave")
	}
	var devs []*crashDevice
	for _, u := range people {
		code, err := candordCmd(ctx, bin, "invite", "--data", data, "--server", addr, "--expires", "1h", string(u.user))
		if err != nil {
			t.Fatalf("candord invite %s: %v\n%s", u.user, err, code)
		}
		d := &crashDevice{user: u.user, name: u.name, runDone: make(chan error, 1), connected: make(chan struct{})}
		cfg := client.Config{
			Logger:       slog.New(slog.NewTextHandler(&clientLog, &slog.HandlerOptions{Level: slog.LevelInfo})).With("side", d.String()),
			MinBackoff:   20 * time.Millisecond,
			MaxBackoff:   500 * time.Millisecond,
			PingInterval: 5 * time.Second,
		}
		c, err := client.EnrolWith(ctx, filepath.Join(base, string(u.user)+"-"+u.name), code, u.name, cfg)
		if err != nil {
			t.Fatalf("enrolling %s: %v", d, err)
		}
		d.c = c
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("closing %s: %v", d, err)
			}
		})
		devs = append(devs, d)
	}
	alice, bob := devs[0], devs[2]
	senders := devs[:4]

	// Two conversations with every device in each.
	g1, err := alice.c.CreateGroup(ctx, "desk", append([]candor.UserID{"bob"}, others...)...)
	if err != nil {
		t.Fatalf("alice creates a group: %v", err)
	}
	g2, err := bob.c.CreateGroup(ctx, "ops", append([]candor.UserID{"alice"}, others...)...)
	if err != nil {
		t.Fatalf("bob creates a group: %v", err)
	}
	groups := []candor.GroupID{g1, g2}
	for _, d := range devs {
		if err := d.c.Sync(ctx); err != nil {
			t.Fatalf("%s: sync: %v", d, err)
		}
		for _, g := range groups {
			ms, err := d.c.Members(ctx, g)
			if err != nil || len(ms) != len(devs)+1 {
				t.Fatalf("%s: members of %s: %v, %v; want %d devices and the archive", d, g, ms, err, len(devs))
			}
		}
	}

	// Every device's live stream, in the background, with its events
	// counted.
	runCtx, stopRuns := context.WithCancel(ctx)
	var runsWG sync.WaitGroup
	defer func() { stopRuns(); runsWG.Wait() }()
	eventsDone := make(chan struct{})
	var eventsWG sync.WaitGroup
	for _, d := range devs {
		runsWG.Go(func() { d.runDone <- d.c.Run(runCtx) })
		eventsWG.Go(func() {
			for {
				select {
				case ev := <-d.c.Events():
					switch ev.Kind {
					case client.EventConnected:
						d.connects.Add(1)
						d.lastConnect.Store(time.Now().UnixNano())
						d.firstConnect.Do(func() { close(d.connected) })
					case client.EventDisconnected:
						d.disconnects.Add(1)
					case client.EventError:
						t.Errorf("%s: a log entry could not be used: %v", d, ev.Err)
					}
				case <-eventsDone:
					return
				}
			}
		})
	}
	defer func() { close(eventsDone); eventsWG.Wait() }()
	for _, d := range devs {
		select {
		case <-d.connected:
		case <-ctx.Done():
			t.Fatalf("%s: live stream never connected", d)
		}
	}

	// Senders: one per device, taking turns between the groups, until told
	// to stop. Each records every call of Send and its outcome.
	var (
		mu        sync.Mutex
		sends     []*crashSend
		phase     atomic.Int64
		ackedIn   = make([]atomic.Int64, len(crashPlan)+1) // by phase
		failed    atomic.Int64
		stopSend  atomic.Bool
		sendersWG sync.WaitGroup
	)
	acked := func() int64 {
		var n int64
		for i := range ackedIn {
			n += ackedIn[i].Load()
		}
		return n
	}
	for _, d := range senders {
		sendersWG.Go(func() {
			for n := 0; !stopSend.Load() && ctx.Err() == nil; n++ {
				s := &crashSend{dev: d, group: groups[n%len(groups)], phase: int(phase.Load())}
				s.text = fmt.Sprintf("%s #%d", d, n)
				// The test's context only, never a shorter one: a send
				// cancelled in flight has an unknown fate the client
				// does not track.
				m, err := d.c.Send(ctx, s.group, s.text)
				s.err = err
				if err == nil {
					s.acked, s.seq = true, m.Seq
					ackedIn[s.phase].Add(1)
				} else {
					failed.Add(1)
				}
				mu.Lock()
				sends = append(sends, s)
				mu.Unlock()
				if err != nil {
					time.Sleep(crashSendRetryBackoff)
				}
			}
		})
	}
	stopSenders := func() {
		stopSend.Store(true)
		sendersWG.Wait()
	}
	defer func() { cancel(); stopSenders() }() // a send stuck on failure ends with ctx
	waitFor := func(what string, limit time.Duration, ok func() bool) bool {
		deadline := time.Now().Add(limit)
		for !ok() {
			if ctx.Err() != nil || time.Now().After(deadline) {
				t.Errorf("%s: not within %v (acknowledged %d, failed %d)", what, limit, acked(), failed.Load())
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}

	// Stream; kill the server mid-stream; restart it on the same folder
	// and port; again.
	for i, k := range crashPlan {
		if !waitFor(fmt.Sprintf("%d acknowledged sends before kill %d", k.acked, i+1), crashPhase,
			func() bool { return ackedIn[i].Load() >= int64(k.acked) }) {
			t.FailNow()
		}
		killAt := time.Now()
		if err := srv.cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatalf("killing candord: %v", err)
		}
		<-srv.done
		phase.Store(int64(i + 1))
		failedAtKill := failed.Load()
		t.Logf("kill %d (%v): after %d acknowledged sends, %v in", i+1, srv.err, acked(), killAt.Sub(start).Round(time.Millisecond))
		if k.outage {
			deadline := time.Now().Add(crashMaxDowntime)
			for failed.Load()-failedAtKill < crashMinFailures && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
		srv = startCandord(ctx, t, bin, data, addr, filepath.Join(base, fmt.Sprintf("serve-%d.log", i+2)))
		if commits {
			for _, g := range groups {
				if err := devs[4].c.UpdateKeys(ctx, g); err != nil {
					t.Errorf("%s: rotating keys in %s after restart %d: %v", devs[4], g, i+1, err)
				}
			}
		}
		t.Logf("restart %d: listening %v after the kill; %d sends failed meanwhile", i+1, srv.started.Sub(killAt).Round(time.Millisecond), failed.Load()-failedAtKill)
	}
	if !waitFor("acknowledged sends after the last restart", crashPhase,
		func() bool { return ackedIn[len(crashPlan)].Load() >= crashAckedAtEnd }) {
		t.FailNow()
	}
	stopSenders()

	// The live streams alone deliver everything acknowledged.
	mu.Lock()
	all := slices.Clone(sends)
	mu.Unlock()
	want := map[candor.GroupID][]uint64{}
	for _, s := range all {
		if s.acked {
			want[s.group] = append(want[s.group], s.seq)
		}
	}
	waitFor("live streams delivering every acknowledged message", crashConverge, func() bool {
		for _, d := range devs {
			for _, g := range groups {
				ms, err := d.c.Messages(ctx, g)
				if err != nil {
					return false
				}
				have := map[uint64]bool{}
				for _, m := range ms {
					have[m.Seq] = true
				}
				for _, seq := range want[g] {
					if !have[seq] {
						return false
					}
				}
			}
		}
		return true
	})
	waitFor("live streams connected to the restarted server", crashConverge, func() bool {
		for _, d := range devs {
			if d.lastConnect.Load() < srv.started.UnixNano() {
				return false
			}
		}
		return true
	})
	stopRuns()
	for _, d := range devs {
		select {
		case err := <-d.runDone:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: Run ended with %v, want context.Canceled", d, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s: Run did not end within 30s of its context", d)
		}
	}
	// Then catch up once more, to the end.
	for _, d := range devs {
		if err := d.c.Sync(ctx); err != nil {
			t.Errorf("%s: sync: %v", d, err)
		}
	}

	checkCrashHistories(ctx, t, devs, groups, all, acked())

	// The restarted server still stops gracefully.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-srv.done:
		if srv.err != nil {
			t.Errorf("candord serve after SIGTERM: %v", srv.err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("candord serve did not stop within 20s of SIGTERM")
	}
	for _, d := range devs {
		t.Logf("%s: stream connected %d times, broke %d times", d, d.connects.Load(), d.disconnects.Load())
	}
	// How often a retry found its first try in the log: the path a lost
	// answer takes.
	replays := 0
	logs, _ := filepath.Glob(filepath.Join(base, "serve-*.log"))
	for _, l := range logs {
		raw, _ := os.ReadFile(l)
		replays += bytes.Count(raw, []byte(`"code":"replay"`))
	}
	t.Logf("%d sends answered replay; took %v", replays, time.Since(start).Round(time.Millisecond))
}

// checkCrashHistories checks every device's history of every group against
// the sends: each acknowledged message exactly once, at its position;
// every message at most once; the devices agreeing on every position.
func checkCrashHistories(ctx context.Context, t *testing.T, devs []*crashDevice, groups []candor.GroupID, sends []*crashSend, acked int64) {
	t.Helper()
	var (
		nAcked                        int
		nAckedIn                      = make([]int, len(crashPlan)+1)
		nFailed                       int
		nFailedDelivered, nFailedLost int
		nUnresolved                   int // delivered, but "sending" on its sender
	)
	for _, g := range groups {
		// What the senders were told.
		ackedAt := map[uint64]*crashSend{}
		byText := map[string]*crashSend{}
		lastSeq := map[*crashDevice]uint64{}
		for _, s := range sends {
			if s.group != g {
				continue
			}
			byText[s.text] = s
			if !s.acked {
				continue
			}
			if s.seq == 0 {
				t.Errorf("group %s: %q acknowledged without a position", g, s.text)
				continue
			}
			if o := ackedAt[s.seq]; o != nil {
				t.Errorf("group %s: %q and %q both acknowledged at seq %d", g, o.text, s.text, s.seq)
			}
			ackedAt[s.seq] = s
			if s.seq <= lastSeq[s.dev] {
				t.Errorf("group %s: %q acknowledged at seq %d, after an earlier send of its device at %d", g, s.text, s.seq, lastSeq[s.dev])
			}
			lastSeq[s.dev] = s.seq
		}

		// What each device holds; and the log as all devices together
		// saw it.
		logAt := map[uint64]string{}
		held := make([]map[uint64]string, len(devs))
		pending := make([]map[string]bool, len(devs)) // own messages still "sending"
		for i, d := range devs {
			ms, err := d.c.Messages(ctx, g)
			if err != nil {
				t.Errorf("%s: history of %s: %v", d, g, err)
				continue
			}
			held[i], pending[i] = map[uint64]string{}, map[string]bool{}
			seen := map[string]bool{}
			var prev uint64
			for _, m := range ms {
				if seen[m.Text] {
					t.Errorf("%s: %q twice in the history of %s", d, m.Text, g)
				}
				seen[m.Text] = true
				s := byText[m.Text]
				switch {
				case s == nil:
					t.Errorf("%s: %q in the history of %s was never sent to it", d, m.Text, g)
					continue
				case m.Seq == 0:
					if m.State != client.Sending || s.dev != d || s.acked {
						t.Errorf("%s: %q in the history of %s without a position (state %s, sent by %s, acknowledged %v)", d, m.Text, g, m.State, s.dev, s.acked)
					}
					pending[i][m.Text] = true
					continue
				}
				if m.Seq <= prev {
					t.Errorf("%s: history of %s out of order: seq %d after %d", d, g, m.Seq, prev)
				}
				prev = m.Seq
				if m.User != s.dev.user || m.Device != s.dev.c.Device() {
					t.Errorf("%s: %q at seq %d attributed to %s/%s, sent by %s", d, m.Text, m.Seq, m.User, m.Device, s.dev)
				}
				wantState := client.Received
				if s.dev == d {
					wantState = client.Sent
				}
				if m.State != wantState {
					t.Errorf("%s: %q at seq %d is %s, want %s", d, m.Text, m.Seq, m.State, wantState)
				}
				held[i][m.Seq] = m.Text
				if other, ok := logAt[m.Seq]; ok && other != m.Text {
					t.Errorf("group %s: devices disagree on seq %d: %q and %q", g, m.Seq, other, m.Text)
				}
				logAt[m.Seq] = m.Text
			}
		}

		// Every acknowledged message, on every device, at its position.
		for seq, s := range ackedAt {
			nAcked++
			nAckedIn[s.phase]++
			for i, d := range devs {
				if held[i] == nil {
					continue
				}
				if got, ok := held[i][seq]; !ok {
					t.Errorf("%s: acknowledged %q (seq %d of %s) is missing", d, s.text, seq, g)
				} else if got != s.text {
					t.Errorf("%s: seq %d of %s holds %q, but %q was acknowledged there", d, seq, g, got, s.text)
				}
			}
		}
		// Every message some device holds, on every device: the same log
		// for all. A message whose send failed but which reached the log
		// stays "sending" on its own device (see below).
		for seq, text := range logAt {
			s := byText[text]
			if !s.acked {
				nFailedDelivered++
			}
			for i, d := range devs {
				if held[i] == nil {
					continue
				}
				if _, ok := held[i][seq]; ok {
					continue
				}
				if s.dev == d && pending[i][text] {
					nUnresolved++
					t.Logf("%s: its own %q is in the log at seq %d of %s, but still \"sending\" in its history", d, text, seq, g)
					continue
				}
				t.Errorf("%s: %q (seq %d of %s, sent by %s, acknowledged %v) is missing", d, text, seq, g, s.dev, s.acked)
			}
		}
		inLog := map[string]bool{}
		for _, text := range logAt {
			inLog[text] = true
		}
		for _, s := range sends {
			if s.group != g || s.acked {
				continue
			}
			nFailed++
			if !inLog[s.text] {
				nFailedLost++
			}
		}
	}
	t.Logf("summary: %d sends acknowledged (by the number of kills before they began: %v); %d sends failed: %d delivered anyway, %d not delivered; %d delivered but still \"sending\" on their sender",
		nAcked, nAckedIn, nFailed, nFailedDelivered, nFailedLost, nUnresolved)
	if int64(nAcked) != acked {
		t.Errorf("%d acknowledged sends checked, %d made", nAcked, acked)
	}
}

// buildCandord builds this package's binary with the go command running
// the test (go test puts its GOROOT/bin first in PATH), with the race
// detector when the test has it.
// holdCeremonyIn makes the archive of the organisation in the data folder
// dir, as its custodians would with cmd/candor-custody.
func holdCeremonyIn(ctx context.Context, t *testing.T, dir string) {
	t.Helper()
	open := func(ctx context.Context, path string) (store.Store, error) { return sqlstore.Open(ctx, path) }
	data, err := server.Open(ctx, dir, open)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	a := ceremonytest.Hold(t, data.CA.(*pki.CA), time.Now())
	if err := server.PublishArchive(dir, a.Statement.KeyID(), a.Statement.Bytes(), a.Statement.KeyPackage(), a.Endorsements); err != nil {
		t.Fatal(err)
	}
}

func buildCandord(ctx context.Context, t *testing.T) string {
	t.Helper()
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build candord with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "candord")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	cmd := exec.CommandContext(ctx, gocmd, append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// candordCmd runs a short candord subcommand and returns its standard
// output, or its standard error with the error.
func candordCmd(ctx context.Context, bin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.String(), err
	}
	return strings.TrimSpace(stdout.String()), nil
}

// candordProc is a running candord serve.
type candordProc struct {
	cmd     *exec.Cmd
	addr    string
	started time.Time
	done    chan struct{} // closed when the process has exited
	err     error         // how it exited; set before done is closed
}

// startCandord starts candord serve on listen and waits until it listens.
// A port still taken (the restart) is tried again for a while. The
// server's log goes to logPath, and is shown if the test fails; a data race
// the server reports fails the test.
func startCandord(ctx context.Context, t *testing.T, bin, data, listen, logPath string) *candordProc {
	t.Helper()
	deadline := time.Now().Add(crashServerStart)
	for {
		p, err := tryStartCandord(ctx, t, bin, data, listen, logPath)
		if err == nil {
			return p
		}
		if !strings.Contains(err.Error(), "address already in use") || time.Now().After(deadline) {
			t.Fatalf("candord serve --listen %s: %v", listen, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tryStartCandord(ctx context.Context, t *testing.T, bin, data, listen, logPath string) (*candordProc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--data", data, "--listen", listen)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &candordProc{cmd: cmd, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logFile.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(logFile, stderr)
		p.err = cmd.Wait()
		logFile.Close()
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		raw, _ := os.ReadFile(logPath)
		if bytes.Contains(raw, []byte("WARNING: DATA RACE")) {
			t.Errorf("candord serve (%s) reported a data race", filepath.Base(logPath))
		}
		if t.Failed() {
			lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("%s (tail):\n%s", filepath.Base(logPath), strings.Join(lines, "\n"))
		}
	})
	select {
	case p.addr = <-addrc:
		p.started = time.Now()
		return p, nil
	case <-p.done:
		raw, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("exited (%v) before listening: %s", p.err, raw)
	case <-time.After(crashServerStart):
		return nil, fmt.Errorf("not listening after %v", crashServerStart)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
