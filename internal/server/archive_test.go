package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"candor"
	"candor/api"
	"candor/internal/mlsx"
)

// The archive is published, pinned by invitations, in every group from its
// first commit, never removable, and its Welcomes are kept.
func TestArchiveInEveryGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")

	var pub api.Archive
	alice.call("GET", api.PathArchive, nil, &pub)
	if !bytes.Equal(pub.Statement, e.archive.Statement.Bytes()) || len(pub.Endorsements) != len(e.archive.Endorsements) {
		t.Fatalf("GET archive: %d-byte statement, %d endorsements", len(pub.Statement), len(pub.Endorsements))
	}
	code, err := e.srv.Invite(e.ctx, "carol", 0, e.addr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(pub.Statement); !bytes.Equal(code.Archive, sum[:]) {
		t.Error("the invitation does not pin the published statement")
	}

	// A first commit without the archive is refused, and so is an
	// application message before any commit.
	id := candor.GroupID("archived")
	bob.uploadKeyPackages(2, false)
	g := alice.createGroup(id)
	ct, err := g.Encrypt(e.ctx, []byte("before the archive"))
	if err != nil {
		t.Fatal(err)
	}
	st, ae := alice.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: ct}, nil)
	wantCode(t, st, ae, api.CodePolicy)
	c, err := g.Commit(e.ctx, mlsx.CommitOptions{Add: alice.claim("bob")})
	if err != nil {
		t.Fatal(err)
	}
	st, ae = alice.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: c.Message, Welcome: c.Welcome}, nil)
	wantCode(t, st, ae, api.CodePolicy)
	if err := g.Discard(e.ctx); err != nil {
		t.Fatal(err)
	}

	// With it, the group is made, and the archive's Welcome is kept for it.
	alice.commit(id, mlsx.CommitOptions{Add: alice.claim("bob")})
	bob.joinWelcomes()
	archive := ArchiveDevice(e.archive.Statement.Certificate())
	ws, err := e.data.Store.Welcomes(e.ctx, archive)
	if err != nil || len(ws) != 1 || ws[0].Group != id || ws[0].Seq != 1 {
		t.Fatalf("the archive's welcomes: %+v, %v", ws, err)
	}

	// No member may remove it.
	var archiveLeaf uint32
	for _, m := range bob.groups[id].Members() {
		if cert, err := m.Credential.Certificate(); err == nil && bytes.Equal(cert.Raw, e.archive.Statement.Certificate()) {
			archiveLeaf = m.Leaf
		}
	}
	c, err = bob.groups[id].Commit(e.ctx, mlsx.CommitOptions{Remove: []uint32{archiveLeaf}})
	if err != nil {
		t.Fatal(err)
	}
	st, ae = bob.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: c.Message}, nil)
	wantCode(t, st, ae, api.CodePolicy)

	// Nor may the organisation revoke it.
	if err := e.srv.Revoke(e.ctx, archive); !errors.Is(err, candor.ErrPermission) {
		t.Errorf("revoking the archive: %v, want ErrPermission", err)
	}
}

// Without an archive the server invites nobody and carries no group.
func TestNoArchive(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	if err := Init(ctx, dir, InitOptions{Org: "Example Bank", OpenStore: openSQL}); err != nil {
		t.Fatal(err)
	}
	data, err := Open(ctx, dir, openSQL)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	if data.Archive != nil {
		t.Fatal("a new data folder has an archive")
	}
	srv, err := New(ctx, data.Config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Invite(ctx, "carol", 0, "127.0.0.1:8443"); !errors.Is(err, ErrNoArchive) {
		t.Errorf("invite without an archive: %v, want ErrNoArchive", err)
	}
	if _, err := LoadArchive(t.TempDir()); !errors.Is(err, ErrNoArchive) {
		t.Errorf("LoadArchive of an empty folder: %v, want ErrNoArchive", err)
	}
}
