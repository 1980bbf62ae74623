package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"candor"
	"candor/api"
	"candor/internal/store"
)

// Live stream timing and limits.
const (
	streamPing      = 30 * time.Second // how often the server pings an idle stream
	streamWrite     = 10 * time.Second // the longest one frame may take to send
	streamReadLimit = 4 << 10          // the largest frame a device may send (an ack)
)

// errSlowConsumer closes a stream that fell too far behind.
var errSlowConsumer = errors.New("server: stream fell too far behind")

// cursorFlush is how often a live stream writes the cursors its acks
// moved to the store: acks are kept in memory and coalesced, so that
// reading them never waits on the database.
const cursorFlush = time.Second

// notice wakes a device's live streams after an append: the group's log
// has an entry at seq. frame, when not nil, is that entry's StreamFrame,
// encoded once and shared by every recipient (read-only): a stream that
// has sent everything up to seq-1 sends it as is, without reading the
// store. A stream that is further behind catches up from the store.
type notice struct {
	group   candor.GroupID
	seq     uint64
	frame   []byte
	member  bool // the device is a member after this entry
	welcome bool // a Welcome for the device was queued with this entry
	// devices, alone, says that another device of the same person
	// published its first KeyPackages (api.FrameDevices).
	devices bool
}

// entryFrame encodes the StreamFrame of one appended entry, for notices.
// It returns nil if the entry cannot be encoded: streams then read it from
// the store.
func entryFrame(id candor.GroupID, e api.Entry) []byte {
	b, err := json.Marshal(api.StreamFrame{Type: api.FrameEntry, GroupID: []byte(id), Entry: &e})
	if err != nil {
		return nil
	}
	return b
}

// hub is the in-process broadcaster: each live stream subscribes, appends
// publish notices to the streams of the devices concerned. Publishing
// never blocks: a stream that has more than buffer notices waiting is
// closed, and its device reconnects and catches up from its cursor.
type hub struct {
	buffer int
	mu     sync.Mutex
	subs   map[candor.DeviceID]map[*subscription]struct{}
	// watch starts Server.watchRevocations with the first stream.
	watch sync.Once
}

// A subscription is one stream's queue of notices. The queue is a slice
// that grows as notices arrive and is let go once drained, rather than a
// channel of buffer slots: most streams are idle most of the time, and a
// channel would hold its whole buffer for each of them (256 notices, 14 KB
// a stream, 170 MB with 12,000 devices connected).
type subscription struct {
	device candor.DeviceID
	cancel context.CancelCauseFunc
	wake   chan struct{} // holds a token when queue is not empty

	mu    sync.Mutex
	queue []notice
}

func newHub(buffer int) *hub {
	return &hub{buffer: buffer, subs: make(map[candor.DeviceID]map[*subscription]struct{})}
}

// subscribe registers a stream of device; cancel ends it.
func (h *hub) subscribe(device candor.DeviceID, cancel context.CancelCauseFunc) *subscription {
	sub := &subscription{device: device, cancel: cancel, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[device] == nil {
		h.subs[device] = make(map[*subscription]struct{})
	}
	h.subs[device][sub] = struct{}{}
	return sub
}

func (h *hub) unsubscribe(sub *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[sub.device], sub)
	if len(h.subs[sub.device]) == 0 {
		delete(h.subs, sub.device)
	}
}

// publish hands n to every stream of device, closing those that are full.
func (h *hub) publish(device candor.DeviceID, n notice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[device] {
		if !sub.push(n, h.buffer) {
			sub.cancel(errSlowConsumer)
			delete(h.subs[device], sub)
		}
	}
	if len(h.subs[device]) == 0 {
		delete(h.subs, device)
	}
}

// push queues n, unless limit notices are waiting already.
func (sub *subscription) push(n notice, limit int) bool {
	sub.mu.Lock()
	full := len(sub.queue) >= limit
	if !full {
		sub.queue = append(sub.queue, n)
	}
	sub.mu.Unlock()
	if full {
		return false
	}
	select {
	case sub.wake <- struct{}{}:
	default:
	}
	return true
}

