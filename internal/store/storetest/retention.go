package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"candor"
	"candor/internal/journal"
	"candor/internal/store"
)

// retentionLog gives group A (created by d) a ten-entry log: application
// messages, and commits at 4 (adding e, with a Welcome for it) and 8 (with
// a second Welcome for e, as an anchor re-adds the archive). It returns the
// log as the store keeps it.
func retentionLog(t *testing.T, s store.Store, d, e candor.DeviceID) []store.Entry {
	t.Helper()
	ctx := context.Background()
	createGroup(t, s, groupA, d)
	for i := 1; i <= 10; i++ {
		switch i {
		case 4:
			commit(t, s, groupA, d, []candor.DeviceID{d, e},
				store.Welcome{ID: "w-4", Device: e, Time: t0.Add(4 * time.Minute), Data: []byte("Welcome at 4")})
		case 8:
			commit(t, s, groupA, d, nil,
				store.Welcome{ID: "w-8", Device: e, Time: t0.Add(8 * time.Minute), Data: []byte("Welcome at 8")})
		default:
			send(t, s, groupA, d, fmt.Sprint("message ", i))
		}
	}
	log, err := s.Log(ctx, groupA, 0, 100)
	must(t, err)
	if len(log) != 10 {
		t.Fatalf("the log has %d entries, want 10", len(log))
	}
	return log
}

// checkChain checks that a group's log, as Log returns it, runs without a
// gap from LogStart's Seq to the head and that its hashes chain from
// LogStart's Prev (journal.Genesis for a log never cut). It returns the
// start and the log.
func checkChain(t *testing.T, s store.Store, id candor.GroupID) (store.LogStart, []store.Entry) {
	t.Helper()
	ctx := context.Background()
	start, err := s.LogStart(ctx, id)
	must(t, err)
	g, err := s.Group(ctx, id)
	must(t, err)
	log, err := s.Log(ctx, id, 0, math.MaxInt32)
	must(t, err)
	prev := start.Prev
	switch {
	case start.Seq == 1 && prev != (journal.Hash{}):
		t.Errorf("group %s: a log never cut has Prev %s, want zero", id, prev)
	case start.Seq == 1:
		prev = journal.Genesis
	case start.Seq > g.Head:
		t.Errorf("group %s: the log starts at %d, past the head %d", id, start.Seq, g.Head)
	}
	if want := g.Head - min(g.Head, start.Seq-1); uint64(len(log)) != want {
		t.Fatalf("group %s: %d entries from %d to the head %d, want %d", id, len(log), start.Seq, g.Head, want)
	}
	for i, e := range log {
		if e.Seq != start.Seq+uint64(i) {
			t.Fatalf("group %s: entry %d has seq %d, want %d", id, i, e.Seq, start.Seq+uint64(i))
		}
		want := journal.EntryHash(id, journal.Entry{
			Seq: e.Seq, Epoch: e.Epoch, Commit: e.Commit, Sender: e.Sender, Time: e.Time, Message: e.Message,
		}, prev)
		if e.Hash != want {
			t.Fatalf("group %s: entry %d is not chained to its predecessor", id, e.Seq)
		}
		prev = e.Hash
	}
	return start, log
}

