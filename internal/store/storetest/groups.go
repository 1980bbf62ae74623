package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"candor"
	"candor/internal/store"
)

func testCreateGroup(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	g := store.Group{ID: groupA, Epoch: 7, Head: 9, Roster: []byte("roster"), Created: t0}
	must(t, s.CreateGroup(ctx, g, d.ID))
	g.Epoch, g.Head = 0, 0 // a new group is at epoch 0 with an empty log
	got, err := s.Group(ctx, groupA)
	must(t, err)
	diff(t, "Group", g, got)
	members, err := s.Members(ctx, groupA)
	must(t, err)
	diff(t, "Members", []candor.DeviceID{d.ID}, members)
	of, err := s.GroupsOf(ctx, d.ID)
	must(t, err)
	diff(t, "GroupsOf", []store.Membership{{Group: g, Cursor: 0}}, of)
	log, err := s.Log(ctx, groupA, 0, 10)
	must(t, err)
	diff(t, "Log", []store.Entry{}, log)

	// An existing id is a conflict, and changes nothing.
	e := enrol(t, s, "bob", "dev-2")
	wantErr(t, "CreateGroup of an existing id",
		s.CreateGroup(ctx, store.Group{ID: groupA, Roster: []byte("other"), Created: t0}, e.ID), candor.ErrConflict)
	got, err = s.Group(ctx, groupA)
	must(t, err)
	diff(t, "Group after the refused CreateGroup", g, got)
	members, err = s.Members(ctx, groupA)
	must(t, err)
	diff(t, "Members after the refused CreateGroup", []candor.DeviceID{d.ID}, members)

	// The creator must be an enrolled, unrevoked device (sqlstore's choice).
	wantErr(t, "CreateGroup by an unknown device",
		s.CreateGroup(ctx, store.Group{ID: groupB, Created: t0}, "dev-9"), candor.ErrNotFound)
	must(t, s.RevokeDevice(ctx, e.ID, t0))
	wantErr(t, "CreateGroup by a revoked device",
		s.CreateGroup(ctx, store.Group{ID: groupB, Created: t0}, e.ID), candor.ErrPermission)
	_, err = s.Group(ctx, groupB)
	wantErr(t, "Group after refused CreateGroups", err, candor.ErrNotFound)

	// Every group is listed, in byte order.
	must(t, s.CreateGroup(ctx, store.Group{ID: "\x00first", Created: t0}, d.ID))
	ids, err := s.GroupIDs(ctx)
	must(t, err)
	diff(t, "GroupIDs", []candor.GroupID{"\x00first", groupA}, ids)
}

func testGroupNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	createGroup(t, s, groupA, d.ID)
	_, err := s.Group(ctx, groupB)
	wantErr(t, "Group", err, candor.ErrNotFound)
	_, err = s.Members(ctx, groupB)
	wantErr(t, "Members", err, candor.ErrNotFound)
	_, err = s.Log(ctx, groupB, 0, 10)
	wantErr(t, "Log", err, candor.ErrNotFound)
	_, err = s.CommitSeq(ctx, groupB, 0)
	wantErr(t, "CommitSeq", err, candor.ErrNotFound)
	_, err = s.Append(ctx, store.AppendRequest{Group: groupB, Entry: entry(d.ID, 0, "hello")})
	wantErr(t, "Append", err, candor.ErrNotFound)
	wantErr(t, "SetCursor", s.SetCursor(ctx, d.ID, groupB, 0), candor.ErrNotFound)
	// Methods that take an unknown device (sqlstore's choice: devices are rows).
	_, err = s.GroupsOf(ctx, "dev-9")
	wantErr(t, "GroupsOf an unknown device", err, candor.ErrNotFound)
	_, err = s.Welcomes(ctx, "dev-9")
	wantErr(t, "Welcomes of an unknown device", err, candor.ErrNotFound)
	wantErr(t, "SetCursor of an unknown device", s.SetCursor(ctx, "dev-9", groupA, 0), candor.ErrNotFound)
}

