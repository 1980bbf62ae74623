package devstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/journal"
)

func TestHistory(t *testing.T) {
	t.Parallel()
	s, path := openTemp(t)
	ctx := context.Background()
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	must(s.AddConversation(ctx, Conversation{Group: "\x00\xffg", Name: "desk", Created: t0}))
	if err := s.AddConversation(ctx, Conversation{Group: "\x00\xffg", Created: t0}); !errors.Is(err, candor.ErrConflict) {
		t.Errorf("adding a conversation twice: %v, want ErrConflict", err)
	}
	if _, err := s.AddOutgoing(ctx, Message{Group: "nope", Time: t0}); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("outgoing to an unknown conversation: %v, want ErrNotFound", err)
	}
	id, err := s.AddOutgoing(ctx, Message{Group: "\x00\xffg", SenderUser: "alice", SenderDevice: "d1", Time: t0, Text: "mine"})
	must(err)
	gone, err := s.AddOutgoing(ctx, Message{Group: "\x00\xffg", SenderUser: "alice", SenderDevice: "d1", Time: t0, Text: "never sent"})
	must(err)
	must(s.DeleteOutgoing(ctx, gone))
	// Entry 1: someone else's message; entry 2: this device's, whose time
	// the server's corrects; entry 1 again is not recorded twice.
	recv := &Message{SenderUser: "bob", SenderDevice: "d2", Time: t0.Add(time.Second), Text: "theirs"}
	must(s.Advance(ctx, Progress{Group: "\x00\xffg", Seq: 1, Message: recv}, t0))
	must(s.MarkSent(ctx, id, 2, t0))
	must(s.Advance(ctx, Progress{Group: "\x00\xffg", Seq: 2, Time: t0.Add(2 * time.Second)}, t0))
	must(s.Advance(ctx, Progress{Group: "\x00\xffg", Seq: 1, Message: recv}, t0))
	// A conversation first seen in a log entry, then left.
	must(s.Advance(ctx, Progress{Group: "other", Seq: 7, Joined: true}, t0.Add(time.Minute)))
	must(s.Advance(ctx, Progress{Group: "other", Seq: 9, Removed: true}, t0))
	must(s.SetConversationName(ctx, "other", "renamed"))
	if err := s.SetConversationName(ctx, "nope", "x"); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("renaming an unknown conversation: %v, want ErrNotFound", err)
	}
	if _, err := s.Conversation(ctx, "nope"); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("an unknown conversation: %v, want ErrNotFound", err)
	}

	// Bob's message is unread until marked read; this device's own never
	// is. The read position never moves back.
	if c, err := s.Conversation(ctx, "\x00\xffg"); err != nil || c.Unread != 1 || c.ReadSeq != 0 {
		t.Errorf("before reading: %+v, %v; want 1 unread", c, err)
	}
	must(s.MarkRead(ctx, "\x00\xffg", 2))
	must(s.MarkRead(ctx, "\x00\xffg", 1))
	if err := s.MarkRead(ctx, "nope", 1); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("marking an unknown conversation read: %v, want ErrNotFound", err)
	}

	check := func(s *Store) {
		t.Helper()
		convs, err := s.Conversations(ctx)
		must(err)
		want := []Conversation{
			{Group: "\x00\xffg", Name: "desk", Cursor: 2, Created: t0, ReadSeq: 2},
			{Group: "other", Name: "renamed", Cursor: 9, Removed: true, Created: t0.Add(time.Minute),
				JoinedSeq: 7, JoinedAt: t0.Add(time.Minute)},
		}
		if diff := cmp.Diff(want, convs); diff != "" {
			t.Errorf("conversations (-want +got):\n%s", diff)
		}
		ms, err := s.Messages(ctx, "\x00\xffg")
		must(err)
		wantMs := []Message{
			{ID: ms[0].ID, Group: "\x00\xffg", Seq: 1, SenderUser: "bob", SenderDevice: "d2", Time: t0.Add(time.Second), Text: "theirs", State: StateReceived},
			{ID: id, Group: "\x00\xffg", Seq: 2, SenderUser: "alice", SenderDevice: "d1", Time: t0.Add(2 * time.Second), Text: "mine", State: StateSent},
		}
		if diff := cmp.Diff(wantMs, ms); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}
	}
	check(s)
	// The cursor never moves back, and it all survives a reopening.
	must(s.Advance(ctx, Progress{Group: "\x00\xffg", Seq: 1}, t0))
	must(s.Close())
	s2, err := Open(ctx, path, testKey)
	must(err)
	defer s2.Close()
	check(s2)
	// Joining again (re-added) clears removed.
	must(s2.Advance(ctx, Progress{Group: "other", Seq: 12, Joined: true}, t0))
	c, err := s2.Conversation(ctx, "other")
	must(err)
	if c.Removed || c.Cursor != 12 {
		t.Errorf("after rejoining: %+v", c)
	}
}