func testDeleteBeforeCut(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	e := enrol(t, s, "bob", "dev-2")
	before := retentionLog(t, s, d.ID, e.ID)
	g, err := s.Group(ctx, groupA)
	must(t, err)
	start, err := s.LogStart(ctx, groupA)
	must(t, err)
	diff(t, "LogStart of a log never cut", store.LogStart{Seq: 1}, start)

	n, err := s.DeleteBefore(ctx, groupA, 6)
	must(t, err)
	if n != 5 {
		t.Errorf("DeleteBefore(6) deleted %d entries, want 5", n)
	}
	start, err = s.LogStart(ctx, groupA)
	must(t, err)
	diff(t, "LogStart after the cut", store.LogStart{Seq: 6, Prev: before[4].Hash}, start)
	checkChain(t, s, groupA)

	// Reading from before the start reads from the start.
	for _, tc := range []struct {
		after uint64
		limit int
		want  []store.Entry
	}{
		{0, 100, before[5:]},
		{3, 100, before[5:]},
		{4, 2, before[5:7]},
		{5, 100, before[5:]},
		{7, 1, before[7:8]},
		{10, 100, nil},
	} {
		got, err := s.Log(ctx, groupA, tc.after, tc.limit)
		must(t, err)
		diff(t, fmt.Sprintf("Log(%d, %d)", tc.after, tc.limit), tc.want, got)
	}

	// What was deleted cannot be found; what was kept can.
	_, err = s.EntryOf(ctx, groupA, before[1].Message)
	wantErr(t, "EntryOf a deleted entry", err, candor.ErrNotFound)
	seq, err := s.EntryOf(ctx, groupA, before[6].Message)
	must(t, err)
	if seq != 7 {
		t.Errorf("EntryOf a kept entry: %d, want 7", seq)
	}
	_, err = s.CommitSeq(ctx, groupA, 0)
	wantErr(t, "CommitSeq of a deleted commit", err, candor.ErrNotFound)
	seq, err = s.CommitSeq(ctx, groupA, 1)
	must(t, err)
	if seq != 8 {
		t.Errorf("CommitSeq of a kept commit: %d, want 8", seq)
	}

	// The group itself (head, epoch, roster) is as it was, and so are its
	// members; the Welcome queued with entry 4 went with it, the one with
	// entry 8 stays.
	got, err := s.Group(ctx, groupA)
	must(t, err)
	diff(t, "Group after the cut", g, got)
	members, err := s.Members(ctx, groupA)
	must(t, err)
	diff(t, "Members after the cut", sortedIDs(d.ID, e.ID), members)
	ws, err := s.Welcomes(ctx, e.ID)
	must(t, err)
	diff(t, "Welcomes after the cut", []store.Welcome{{
		ID: "w-8", Device: e.ID, Group: groupA, Seq: 8, Time: t0.Add(8 * time.Minute), Data: []byte("Welcome at 8"),
	}}, ws)

	// An append after the cut chains to the head, as before it.
	seq = send(t, s, groupA, d.ID, "after the cut")
	last, err := s.Log(ctx, groupA, seq-1, 1)
	must(t, err)
	if len(last) != 1 {
		t.Fatalf("Log after %d: %d entries, want 1", seq-1, len(last))
	}
	next := entry(d.ID, 2, "after the cut") // two commits: epoch 2
	next.Seq = 11
	all := chained(groupA, append(slices.Clone(before), next))
	diff(t, "the entry appended after the cut", all[10], last[0])
	checkChain(t, s, groupA)

	// Cutting at the head keeps the head alone.
	n, err = s.DeleteBefore(ctx, groupA, seq)
	must(t, err)
	if n != 5 {
		t.Errorf("DeleteBefore(%d) deleted %d entries, want 5", seq, n)
	}
	start, log := checkChain(t, s, groupA)
	diff(t, "LogStart after the cut at the head", store.LogStart{Seq: 11, Prev: all[9].Hash}, start)
	diff(t, "Log after the cut at the head", all[10:], log)
	ws, err = s.Welcomes(ctx, e.ID)
	must(t, err)
	diff(t, "Welcomes after the cut at the head", []store.Welcome{}, ws)
}

// testDeleteBeforeAgain: cutting again deletes only what is left before
// the new cut; cutting at or below the start is a no-op, not an error.
func testDeleteBeforeAgain(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	e := enrol(t, s, "bob", "dev-2")
	before := retentionLog(t, s, d.ID, e.ID)
	for _, step := range []struct {
		seq, deleted, start uint64
	}{
		{1, 0, 1}, // the start of a log never cut
		{3, 2, 3},
		{7, 4, 7},
		{7, 0, 7}, // at the start
		{5, 0, 7}, // below it
		{1, 0, 7},
		{9, 2, 9},
	} {
		n, err := s.DeleteBefore(ctx, groupA, step.seq)
		must(t, err)
		if n != step.deleted {
			t.Errorf("DeleteBefore(%d) deleted %d entries, want %d", step.seq, n, step.deleted)
		}
		want := store.LogStart{Seq: step.start}
		if step.start > 1 {
			want.Prev = before[step.start-2].Hash
		}
		start, log := checkChain(t, s, groupA)
		diff(t, fmt.Sprintf("LogStart after DeleteBefore(%d)", step.seq), want, start)
		diff(t, fmt.Sprintf("Log after DeleteBefore(%d)", step.seq), before[step.start-1:], log)
	}
}

