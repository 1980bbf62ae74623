package mlsx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
)

// TestArchiveAnchor follows a replay anchor (docs/design/journal.md): the
// server proposes removing the archive's leaf, a member commits it, and
// then commits an Add of the archive's same KeyPackage, which gives the
// archive a fresh Welcome. The library refuses the Add while the archive's
// leaf is still in the tree, so the two cannot share a commit; this test
// also keeps that true, since the day they can, anchors get simpler.
func TestArchiveAnchor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
	serverKey, sender := serverSender(t, ca)
	id, err := ca.Issue("archive", "archive")
	if err != nil {
		t.Fatal(err)
	}
	secrets := archiveSecrets(t)
	now := time.Now()
	kp, err := mlsx.ArchiveKeyPackage(id, secrets, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	alice := newParty(t, ca, "alice", "laptop")
	bob := newParty(t, ca, "bob", "phone")
	g, err := alice.dev.CreateGroup(ctx, "anchor", mlsx.GroupOptions{
		ExternalSenders: []mlsx.ExternalSender{sender},
	})
	if err != nil {
		t.Fatal(err)
	}
	alice.group = g
	roster := mlsx.NewRoster(g.ID(), g.Suite(), g.Members()[0])
	c := commitAndDeliver(t, alice, mlsx.CommitOptions{Add: [][]byte{bob.keyPackage(t), kp}}, []*party{alice}, []*party{bob})
	if roster, _, err = roster.Apply(c.Message); err != nil {
		t.Fatal(err)
	}
	archive, err := mlsx.JoinPassive(ctx, mlsx.PassiveConfig{Store: mlsxtest.NewStore(), Validator: ca.Validator()}, c.Welcome, kp, secrets, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := archive.OwnLeaf()
	members := []*party{alice, bob}

	// The server's proposal, which every member and the archive take in.
	removal, err := mlsx.ProposeRemoval(serverKey, 0, g.ID(), g.Epoch(), leaf)
	if err != nil {
		t.Fatal(err)
	}
	if roster, _, err = roster.Apply(removal); err != nil {
		t.Fatalf("roster taking the proposal: %v", err)
	}
	for _, p := range members {
		if _, err := p.group.Process(ctx, removal); err != nil {
			t.Fatalf("%s processing the proposal: %v", p.name, err)
		}
	}
	if _, err := archive.Process(ctx, removal); err != nil {
		t.Fatalf("the archive processing the proposal: %v", err)
	}
	if _, err := bob.group.Commit(ctx, mlsx.CommitOptions{Add: [][]byte{kp}}); !errors.Is(err, candor.ErrInvalid) {
		t.Fatalf("re-adding the archive in the commit that removes it: %v, want the library's refusal", err)
	}

	// First commit: the archive leaves.
	out := commitAndDeliver(t, bob, mlsx.CommitOptions{}, []*party{alice, bob}, nil)
	if len(out.Removed) != 1 || out.Removed[0].Leaf != leaf {
		t.Fatalf("the commit removed %+v, want the archive's leaf %d", out.Removed, leaf)
	}
	if roster, _, err = roster.Apply(out.Message); err != nil {
		t.Fatalf("roster applying the removal: %v", err)
	}
	if ev, err := archive.Process(ctx, out.Message); err != nil || !ev.SelfRemoved {
		t.Fatalf("the archive processing its removal: %+v, %v", ev, err)
	}

	// Second commit: the same KeyPackage again, with a Welcome.
	back := commitAndDeliver(t, bob, mlsx.CommitOptions{Add: [][]byte{kp}}, []*party{alice, bob}, nil)
	if back.Welcome == nil || len(back.Added) != 1 {
		t.Fatalf("re-adding the archive: added %+v, welcome %d bytes", back.Added, len(back.Welcome))
	}
	if roster, _, err = roster.Apply(back.Message); err != nil {
		t.Fatalf("roster applying the re-add: %v", err)
	}
	if diff := cmp.Diff(alice.group.Members(), roster.Members()); diff != "" {
		t.Fatalf("roster differs (-members +roster):\n%s", diff)
	}
	// A passive member with nothing stored starts from the new Welcome.
	fresh, err := mlsx.JoinPassive(ctx, mlsx.PassiveConfig{Store: mlsxtest.NewStore(), Validator: ca.Validator()}, back.Welcome, kp, secrets, nil)
	if err != nil {
		t.Fatalf("joining from the anchor's Welcome: %v", err)
	}
	send(t, alice, []*party{bob, {name: "archive", group: fresh}}, "after the anchor")
}