// take returns the waiting notices, oldest first, and empties the queue.
func (sub *subscription) take() []notice {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	q := sub.queue
	sub.queue = nil
	return q
}

// kick closes every stream of device with cause.
func (h *hub) kick(device candor.DeviceID, cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[device] {
		sub.cancel(cause)
	}
	delete(h.subs, device)
}

// streamState is what one live stream has sent, and the state of the
// writing of its acks.
type streamState struct {
	conn     *websocket.Conn
	connCtx  context.Context // for I/O on conn: never cancelled
	device   candor.DeviceID
	sent     map[candor.GroupID]uint64 // the last seq sent, per group
	welcomes map[string]bool           // Welcome ids sent
	acks     *ackBuffer
}

// handleStream opens the live stream: every entry after the device's
// cursor in each of its groups and its Welcomes, then new ones as they are
// appended. Acks from the device move its cursors.
//
// Once the connection is upgraded, the stream runs on a goroutine of its
// own (serveStream) and handleStream returns, so that net/http lets go of
// what it holds for a request: the connection's goroutine, whose stack
// grew for the TLS handshake, its read and write buffers, the request and
// the response (docs/benchmarks.md measures what that saves with 12,000
// devices connected). The stream then holds two goroutines, serveStream
// and readAcks: pings and cursor writes are driven from serveStream's
// loop, and one watchRevocations serves every stream.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return fail(api.CodeBadRequest, "this endpoint is a WebSocket upgrade", nil)
	}
	// Subscribe before catching up, so that nothing appended meanwhile is
	// missed; what arrives twice is sent once (streamState.sent).
	ctx, cancel := context.WithCancelCause(s.life)
	sub := s.hub.subscribe(dev.ID, cancel)
	s.hub.watch.Do(func() { go s.watchRevocations() })

	// Frames are JSON around ciphertext: compression would gain little.
	conn, err := websocket.Accept(leanHijacker{w}, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.hub.unsubscribe(sub)
		cancel(nil)
		// Accept has answered the request itself.
		s.log.LogAttrs(ctx, slog.LevelInfo, "stream refused", slog.String(keyDevice, string(dev.ID)), slog.String(keyErr, err.Error()))
		return nil
	}
	conn.SetReadLimit(streamReadLimit)
	s.log.LogAttrs(ctx, slog.LevelDebug, "stream opened", slog.String(keyDevice, string(dev.ID)))
	go s.serveStream(ctx, cancel, conn, dev.ID, sub)
	return nil
}

// Stream buffer sizes: what the WebSocket library reads through and
// writes through for each stream. net/http hands over 4 KiB of each with
// a hijacked connection; a stream reads only acks (under 200 bytes) and
// writes entry frames of a few hundred bytes, which a larger frame simply
// crosses in several writes.
const (
	streamReadBuffer  = 512
	streamWriteBuffer = 1 << 10
)

// leanHijacker gives the WebSocket library smaller buffers than net/http's
// for the hijacked connection (see the sizes above), and lets it reach the
// connection underneath w.
type leanHijacker struct{ http.ResponseWriter }

func (w leanHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// What the client sent after its request may be in net/http's read
	// buffer already (its check for a closed connection reads a byte
	// ahead). It must be in the new buffer too, not merely ahead of the
	// connection: the WebSocket library takes what the buffer holds and
	// resets it onto the connection. net/http has flushed its write buffer
	// (the 101 response) before handing it over.
	r := bufio.NewReaderSize(conn, streamReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		early, err := brw.Reader.Peek(n)
		if err != nil {
			return nil, nil, errors.Join(err, conn.Close())
		}
		// One fill reads the early bytes whole from the MultiReader,
		// and nothing from the connection.
		r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(n, streamReadBuffer))
		if _, err := r.Peek(n); err != nil {
			return nil, nil, errors.Join(err, conn.Close())
		}
	}
	return conn, bufio.NewReadWriter(r, bufio.NewWriterSize(conn, streamWriteBuffer)), nil
}