// testDeleteBeforeRefused: a seq outside 1..head, or an unknown group, is
// refused and changes nothing.
func testDeleteBeforeRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	e := enrol(t, s, "bob", "dev-2")
	retentionLog(t, s, d.ID, e.ID)
	createGroup(t, s, groupB, d.ID) // an empty log: no seq is valid
	before := snapshot(t, s, []candor.GroupID{groupA, groupB}, []candor.DeviceID{d.ID, e.ID})
	for _, tc := range []struct {
		group candor.GroupID
		seq   uint64
		want  error
	}{
		{groupA, 0, candor.ErrInvalid},
		{groupA, 11, candor.ErrInvalid},
		{groupA, math.MaxInt64, candor.ErrInvalid},
		{groupA, math.MaxUint64, candor.ErrInvalid},
		{groupB, 0, candor.ErrInvalid},
		{groupB, 1, candor.ErrInvalid},
		{"\x00no such group", 1, candor.ErrNotFound},
	} {
		n, err := s.DeleteBefore(ctx, tc.group, tc.seq)
		wantErr(t, fmt.Sprintf("DeleteBefore(%q, %d)", tc.group, tc.seq), err, tc.want)
		if n != 0 {
			t.Errorf("the refused DeleteBefore(%q, %d) deleted %d entries", tc.group, tc.seq, n)
		}
	}
	diff(t, "state after the refused cuts", before, snapshot(t, s, []candor.GroupID{groupA, groupB}, []candor.DeviceID{d.ID, e.ID}))
	for _, g := range []candor.GroupID{groupA, groupB} {
		start, err := s.LogStart(ctx, g)
		must(t, err)
		diff(t, fmt.Sprintf("LogStart of %q", g), store.LogStart{Seq: 1}, start)
	}
	_, err := s.LogStart(ctx, "\x00no such group")
	wantErr(t, "LogStart of an unknown group", err, candor.ErrNotFound)
}

// testWelcomeSeqs: a device's Welcomes in one group, lowest seq first,
// without those acknowledged, deleted with their entries, or of other
// groups and devices.
func testWelcomeSeqs(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	archive := enrol(t, s, "archive", "dev-archive")
	other := enrol(t, s, "bob", "dev-2")
	createGroup(t, s, groupA, d.ID)
	createGroup(t, s, groupB, d.ID)
	welcome := func(id string, to candor.DeviceID, at int) store.Welcome {
		return store.Welcome{ID: id, Device: to, Time: t0.Add(time.Duration(at) * time.Minute), Data: []byte("Welcome " + id)}
	}
	both := []candor.DeviceID{d.ID, archive.ID, other.ID}
	send(t, s, groupA, d.ID, "one")                                                            // 1
	commit(t, s, groupA, d.ID, both, welcome("a2", archive.ID, 2), welcome("o2", other.ID, 2)) // 2
	commit(t, s, groupB, d.ID, both, welcome("b1", archive.ID, 3))                             // B 1
	send(t, s, groupA, d.ID, "three")                                                          // 3
	commit(t, s, groupA, d.ID, nil, welcome("a4", archive.ID, 4))                              // 4
	commit(t, s, groupA, d.ID, nil, welcome("o5", other.ID, 5))                                // 5
	commit(t, s, groupA, d.ID, nil, welcome("a6", archive.ID, 6), welcome("o6", other.ID, 6))  // 6
	commit(t, s, groupA, d.ID, nil, welcome("a7", archive.ID, 7))                              // 7

	seqs := func(dev candor.DeviceID, g candor.GroupID) []store.WelcomeRef {
		t.Helper()
		got, err := s.WelcomeSeqs(ctx, dev, g)
		must(t, err)
		return got
	}
	ref := func(seq uint64, at int) store.WelcomeRef {
		return store.WelcomeRef{Seq: seq, Time: t0.Add(time.Duration(at) * time.Minute)}
	}
	diff(t, "WelcomeSeqs of the archive in A", []store.WelcomeRef{ref(2, 2), ref(4, 4), ref(6, 6), ref(7, 7)}, seqs(archive.ID, groupA))
	diff(t, "WelcomeSeqs of the archive in B", []store.WelcomeRef{ref(1, 3)}, seqs(archive.ID, groupB))
	diff(t, "WelcomeSeqs of the other in A", []store.WelcomeRef{ref(2, 2), ref(5, 5), ref(6, 6)}, seqs(other.ID, groupA))
	diff(t, "WelcomeSeqs of the creator in A", []store.WelcomeRef{}, seqs(d.ID, groupA))

	// Acknowledged Welcomes, and those of a deleted prefix, are gone.
	must(t, s.DeleteWelcome(ctx, archive.ID, "a4"))
	_, err := s.DeleteBefore(ctx, groupA, 3)
	must(t, err)
	diff(t, "WelcomeSeqs of the archive in A after the cut", []store.WelcomeRef{ref(6, 6), ref(7, 7)}, seqs(archive.ID, groupA))
	diff(t, "WelcomeSeqs of the other in A after the cut", []store.WelcomeRef{ref(5, 5), ref(6, 6)}, seqs(other.ID, groupA))
	diff(t, "WelcomeSeqs of the archive in B after A's cut", []store.WelcomeRef{ref(1, 3)}, seqs(archive.ID, groupB))

	// An unknown device or group is ErrNotFound (sqlstore's choice, as for
	// Welcomes and Group).
	_, err = s.WelcomeSeqs(ctx, "dev-9", groupA)
	wantErr(t, "WelcomeSeqs of an unknown device", err, candor.ErrNotFound)
	_, err = s.WelcomeSeqs(ctx, archive.ID, "\x00no such group")
	wantErr(t, "WelcomeSeqs in an unknown group", err, candor.ErrNotFound)
}

