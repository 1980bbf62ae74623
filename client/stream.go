package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"candor"
	"candor/api"
)

// maxFrameBytes bounds one frame of the live stream: an entry holding the
// largest message, in base64, with room.
const maxFrameBytes = 2 << 20

// ackInterval is the least time between two acks of one group over the
// live stream: the server records each ack in its database, so the acks of
// a burst of entries are coalesced into the last one's.
const ackInterval = 250 * time.Millisecond

// finalAckTimeout bounds sending the last acks when Run stops.
const finalAckTimeout = 2 * time.Second

// streamConn is Run's live stream, through which acks go while it is up.
//
// Acks are not sent as entries are processed but queued, newest per group
// (a cursor only moves forward), and sent by Run's loop, for each group not
// acked in the last ackInterval: when the stream's incoming queue is
// drained, and every ackInterval. So a group is acked at most every
// ackInterval, and its last ack goes out at most about 2·ackInterval after
// its entry was processed. The acks still queued when Run stops are sent
// before the stream is closed (see endStream). A lost or late ack is
// harmless: the server sends the entries again and they are skipped, as
// already processed.
type streamConn struct {
	conn *websocket.Conn
	log  *slog.Logger
	mu   sync.Mutex // one writer at a time

	amu     sync.Mutex
	pending map[candor.GroupID]uint64    // acks not sent yet
	sent    map[candor.GroupID]time.Time // when each group was last acked
	ended   bool                         // queueAck refuses: see endStream
}

func newStreamConn(conn *websocket.Conn, log *slog.Logger) *streamConn {
	return &streamConn{conn: conn, log: log, pending: make(map[candor.GroupID]uint64), sent: make(map[candor.GroupID]time.Time)}
}

func (s *streamConn) ack(ctx context.Context, gid candor.GroupID, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := wsjson.Write(ctx, s.conn, api.StreamFrame{Type: api.FrameAck, GroupID: []byte(gid), Seq: seq})
	if err == nil {
		s.log.Debug(msgAckSent, keyGroup, gid.String(), keySeq, seq)
	}
	return err
}

// msgAckSent is logged (at debug level) for each ack sent over the stream.
const msgAckSent = "ack sent"

// queueAck queues an ack of a group's log up to seq, unless one as far is
// queued already. It returns false, queueing nothing, once the stream has
// ended: the caller sends the ack another way.
func (s *streamConn) queueAck(gid candor.GroupID, seq uint64) bool {
	s.amu.Lock()
	defer s.amu.Unlock()
	if s.ended {
		return false
	}
	if seq > s.pending[gid] {
		s.pending[gid] = seq
	}
	return true
}

// end makes queueAck refuse, and returns the acks still queued.
func (s *streamConn) end() map[candor.GroupID]uint64 {
	s.amu.Lock()
	s.ended = true
	s.amu.Unlock()
	return s.takeAcks(time.Now(), true)
}

// takeAcks removes from the queue and returns the acks due at now: all of
// them, or when all is false those of the groups not acked since
// now-ackInterval.
func (s *streamConn) takeAcks(now time.Time, all bool) map[candor.GroupID]uint64 {
	s.amu.Lock()
	defer s.amu.Unlock()
	var due map[candor.GroupID]uint64
	for gid, seq := range s.pending {
		if !all && now.Sub(s.sent[gid]) < ackInterval {
			continue
		}
		if due == nil {
			due = make(map[candor.GroupID]uint64)
		}
		due[gid] = seq
		s.sent[gid] = now
		delete(s.pending, gid)
	}
	return due
}

// requeue puts back acks that could not be sent, unless newer ones were
// queued meanwhile.
func (s *streamConn) requeue(acks map[candor.GroupID]uint64) {
	for gid, seq := range acks {
		s.queueAck(gid, seq)
	}
}

// flushAcks sends the acks due (see takeAcks) over the stream. Those it
// could not send are put back in the queue, and it returns the error.
func (s *streamConn) flushAcks(ctx context.Context, all bool) error {
	due := s.takeAcks(time.Now(), all)
	for gid, seq := range due {
		if err := s.ack(ctx, gid, seq); err != nil {
			s.requeue(due)
			return err
		}
		delete(due, gid)
	}
	return nil
}

func (c *Client) currentStream() *streamConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stream
}

func (c *Client) setStream(s *streamConn) {
	c.mu.Lock()
	c.stream = s
	c.mu.Unlock()
}

