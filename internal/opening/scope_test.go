package opening

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/access"
	"candor/internal/archive"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// TestReplayScope builds memberships in a real store and checks which
// groups, and which entries of them, a request naming alice selects.
func TestReplayScope(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "candor.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Unix(1790000000, 0).UTC()
	at := func(seq uint64) time.Time { return t0.Add(time.Duration(seq) * time.Minute) }
	enrol := func(user candor.UserID, dev candor.DeviceID) {
		t.Helper()
		secret := sha256.Sum256([]byte(dev))
		inv := store.Invitation{ID: "inv-" + string(dev), User: user, SecretHash: secret[:], Created: t0, Expires: t0.Add(time.Hour)}
		if err := s.CreateInvitation(ctx, inv); err != nil {
			t.Fatal(err)
		}
		fp := sha256.Sum256([]byte("cert " + dev))
		if err := s.Enrol(ctx, inv.ID, secret[:], t0, store.Device{ID: dev, User: user, Certificate: []byte("cert " + dev), Fingerprint: fp[:], EnrolledAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	enrol("alice", "alice.laptop")
	enrol("alice", "alice.old")
	enrol("bob", "bob.phone")
	enrol("carol", "carol.desk")

	// group makes a log of 30 entries, entry i at minute i, created by
	// creator; members changes the member devices at the entries named.
	group := func(id candor.GroupID, creator candor.DeviceID, members map[uint64][]candor.DeviceID) {
		t.Helper()
		if err := s.CreateGroup(ctx, store.Group{ID: id, Roster: []byte("roster"), Created: t0}, creator); err != nil {
			t.Fatal(err)
		}
		epoch := candor.Epoch(0)
		for seq := uint64(1); seq <= 30; seq++ {
			req := store.AppendRequest{Group: id, PrevHead: seq - 1, Entry: store.Entry{
				Epoch: epoch, Sender: creator, Time: at(seq), Message: fmt.Appendf(nil, "%s %d", id, seq),
			}}
			if m, ok := members[seq]; ok {
				epoch++
				req.Entry.Commit, req.Roster, req.Epoch, req.Members = true, []byte("roster"), epoch, m
			}
			if _, err := s.Append(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
	}
	with := func(ds ...candor.DeviceID) []candor.DeviceID { return append([]candor.DeviceID{"bob.phone"}, ds...) }
	group("created", "alice.laptop", nil)
	group("added-removed", "bob.phone", map[uint64][]candor.DeviceID{12: with("alice.laptop"), 15: with()})
	group("left-before", "bob.phone", map[uint64][]candor.DeviceID{2: with("alice.laptop"), 5: with()})
	group("joined-after", "bob.phone", map[uint64][]candor.DeviceID{22: with("alice.laptop")})
	group("revoked-device", "bob.phone", map[uint64][]candor.DeviceID{3: with("alice.old")})
	group("left-after", "bob.phone", map[uint64][]candor.DeviceID{5: with("alice.laptop"), 25: with()})
	group("not-hers", "carol.desk", nil)
	group("named", "bob.phone", map[uint64][]candor.DeviceID{4: with("alice.laptop")})
	group("twice", "bob.phone", map[uint64][]candor.DeviceID{11: with("alice.laptop"), 13: with(), 16: with("alice.laptop"), 18: with()})
	group("cut-after-leaving", "bob.phone", map[uint64][]candor.DeviceID{2: with("alice.laptop"), 12: with()})
	group("cut-while-member", "bob.phone", map[uint64][]candor.DeviceID{3: with("alice.laptop")})
	// A device revoked since still counts for the time it was a member.
	if err := s.RevokeDevice(ctx, "alice.old", at(30)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		g   candor.GroupID
		seq uint64
	}{{"cut-after-leaving", 14}, {"cut-while-member", 15}} {
		if _, err := s.DeleteBefore(ctx, c.g, c.seq); err != nil {
			t.Fatal(err)
		}
	}

	got, err := replayScope(ctx, s, access.Scope{Groups: []candor.GroupID{"named"}, Users: []candor.UserID{"alice"}, From: at(10), To: at(20)})
	if err != nil {
		t.Fatal(err)
	}
	want := archive.Scope{
		From: at(10), To: at(20),
		Seqs: map[candor.GroupID][]archive.SeqRange{
			"created":          {{First: 1}},
			"added-removed":    {{First: 12, Last: 15}},
			"revoked-device":   {{First: 3}},
			"left-after":       {{First: 5}},
			"twice":            {{First: 11, Last: 13}, {First: 16, Last: 18}},
			"cut-while-member": {{First: 3}},
		},
	}
	want.Groups = append(want.Groups, "named")
	for g := range want.Seqs {
		want.Groups = append(want.Groups, g)
	}
	slices.Sort(want.Groups)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alice's scope (-want +got):\n%s", diff)
	}

	// Nobody's groups: nothing.
	got, err = replayScope(ctx, s, access.Scope{Users: []candor.UserID{"nobody"}, From: at(10), To: at(20)})
	if err != nil || len(got.Groups) != 0 || got.Seqs != nil {
		t.Errorf("the scope of a person with no devices: %+v, %v", got, err)
	}
}
