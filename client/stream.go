package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// streamConn is Run's live stream, through which acks go while it is up.
type streamConn struct {
	conn *websocket.Conn
	mu   sync.Mutex // one writer at a time
}

func (s *streamConn) ack(ctx context.Context, gid candor.GroupID, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return wsjson.Write(ctx, s.conn, api.StreamFrame{Type: api.FrameAck, GroupID: []byte(gid), Seq: seq})
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
	s := &streamConn{conn: conn}
	c.setStream(s)
	defer c.setStream(nil)

	frames := make(chan api.StreamFrame, 64)
	broken := make(chan error, 2)
	go func() {
		for {
			_, raw, err := conn.Read(ctx)
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
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		t := time.NewTicker(c.cfg.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				pctx, pcancel := context.WithTimeout(ctx, c.cfg.PingInterval)
				err := conn.Ping(pctx)
				pcancel()
				if err != nil && ctx.Err() == nil {
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
	for {
		select {
		case f := <-frames:
			if err := c.handleFrame(ctx, f); err != nil {
				return true, err
			}
		case err := <-broken:
			return true, err
		case <-ctx.Done():
			return true, ctx.Err()
		}
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
	}
	c.log.Debug("unknown stream frame ignored", keyKind, f.Type)
	return nil
}

// handleEntry processes an entry from the stream: at once when it is the
// next one, after fetching the ones missed when there is a gap, not at all
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
	cur, err := c.cursor(ctx, gid)
	if err != nil {
		return err
	}
	switch {
	case e.Seq <= cur:
		return nil
	case e.Seq == cur+1:
		return c.processEntries(ctx, gid, []api.Entry{e}, 0)
	default:
		return c.catchUpLocked(ctx, gid, 0)
	}
}