func (w leanHijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveStream runs an upgraded stream until it ends, closes it with a
// status that says why, and writes the cursors its last acks moved.
func (s *Server) serveStream(ctx context.Context, cancel context.CancelCauseFunc, conn *websocket.Conn, device candor.DeviceID, sub *subscription) {
	defer cancel(nil)
	defer s.hub.unsubscribe(sub)
	// The WebSocket library closes the connection, without a close frame,
	// when the context of a read or write in progress ends. So I/O on the
	// connection runs under connCtx, which is never cancelled: reads end
	// when the connection is closed below, writes and pings by timeouts.
	// ctx says when the stream should end, and why.
	connCtx := context.WithoutCancel(ctx)
	acks := newAckBuffer()
	reading := make(chan struct{})
	go func() { defer close(reading); readAcks(connCtx, conn, acks, cancel) }()

	st := &streamState{conn: conn, connCtx: connCtx, device: device, sent: make(map[candor.GroupID]uint64), welcomes: make(map[string]bool), acks: acks}
	err := s.runStream(ctx, st, sub)
	cancel(err)
	cause := context.Cause(ctx)
	status, reason := websocket.StatusInternalError, "internal error"
	switch {
	case errors.Is(cause, errSlowConsumer):
		status, reason = websocket.StatusTryAgainLater, "fell behind; reconnect"
	case errors.Is(cause, errRevoked):
		status, reason = websocket.StatusPolicyViolation, "device revoked"
	case s.life.Err() != nil:
		status, reason = websocket.StatusGoingAway, "server shutting down"
	case errors.Is(cause, errBadFrame):
		status, reason = websocket.StatusPolicyViolation, "bad frame"
	case websocket.CloseStatus(cause) != -1, errors.Is(cause, errPeerGone):
		status, reason = websocket.StatusNormalClosure, ""
	}
	_ = conn.Close(status, reason)
	<-reading
	// The acks read since the last flush.
	if err := s.flushCursors(ctx, device, acks, st.takeAcks()); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "saving cursors at the end of a stream", slog.String(keyDevice, string(device)), slog.String(keyErr, err.Error()))
	}
	level := slog.LevelDebug
	if status == websocket.StatusInternalError {
		level = slog.LevelError
	}
	s.log.LogAttrs(ctx, level, "stream closed", slog.String(keyDevice, string(device)),
		slog.Int(keyStatus, int(status)), slog.String(keyReason, cause.Error()))
}

