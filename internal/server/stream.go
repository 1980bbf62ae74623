package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
// never blocks: a stream whose buffer is full is closed, and its device
// reconnects and catches up from its cursor.
type hub struct {
	buffer int
	mu     sync.Mutex
	subs   map[candor.DeviceID]map[*subscription]struct{}
}

type subscription struct {
	device  candor.DeviceID
	notices chan notice
	cancel  context.CancelCauseFunc
}

func newHub(buffer int) *hub {
	return &hub{buffer: buffer, subs: make(map[candor.DeviceID]map[*subscription]struct{})}
}

// subscribe registers a stream of device; cancel ends it.
func (h *hub) subscribe(device candor.DeviceID, cancel context.CancelCauseFunc) *subscription {
	sub := &subscription{device: device, notices: make(chan notice, h.buffer), cancel: cancel}
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
		select {
		case sub.notices <- n:
		default:
			sub.cancel(errSlowConsumer)
			delete(h.subs[device], sub)
		}
	}
	if len(h.subs[device]) == 0 {
		delete(h.subs, device)
	}
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

// streamState is what one live stream has sent.
type streamState struct {
	conn     *websocket.Conn
	connCtx  context.Context // for I/O on conn: never cancelled
	dev      store.Device
	sent     map[candor.GroupID]uint64 // the last seq sent, per group
	welcomes map[string]bool           // Welcome ids sent
}

// handleStream serves the live stream: every entry after the device's
// cursor in each of its groups and its Welcomes, then new ones as they are
// appended. Acks from the device move its cursors.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return fail(api.CodeBadRequest, "this endpoint is a WebSocket upgrade", nil)
	}
	// Subscribe before catching up, so that nothing appended meanwhile is
	// missed; what arrives twice is sent once (streamState.sent).
	ctx, cancel := context.WithCancelCause(s.life)
	defer cancel(nil)
	sub := s.hub.subscribe(dev.ID, cancel)
	defer s.hub.unsubscribe(sub)

	// Frames are JSON around ciphertext: compression would gain little.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		// Accept has answered the request itself.
		s.log.LogAttrs(ctx, slog.LevelInfo, "stream refused", slog.String(keyDevice, string(dev.ID)), slog.String(keyErr, err.Error()))
		return nil
	}
	conn.SetReadLimit(streamReadLimit)
	s.log.LogAttrs(ctx, slog.LevelDebug, "stream opened", slog.String(keyDevice, string(dev.ID)))

	// The WebSocket library closes the connection, without a close frame,
	// when the context of a read or write in progress ends. So I/O on the
	// connection runs under connCtx, which is never cancelled: reads end
	// when the connection is closed below, writes and pings by timeouts.
	// ctx says when the stream should end, and why.
	connCtx := context.WithoutCancel(ctx)
	acks := newAckBuffer()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); readAcks(connCtx, conn, acks, cancel) }()
	go func() { defer wg.Done(); pingLoop(connCtx, ctx, conn, cancel) }()
	go func() { defer wg.Done(); s.flushAcks(ctx, dev, acks, cancel) }()

	st := &streamState{conn: conn, connCtx: connCtx, dev: dev, sent: make(map[candor.GroupID]uint64), welcomes: make(map[string]bool)}
	err = s.runStream(ctx, st, sub)
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
	wg.Wait()
	// The acks read since the last flush.
	if err := s.flushCursors(ctx, dev, acks); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "saving cursors at the end of a stream", slog.String(keyDevice, string(dev.ID)), slog.String(keyErr, err.Error()))
	}
	level := slog.LevelDebug
	if status == websocket.StatusInternalError {
		level = slog.LevelError
	}
	s.log.LogAttrs(ctx, level, "stream closed", slog.String(keyDevice, string(dev.ID)),
		slog.Int(keyStatus, int(status)), slog.String(keyReason, cause.Error()))
	return nil
}

// runStream catches up, then follows notices until ctx ends.
func (s *Server) runStream(ctx context.Context, st *streamState, sub *subscription) error {
	if err := s.sendWelcomes(ctx, st); err != nil {
		return err
	}
	ms, err := s.store.GroupsOf(ctx, st.dev.ID)
	if err != nil {
		return fmt.Errorf("groups of %s: %w", st.dev.ID, err)
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
			if err := s.checkRevoked(ctx, st.dev.ID); err != nil {
				return err
			}
		case n := <-sub.notices:
			if err := s.follow(ctx, st, n); err != nil {
				return err
			}
		}
	}
}