// testSpans follows devices through a group's creation, additions,
// removals and a re-addition, in two groups; refused appends and cuts
// leave the history alone.
func testSpans(t *testing.T, s store.Store) {
	ctx := context.Background()
	d1 := enrol(t, s, "alice", "dev-1")
	d2 := enrol(t, s, "bob", "dev-2")
	d3 := enrol(t, s, "carol", "dev-3")
	never := enrol(t, s, "dave", "dev-4")
	createGroup(t, s, groupA, d1.ID)
	createGroup(t, s, groupB, d2.ID)
	send(t, s, groupA, d1.ID, "one")                                    // 1
	commit(t, s, groupA, d1.ID, []candor.DeviceID{d1.ID, d2.ID, d3.ID}) // 2: d2 and d3 join
	send(t, s, groupA, d2.ID, "three")                                  // 3
	commit(t, s, groupA, d1.ID, []candor.DeviceID{d1.ID, d3.ID})        // 4: d2 leaves
	commit(t, s, groupA, d1.ID, []candor.DeviceID{d1.ID, d3.ID})        // 5: nobody moves
	commit(t, s, groupA, d3.ID, []candor.DeviceID{d1.ID, d2.ID, d3.ID}) // 6: d2 is back
	commit(t, s, groupA, d3.ID, []candor.DeviceID{d2.ID, d3.ID})        // 7: d1 leaves
	commit(t, s, groupB, d2.ID, []candor.DeviceID{d2.ID, d1.ID})        // B 1: d1 joins B

	want := map[candor.DeviceID][]store.Span{
		d1.ID: {
			{Group: groupA, Device: d1.ID, Joined: 0, Left: 7},
			{Group: groupB, Device: d1.ID, Joined: 1},
		},
		d2.ID: {
			{Group: groupA, Device: d2.ID, Joined: 2, Left: 4},
			{Group: groupA, Device: d2.ID, Joined: 6},
			{Group: groupB, Device: d2.ID, Joined: 0},
		},
		d3.ID:    {{Group: groupA, Device: d3.ID, Joined: 2}},
		never.ID: {},
	}
	check := func(when string) {
		t.Helper()
		for dev, spans := range want {
			got, err := s.Spans(ctx, dev)
			must(t, err)
			diff(t, fmt.Sprintf("Spans of %s %s", dev, when), spans, got)
		}
	}
	check("")

	// An append refused after it changed the members (its Welcome goes
	// to a non-member) leaves no span behind, nor a stale one.
	g, err := s.Group(ctx, groupA)
	must(t, err)
	c := entry(d3.ID, g.Epoch, "refused commit")
	c.Commit = true
	_, err = s.Append(ctx, store.AppendRequest{
		Group: groupA, PrevHead: g.Head, Entry: c, Roster: []byte("refused"), Epoch: g.Epoch + 1,
		Members:  []candor.DeviceID{d3.ID, never.ID},
		Welcomes: []store.Welcome{{ID: "w-refused", Device: d1.ID, Data: []byte("Welcome")}},
	})
	wantErr(t, "Append with a Welcome to a non-member", err, candor.ErrPermission)
	// So does one with a stale head.
	c = entry(d3.ID, g.Epoch, "stale commit")
	c.Commit = true
	_, err = s.Append(ctx, store.AppendRequest{
		Group: groupA, PrevHead: g.Head - 1, Entry: c, Roster: []byte("stale"), Epoch: g.Epoch + 1,
		Members: []candor.DeviceID{never.ID},
	})
	wantErr(t, "Append with a stale head", err, candor.ErrConflict)
	check("after refused appends")

	// Spans outlive the entries they name.
	_, err = s.DeleteBefore(ctx, groupA, 7)
	must(t, err)
	check("after the cut")

	_, err = s.Spans(ctx, "dev-9")
	wantErr(t, "Spans of an unknown device", err, candor.ErrNotFound)
}

