package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"candor"
	"candor/internal/store"
)

// testAppendManyGroups appends to many groups at once, as a busy server
// does, with refused appends among the accepted ones: a store that shares
// transactions between appends (group commit) must still give each append
// its own outcome. A refused append must leave no trace, even when it
// failed after writing (a Welcome to a non-member fails after the head
// moved and the entry was inserted), and must not fail its neighbours.
func testAppendManyGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	outsider := enrol(t, s, "bob", "dev-2")
	const groups, perGroup = 16, 12
	ids := make([]candor.GroupID, groups)
	for i := range ids {
		ids[i] = candor.GroupID(fmt.Sprintf("\x00group %d\xff", i))
		createGroup(t, s, ids[i], d.ID)
	}
	// Each group gets one writer, as the server's group lock does; the
	// writers of different groups run at once. After each accepted
	// append, the writer tries three that must be refused: the same bytes
	// again, a stale PrevHead, and one whose Welcome names a non-member.
	errs := make(chan error, groups)
	var wg sync.WaitGroup
	for g, id := range ids {
		wg.Go(func() {
			errs <- appendChain(ctx, s, id, d.ID, outsider.ID, g, perGroup)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for g, id := range ids {
		got, err := s.Group(ctx, id)
		must(t, err)
		if got.Head != perGroup {
			t.Errorf("group %d: head %d, want %d", g, got.Head, perGroup)
		}
		log, err := s.Log(ctx, id, 0, 2*perGroup)
		must(t, err)
		want := make([]store.Entry, perGroup)
		for i := range want {
			want[i] = entry(d.ID, 0, chainMessage(g, i))
			want[i].Seq = uint64(i + 1)
		}
		diff(t, fmt.Sprintf("log of group %d", g), chained(id, want), log)
		members, err := s.Members(ctx, id)
		must(t, err)
		diff(t, fmt.Sprintf("members of group %d", g), []candor.DeviceID{d.ID}, members)
	}
	w, err := s.Welcomes(ctx, outsider.ID)
	must(t, err)
	diff(t, "Welcomes of the outsider", []store.Welcome{}, w)
}

func chainMessage(g, i int) string { return fmt.Sprintf("group %d message %d", g, i) }

// appendChain makes n accepted appends to a group, each followed by
// refused ones, and reports the first outcome that is not as it should be.
func appendChain(ctx context.Context, s store.Store, id candor.GroupID, sender, outsider candor.DeviceID, g, n int) error {
	for i := range n {
		head := uint64(i)
		seq, err := s.Append(ctx, store.AppendRequest{Group: id, PrevHead: head, Entry: entry(sender, 0, chainMessage(g, i))})
		if err != nil || seq != head+1 {
			return fmt.Errorf("group %d append %d: seq %d, %v; want %d", g, i, seq, err, head+1)
		}
		head = seq

		_, err = s.Append(ctx, store.AppendRequest{Group: id, PrevHead: head, Entry: entry(sender, 0, chainMessage(g, i))})
		var replay *store.ReplayError
		if !errors.As(err, &replay) || replay.Seq != seq {
			return fmt.Errorf("group %d replay of %d: %v, want a ReplayError at %d", g, seq, err, seq)
		}
		_, err = s.Append(ctx, store.AppendRequest{Group: id, PrevHead: head - 1, Entry: entry(sender, 0, fmt.Sprintf("stale %d %d", g, i))})
		if !errors.Is(err, candor.ErrConflict) {
			return fmt.Errorf("group %d stale append after %d: %v, want ErrConflict", g, head-1, err)
		}
		e := entry(sender, 0, fmt.Sprintf("misaddressed %d %d", g, i))
		e.Commit = true
		_, err = s.Append(ctx, store.AppendRequest{
			Group: id, PrevHead: head, Entry: e, Roster: []byte("a roster never kept"), Epoch: 1,
			Welcomes: []store.Welcome{{ID: fmt.Sprintf("welcome %d %d", g, i), Device: outsider, Data: []byte("Welcome")}},
		})
		if !errors.Is(err, candor.ErrPermission) {
			return fmt.Errorf("group %d append with a Welcome to a non-member: %v, want ErrPermission", g, err)
		}
	}
	return nil
}