// runStream catches up, then follows notices until ctx ends. Its loop also
// pings the device every streamPing, and
// writes the cursors the device's acks moved, at most once per
// cursorFlush, on a short-lived goroutine so that deliveries never wait
// for the store's writer (serveStream writes the last ones when the stream
// ends, once the acks are all read). A cursor in the store may thus lag
// the device's acks by up to cursorFlush plus one write; delivery is at
// least once, so the device may get those entries again.
func (s *Server) runStream(ctx context.Context, st *streamState, sub *subscription) (err error) {
	// The cursor writes: ackC is the buffer's wake-up while no write runs
	// or cools down (nil otherwise, so acks wait in the buffer), flushed
	// answers a write, cooled ends the wait after it.
	var (
		ackC     = st.acks.wake
		flushing bool
		flushed  = make(chan error, 1)
		cool     = time.NewTimer(cursorFlush)
		cooled   <-chan time.Time
	)
	cool.Stop()
	defer func() {
		cool.Stop()
		if flushing {
			<-flushed // serveStream flushes what is left after it
		}
	}()

	if err := s.sendWelcomes(ctx, st); err != nil {
		return err
	}
	ms, err := s.store.GroupsOf(ctx, st.device)
	if err != nil {
		return fmt.Errorf("groups of %s: %w", st.device, err)
	}
	for _, m := range ms {
		st.sent[m.Group.ID] = m.Cursor
		if err := s.sendLog(ctx, st, m.Group.ID, 0); err != nil {
			return err
		}
	}
	tick := time.NewTicker(streamPing)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
			if err := st.ping(); err != nil {
				return err
			}
		case <-sub.wake:
			for _, n := range sub.take() {
				if err := s.follow(ctx, st, n); err != nil {
					return err
				}
			}
		case <-ackC:
			ackC, flushing = nil, true
			p := st.takeAcks()
			go func() { flushed <- s.flushCursors(ctx, st.device, st.acks, p) }()
		case err := <-flushed:
			flushing = false
			if errors.Is(err, errBadFrame) {
				return err
			}
			if err != nil {
				// The store is slow or failing: the acks are pending
				// again, and the next write retries them. Delivery does
				// not depend on cursors being written.
				s.log.LogAttrs(ctx, slog.LevelWarn, "saving cursors", slog.String(keyDevice, string(st.device)), slog.String(keyErr, err.Error()))
			}
			cool.Reset(cursorFlush)
			cooled = cool.C
		case <-cooled:
			cooled, ackC = nil, st.acks.wake
		}
	}
}

// revocationSlack is how far back each look for revocations reaches
// before the previous one: a revocation is stamped with the time its
// process took before committing it, so it may become visible after a look
// that began later than its stamp.
const revocationSlack = time.Minute

// watchRevocations ends the live streams of devices revoked by another
// process (candord revoke beside candord serve), which could not kick them
// from this process's hub: every streamPing it asks the store which devices
// were revoked since its previous look. One query for all streams, rather
// than one per stream, which with 12,000 streams was an eighth of the
// server's CPU. It runs from the first stream until the server's life ends.
func (s *Server) watchRevocations() {
	t := time.NewTicker(streamPing)
	defer t.Stop()
	since := s.now()
	for {
		select {
		case <-s.life.Done():
			return
		case <-t.C:
		}
		next, err := s.kickRevoked(s.life, since)
		if err != nil {
			s.log.LogAttrs(s.life, slog.LevelWarn, "looking for revoked devices", slog.String(keyErr, err.Error()))
			continue // the next look reaches back to the same time
		}
		since = next
	}
}

// kickRevoked closes the streams of the devices revoked since since (less
// revocationSlack), and returns the time the next look starts from.
func (s *Server) kickRevoked(ctx context.Context, since time.Time) (time.Time, error) {
	now := s.now()
	ids, err := s.store.RevokedSince(ctx, since.Add(-revocationSlack))
	if err != nil {
		return since, err
	}
	for _, id := range ids {
		s.hub.kick(id, errRevoked)
	}
	return now, nil
}

// follow sends what one notice announces. It does not check revocation:
// Revoke kicks the device's streams in this process, and watchRevocations
// those revoked by other processes.
func (s *Server) follow(ctx context.Context, st *streamState, n notice) error {
	if n.devices {
		return st.write(ctx, api.StreamFrame{Type: api.FrameDevices})
	}
	if n.welcome {
		if err := s.sendWelcomes(ctx, st); err != nil {
			return err
		}
	}
	if _, ok := st.sent[n.group]; !ok {
		if !n.member {
			return nil
		}
		// A group the device joined since the stream began: start at
		// its cursor.
		ms, err := s.store.GroupsOf(ctx, st.device)
		if err != nil {
			return fmt.Errorf("groups of %s: %w", st.device, err)
		}
		found := false
		for _, m := range ms {
			if m.Group.ID == n.group {
				st.sent[n.group], found = m.Cursor, true
			}
		}
		if !found {
			return nil
		}
	}
	switch after := st.sent[n.group]; {
	case after >= n.seq:
		// Already sent, by the catch-up that overlapped the subscription.
	case after == n.seq-1 && n.frame != nil:
		if err := st.writeRaw(ctx, n.frame); err != nil {
			return err
		}
		st.sent[n.group] = n.seq
	default:
		// A gap (or no frame): catch up from the store, in order.
		if err := s.sendLog(ctx, st, n.group, n.seq); err != nil {
			return err
		}
	}
	if !n.member {
		// The entry removed the device: nothing later is for it.
		delete(st.sent, n.group)
	}
	return nil
}

