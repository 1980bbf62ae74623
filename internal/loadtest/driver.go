package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"candor/api"
)

// clock is the load generator's time: nanoseconds since it started, from
// the monotonic clock.
var clockBase = time.Now()

func now() int64 { return int64(time.Since(clockBase)) }

// session is one target, running, with every device connected to it.
type session struct {
	cfg    Config
	org    *org
	msgs   *messages
	target string
	child  *child
	base   string // https://host:port
	ctx    context.Context
	cancel context.CancelFunc
	conns  []*deviceConn
	runs   []*runState // by rate index
	cur    atomic.Pointer[runState]

	caughtUp   atomic.Int64 // devices that received the setup's entries
	reconnects atomic.Int64
	closes     sync.Map // close reason → *atomic.Int64
	wg         sync.WaitGroup
}

// deviceConn is one device's connections to a target.
type deviceConn struct {
	s        *session
	dev      *device
	group    *group
	post     *http.Client
	postURL  string
	streamHC *http.Client
	queue    chan send
	ackPre   []byte
	// Written by the stream's reader only.
	lastSeq uint64
	// For AckInterval: the latest seq received.
	latest atomic.Uint64
}

type send struct {
	run *runState
	idx int32
}

// runState is one rate, measured against one target.
type runState struct {
	rate     int
	msgs     []outgoing
	t0       atomic.Int64 // clock time the first message was due
	interval int64        // ns between messages
	duration int64        // ns the rate is offered
	abandon  atomic.Bool

	pending sync.WaitGroup // messages queued or in flight
	// Per message, written by its sender's goroutine before pending.Done.
	acceptedAt []int64 // clock time of the 200; 0: not accepted
	failure    []string

	skipped atomic.Int64 // the sender's queue was full

	mu          sync.Mutex
	deliveries  int64
	inWindow    int64
	latencies   []int64 // delivery, ns
	duplicates  int64
	unknown     int64
	acksSent    atomic.Int64
	acksDropped atomic.Int64
}

func (r *runState) due(i int32) int64 { return r.t0.Load() + int64(i)*r.interval }

// end is the clock time the window closes.
func (r *runState) end() int64 { return r.t0.Load() + r.duration }