// TestOwnMessageReadBack: a message whose answer was lost is marked sent
// when the device reads its own entry back from the log.
func TestOwnMessageReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openTemp(t)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	if err := s.AddConversation(ctx, Conversation{Group: "g", Created: t0}); err != nil {
		t.Fatal(err)
	}
	lost, err := s.AddOutgoing(ctx, Message{Group: "g", SenderUser: "alice", SenderDevice: "d1", Time: t0, Text: "answer lost"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.AddOutgoing(ctx, Message{Group: "g", SenderUser: "alice", SenderDevice: "d1", Time: t0, Text: "never landed"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetOutgoingWire(ctx, lost, []byte("hash of the lost one")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOutgoingWire(ctx, other, []byte("hash of the other")); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Minute)
	if err := s.Advance(ctx, Progress{Group: "g", Seq: 7, Time: t1, Own: []byte("hash of the lost one")}, t1); err != nil {
		t.Fatal(err)
	}
	ms, err := s.Messages(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]Message{}
	for _, m := range ms {
		states[m.Text] = m
	}
	if m := states["answer lost"]; m.State != StateSent || m.Seq != 7 || !m.Time.Equal(t1) {
		t.Errorf("read back: %+v, want sent at seq 7", m)
	}
	if m := states["never landed"]; m.State != StateSending {
		t.Errorf("the other message: %+v, want still sending", m)
	}
}

// TestChain checks that the journal chain moves with the cursor, never
// back, survives reopening, and restarts when the device is added again.
func TestChain(t *testing.T) {
	t.Parallel()
	s, path := openTemp(t)
	ctx := context.Background()
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	chain := func(group candor.GroupID) (uint64, uint64, journal.Hash) {
		t.Helper()
		c, err := s.Conversation(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		return c.Cursor, c.ChainSeq, c.ChainHash
	}
	advance := func(p Progress) {
		t.Helper()
		if err := s.Advance(ctx, p, t0); err != nil {
			t.Fatal(err)
		}
	}
	h := func(b byte) *journal.Hash {
		var x journal.Hash
		x[0], x[31] = b, b
		return &x
	}

	advance(Progress{Group: "g", Seq: 4, Joined: true})
	if cur, seq, _ := chain("g"); cur != 4 || seq != 0 {
		t.Fatalf("after joining: cursor %d, chain at %d; want 4 and none", cur, seq)
	}
	advance(Progress{Group: "g", Seq: 5, Chain: h(5)})
	advance(Progress{Group: "g", Seq: 6, Chain: h(6)})
	advance(Progress{Group: "g", Seq: 5, Chain: h(0xee)}) // an old entry again
	if cur, seq, hash := chain("g"); cur != 6 || seq != 6 || hash != *h(6) {
		t.Fatalf("after entries 5 and 6: cursor %d, chain at %d (%s); want both at 6 with entry 6's hash", cur, seq, hash)
	}
	// An entry the device could not link moves the cursor alone.
	advance(Progress{Group: "g", Seq: 7})
	if cur, seq, _ := chain("g"); cur != 7 || seq != 6 {
		t.Fatalf("after an unlinked entry: cursor %d, chain at %d; want 7 and 6", cur, seq)
	}
	// What another opening of the file reads: the chain is on disk.
	other, err := Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := other.Conversation(ctx, "g")
	if cerr := other.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if c.ChainSeq != 6 || c.ChainHash != *h(6) {
		t.Fatalf("reopened: chain at %d (%s), want 6", c.ChainSeq, c.ChainHash)
	}
	// Removed, then added again: the chain starts over.
	advance(Progress{Group: "g", Seq: 8, Removed: true, Chain: h(8)})
	advance(Progress{Group: "g", Seq: 20, Joined: true})
	if cur, seq, _ := chain("g"); cur != 20 || seq != 0 {
		t.Fatalf("added again: cursor %d, chain at %d; want 20 and none", cur, seq)
	}
	advance(Progress{Group: "g", Seq: 21, Chain: h(21)})
	if _, seq, hash := chain("g"); seq != 21 || hash != *h(21) {
		t.Fatalf("after the first entry since: chain at %d (%s), want 21", seq, hash)
	}
}