func testAppendSequence(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	g := createGroup(t, s, groupA, d.ID)

	var want []store.Entry
	for i, step := range []struct {
		commit bool
		roster []byte
		epoch  candor.Epoch
	}{
		{},                       // an application message at epoch 0
		{roster: []byte("r0+p")}, // a proposal: the roster changes, the epoch does not
		{commit: true, roster: []byte("r1"), epoch: 1},
		{},
		{},
		{commit: true, roster: []byte{}, epoch: 2}, // an empty roster is a roster
	} {
		e := entry(d.ID, g.Epoch, fmt.Sprintf("message %d", i))
		e.Commit = step.commit
		e.Time = e.Time.Add(time.Duration(i) * time.Second)
		seq, err := s.Append(ctx, store.AppendRequest{Group: groupA, PrevHead: g.Head, Entry: e, Roster: step.roster, Epoch: step.epoch})
		must(t, err)
		if want := g.Head + 1; seq != want {
			t.Fatalf("Append %d returned %d, want %d", i, seq, want)
		}
		e.Seq = seq
		want = append(want, e)
		g.Head = seq
		if step.roster != nil {
			g.Roster, g.Epoch = step.roster, step.epoch
		}
		got, err := s.Group(ctx, groupA)
		must(t, err)
		diff(t, fmt.Sprintf("Group after append %d", i), g, got)
		if step.roster != nil && got.Roster == nil {
			t.Errorf("Group.Roster after append %d is nil", i)
		}
	}
	log, err := s.Log(ctx, groupA, 0, 100)
	must(t, err)
	diff(t, "Log", chained(groupA, want), log)
}

func testAppendStale(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	e := enrol(t, s, "bob", "dev-2")
	createGroup(t, s, groupA, d.ID)
	send(t, s, groupA, d.ID, "one")
	commit(t, s, groupA, d.ID, []candor.DeviceID{d.ID}) // head 2, epoch 1
	must(t, s.SetCursor(ctx, d.ID, groupA, 1))
	before := snapshot(t, s, []candor.GroupID{groupA}, []candor.DeviceID{d.ID, e.ID})
	for _, prev := range []uint64{0, 1, 3, 100, math.MaxInt64, math.MaxUint64} {
		t.Run(fmt.Sprint("PrevHead=", prev), func(t *testing.T) {
			c := entry(d.ID, 1, fmt.Sprint("commit after ", prev))
			c.Commit = true
			_, err := s.Append(ctx, store.AppendRequest{
				Group:    groupA,
				PrevHead: prev,
				Entry:    c,
				Roster:   []byte("stale roster"),
				Epoch:    2,
				Members:  []candor.DeviceID{e.ID},
				Welcomes: []store.Welcome{{ID: "w-stale", Device: e.ID, Time: t0, Data: []byte("welcome")}},
			})
			wantErr(t, "Append with a stale PrevHead", err, candor.ErrConflict)
			var replay *store.ReplayError
			if errors.As(err, &replay) {
				t.Errorf("a stale PrevHead reported as %v", err)
			}
			diff(t, "state after the refused Append", before, snapshot(t, s, []candor.GroupID{groupA}, []candor.DeviceID{d.ID, e.ID}))
		})
	}
}

// testAppendRace: of appends racing on one head, exactly one wins.
func testAppendRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	createGroup(t, s, groupA, d.ID)
	send(t, s, groupA, d.ID, "first")
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Append(ctx, store.AppendRequest{Group: groupA, PrevHead: 1, Entry: entry(d.ID, 0, fmt.Sprint("racer ", i))})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, candor.ErrConflict):
			t.Errorf("append %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d appends on one head succeeded, want 1", won, n)
	}
	g, err := s.Group(ctx, groupA)
	must(t, err)
	if g.Head != 2 {
		t.Errorf("head = %d, want 2", g.Head)
	}
}

