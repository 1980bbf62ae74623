package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"candor"
	"candor/api"
	"candor/internal/mlsx"
)

// dialStream opens d's live stream.
func (d *device) dialStream(t *testing.T) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.Dial(d.e.ctx, "wss://"+d.e.addr+api.PathStream, &websocket.DialOptions{HTTPClient: d.http})
	if err != nil {
		t.Fatalf("%s dialing the stream: %v (%v)", d.name, err, resp)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

func readFrame(t *testing.T, conn *websocket.Conn) api.StreamFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("frame of type %v", typ)
	}
	var f api.StreamFrame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeFrame(t *testing.T, conn *websocket.Conn, f api.StreamFrame) {
	t.Helper()
	b, _ := json.Marshal(f)
	if err := conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// wantClosed reads until the stream ends and checks its close status.
func wantClosed(t *testing.T, conn *websocket.Conn, status websocket.StatusCode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		if got := websocket.CloseStatus(err); got != status {
			t.Fatalf("stream ended with %v (%v), want status %v", got, err, status)
		}
		return
	}
}

func wantEntry(t *testing.T, f api.StreamFrame, id candor.GroupID, seq uint64) {
	t.Helper()
	if f.Type != api.FrameEntry || candor.GroupID(f.GroupID) != id || f.Entry == nil || f.Entry.Seq != seq {
		t.Fatalf("frame %+v, want entry %d of %s", f, seq, id)
	}
}

// TestStream follows a device's live stream: catching up from its cursor,
// live entries and Welcomes, acks that move the cursor, and the close on
// revocation.
func TestStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	carol := e.enrol("carol", "desk")
	id := candor.GroupID("stream")
	pair(t, alice, bob, id)
	alice.send(id, "before the stream")

	bs := bob.dialStream(t)
	// Catching up: the commit that added bob (his cursor is just before
	// it), then the message.
	wantEntry(t, readFrame(t, bs), id, 1)
	f := readFrame(t, bs)
	wantEntry(t, f, id, 2)
	ev, err := bob.groups[id].Process(e.ctx, f.Entry.Message)
	if err != nil || string(ev.Plaintext) != "before the stream" {
		t.Fatalf("bob decrypting: %q, %v", ev.Plaintext, err)
	}

	// Live.
	alice.send(id, "live")
	f = readFrame(t, bs)
	wantEntry(t, f, id, 3)
	if f.Entry.Sender != string(alice.id) {
		t.Fatalf("entry from %q", f.Entry.Sender)
	}
	if ev, err := bob.groups[id].Process(e.ctx, f.Entry.Message); err != nil || string(ev.Plaintext) != "live" {
		t.Fatalf("bob decrypting: %q, %v", ev.Plaintext, err)
	}
	writeFrame(t, bs, api.StreamFrame{Type: api.FrameAck, GroupID: []byte(id), Seq: 3})
	waitFor(t, func() bool {
		var head api.GroupHead
		bob.call("GET", groupPath(api.PathGroup, id), nil, &head)
		return head.Cursor == 3
	})

	// Carol, streaming, is added: she gets the Welcome, then the log from
	// the commit that added her.
	cs := carol.dialStream(t)
	carol.uploadKeyPackages(1, false)
	_, resp := alice.commit(id, mlsx.CommitOptions{Add: alice.claim("carol")})
	f = readFrame(t, cs)
	if f.Type != api.FrameWelcome || f.Welcome == nil || f.Welcome.Seq != resp.Seq {
		t.Fatalf("carol's first frame %+v, want the Welcome", f)
	}
	g, err := carol.mls.Join(e.ctx, f.Welcome.Welcome)
	if err != nil {
		t.Fatal(err)
	}
	carol.groups[id] = g
	wantEntry(t, readFrame(t, cs), id, resp.Seq) // carol skips it: her Welcome is past it
	f = readFrame(t, bs)
	wantEntry(t, f, id, resp.Seq)
	if _, err := bob.groups[id].Process(e.ctx, f.Entry.Message); err != nil {
		t.Fatal(err)
	}

	bob.send(id, "welcome carol")
	f = readFrame(t, cs)
	wantEntry(t, f, id, resp.Seq+1)
	if ev, err := carol.groups[id].Process(e.ctx, f.Entry.Message); err != nil || string(ev.Plaintext) != "welcome carol" {
		t.Fatalf("carol decrypting: %q, %v", ev.Plaintext, err)
	}
	wantEntry(t, readFrame(t, bs), id, resp.Seq+1) // bob's own, too

	// Revocation closes the stream at once.
	if err := e.srv.Revoke(e.ctx, bob.id); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, bs, websocket.StatusPolicyViolation)
	// Carol hears of the server's proposal.
	f = readFrame(t, cs)
	if f.Type != api.FrameEntry || f.Entry.Sender != "" {
		t.Fatalf("carol's frame %+v, want the server's proposal", f)
	}
	if _, resp, err := websocket.Dial(e.ctx, "wss://"+e.addr+api.PathStream, &websocket.DialOptions{HTTPClient: bob.http}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a revoked device's stream: %v, %v", resp, err)
	}
}