// Run keeps a live stream from the server open until ctx is done, and
// processes what arrives: Welcomes and every group's log entries, in order,
// each once. After each (re)connection it catches up from its cursors
// (Sync). When the stream breaks it reconnects after a delay that doubles
// from Config.MinBackoff to Config.MaxBackoff, with jitter. It returns
// ctx's error, or an error that reconnecting cannot cure: this device was
// revoked (ErrRevoked) or is unknown, or the server is not the
// organisation's. Only one Run may be active at a time.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("client: Run is already running")
	}
	defer c.running.Store(false)
	attempt := 0
	for {
		if c.closed.Load() {
			return ErrClosed
		}
		connected, err := c.runStream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if connected {
			attempt = 0
		}
		c.emit(Event{Kind: EventDisconnected, Err: err})
		if fatal(err) {
			c.log.Error("stream refused for good", keyErr, err)
			return err
		}
		delay := backoff(attempt, c.cfg.MinBackoff, c.cfg.MaxBackoff)
		attempt++
		c.log.Info("stream down; reconnecting", keyErr, err, keyDelay, delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// backoff is the delay before reconnection attempt n (from 0): min·2ⁿ,
// capped at max, of which a random half is taken off ("equal jitter"), so
// that devices a server restart disconnected together do not all come
// back at once.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := hi
	if n < 32 && lo<<n > 0 && lo<<n < hi {
		d = lo << n
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// runStream connects once and processes the stream until it breaks.
// connected reports whether it got as far as being caught up.
func (c *Client) runStream(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "wss://"+c.id.Server+api.PathStream, &websocket.DialOptions{HTTPClient: c.tr.hc})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
			raw, _ := io.ReadAll(resp.Body)
			return false, responseError("GET "+api.PathStream, resp.StatusCode, raw)
		}
		return false, netError(ctx, "GET "+api.PathStream, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxFrameBytes)
	// The reader and the pinger outlive ctx a little: a cancelled read
	// would close the connection before the last acks are sent.
	sctx, scancel := context.WithCancel(context.WithoutCancel(ctx))
	defer scancel()
	s := newStreamConn(conn, c.log)
	c.setStream(s)
	defer c.endStream(ctx, s)

	frames := make(chan api.StreamFrame, 64)
	broken := make(chan error, 2)
	go func() {
		for {
			_, raw, err := conn.Read(sctx)
			if err != nil {
				broken <- fmt.Errorf("%w (stream: %v)", ErrUnreachable, err)
				return
			}
			var f api.StreamFrame
			dec := json.NewDecoder(bytes.NewReader(raw))
			if err := dec.Decode(&f); err != nil {
				broken <- fmt.Errorf("stream frame: %w: %v", ErrProtocol, err)
				return
			}
			select {
			case frames <- f:
			case <-sctx.Done():
				return
			}
		}
	}()
	go func() {
		t := time.NewTicker(c.cfg.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				pctx, pcancel := context.WithTimeout(sctx, c.cfg.PingInterval)
				err := conn.Ping(pctx)
				pcancel()
				if err != nil && sctx.Err() == nil {
					broken <- fmt.Errorf("%w (stream: no answer to ping: %v)", ErrUnreachable, err)
					return
				}
			}
		}
	}()

	if err := c.Sync(ctx); err != nil {
		return false, err
	}
	c.log.Info("stream connected")
	c.emit(Event{Kind: EventConnected})
	acks := time.NewTicker(ackInterval)
	defer acks.Stop()
	for {
		select {
		case f := <-frames:
			if err := c.handleFrame(ctx, f); err != nil {
				return true, err
			}
			if len(frames) == 0 {
				// Drained: ack what was processed, but no group more
				// often than every ackInterval.
				if err := s.flushAcks(ctx, false); err != nil && ctx.Err() == nil {
					return true, fmt.Errorf("%w (stream: %v)", ErrUnreachable, err)
				}
			}
		case <-acks.C:
			if err := s.flushAcks(ctx, false); err != nil && ctx.Err() == nil {
				return true, fmt.Errorf("%w (stream: %v)", ErrUnreachable, err)
			}
		case err := <-broken:
			return true, err
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// endStream detaches the live stream s from the client and sends the acks
// still queued on it: over the stream when Run is stopping (ctx is done),
// then closing the stream cleanly so that the server reads them all; else,
// or if that fails, with PUT cursor. Sending them takes at most about
// finalAckTimeout. From then on acks go with PUT cursor until the next
// stream.
func (c *Client) endStream(ctx context.Context, s *streamConn) {
	c.setStream(nil)
	stopping := ctx.Err() != nil
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalAckTimeout)
	defer cancel()
	acks := s.end()
	if len(acks) == 0 {
		return
	}
	if stopping {
		sent := true
		for gid, seq := range acks {
			if err := s.ack(ctx, gid, seq); err != nil {
				sent = false
				break
			}
			delete(acks, gid)
		}
		if sent {
			// The server reads every ack before the close frame.
			_ = s.conn.Close(websocket.StatusNormalClosure, "")
			return
		}
	}
	for gid, seq := range acks {
		c.putCursor(ctx, gid, seq)
	}
}

// handleFrame processes one frame from the server.
func (c *Client) handleFrame(ctx context.Context, f api.StreamFrame) error {
	switch f.Type {
	case api.FrameWelcome:
		if f.Welcome == nil {
			return fmt.Errorf("welcome frame without a welcome: %w", ErrProtocol)
		}
		return c.processWelcome(ctx, *f.Welcome)
	case api.FrameEntry:
		if f.Entry == nil || len(f.GroupID) == 0 {
			return fmt.Errorf("entry frame without an entry: %w", ErrProtocol)
		}
		err := c.handleEntry(ctx, candor.GroupID(f.GroupID), *f.Entry)
		if errors.Is(err, ErrRemoved) {
			return nil
		}
		return err
	case api.FrameDevices:
		c.addSiblings(ctx)
		return nil
	}
	c.log.Debug("unknown stream frame ignored", keyKind, f.Type)
	return nil
}

// handleEntry processes an entry from the stream: at once when it is the
// next one, after fetching the ones missed when there is a gap (or this
// device has yet to start its journal chain of the group), not at all
// when it was processed already.
func (c *Client) handleEntry(ctx context.Context, gid candor.GroupID, e api.Entry) error {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := c.group(ctx, gid); errors.Is(err, ErrRemoved) {
		// Not joined yet (its Welcome comes first) or no longer a member.
		return nil
	} else if err != nil {
		return err
	}
	conv, err := c.conversation(ctx, gid)
	if err != nil {
		return err
	}
	cur := conv.Cursor
	switch {
	case e.Seq <= cur:
		return nil
	case e.Seq == cur+1 && (conv.ChainSeq != 0 || cur == 0):
		return c.processEntries(ctx, gid, []api.Entry{e}, nil, 0)
	default:
		// A gap, or a group whose journal chain has not started: a page
		// of the log brings the hash it starts from.
		return c.catchUpLocked(ctx, gid, 0)
	}
}
