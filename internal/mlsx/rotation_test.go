package mlsx_test

import (
	"context"
	"testing"
	"time"

	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
)

// TestArchiveRotation follows a move to a new archive key
// (docs/design/archive.md, "Rotation"): the server proposes removing the
// previous key's leaf, and the member who commits that proposal adds the
// new key in the same commit. Unlike an anchor (TestArchiveAnchor), the
// two keys have different signature keys, which the library allows in
// one commit; so does a commit that removes the previous key's leaf by
// itself, with no proposal. Either way the group is never without an
// archive, and the new key's Welcome lets it read what follows.
func TestArchiveRotation(t *testing.T) {
	t.Parallel()
	for _, proposedByServer := range []bool{true, false} {
		name := "member's own removal"
		if proposedByServer {
			name = "server's proposal"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ca := newTestCA(t)
			serverKey, sender := serverSender(t, ca)
			now := time.Now()
			archiveKey := func(device string) ([]byte, mlsx.KeyPackageSecrets) {
				id, err := ca.Issue("archive", device)
				if err != nil {
					t.Fatal(err)
				}
				secrets := archiveSecrets(t)
				kp, err := mlsx.ArchiveKeyPackage(id, secrets, now.Add(-time.Hour), now.Add(365*24*time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				return kp, secrets
			}
			oldKP, _ := archiveKey("archive-1")
			newKP, newSecrets := archiveKey("archive-2")

			alice := newParty(t, ca, "alice", "laptop")
			bob := newParty(t, ca, "bob", "phone")
			g, err := alice.dev.CreateGroup(ctx, "rotation", mlsx.GroupOptions{
				ExternalSenders: []mlsx.ExternalSender{sender},
			})
			if err != nil {
				t.Fatal(err)
			}
			alice.group = g
			commitAndDeliver(t, alice, mlsx.CommitOptions{Add: [][]byte{bob.keyPackage(t), oldKP}}, []*party{alice}, []*party{bob})
			oldLeaf := ^uint32(0)
			for _, m := range g.Members() {
				if m.Credential.Chain != nil && isLeafOf(t, m, "archive-1") {
					oldLeaf = m.Leaf
				}
			}
			if oldLeaf == ^uint32(0) {
				t.Fatal("the previous archive key is not a member")
			}

			opts := mlsx.CommitOptions{Add: [][]byte{newKP}}
			if proposedByServer {
				removal, err := mlsx.ProposeRemoval(serverKey, 0, g.ID(), g.Epoch(), oldLeaf)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range []*party{alice, bob} {
					if _, err := p.group.Process(ctx, removal); err != nil {
						t.Fatalf("%s processing the proposal: %v", p.name, err)
					}
				}
				// The committer must not remove the leaf itself as well:
				// the library refuses a duplicate removal.
				if got := bob.group.ProposedRemovals(); len(got) != 1 || got[0] != oldLeaf {
					t.Fatalf("ProposedRemovals = %v, want [%d]", got, oldLeaf)
				}
			} else {
				opts.Remove = []uint32{oldLeaf}
			}
			c := commitAndDeliver(t, bob, opts, []*party{alice, bob}, nil)
			if got := bob.group.ProposedRemovals(); len(got) != 0 {
				t.Fatalf("ProposedRemovals after the commit = %v, want none", got)
			}
			if len(c.Removed) != 1 || c.Removed[0].Leaf != oldLeaf || len(c.Added) != 1 || c.Welcome == nil {
				t.Fatalf("the commit removed %+v and added %+v (Welcome %d bytes), want the previous key out and the new one in",
					c.Removed, c.Added, len(c.Welcome))
			}
			archive, err := mlsx.JoinPassive(ctx, mlsx.PassiveConfig{Store: mlsxtest.NewStore(), Validator: ca.Validator()}, c.Welcome, newKP, newSecrets, nil)
			if err != nil {
				t.Fatalf("the new archive key joining: %v", err)
			}
			send(t, alice, []*party{bob, {name: "new archive", group: archive}}, "after the rotation")
		})
	}
}

// isLeafOf reports whether m's certificate is the one issued for device.
func isLeafOf(t *testing.T, m mlsx.Member, device string) bool {
	t.Helper()
	cert, err := m.Credential.Certificate()
	return err == nil && len(cert.Subject.OrganizationalUnit) > 0 && cert.Subject.OrganizationalUnit[0] == device
}