// checkRevoked ends a stream whose device was revoked by another process
// (candord revoke beside candord serve), which this process's hub could
// not kick.
func (s *Server) checkRevoked(ctx context.Context, id candor.DeviceID) error {
	d, err := s.store.Device(ctx, id)
	if err != nil {
		return fmt.Errorf("device %s: %w", id, err)
	}
	if d.Revoked() {
		return errRevoked
	}
	return nil
}

// follow sends what one notice announces. It does not check revocation:
// Revoke kicks the device's streams in this process, and runStream checks
// the store periodically for revocations by other processes.
func (s *Server) follow(ctx context.Context, st *streamState, n notice) error {
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
		ms, err := s.store.GroupsOf(ctx, st.dev.ID)
		if err != nil {
			return fmt.Errorf("groups of %s: %w", st.dev.ID, err)
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
	ws, err := s.store.Welcomes(ctx, st.dev.ID)
	if err != nil {
		return fmt.Errorf("welcomes of %s: %w", st.dev.ID, err)
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

// flushAcks writes the cursors a stream's acks moved, at most once per
// cursorFlush (handleStream writes the last ones when the stream ends,
// once the acks are all read). A cursor in the
// store may thus lag the device's acks by up to cursorFlush; delivery is
// at least once, so the device may get those entries again.
func (s *Server) flushAcks(ctx context.Context, dev store.Device, acks *ackBuffer, cancel context.CancelCauseFunc) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return // handleStream flushes the last acks
		case <-acks.wake:
		}
		if err := s.flushCursors(ctx, dev, acks); errors.Is(err, errBadFrame) {
			cancel(err)
			return
		} else if err != nil {
			// The store is slow or failing: the acks are pending again,
			// and the next flush retries them. Delivery does not depend
			// on cursors being written.
			s.log.LogAttrs(ctx, slog.LevelWarn, "saving cursors", slog.String(keyDevice, string(dev.ID)), slog.String(keyErr, err.Error()))
		}
		// Coalesce: wait before the next flush.
		t.Reset(cursorFlush)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// flushCursors writes the pending acks. A flush that has begun finishes
// (within a bound) even if the stream ends meanwhile: the acks it took
// would be lost otherwise.
func (s *Server) flushCursors(ctx context.Context, dev store.Device, acks *ackBuffer) error {
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), streamWrite)
	defer fcancel()
	p := acks.take()
	err := s.setCursors(fctx, dev, p)
	if err != nil && !errors.Is(err, errBadFrame) {
		acks.restore(p)
	}
	return err
}

// setCursor writes one cursor for a stream's acks. The cursor writes of
// all streams take turns (s.cursorTurn), so that they never hold more than
// one place in the store's queue of writes, ahead of appends: under load,
// each stream's acks coalesce for longer instead.
func (s *Server) setCursor(ctx context.Context, device candor.DeviceID, id candor.GroupID, seq uint64) error {
	select {
	case s.cursorTurn <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-s.cursorTurn }()
	return s.store.SetCursor(ctx, device, id, seq)
}

// setCursors moves a device's cursors to the seqs in acks. Acks for
// groups the device has left are ignored: it may have been removed while
// the ack was on its way. An ack past a group's head is a bad frame.
func (s *Server) setCursors(ctx context.Context, dev store.Device, acks map[candor.GroupID]uint64) error {
	if len(acks) == 0 {
		return nil
	}
	ms, err := s.store.GroupsOf(ctx, dev.ID)
	if err != nil {
		return fmt.Errorf("groups of %s: %w", dev.ID, err)
	}
	for _, m := range ms {
		seq, ok := acks[m.Group.ID]
		switch {
		case !ok || seq <= m.Cursor:
			continue // nothing to move: cursors never go back
		case seq > m.Group.Head:
			return fmt.Errorf("%w: ack beyond the head of %s", errBadFrame, m.Group.ID)
		}
		err := s.setCursor(ctx, dev.ID, m.Group.ID, seq)
		if errors.Is(err, candor.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("setting the cursor of %s in %s: %w", dev.ID, m.Group.ID, err)
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

// pingLoop pings the device, and ends the stream when it stops answering.
func pingLoop(connCtx, ctx context.Context, conn *websocket.Conn, cancel context.CancelCauseFunc) {
	t := time.NewTicker(streamPing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, pcancel := context.WithTimeout(connCtx, streamWrite)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				cancel(fmt.Errorf("%w: %w", errPeerGone, err))
				return
			}
		}
	}
}
