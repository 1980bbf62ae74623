package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/client"
	"candor/internal/server"
	"candor/internal/store/sqlstore"
	"candor/internal/testenv"
)

// serverCursor reads the cursor the server holds for device in group g,
// from its database.
func serverCursor(t *testing.T, env *testenv.Env, device candor.DeviceID, g candor.GroupID) (cursor, head uint64) {
	t.Helper()
	st, err := sqlstore.Open(t.Context(), filepath.Join(env.Dir, server.FileDB))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms, err := st.GroupsOf(t.Context(), device)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Group.ID == g {
			return m.Cursor, m.Group.Head
		}
	}
	t.Fatalf("%s is not in %s on the server", device, g)
	return 0, 0
}

// waitCursor waits until the server's cursor of device in g reaches its
// head.
func waitCursor(t *testing.T, env *testenv.Env, device candor.DeviceID, g candor.GroupID, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		cursor, head := serverCursor(t, env, device, g)
		if cursor == head {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server cursor of %s in %s: %d, head %d, after %v", device, g, cursor, head, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCoalescedAcks sends bursts to a streaming device: the server's cursor
// catches up with the coalesced acks without further traffic, and after a
// clean stop; the entries a lagging cursor makes the server send again
// after a reconnection are processed once.
func TestCoalescedAcks(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := t.Context()
	alice := env.Enrol(t, "alice", "laptop")
	var acks atomic.Int64
	cfg := env.ClientConfig("bob", "laptop")
	cfg.Logger = slog.New(countingHandler{msg: client.MsgAckSent, n: &acks})
	bob, err := client.EnrolWith(ctx, filepath.Join(t.TempDir(), "bob"), env.Invite(t, "bob"), "laptop", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	g, err := alice.CreateGroup(ctx, "desk", "bob")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	var want []string
	burst := func(name string, n int) {
		t.Helper()
		for i := range n {
			text := fmt.Sprintf("%s %d", name, i)
			if _, err := alice.Send(ctx, g, text); err != nil {
				t.Fatal(err)
			}
			want = append(want, text)
		}
		waitText(t, bob, g, want[len(want)-1])
	}

	r := run(t, bob)
	start := time.Now()
	burst("first", 40)
	// The last ack goes out within about ackInterval, with nothing more
	// arriving.
	waitCursor(t, env, bob.Device(), g, 5*time.Second)
	// At most one ack per ackInterval, and one when the stream's queue
	// drains after a pause, rather than one per entry.
	n, bound := acks.Load(), int64(time.Since(start)/client.AckInterval)+2
	t.Logf("40 entries in %v: %d acks", time.Since(start), n)
	if n > bound {
		t.Errorf("40 entries in %v: %d acks, want at most %d", time.Since(start), n, bound)
	}

	// Straight after a burst, the connection drops: whatever acks were
	// held back, the entries sent again are skipped.
	burst("second", 20)
	env.DropConnections()
	waitEvent(t, bob, func(ev client.Event) bool { return ev.Kind == client.EventDisconnected })
	waitEvent(t, bob, func(ev client.Event) bool { return ev.Kind == client.EventConnected })
	burst("third", 5)

	// A clean stop straight after a burst sends the last ack.
	burst("fourth", 20)
	if err := r.stop(); err != context.Canceled {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	waitCursor(t, env, bob.Device(), g, 2*time.Second)

	ms, err := bob.Messages(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, texts(ms)); diff != "" {
		t.Errorf("bob's history (-want +got):\n%s", diff)
	}
	// Catching up afterwards finds nothing new.
	mustSync(t, bob)
	if ms, err := bob.Messages(ctx, g); err != nil || len(ms) != len(want) {
		t.Errorf("after Sync: %d messages, %v; want %d", len(ms), err, len(want))
	}
}