// sendLog sends a group's entries after the last one sent, up to and
// including upto (0: to the head).
func (s *Server) sendLog(ctx context.Context, st *streamState, id candor.GroupID, upto uint64) error {
	for {
		after := st.sent[id]
		if upto != 0 && after >= upto {
			return nil
		}
		entries, err := s.store.Log(ctx, id, after, api.MaxLogPage)
		if err != nil {
			return fmt.Errorf("reading the log of %s: %w", id, err)
		}
		for _, e := range entries {
			if upto != 0 && e.Seq > upto {
				return nil
			}
			entry := apiEntry(e)
			if err := st.write(ctx, api.StreamFrame{Type: api.FrameEntry, GroupID: []byte(id), Entry: &entry}); err != nil {
				return err
			}
			st.sent[id] = e.Seq
		}
		if len(entries) < api.MaxLogPage {
			return nil
		}
	}
}

// sendWelcomes sends the device's Welcomes not sent yet on this stream.
func (s *Server) sendWelcomes(ctx context.Context, st *streamState) error {
	ws, err := s.store.Welcomes(ctx, st.device)
	if err != nil {
		return fmt.Errorf("welcomes of %s: %w", st.device, err)
	}
	for _, wl := range ws {
		if st.welcomes[wl.ID] {
			continue
		}
		aw := apiWelcome(wl)
		if err := st.write(ctx, api.StreamFrame{Type: api.FrameWelcome, Welcome: &aw}); err != nil {
			return err
		}
		st.welcomes[wl.ID] = true
	}
	return nil
}

func (st *streamState) write(ctx context.Context, f api.StreamFrame) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return st.writeRaw(ctx, b)
}

// writeRaw sends one encoded frame; b is not modified.
func (st *streamState) writeRaw(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	ctx, cancel := context.WithTimeout(st.connCtx, streamWrite)
	defer cancel()
	if err := st.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("%w: %w", errPeerGone, err)
	}
	return nil
}

var (
	errBadFrame = errors.New("server: bad frame from device")
	errPeerGone = errors.New("server: stream connection lost")
)

// readAcks reads the device's frames: acks, which it records in acks
// without waiting on the store (flushAcks writes them). Any other frame
// closes the stream.
func readAcks(connCtx context.Context, conn *websocket.Conn, acks *ackBuffer, cancel context.CancelCauseFunc) {
	for {
		typ, b, err := conn.Read(connCtx)
		if err != nil {
			cancel(fmt.Errorf("%w: %w", errPeerGone, err))
			return
		}
		if typ != websocket.MessageText {
			cancel(fmt.Errorf("%w: binary frame", errBadFrame))
			return
		}
		id, seq, err := parseAck(b)
		if err != nil {
			cancel(err)
			return
		}
		acks.add(id, seq)
	}
}

// ackBuffer holds the highest seq a stream's device acked per group since
// the last flush.
type ackBuffer struct {
	mu      sync.Mutex
	pending map[candor.GroupID]uint64
	wake    chan struct{} // holds a token when pending is not empty
}

func newAckBuffer() *ackBuffer {
	return &ackBuffer{pending: make(map[candor.GroupID]uint64), wake: make(chan struct{}, 1)}
}

func (a *ackBuffer) add(id candor.GroupID, seq uint64) {
	a.merge(map[candor.GroupID]uint64{id: seq})
}

// restore puts back acks that could not be written, unless newer ones
// came meanwhile.
func (a *ackBuffer) restore(p map[candor.GroupID]uint64) {
	if len(p) > 0 {
		a.merge(p)
	}
}