func testAppendReplay(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	e := enrol(t, s, "bob", "dev-2")
	createGroup(t, s, groupA, d.ID)
	createGroup(t, s, groupB, d.ID)
	send(t, s, groupA, d.ID, "zero")
	first := send(t, s, groupA, d.ID, "hello")
	send(t, s, groupA, d.ID, "two")
	before := snapshot(t, s, []candor.GroupID{groupA, groupB}, []candor.DeviceID{d.ID, e.ID})
	for _, tc := range []struct {
		name string
		prev uint64
	}{
		{"AtTheHead", 3},
		{"StalePrevHead", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, store.AppendRequest{
				Group:    groupA,
				PrevHead: tc.prev,
				Entry:    entry(e.ID, 5, "hello"), // other metadata: the bytes decide
				Roster:   []byte("replayed roster"),
				Epoch:    1,
				Members:  []candor.DeviceID{d.ID, e.ID},
				Welcomes: []store.Welcome{{ID: "w-replay", Device: e.ID, Time: t0, Data: []byte("welcome")}},
			})
			var replay *store.ReplayError
			if !errors.As(err, &replay) {
				t.Fatalf("Append of the same bytes: %v, want a *ReplayError", err)
			}
			if replay.Seq != first {
				t.Errorf("ReplayError.Seq = %d, want %d", replay.Seq, first)
			}
			wantErr(t, "ReplayError", err, candor.ErrConflict)
			diff(t, "state after the replay", before, snapshot(t, s, []candor.GroupID{groupA, groupB}, []candor.DeviceID{d.ID, e.ID}))
		})
	}
	// EntryOf finds the message by its bytes, whatever the epoch.
	if seq, err := s.EntryOf(ctx, groupA, []byte("hello")); err != nil || seq != first {
		t.Errorf("EntryOf(hello) = %d, %v; want %d", seq, err, first)
	}
	if _, err := s.EntryOf(ctx, groupB, []byte("hello")); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("EntryOf in another group: %v, want ErrNotFound", err)
	}
	// The same bytes in another group are another message.
	send(t, s, groupB, d.ID, "hello")
	// A byte more is another message.
	send(t, s, groupA, d.ID, "hello!")
	if _, err := s.EntryOf(ctx, groupA, []byte("hell")); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("EntryOf of a prefix: %v, want ErrNotFound", err)
	}
}

// testSecondCommit: an epoch ends with one commit (sqlstore's choice; the
// server checks first and reports the winner).
func testSecondCommit(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	createGroup(t, s, groupA, d.ID)
	commit(t, s, groupA, d.ID, nil) // ends epoch 0
	before := snapshot(t, s, []candor.GroupID{groupA}, []candor.DeviceID{d.ID})
	c := entry(d.ID, 0, "another commit ending epoch 0")
	c.Commit = true
	_, err := s.Append(ctx, store.AppendRequest{Group: groupA, PrevHead: 1, Entry: c, Roster: []byte("r"), Epoch: 1})
	wantErr(t, "a second commit for epoch 0", err, candor.ErrConflict)
	diff(t, "state after the refused commit", before, snapshot(t, s, []candor.GroupID{groupA}, []candor.DeviceID{d.ID}))
}

func testAppendInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	createGroup(t, s, groupA, d.ID)
	noTime := entry(d.ID, 0, "m")
	noTime.Time = time.Time{}
	for _, tc := range []struct {
		name string
		req  store.AppendRequest
	}{
		{"EmptyMessage", store.AppendRequest{Group: groupA, Entry: entry(d.ID, 0, "")}},
		{"NoTime", store.AppendRequest{Group: groupA, Entry: noTime}},
		{"WelcomeWithoutID", store.AppendRequest{Group: groupA, Entry: entry(d.ID, 0, "m"),
			Welcomes: []store.Welcome{{Device: d.ID, Data: []byte("w")}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, tc.req)
			wantErr(t, "Append", err, candor.ErrInvalid)
		})
	}
	g, err := s.Group(ctx, groupA)
	must(t, err)
	if g.Head != 0 {
		t.Errorf("head = %d after invalid appends, want 0", g.Head)
	}
}

func testLogPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	createGroup(t, s, groupA, d.ID)
	createGroup(t, s, groupB, d.ID)
	for i := range 10 {
		send(t, s, groupA, d.ID, fmt.Sprint("a", i))
		send(t, s, groupB, d.ID, fmt.Sprint("b", i))
	}
	all, err := s.Log(ctx, groupA, 0, 1000)
	must(t, err)
	if len(all) != 10 {
		t.Fatalf("Log has %d entries, want 10", len(all))
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) || string(e.Message) != fmt.Sprint("a", i) {
			t.Errorf("entry %d: seq %d message %q", i, e.Seq, e.Message)
		}
	}
	for _, tc := range []struct {
		after      uint64
		limit      int
		first, end int // all[first:end]
	}{
		{0, 4, 0, 4},
		{4, 4, 4, 8},
		{8, 4, 8, 10},
		{10, 4, 10, 10},
		{3, 1, 3, 4},
		{0, 10, 0, 10},
		{100, 4, 10, 10},
		{math.MaxInt64, 4, 10, 10},
		{math.MaxUint64, 4, 10, 10},
	} {
		t.Run(fmt.Sprintf("after=%d,limit=%d", tc.after, tc.limit), func(t *testing.T) {
			got, err := s.Log(ctx, groupA, tc.after, tc.limit)
			must(t, err)
			diff(t, "Log", all[tc.first:tc.end], got)
		})
	}
	// A page size must be positive (sqlstore's choice).
	_, err = s.Log(ctx, groupA, 0, 0)
	wantErr(t, "Log with limit 0", err, candor.ErrInvalid)
}

func testCommitSeq(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	createGroup(t, s, groupA, d.ID)
	send(t, s, groupA, d.ID, "m1")
	c0 := commit(t, s, groupA, d.ID, nil)
	send(t, s, groupA, d.ID, "m3")
	c1 := commit(t, s, groupA, d.ID, nil)
	for epoch, want := range map[candor.Epoch]uint64{0: c0, 1: c1} {
		got, err := s.CommitSeq(ctx, groupA, epoch)
		must(t, err)
		if got != want {
			t.Errorf("CommitSeq(%d) = %d, want %d", epoch, got, want)
		}
	}
	_, err := s.CommitSeq(ctx, groupA, 2) // the current epoch has not ended
	wantErr(t, "CommitSeq of the current epoch", err, candor.ErrNotFound)
	_, err = s.CommitSeq(ctx, groupA, math.MaxUint64)
	wantErr(t, "CommitSeq of a future epoch", err, candor.ErrNotFound)
}

func testCursor(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	e := enrol(t, s, "bob", "dev-2")
	createGroup(t, s, groupA, d.ID)
	for i := range 5 {
		send(t, s, groupA, d.ID, fmt.Sprint(i))
	}
	cursor := func() uint64 {
		t.Helper()
		of, err := s.GroupsOf(ctx, d.ID)
		must(t, err)
		if len(of) != 1 {
			t.Fatalf("GroupsOf = %v", of)
		}
		return of[0].Cursor
	}
	for _, tc := range []struct {
		set, want uint64
	}{
		{2, 2},
		{4, 4},
		{3, 4}, // never back
		{0, 4},
		{4, 4},
		{5, 5},
	} {
		must(t, s.SetCursor(ctx, d.ID, groupA, tc.set))
		if got := cursor(); got != tc.want {
			t.Errorf("cursor after SetCursor(%d) = %d, want %d", tc.set, got, tc.want)
		}
	}
	// Past the head (sqlstore's choice: a cursor there would skip messages
	// not yet sent).
	wantErr(t, "SetCursor past the head", s.SetCursor(ctx, d.ID, groupA, 6), candor.ErrInvalid)
	wantErr(t, "SetCursor far past the head", s.SetCursor(ctx, d.ID, groupA, math.MaxUint64), candor.ErrInvalid)
	if got := cursor(); got != 5 {
		t.Errorf("cursor = %d after refused SetCursors, want 5", got)
	}
	// Not a member.
	wantErr(t, "SetCursor of a non-member", s.SetCursor(ctx, e.ID, groupA, 1), candor.ErrNotFound)

	// Racing SetCursors end at the largest.
	send(t, s, groupA, d.ID, "6")
	createGroup(t, s, groupB, e.ID)
	for i := range 20 {
		send(t, s, groupB, e.ID, fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := s.SetCursor(ctx, e.ID, groupB, uint64(i+1)); err != nil {
				t.Error(err) // not Fatal: another goroutine
			}
		})
	}
	wg.Wait()
	of, err := s.GroupsOf(ctx, e.ID)
	must(t, err)
	if len(of) != 1 || of[0].Cursor != 20 {
		t.Errorf("after racing SetCursors: %+v, want cursor 20", of)
	}
}

