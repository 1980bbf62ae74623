package mlsx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
)

// TestServerRemovesRevokedDevice follows a revocation: the server, named in
// the group's external_senders, proposes removing a device; the next member
// to commit includes the proposal; the device learns it was removed; the
// server's roster agrees with the members throughout.
func TestServerRemovesRevokedDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
	serverKey, sender := serverSender(t, ca)
	alice := newParty(t, ca, "alice", "laptop")
	bob := newParty(t, ca, "bob", "phone")
	carol := newParty(t, ca, "carol", "desk")
	g, err := alice.dev.CreateGroup(ctx, "revocation", mlsx.GroupOptions{
		ExternalSenders: []mlsx.ExternalSender{sender},
	})
	if err != nil {
		t.Fatal(err)
	}
	alice.group = g
	roster := mlsx.NewRoster(g.ID(), g.Suite(), g.Members()[0])
	c := commitAndDeliver(t, alice, mlsx.CommitOptions{Add: [][]byte{bob.keyPackage(t), carol.keyPackage(t)}}, []*party{alice}, []*party{bob, carol})
	if roster, _, err = roster.Apply(c.Message); err != nil {
		t.Fatal(err)
	}
	all := []*party{alice, bob, carol}

	removal, err := mlsx.ProposeRemoval(serverKey, 0, g.ID(), g.Epoch(), bob.group.OwnLeaf())
	if err != nil {
		t.Fatal(err)
	}
	if roster, _, err = roster.Apply(removal); err != nil {
		t.Fatalf("roster taking the server's proposal: %v", err)
	}
	for _, p := range all {
		ev, err := p.group.Process(ctx, removal)
		if err != nil {
			t.Fatalf("%s processing the server's proposal: %v", p.name, err)
		}
		if ev.Kind != mlsx.EventProposal || !ev.Sender.External {
			t.Fatalf("%s: event %+v, want an external proposal", p.name, ev)
		}
	}
	if _, err := carol.group.Encrypt(ctx, []byte("x")); !errors.Is(err, mlsx.ErrMustCommit) {
		t.Fatalf("sending with a pending proposal: %v, want ErrMustCommit", err)
	}

	// Carol commits; her commit carries the server's proposal.
	commit, err := carol.group.Commit(ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.group.Confirm(ctx); err != nil {
		t.Fatal(err)
	}
	if len(commit.Removed) != 1 || commit.Removed[0].Leaf != 1 {
		t.Fatalf("carol's commit removed %+v, want bob's leaf 1", commit.Removed)
	}
	ev, err := bob.group.Process(ctx, commit.Message)
	if err != nil || !ev.SelfRemoved {
		t.Fatalf("bob processing his removal: %+v, %v", ev, err)
	}
	if _, err := bob.dev.Group(ctx, g.ID()); !errors.Is(err, candor.ErrNotFound) {
		t.Fatalf("bob's device still holds the group: %v", err)
	}
	if _, err := alice.group.Process(ctx, commit.Message); err != nil {
		t.Fatal(err)
	}
	if roster, _, err = roster.Apply(commit.Message); err != nil {
		t.Fatalf("roster applying the commit: %v", err)
	}
	if diff := cmp.Diff(alice.group.Members(), roster.Members()); diff != "" {
		t.Fatalf("roster differs (-members +roster):\n%s", diff)
	}
	send(t, carol, []*party{alice, carol}, "bob's phone is gone")

	// A proposal signed by anyone else is refused.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged, err := mlsx.ProposeRemoval(otherKey, 0, g.ID(), alice.group.Epoch(), carol.group.OwnLeaf())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.group.Process(ctx, forged); !errors.Is(err, mlsx.ErrBadSignature) {
		t.Fatalf("forged removal: %v, want ErrBadSignature", err)
	}
	send(t, carol, []*party{alice, carol}, "and the group is unharmed")
}

// TestProposalWhileCommitPending: a proposal logged before this device's
// own commit must not cost the device its commit's state.
func TestProposalWhileCommitPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
	serverKey, sender := serverSender(t, ca)
	alice := newParty(t, ca, "alice", "laptop")
	bob := newParty(t, ca, "bob", "phone")
	carol := newParty(t, ca, "carol", "desk")
	g, err := alice.dev.CreateGroup(ctx, candor.GroupID([]byte{0xff, 0x00, 0x80, 0xfe}), mlsx.GroupOptions{
		ExternalSenders: []mlsx.ExternalSender{sender},
	})
	if err != nil {
		t.Fatal(err)
	}
	alice.group = g
	commitAndDeliver(t, alice, mlsx.CommitOptions{Add: [][]byte{bob.keyPackage(t), carol.keyPackage(t)}}, []*party{alice}, []*party{bob, carol})

	// Alice commits; before her commit in the log stands a proposal.
	mine, err := alice.group.Commit(ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	removal, err := mlsx.ProposeRemoval(serverKey, 0, g.ID(), mine.Epoch, carol.group.OwnLeaf())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*party{alice, bob} {
		if _, err := p.group.Process(ctx, removal); err != nil {
			t.Fatalf("%s processing the proposal: %v", p.name, err)
		}
	}
	// The server accepted alice's commit, which does not include it.
	ev, err := alice.group.Confirm(ctx)
	if err != nil {
		t.Fatalf("confirming after the proposal: %v", err)
	}
	if ev.NewEpoch != mine.Epoch+1 {
		t.Fatalf("alice at epoch %d, want %d", ev.NewEpoch, mine.Epoch+1)
	}
	if _, err := bob.group.Process(ctx, mine.Message); err != nil {
		t.Fatal(err)
	}
	send(t, alice, []*party{alice, bob}, "still in step")
}

// serverSender makes the server's external sender for groups of ca: its
// key, and the entry a group's external_senders extension names it by.
func serverSender(t testing.TB, ca *mlsxtest.CA) (*ecdsa.PrivateKey, mlsx.ExternalSender) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.CA.Issue("candord", "server", &key.PublicKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return key, mlsx.ExternalSender{Key: &key.PublicKey, Chain: [][]byte{cert}}
}