// merge keeps the highest seq per group and wakes the flusher.
func (a *ackBuffer) merge(p map[candor.GroupID]uint64) {
	a.mu.Lock()
	for id, seq := range p {
		if cur, ok := a.pending[id]; !ok || seq > cur {
			a.pending[id] = seq
		}
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// take returns the pending acks and empties the buffer.
func (a *ackBuffer) take() map[candor.GroupID]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) == 0 {
		return nil
	}
	p := a.pending
	a.pending = make(map[candor.GroupID]uint64, len(p))
	return p
}

// takeAcks takes the acks waiting in the buffer, keeping those for groups
// the stream follows (st.sent). The others cannot be for anything the
// stream sent, and would each cost a write: a device that acks made-up
// groups must not turn its frames into work for the store's one writer.
// It must run on the goroutine that owns st.sent.
func (st *streamState) takeAcks() map[candor.GroupID]uint64 {
	p := st.acks.take()
	maps.DeleteFunc(p, func(id candor.GroupID, _ uint64) bool {
		_, follows := st.sent[id]
		return !follows
	})
	return p
}

// flushCursors writes acks p, taken from acks, and puts them back there if
// that failed for a reason other than a bad frame. A flush that has begun
// finishes (within a bound) even if the stream ends meanwhile: the acks it
// took would be lost otherwise.
func (s *Server) flushCursors(ctx context.Context, device candor.DeviceID, acks *ackBuffer, p map[candor.GroupID]uint64) error {
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), streamWrite)
	defer fcancel()
	err := s.setCursors(fctx, device, p)
	if err != nil && !errors.Is(err, errBadFrame) {
		acks.restore(p)
	}
	return err
}

// setCursors moves a device's cursors to the seqs in acks. Each cursor is
// a write of its own; the store shares one transaction among the writes
// that wait together, so the cursors of many streams cost one fsync. The
// store checks each ack against the group's head and members in the write
// itself, rather than the stream reading its groups first (a read per
// flush, a tenth of the server's CPU with 1,000 streams acking every
// entry). Acks for groups the device has left are ignored: it may have
// been removed while the ack was on its way. An ack past a group's head is
// a bad frame.
func (s *Server) setCursors(ctx context.Context, device candor.DeviceID, acks map[candor.GroupID]uint64) error {
	for id, seq := range acks {
		err := s.store.SetCursor(ctx, device, id, seq)
		switch {
		case errors.Is(err, candor.ErrNotFound):
			// Removed meanwhile, or never a member: nothing to move.
		case errors.Is(err, candor.ErrInvalid):
			return fmt.Errorf("%w: ack beyond the head of %s", errBadFrame, id)
		case err != nil:
			return fmt.Errorf("setting the cursor of %s in %s: %w", device, id, err)
		}
	}
	return nil
}

// headerHasToken reports whether a comma-separated header holds token,
// in any case.
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// parseAck reads an ack frame: exactly one JSON StreamFrame of type ack,
// naming a group, and nothing else.
func parseAck(b []byte) (candor.GroupID, uint64, error) {
	var f api.StreamFrame
	if err := decodeJSON(b, &f); err != nil {
		return "", 0, fmt.Errorf("%w: %w", errBadFrame, err)
	}
	if f.Type != api.FrameAck || len(f.GroupID) == 0 || len(f.GroupID) > maxGroupID || f.Entry != nil || f.Welcome != nil {
		return "", 0, fmt.Errorf("%w: not an ack", errBadFrame)
	}
	return candor.GroupID(f.GroupID), f.Seq, nil
}

// ping pings the device and waits for its pong (which readAcks reads).
func (st *streamState) ping() error {
	ctx, cancel := context.WithTimeout(st.connCtx, streamWrite)
	defer cancel()
	if err := st.conn.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", errPeerGone, err)
	}
	return nil
}