func testMembersReplace(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := enrol(t, s, "alice", "dev-a")
	b := enrol(t, s, "bob", "dev-b")
	c := enrol(t, s, "carol", "dev-c")
	createGroup(t, s, groupA, a.ID)
	send(t, s, groupA, a.ID, "1")
	add := commit(t, s, groupA, a.ID, []candor.DeviceID{a.ID, b.ID}) // 2
	send(t, s, groupA, a.ID, "3")
	must(t, s.SetCursor(ctx, a.ID, groupA, 3))
	must(t, s.SetCursor(ctx, b.ID, groupA, 2))

	cursors := func() map[candor.DeviceID]uint64 {
		t.Helper()
		out := map[candor.DeviceID]uint64{}
		for _, d := range []candor.DeviceID{a.ID, b.ID, c.ID} {
			of, err := s.GroupsOf(ctx, d)
			must(t, err)
			for _, m := range of {
				out[d] = m.Cursor
			}
		}
		return out
	}
	members := func() []candor.DeviceID {
		t.Helper()
		ms, err := s.Members(ctx, groupA)
		must(t, err)
		return ms
	}
	if add != 2 {
		t.Fatalf("the add is at %d", add)
	}
	diff(t, "cursors after the add", map[candor.DeviceID]uint64{a.ID: 3, b.ID: 2}, cursors())

	// Members nil: unchanged, by a message and by a commit.
	send(t, s, groupA, a.ID, "4")
	commit(t, s, groupA, a.ID, nil) // 5
	diff(t, "members", sortedIDs(a.ID, b.ID), members())

	// Remove b, add c: a keeps its cursor, c starts at the commit's
	// predecessor, b's membership is gone.
	swap := commit(t, s, groupA, a.ID, []candor.DeviceID{c.ID, a.ID, c.ID}) // 6; duplicates are one
	diff(t, "members after the swap", sortedIDs(a.ID, c.ID), members())
	diff(t, "cursors after the swap", map[candor.DeviceID]uint64{a.ID: 3, c.ID: swap - 1}, cursors())

	// Re-adding b starts it afresh at the commit's predecessor.
	readd := commit(t, s, groupA, a.ID, []candor.DeviceID{a.ID, b.ID, c.ID})
	diff(t, "cursors after re-adding", map[candor.DeviceID]uint64{a.ID: 3, b.ID: readd - 1, c.ID: swap - 1}, cursors())

	// An empty, non-nil list empties the group.
	commit(t, s, groupA, a.ID, []candor.DeviceID{})
	diff(t, "members after removing all", []candor.DeviceID{}, members())
	diff(t, "cursors after removing all", map[candor.DeviceID]uint64{}, cursors())
}

