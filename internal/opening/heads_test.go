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
}