// testDeleteBeforeConcurrent cuts a log again and again while two writers
// race to append to it and another appends to a second group: no append
// is lost or refused for any reason but a lost race (ErrConflict), every
// cut succeeds, each entry is deleted once, and the logs still chain.
func testDeleteBeforeConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	createGroup(t, s, groupA, d.ID)
	createGroup(t, s, groupB, d.ID)
	for i := range 30 {
		send(t, s, groupA, d.ID, fmt.Sprint("early ", i))
	}
	const perWriter = 40
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		appended = map[uint64]string{} // group A's accepted appends
		deleted  uint64
		errs     = make(chan error, 8)
	)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	// Two writers race on A's head: the loser of each race retries.
	for w := range 2 {
		wg.Go(func() {
			for i := 0; i < perWriter; {
				g, err := s.Group(ctx, groupA)
				if err != nil {
					report(err)
					return
				}
				msg := fmt.Sprintf("writer %d message %d", w, i)
				seq, err := s.Append(ctx, store.AppendRequest{Group: groupA, PrevHead: g.Head, Entry: entry(d.ID, 0, msg)})
				if errors.Is(err, candor.ErrConflict) {
					continue
				}
				if err != nil {
					report(fmt.Errorf("append to A: %w", err))
					return
				}
				mu.Lock()
				appended[seq] = msg
				mu.Unlock()
				i++
			}
		})
	}
	wg.Go(func() {
		for i := range perWriter {
			if _, err := s.Append(ctx, store.AppendRequest{Group: groupB, PrevHead: uint64(i), Entry: entry(d.ID, 0, fmt.Sprint("B ", i))}); err != nil {
				report(fmt.Errorf("append to B: %w", err))
				return
			}
		}
	})
	// Two cutters: one follows the head, one cuts at half of it.
	for c := range 2 {
		wg.Go(func() {
			for range 20 {
				g, err := s.Group(ctx, groupA)
				if err != nil {
					report(err)
					return
				}
				seq := g.Head
				if c == 1 {
					seq = max(1, g.Head/2)
				}
				n, err := s.DeleteBefore(ctx, groupA, seq)
				if err != nil {
					report(fmt.Errorf("DeleteBefore(%d): %w", seq, err))
					return
				}
				mu.Lock()
				deleted += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	start, log := checkChain(t, s, groupA)
	g, err := s.Group(ctx, groupA)
	must(t, err)
	if want := uint64(30 + 2*perWriter); g.Head != want {
		t.Errorf("group A's head is %d, want %d", g.Head, want)
	}
	if deleted != start.Seq-1 {
		t.Errorf("the cuts deleted %d entries in all, and the log starts at %d", deleted, start.Seq)
	}
	for _, e := range log {
		if msg, ok := appended[e.Seq]; ok && msg != string(e.Message) {
			t.Errorf("entry %d is %q, but its Append was told %q", e.Seq, e.Message, msg)
		}
	}
	if len(appended) != 2*perWriter {
		t.Errorf("%d distinct seqs for %d appends", len(appended), 2*perWriter)
	}
	startB, logB := checkChain(t, s, groupB)
	if startB.Seq != 1 || len(logB) != perWriter {
		t.Errorf("group B starts at %d with %d entries, want 1 and %d", startB.Seq, len(logB), perWriter)
	}
}
