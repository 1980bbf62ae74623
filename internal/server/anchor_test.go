package server

import (
	"testing"
	"time"

	"candor"
	"candor/api"
	"candor/internal/mlsx"
)

// TestAnchor follows a replay anchor through the server: its proposal to
// remove the archive, the commit that takes it, the refusals while the
// archive is out, and the commit that adds it back with a fresh Welcome.
func TestAnchor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.AnchorInterval = time.Nanosecond })
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	bob.uploadKeyPackages(2, false)
	id := candor.GroupID("anchored")
	alice.createGroup(id)
	alice.commit(id, mlsx.CommitOptions{Add: alice.claim("bob")})
	bob.joinWelcomes()
	alice.send(id, "before the anchor")
	archive := ArchiveDevice(e.archive.Statement.Certificate())

	n, err := e.srv.ProposeAnchors(e.ctx)
	if err != nil || n != 1 {
		t.Fatalf("proposing anchors: %d, %v; want 1", n, err)
	}
	if n, err := e.srv.ProposeAnchors(e.ctx); err != nil || n != 0 {
		t.Fatalf("proposing again while one is pending: %d, %v; want none", n, err)
	}
	g, err := e.data.Store.Group(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	roster, err := mlsx.UnmarshalRoster(g.Roster)
	if err != nil {
		t.Fatal(err)
	}
	if len(roster.Proposals) != 1 || !roster.Proposals[0].External {
		t.Fatalf("pending proposals %+v, want the server's one", roster.Proposals)
	}
	// A member's proposal to remove the archive would not count.
	forged := *roster
	forged.Proposals = []mlsx.RosterProposal{roster.Proposals[0]}
	forged.Proposals[0].External = false
	after := *roster
	after.Leaves = nil
	if e.srv.anchorRemoval(&forged, &after) {
		t.Error("a member's proposal to remove the archive was taken for the server's")
	}
	if got := bob.catchUp(id); len(got) != 1 {
		t.Fatalf("bob read %q", got)
	}

	// The first commit takes the archive out...
	bob.commit(id, mlsx.CommitOptions{})
	members, err := e.data.Store.Members(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m == archive {
			t.Fatal("the archive is still a member after the commit that removes it")
		}
	}
	// ...after which nothing is written until it is back,
	ct, err := bob.groups[id].Encrypt(e.ctx, []byte("while the archive is out"))
	if err != nil {
		t.Fatal(err)
	}
	st, ae := bob.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: ct}, nil)
	wantCode(t, st, ae, api.CodePolicy)
	c, err := bob.groups[id].Commit(e.ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, ae = bob.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: c.Message}, nil)
	wantCode(t, st, ae, api.CodePolicy)
	if err := bob.groups[id].Discard(e.ctx); err != nil {
		t.Fatal(err)
	}

	// ...and the second adds it back, with a Welcome: the anchor.
	_, resp := bob.commit(id, mlsx.CommitOptions{Add: [][]byte{e.archive.Statement.KeyPackage()}})
	ws, err := e.data.Store.WelcomeSeqs(e.ctx, archive, id)
	if err != nil || len(ws) != 2 || ws[0].Seq != 1 || ws[1].Seq != resp.Seq {
		t.Fatalf("the archive's welcomes: %+v, %v; want seq 1 and %d", ws, err, resp.Seq)
	}
	bob.send(id, "after the anchor")
	if got := alice.catchUp(id); len(got) != 1 || got[0] != "after the anchor" {
		t.Fatalf("alice read %q", got)
	}
	// The anchor is fresh: none is due until the log moves past it and
	// the interval passes again.
	if n, err := e.srv.ProposeAnchors(e.ctx); err != nil || n != 1 {
		t.Fatalf("proposing after the message: %d, %v; want 1 (the interval is a nanosecond)", n, err)
	}
}