// TestStreamRefusals: a stream needs a device, and takes only acks.
func TestStreamRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.enrol("alice", "laptop")
	_, resp, err := websocket.Dial(e.ctx, "wss://"+e.addr+api.PathStream, &websocket.DialOptions{HTTPClient: e.client(nil)})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a stream without a certificate: %v, %v", resp, err)
	}
	// A plain GET is no upgrade.
	st, ae := alice.try("GET", api.PathStream, nil, nil)
	wantCode(t, st, ae, api.CodeBadRequest)
	for _, tc := range []struct {
		name  string
		frame string
	}{
		{"not JSON", "hello"},
		{"not an ack", `{"type":"entry","group_id":"AQ=="}`},
		{"unknown field", `{"type":"ack","group_id":"AQ==","seq":1,"x":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := alice.dialStream(t)
			if err := conn.Write(context.Background(), websocket.MessageText, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			wantClosed(t, conn, websocket.StatusPolicyViolation)
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in time")
}

// TestHubSlowConsumer: a stream that falls behind is closed, and the
// publisher is never blocked.
func TestHubSlowConsumer(t *testing.T) {
	t.Parallel()
	h := newHub(2)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	slow := h.subscribe("d1", cancel)
	fastCtx, fastCancel := context.WithCancelCause(context.Background())
	defer fastCancel(nil)
	fast := h.subscribe("d2", fastCancel)
	for i := range 10 {
		h.publish("d1", notice{group: "g", seq: uint64(i + 1), member: true})
		h.publish("d2", notice{group: "g", seq: uint64(i + 1), member: true})
		<-fast.wake
		if got := fast.take(); len(got) != 1 || got[0].seq != uint64(i+1) {
			t.Fatalf("the stream that keeps up took %+v, want notice %d", got, i+1)
		}
	}
	if !errors.Is(context.Cause(ctx), errSlowConsumer) {
		t.Fatalf("slow stream: cause %v, want errSlowConsumer", context.Cause(ctx))
	}
	if fastCtx.Err() != nil {
		t.Fatal("the stream that kept up was closed")
	}
	if got := len(slow.take()); got != 2 {
		t.Fatalf("slow stream holds %d notices, want its buffer of 2", got)
	}
	h.unsubscribe(slow)
	h.unsubscribe(fast)
	if len(h.subs) != 0 {
		t.Fatalf("subscriptions left: %v", h.subs)
	}
}

// TestRemovedMember: a device removed by a commit gets that commit on its
// stream, and nothing after it.
func TestRemovedMember(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	id := candor.GroupID("removal")
	pair(t, alice, bob, id)
	bs := bob.dialStream(t)
	wantEntry(t, readFrame(t, bs), id, 1)

	_, resp := alice.commit(id, mlsx.CommitOptions{Remove: []uint32{bob.groups[id].OwnLeaf()}})
	f := readFrame(t, bs)
	wantEntry(t, f, id, resp.Seq)
	if ev, err := bob.groups[id].Process(e.ctx, f.Entry.Message); err != nil || !ev.SelfRemoved {
		t.Fatalf("bob processing his removal: %+v, %v", ev, err)
	}
	st, ae := bob.try("GET", groupPath(api.PathMessages, id), nil, nil)
	wantCode(t, st, ae, api.CodeNotMember)

	alice.send(id, "bob is gone")
	// The next frame bob could get would be the message: wait a moment for
	// it, in vain.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, b, err := bs.Read(ctx); err == nil {
		t.Fatalf("a removed device got %s", b)
	}
}

// TestStreamLiveFrames: a live entry, sent from the append without reading
// the store, is the entry the log holds; acks coalesce in memory and the
// last ones are written when the stream closes.
func TestStreamLiveFrames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	id := candor.GroupID("liveframes")
	pair(t, alice, bob, id)

	bs := bob.dialStream(t)
	wantEntry(t, readFrame(t, bs), id, 1)
	var live []api.Entry
	for i := range 5 {
		_, resp := alice.send(id, "live")
		f := readFrame(t, bs)
		wantEntry(t, f, id, resp.Seq)
		if resp.Seq != uint64(i+2) {
			t.Fatalf("seq %d, want %d", resp.Seq, i+2)
		}
		live = append(live, *f.Entry)
	}
	var page api.Log
	bob.call("GET", groupPath(api.PathMessages, id)+"?after=1", nil, &page)
	if len(page.Entries) != len(live) {
		t.Fatalf("%d entries in the log, %d live", len(page.Entries), len(live))
	}
	for i, got := range live {
		want := page.Entries[i]
		if got.Seq != want.Seq || got.Epoch != want.Epoch || got.Sender != want.Sender ||
			!got.Time.Equal(want.Time) || string(got.Message) != string(want.Message) {
			t.Fatalf("live entry %+v, the log's %+v", got, want)
		}
	}

	// Acks in a burst, then the close: the cursor ends at the last.
	for seq := uint64(2); seq <= 6; seq++ {
		writeFrame(t, bs, api.StreamFrame{Type: api.FrameAck, GroupID: []byte(id), Seq: seq})
	}
	if err := bs.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		var head api.GroupHead
		bob.call("GET", groupPath(api.PathGroup, id), nil, &head)
		return head.Cursor == 6
	})
	// A new stream resumes after the cursor.
	bs = bob.dialStream(t)
	_, resp := alice.send(id, "after")
	wantEntry(t, readFrame(t, bs), id, resp.Seq)
}

// TestStreamAckPastHead: an ack past the head closes the stream with 1008,
// once the cursor is written.
func TestStreamAckPastHead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	id := candor.GroupID("pasthead")
	pair(t, alice, bob, id)
	bs := bob.dialStream(t)
	wantEntry(t, readFrame(t, bs), id, 1)
	writeFrame(t, bs, api.StreamFrame{Type: api.FrameAck, GroupID: []byte(id), Seq: 99})
	wantClosed(t, bs, websocket.StatusPolicyViolation)
}

// TestLeanHijacker: the smaller buffers a stream gets keep the bytes a
// client sent right behind its request, which net/http had already read.
func TestLeanHijacker(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, brw, err := leanHijacker{&statusWriter{ResponseWriter: w}}.Hijack()
		if err != nil {
			got <- "hijack: " + err.Error()
			return
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			got <- err.Error()
			return
		}
		if brw.Reader.Size() != streamReadBuffer || brw.Writer.Size() != streamWriteBuffer {
			got <- fmt.Sprintf("buffers of %d and %d bytes", brw.Reader.Size(), brw.Writer.Size())
			return
		}
		// As the WebSocket library does: keep what is buffered, and read
		// the rest from the connection.
		early, err := brw.Reader.Peek(brw.Reader.Buffered())
		if err != nil {
			got <- err.Error()
			return
		}
		brw.Reader.Reset(io.MultiReader(bytes.NewReader(early), conn))
		b := make([]byte, len("early bytes, then late ones"))
		if n, err := io.ReadFull(brw, b); err != nil {
			got <- fmt.Sprintf("%q, then %v", b[:n], err)
			return
		}
		got <- string(b)
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The request and the first bytes after it in one write, so that
	// net/http reads both into its buffer.
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\nearly bytes, "); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, err := io.WriteString(c, "then late ones"); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "early bytes, then late ones" {
		t.Fatalf("the hijacked connection read %q", s)
	}
}

// TestStreamRevokedElsewhere: a device revoked by another process (here,
// straight in the store, as candord revoke does) loses its stream at the
// server's next look for revocations, and only that device does.
func TestStreamRevokedElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	id := candor.GroupID("revoked-elsewhere")
	pair(t, alice, bob, id)
	as, bs := alice.dialStream(t), bob.dialStream(t)
	wantEntry(t, readFrame(t, as), id, 1)
	wantEntry(t, readFrame(t, bs), id, 1)

	before := time.Now()
	if err := e.srv.store.RevokeDevice(e.ctx, bob.id, before.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// A look that began after the revocation was stamped still finds it.
	next, err := e.srv.kickRevoked(e.ctx, before.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if next.Before(before) {
		t.Errorf("the next look starts at %v, before this one", next)
	}
	wantClosed(t, bs, websocket.StatusPolicyViolation)

	_, resp := alice.send(id, "still here")
	wantEntry(t, readFrame(t, as), id, resp.Seq)
}