// measureTarget starts target, connects every device, offers each rate and
// reports.
func measureTarget(ctx context.Context, cfg Config, o *org, msgs *messages, target string) (*TargetReport, error) {
	progress(cfg.Progress, "%s: starting", target)
	c, err := startChild(ctx, target, o.dir, cfg.TargetEnv)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	sctx, cancel := context.WithCancel(ctx)
	s := &session{cfg: cfg, org: o, msgs: msgs, target: target, child: c, base: "https://" + c.addr, ctx: sctx, cancel: cancel}
	defer s.close()
	for ri, rate := range cfg.Rates {
		r := &runState{rate: rate, msgs: msgs.rates[ri], interval: int64(time.Second) / int64(rate), duration: int64(cfg.Duration)}
		r.acceptedAt = make([]int64, len(r.msgs))
		r.failure = make([]string, len(r.msgs))
		s.runs = append(s.runs, r)
	}
	rep := &TargetReport{Name: target, Addr: c.addr}

	start := time.Now()
	if err := s.connect(); err != nil {
		return nil, err
	}
	rep.ConnectSeconds = time.Since(start).Seconds()
	progress(cfg.Progress, "%s: %d streams and %d sender connections up in %.1fs", target, len(s.conns), s.senders(), rep.ConnectSeconds)
	if target == TargetServer {
		// Each stream first delivers what setup left in the log: the
		// device's Welcome and the commit that added it.
		deadline := time.Now().Add(60 * time.Second)
		for s.caughtUp.Load() < int64(len(s.conns)) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	s.settle()
	if rep.Idle, err = c.stats(true); err != nil {
		return nil, err
	}
	progress(cfg.Progress, "%s: idle with %d devices connected: RSS %s, Go heap live %s, goroutine stacks %s, Go total %s, %d goroutines",
		target, len(s.conns), mib(rep.Idle.RSS), mib(rep.Idle.HeapLive), mib(rep.Idle.Stacks), mib(rep.Idle.GoTotal), rep.Idle.Goroutines)
	if cfg.ProfileDir != "" {
		for _, p := range []string{"heap", "goroutines"} {
			path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-%d-idle-%s.pprof", target, cfg.Devices, p))
			if _, err := c.command(p + " " + path); err != nil {
				return nil, err
			}
		}
	}

	for ri := range cfg.Rates {
		rr, err := s.run(ri)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, *rr)
		progress(cfg.Progress, "%s: %d msg/s offered: %.0f accepted/s, %.0f deliveries/s, delivery p50 %s p99 %s",
			target, rr.Rate, rr.AcceptedPerSec, rr.DeliveriesPerSec, ms(rr.DeliveryLatency.P50), ms(rr.DeliveryLatency.P99))
		s.settle()
	}
	rep.Reconnects = s.reconnects.Load()
	s.closes.Range(func(k, v any) bool {
		if rep.StreamCloses == nil {
			rep.StreamCloses = map[string]int64{}
		}
		rep.StreamCloses[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	rep.LogLines, rep.FirstLogLine = c.logLines()
	s.close()
	if err := c.stop(); err != nil {
		return nil, err
	}
	return rep, nil
}

func (s *session) senders() int {
	n := 0
	for _, dc := range s.conns {
		if dc.post != nil {
			n++
		}
	}
	return n
}

func (s *session) close() {
	s.cancel()
	for _, dc := range s.conns {
		if dc.queue != nil {
			close(dc.queue)
			dc.queue = nil
		}
		if dc.post != nil {
			dc.post.CloseIdleConnections()
		}
		if dc.streamHC != nil {
			dc.streamHC.CloseIdleConnections()
		}
	}
	s.wg.Wait()
}

// settle waits until the target is idle: under 5% of a core for half a
// second, or 30 seconds.
func (s *session) settle() {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		a, err := procCPU(s.child.pid())
		if err != nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
		b, err := procCPU(s.child.pid())
		if err != nil || b-a < 25*time.Millisecond {
			return
		}
	}
}

// connect opens every device's live stream, and each sender's connection
// for its POSTs (with a GET /v1/me, so no run pays for a handshake).
func (s *session) connect() error {
	s.conns = make([]*deviceConn, len(s.org.devices))
	for i, dev := range s.org.devices {
		g := s.org.groups[dev.group]
		dc := &deviceConn{s: s, dev: dev, group: g, streamHC: s.org.httpClient(dev, nil),
			ackPre: []byte(`{"type":"ack","group_id":"` + g.b64 + `","seq":`)}
		if dev.sender {
			dc.post = s.org.httpClient(dev, nil)
			dc.postURL = s.base + "/v1/groups/" + g.hex + "/messages"
			dc.queue = make(chan send, 1024)
		}
		s.conns[i] = dc
	}
	return parallel(s.ctx, len(s.conns), s.cfg.Workers, func(i int) error {
		dc := s.conns[i]
		conn, err := dc.dial()
		if err != nil {
			return fmt.Errorf("device %d stream: %w", i, err)
		}
		s.wg.Add(1)
		go dc.stream(conn)
		if dc.post != nil {
			if err := call(s.ctx, dc.post, "GET", s.base+api.PathMe, nil, nil); err != nil {
				return fmt.Errorf("device %d: %w", i, err)
			}
			s.wg.Add(1)
			go dc.sendLoop(dc.queue)
		}
		return nil
	})
}

func (dc *deviceConn) dial() (*websocket.Conn, error) {
	url := "wss://" + dc.s.base[len("https://"):] + api.PathStream
	if dc.s.target == TargetBaseline {
		url += "?group=" + dc.group.hex
	}
	ctx, cancel := context.WithTimeout(dc.s.ctx, 60*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: dc.streamHC, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if resp != nil && resp.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			return nil, fmt.Errorf("%w: %d %s", err, resp.StatusCode, bytes.TrimSpace(b))
		}
		return nil, err
	}
	conn.SetReadLimit(4 << 20)
	return conn, nil
}

func (s *session) countClose(reason string) {
	v, _ := s.closes.LoadOrStore(reason, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// stream reads a device's live stream until the session ends, reconnecting
// when the target closes it, and acknowledges as configured.
func (dc *deviceConn) stream(conn *websocket.Conn) {
	s := dc.s
	defer s.wg.Done()
	for {
		err := dc.readStream(conn)
		conn.CloseNow()
		if s.ctx.Err() != nil {
			return
		}
		reason := "stream broken: " + err.Error()
		if st := websocket.CloseStatus(err); st != -1 {
			reason = "stream closed with " + strconv.Itoa(int(st))
		}
		s.countClose(reason)
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			c, err := dc.dial()
			if err == nil {
				conn = c
				s.reconnects.Add(1)
				break
			}
		}
	}
}

func (dc *deviceConn) readStream(conn *websocket.Conn) error {
	s := dc.s
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	var acks chan uint64
	switch s.cfg.Ack {
	case AckEvery:
		acks = make(chan uint64, 1024)
		go dc.ackEvery(ctx, conn, acks)
	case AckInterval:
		go dc.ackInterval(ctx, conn)
	}
	var buf bytes.Buffer
	entryPrefix := []byte(`{"type":"entry"`)
	for {
		_, r, err := conn.Reader(ctx)
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		t := now()
		frame := buf.Bytes()
		if !bytes.HasPrefix(frame, entryPrefix) {
			continue // a Welcome
		}
		seq := frameSeq(frame)
		cur := s.cur.Load()
		if seq <= dc.lastSeq {
			if cur != nil {
				cur.mu.Lock()
				cur.duplicates++
				cur.mu.Unlock()
			}
			continue
		}
		dc.lastSeq = seq
		if seq == 1 && s.target == TargetServer {
			s.caughtUp.Add(1)
		}
		if ref, ok := s.msgs.keys[messageKey(frame)]; ok {
			run := s.runs[ref.rate]
			lat := t - run.due(ref.idx)
			run.mu.Lock()
			run.deliveries++
			if t <= run.end() {
				run.inWindow++
			}
			run.latencies = append(run.latencies, lat)
			run.mu.Unlock()
		} else if cur != nil {
			cur.mu.Lock()
			cur.unknown++
			cur.mu.Unlock()
		}
		switch s.cfg.Ack {
		case AckEvery:
			select {
			case acks <- seq:
			default:
				if cur != nil {
					cur.acksDropped.Add(1)
				}
			}
		case AckInterval:
			dc.latest.Store(seq)
		}
	}
}

// frameSeq reads the entry's seq from an entry frame.
func frameSeq(frame []byte) uint64 {
	i := bytes.Index(frame, []byte(`"seq":`))
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range frame[i+len(`"seq":`):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// writeAck sends one ack frame. Like the client library's, it gives up
// after 10 seconds, which closes the connection.
func (dc *deviceConn) writeAck(ctx context.Context, conn *websocket.Conn, seq uint64) error {
	b := make([]byte, 0, len(dc.ackPre)+24)
	b = strconv.AppendUint(append(b, dc.ackPre...), seq, 10)
	b = append(b, '}')
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Write(wctx, websocket.MessageText, b); err != nil {
		if ctx.Err() == nil {
			dc.s.countClose("ack write failed (target not reading acks)")
		}
		return err
	}
	if cur := dc.s.cur.Load(); cur != nil {
		cur.acksSent.Add(1)
	}
	return nil
}

func (dc *deviceConn) ackEvery(ctx context.Context, conn *websocket.Conn, acks <-chan uint64) {
	for {
		select {
		case <-ctx.Done():
			return
		case seq := <-acks:
			if dc.writeAck(ctx, conn, seq) != nil {
				return
			}
		}
	}
}

func (dc *deviceConn) ackInterval(ctx context.Context, conn *websocket.Conn) {
	t := time.NewTicker(dc.s.cfg.AckInterval)
	defer t.Stop()
	var acked uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if seq := dc.latest.Load(); seq > acked {
				if dc.writeAck(ctx, conn, seq) != nil {
					return
				}
				acked = seq
			}
		}
	}
}

// sendLoop POSTs the messages queued for this device, one at a time.
func (dc *deviceConn) sendLoop(queue <-chan send) {
	defer dc.s.wg.Done()
	for snd := range queue {
		dc.post1(snd)
	}
}

func (dc *deviceConn) post1(snd send) {
	r := snd.run
	defer r.pending.Done()
	if r.abandon.Load() {
		r.failure[snd.idx] = "still queued when the drain ended"
		return
	}
	ctx, cancel := context.WithTimeout(dc.s.ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", dc.postURL, bytes.NewReader(r.msgs[snd.idx].body))
	if err != nil {
		r.failure[snd.idx] = err.Error()
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := dc.post.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			r.failure[snd.idx] = "timeout"
		case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF):
			r.failure[snd.idx] = "connection lost"
		default:
			r.failure[snd.idx] = "transport: " + err.Error()
		}
		return
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	t := now()
	switch {
	case err != nil:
		r.failure[snd.idx] = "connection lost"
	case resp.StatusCode == http.StatusOK:
		r.acceptedAt[snd.idx] = t
	default:
		code, _ := jsonString(raw, `"code":"`)
		r.failure[snd.idx] = fmt.Sprintf("%d %s", resp.StatusCode, code)
	}
}

// run offers one rate for the configured duration, open loop, then drains.
func (s *session) run(ri int) (*RunReport, error) {
	r := s.runs[ri]
	cfg := s.cfg
	progress(cfg.Progress, "%s: offering %d msg/s for %v (%d messages)", s.target, r.rate, cfg.Duration, len(r.msgs))
	var genProf *os.File
	if cfg.ProfileDir != "" {
		path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-%d-%d.pprof", s.target, cfg.Devices, r.rate))
		if _, err := s.child.command("prof-start " + path); err != nil {
			return nil, err
		}
		f, err := os.Create(filepath.Join(cfg.ProfileDir, fmt.Sprintf("generator-%s-%d-%d.pprof", s.target, cfg.Devices, r.rate)))
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		genProf = f
	}
	if other := s.waitQuiet(cfg.QuietWait); other > quietCores {
		progress(cfg.Progress, "%s: other processes still use %.2f cores; measuring anyway", s.target, other)
	}
	mem := newMemSampler(s.child.pid())
	cpu0, _ := procCPU(s.child.pid())
	gen0 := selfCPU()
	sys0, _ := readSystemCPU()

	t0 := now() + int64(10*time.Millisecond)
	r.t0.Store(t0)
	s.cur.Store(r)
	conns := make(map[*device]*deviceConn, len(s.conns))
	for _, dc := range s.conns {
		conns[dc.dev] = dc
	}
	for i := range r.msgs {
		due := r.due(int32(i))
		if d := due - now(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if s.ctx.Err() != nil {
			return nil, s.ctx.Err()
		}
		dc := conns[r.msgs[i].sender]
		r.pending.Add(1)
		select {
		case dc.queue <- send{run: r, idx: int32(i)}:
		default:
			r.pending.Done()
			r.skipped.Add(1)
			r.failure[i] = "not sent: the sender's queue was full"
		}
	}
	if d := r.end() - now(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	cpu1, _ := procCPU(s.child.pid())
	gen1 := selfCPU()
	sys1, _ := readSystemCPU()
	window := time.Duration(now() - t0)

	// Drain: answers first, then deliveries, within cfg.Drain.
	drainEnd := time.Now().Add(cfg.Drain)
	answered := make(chan struct{})
	go func() { r.pending.Wait(); close(answered) }()
	select {
	case <-answered:
	case <-time.After(time.Until(drainEnd)):
		r.abandon.Store(true)
		<-answered // in-flight requests end within their 30s timeout
	}
	accepted := 0
	for _, at := range r.acceptedAt {
		if at != 0 {
			accepted++
		}
	}
	want := int64(accepted * cfg.GroupSize)
	last, lastChange := int64(-1), time.Now()
	for time.Now().Before(drainEnd) {
		r.mu.Lock()
		got := r.deliveries
		r.mu.Unlock()
		if got >= want {
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > 5*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	end, err := s.child.stats(false)
	if err != nil {
		return nil, err
	}
	peak := mem.stop()
	if genProf != nil {
		pprof.StopCPUProfile()
		genProf.Close()
		if _, err := s.child.command("prof-stop"); err != nil {
			return nil, err
		}
	}
	s.cur.Store(nil)
	rr := r.report(cfg, window)
	rr.TargetCPU = (cpu1 - cpu0).Seconds() / window.Seconds()
	rr.GeneratorCPU = (gen1 - gen0).Seconds() / window.Seconds()
	rr.Machine = sys1.sub(sys0, window)
	rr.OtherCPU = max(0, rr.Machine.Busy-rr.Machine.SoftIRQ-rr.TargetCPU-rr.GeneratorCPU)
	rr.PeakRSS = max(peak, end.RSS)
	rr.End = end
	return rr, nil
}

// quietCores is how much CPU other processes may use for a window to
// start at once.
const quietCores = 0.2

// waitQuiet waits, up to limit, until processes other than the target and
// this one use under quietCores, and returns what they used in the last
// second looked at. The machine may be shared.
func (s *session) waitQuiet(limit time.Duration) float64 {
	if limit <= 0 {
		return 0
	}
	deadline := time.Now().Add(limit)
	var other float64
	for {
		sys0, err0 := readSystemCPU()
		c0, _ := procCPU(s.child.pid())
		g0 := selfCPU()
		time.Sleep(time.Second)
		sys1, err1 := readSystemCPU()
		c1, _ := procCPU(s.child.pid())
		g1 := selfCPU()
		if err0 != nil || err1 != nil {
			return 0
		}
		m := sys1.sub(sys0, time.Second)
		other = m.Busy - m.SoftIRQ - (c1 - c0).Seconds() - (g1 - g0).Seconds()
		if other < quietCores || time.Now().After(deadline) || s.ctx.Err() != nil {
			return max(other, 0)
		}
	}
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memSampler reads a process's resident set every 100ms and keeps the
// largest.
type memSampler struct {
	stopc chan struct{}
	done  chan int64
}

func newMemSampler(pid int) *memSampler {
	m := &memSampler{stopc: make(chan struct{}), done: make(chan int64, 1)}
	go func() {
		var peak int64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := procMemory(pid); err == nil {
				peak = max(peak, rss)
			}
			select {
			case <-m.stopc:
				m.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *memSampler) stop() int64 {
	close(m.stopc)
	return <-m.done
}