// testMembersRefused: only enrolled, unrevoked devices join (sqlstore's
// choice, behind the server's own check).
func testMembersRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := enrol(t, s, "alice", "dev-a")
	r := enrol(t, s, "rob", "dev-r")
	createGroup(t, s, groupA, a.ID)
	must(t, s.RevokeDevice(ctx, r.ID, t0))
	before := snapshot(t, s, []candor.GroupID{groupA}, []candor.DeviceID{a.ID, r.ID})
	for _, tc := range []struct {
		name    string
		members []candor.DeviceID
		want    error
	}{
		{"Unknown", []candor.DeviceID{a.ID, "dev-9"}, candor.ErrNotFound},
		{"Revoked", []candor.DeviceID{a.ID, r.ID}, candor.ErrPermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := entry(a.ID, 0, "commit adding "+tc.name)
			c.Commit = true
			_, err := s.Append(ctx, store.AppendRequest{Group: groupA, PrevHead: 0, Entry: c, Roster: []byte("r"), Epoch: 1, Members: tc.members})
			wantErr(t, "Append", err, tc.want)
			diff(t, "state after the refused Append", before, snapshot(t, s, []candor.GroupID{groupA}, []candor.DeviceID{a.ID, r.ID}))
		})
	}
}

func testWelcomes(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := enrol(t, s, "alice", "dev-a")
	b := enrol(t, s, "bob", "dev-b")
	c := enrol(t, s, "carol", "dev-c")
	createGroup(t, s, groupA, a.ID)
	createGroup(t, s, groupB, a.ID)
	send(t, s, groupA, a.ID, "1")

	wb := store.Welcome{ID: "w-1", Device: b.ID, Group: "ignored", Seq: 99, Data: []byte("welcome for b")}
	wc := store.Welcome{ID: "w-2", Device: c.ID, Time: t0.Add(3 * time.Hour), Data: []byte("welcome for c")}
	seqA := commit(t, s, groupA, a.ID, []candor.DeviceID{a.ID, b.ID, c.ID}, wb, wc)
	wb2 := store.Welcome{ID: "w-3", Device: b.ID, Time: t0.Add(4 * time.Hour), Data: []byte("another welcome for b")}
	seqB := commit(t, s, groupB, a.ID, []candor.DeviceID{a.ID, b.ID}, wb2)

	// Append sets Group and Seq, and a zero Time is the entry's.
	wb.Group, wb.Seq, wb.Time = groupA, seqA, entry("", 0, "").Time
	wc.Group, wc.Seq = groupA, seqA
	wb2.Group, wb2.Seq = groupB, seqB
	for _, tc := range []struct {
		device candor.DeviceID
		want   []store.Welcome
	}{
		{a.ID, nil},
		{b.ID, []store.Welcome{wb, wb2}}, // oldest first
		{c.ID, []store.Welcome{wc}},
	} {
		got, err := s.Welcomes(ctx, tc.device)
		must(t, err)
		diff(t, fmt.Sprintf("Welcomes(%s)", tc.device), tc.want, got)
	}

	// Another device's Welcome, or an unknown one, is not found, and stays.
	wantErr(t, "DeleteWelcome of another device's Welcome", s.DeleteWelcome(ctx, c.ID, wb.ID), candor.ErrNotFound)
	wantErr(t, "DeleteWelcome of an unknown Welcome", s.DeleteWelcome(ctx, b.ID, "w-9"), candor.ErrNotFound)
	got, err := s.Welcomes(ctx, b.ID)
	must(t, err)
	diff(t, "Welcomes(b) after refused deletes", []store.Welcome{wb, wb2}, got)

	must(t, s.DeleteWelcome(ctx, b.ID, wb.ID))
	got, err = s.Welcomes(ctx, b.ID)
	must(t, err)
	diff(t, "Welcomes(b) after the delete", []store.Welcome{wb2}, got)
	wantErr(t, "DeleteWelcome twice", s.DeleteWelcome(ctx, b.ID, wb.ID), candor.ErrNotFound)
}

