package opening

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"candor"
	"candor/internal/archive"
	"candor/internal/journal"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// TestChainPasses checks the replayed chain of a real store's group
// against signed heads before, at and after the replayed head, true and
// false.
func TestChainPasses(t *testing.T) {
	ctx := t.Context()
	s, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "candor.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Unix(1790000000, 0)
	hash := sha256.Sum256([]byte("secret"))
	if err := s.CreateInvitation(ctx, store.Invitation{ID: "inv", User: "alice", SecretHash: hash[:], Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	fp := sha256.Sum256([]byte("cert"))
	if err := s.Enrol(ctx, "inv", hash[:], t0, store.Device{ID: "dev", User: "alice", Certificate: []byte("cert"), Fingerprint: fp[:], EnrolledAt: t0}); err != nil {
		t.Fatal(err)
	}
	const g = candor.GroupID("group")
	if err := s.CreateGroup(ctx, store.Group{ID: g, Roster: []byte("roster"), Created: t0}, "dev"); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := s.Append(ctx, store.AppendRequest{Group: g, PrevHead: uint64(i),
			Entry: store.Entry{Sender: "dev", Time: t0.Add(time.Duration(i) * time.Second), Message: fmt.Appendf(nil, "message %d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// The chain, computed here from the entries, not read from the store.
	es, err := s.Log(ctx, g, 0, 100)
	if err != nil || len(es) != 6 {
		t.Fatalf("%d entries, %v", len(es), err)
	}
	chain := []journal.Hash{journal.Genesis}
	for _, e := range es {
		chain = append(chain, journal.EntryHash(g, journal.Entry{Seq: e.Seq, Epoch: e.Epoch, Commit: e.Commit, Sender: e.Sender, Time: e.Time, Message: e.Message}, chain[len(chain)-1]))
	}
	replayed := archive.GroupProgress{Group: g, Seq: 4, Head: chain[4]}
	wrong := sha256.Sum256([]byte("another chain"))
	for _, tc := range []struct {
		name   string
		signed journal.Head
		ok     bool
	}{
		{"same seq", journal.Head{Group: g, Seq: 4, Hash: chain[4]}, true},
		{"same seq, other hash", journal.Head{Group: g, Seq: 4, Hash: wrong}, false},
		{"older", journal.Head{Group: g, Seq: 2, Hash: chain[2]}, true},
		{"older, other hash", journal.Head{Group: g, Seq: 2, Hash: wrong}, false},
		{"newer", journal.Head{Group: g, Seq: 6, Hash: chain[6]}, true},
		{"newer, other hash", journal.Head{Group: g, Seq: 6, Hash: wrong}, false},
		{"beyond the store", journal.Head{Group: g, Seq: 7, Hash: wrong}, false},
	} {
		err := chainPasses(ctx, s, replayed, tc.signed)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrHeadMismatch) {
			t.Errorf("%s: %v, want ErrHeadMismatch", tc.name, err)
		}
	}

	// A replay that started at entry 4 (an anchor), from the stored hash
	// of entry 3; and one that started there from another hash.
	anchored := archive.GroupProgress{Group: g, Start: 4, Prev: chain[3], Seq: 5, Head: chain[5]}
	forged := archive.GroupProgress{Group: g, Start: 4, Prev: wrong, Seq: 5, Head: chain[5]}
	for _, tc := range []struct {
		name     string
		replayed archive.GroupProgress
		signed   journal.Head
		ok       bool
	}{
		{"at the replay's start", anchored, journal.Head{Group: g, Seq: 4, Hash: chain[4]}, true},
		{"just before the start", anchored, journal.Head{Group: g, Seq: 3, Hash: chain[3]}, true},
		{"just before the start, other hash", anchored, journal.Head{Group: g, Seq: 3, Hash: wrong}, false},
		{"well before the start", anchored, journal.Head{Group: g, Seq: 1, Hash: chain[1]}, true},
		{"well before the start, other hash", anchored, journal.Head{Group: g, Seq: 1, Hash: wrong}, false},
		{"before a start from another hash", forged, journal.Head{Group: g, Seq: 1, Hash: chain[1]}, false},
		{"just before a start from another hash", forged, journal.Head{Group: g, Seq: 3, Hash: chain[3]}, false},
	} {
		err := chainPasses(ctx, s, tc.replayed, tc.signed)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrHeadMismatch) {
			t.Errorf("%s: %v, want ErrHeadMismatch", tc.name, err)
		}
	}

	// Cut under retention before entry 4: a head signed before the cut can
	// no longer be linked to the replay, one at the entry before it can.
	if _, err := s.DeleteBefore(ctx, g, 4); err != nil {
		t.Fatal(err)
	}
	if err := chainPasses(ctx, s, anchored, journal.Head{Group: g, Seq: 1, Hash: chain[1]}); !errors.Is(err, ErrHeadMismatch) {
		t.Errorf("a head signed before the deleted entries: %v, want ErrHeadMismatch", err)
	}
	if err := chainPasses(ctx, s, anchored, journal.Head{Group: g, Seq: 3, Hash: chain[3]}); err != nil {
		t.Errorf("a head signed at the last deleted entry: %v", err)
	}
}
