package mlsx_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor/internal/mlsx"
)

// TestRosterFollowsMembers checks that the server's key-free member list
// matches what every member sees, through adds, a rotation and a removal.
func TestRosterFollowsMembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
	alice := newParty(t, ca, "alice", "laptop")
	bob := newParty(t, ca, "bob", "phone")
	carol := newParty(t, ca, "carol", "desk")
	g, err := alice.dev.CreateGroup(ctx, "roster", mlsx.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.group = g
	roster := mlsx.NewRoster(g.ID(), g.Suite(), g.Members()[0])

	step := func(committer *party, opts mlsx.CommitOptions, members, joiners []*party) {
		t.Helper()
		c := commitAndDeliver(t, committer, opts, members, joiners)
		next, info, err := roster.Apply(c.Message)
		if err != nil {
			t.Fatalf("roster: %v", err)
		}
		if info.Content != mlsx.ContentCommit || info.Epoch != c.Epoch {
			t.Fatalf("inspect: content %d epoch %d", info.Content, info.Epoch)
		}
		roster = next
		if diff := cmp.Diff(committer.group.Members(), roster.Members()); diff != "" {
			t.Fatalf("roster differs from the members' list (-members +roster):\n%s", diff)
		}
		if roster.Epoch != committer.group.Epoch() {
			t.Fatalf("roster at epoch %d, group at %d", roster.Epoch, committer.group.Epoch())
		}
	}
	step(alice, mlsx.CommitOptions{Add: [][]byte{bob.keyPackage(t), carol.keyPackage(t)}}, []*party{alice}, []*party{bob, carol})
	all := []*party{alice, bob, carol}
	step(bob, mlsx.CommitOptions{}, all, nil)
	step(carol, mlsx.CommitOptions{Remove: []uint32{bob.group.OwnLeaf()}}, all, nil)
	dave := newParty(t, ca, "dave", "tablet")
	step(alice, mlsx.CommitOptions{Add: [][]byte{dave.keyPackage(t)}}, []*party{alice, carol}, []*party{dave})
	if got := dave.group.OwnLeaf(); got != 1 {
		t.Fatalf("dave took leaf %d, want bob's freed leaf 1", got)
	}

	// A stale commit and an encrypted message are refused.
	ct, err := alice.group.Encrypt(ctx, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := roster.Apply(ct); !errors.Is(err, mlsx.ErrPolicy) {
		t.Fatalf("roster applying a private message: %v, want ErrPolicy", err)
	}
}