// testWelcomesRefused: a Welcome goes only to a member of the group after
// the append (sqlstore's choice: never a recipient the members cannot see),
// and Welcome ids are unique.
func testWelcomesRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := enrol(t, s, "alice", "dev-a")
	b := enrol(t, s, "bob", "dev-b")
	createGroup(t, s, groupA, a.ID)
	commit(t, s, groupA, a.ID, []candor.DeviceID{a.ID, b.ID}, store.Welcome{ID: "w-1", Device: b.ID, Data: []byte("w")})
	enrol(t, s, "carol", "dev-c")
	before := snapshot(t, s, []candor.GroupID{groupA}, []candor.DeviceID{a.ID, b.ID, "dev-c"})
	for _, tc := range []struct {
		name     string
		members  []candor.DeviceID
		welcomes []store.Welcome
		want     error
	}{
		{"NotAMember", nil, []store.Welcome{{ID: "w-2", Device: "dev-c", Data: []byte("w")}}, candor.ErrPermission},
		{"Removed", []candor.DeviceID{a.ID}, []store.Welcome{{ID: "w-2", Device: b.ID, Data: []byte("w")}}, candor.ErrPermission},
		{"UnknownDevice", nil, []store.Welcome{{ID: "w-2", Device: "dev-9", Data: []byte("w")}}, candor.ErrPermission},
		{"IDTaken", []candor.DeviceID{a.ID, b.ID, "dev-c"}, []store.Welcome{{ID: "w-1", Device: "dev-c", Data: []byte("w")}}, candor.ErrConflict},
		{"IDTwice", []candor.DeviceID{a.ID, b.ID, "dev-c"}, []store.Welcome{
			{ID: "w-2", Device: "dev-c", Data: []byte("w")}, {ID: "w-2", Device: b.ID, Data: []byte("w")}}, candor.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := entry(a.ID, 1, "commit "+tc.name)
			c.Commit = true
			_, err := s.Append(ctx, store.AppendRequest{Group: groupA, PrevHead: 1, Entry: c, Roster: []byte("r"), Epoch: 2, Members: tc.members, Welcomes: tc.welcomes})
			wantErr(t, "Append", err, tc.want)
			diff(t, "state after the refused Append", before, snapshot(t, s, []candor.GroupID{groupA}, []candor.DeviceID{a.ID, b.ID, "dev-c"}))
		})
	}
}

func testGroupsOf(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := enrol(t, s, "alice", "dev-a")
	b := enrol(t, s, "bob", "dev-b")
	gA := createGroup(t, s, groupA, a.ID)
	gB := createGroup(t, s, groupB, b.ID)
	send(t, s, groupA, a.ID, "1")
	send(t, s, groupA, a.ID, "2")
	commit(t, s, groupB, b.ID, []candor.DeviceID{a.ID, b.ID})
	must(t, s.SetCursor(ctx, a.ID, groupA, 2))

	gA.Head = 2
	gB.Head, gB.Epoch, gB.Roster = 1, 1, []byte(fmt.Sprintf("roster of %s at 1", groupB))
	for _, tc := range []struct {
		device candor.DeviceID
		want   []store.Membership
	}{
		{a.ID, []store.Membership{{Group: gA, Cursor: 2}, {Group: gB, Cursor: 0}}},
		{b.ID, []store.Membership{{Group: gB, Cursor: 0}}},
	} {
		got, err := s.GroupsOf(ctx, tc.device)
		must(t, err)
		// The contract gives no order.
		slices.SortFunc(got, func(x, y store.Membership) int { return bytes.Compare([]byte(x.Group.ID), []byte(y.Group.ID)) })
		diff(t, fmt.Sprintf("GroupsOf(%s)", tc.device), tc.want, got)
	}
	// A device in no group has none.
	c := enrol(t, s, "carol", "dev-c")
	got, err := s.GroupsOf(ctx, c.ID)
	must(t, err)
	diff(t, "GroupsOf a device in no group", []store.Membership{}, got)
}
