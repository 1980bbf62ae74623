package client_test

import (
	"slices"
	"testing"
	"time"

	"candor/client"
	"candor/internal/server"
	"candor/internal/testenv"
)

// A replay anchor through real devices: the server proposes taking the
// archive out, and the next device to send commits that, adds the archive
// back with a fresh Welcome, and then sends; every device reads on and
// still sees the archive.
func TestAnchor(t *testing.T) {
	t.Parallel()
	env := testenv.New(t, func(c *server.Config) { c.AnchorInterval = time.Nanosecond })
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	if _, err := alice.Send(ctx, g, "before the anchor"); err != nil {
		t.Fatal(err)
	}
	if n, err := env.Server.ProposeAnchors(ctx); err != nil || n != 1 {
		t.Fatalf("proposing anchors: %d, %v; want 1", n, err)
	}
	mustSync(t, bob)
	if _, err := bob.Send(ctx, g, "after the anchor"); err != nil {
		t.Fatalf("sending after the anchor's proposal: %v", err)
	}
	archive := server.ArchiveDevice(env.Archive.Statement.Certificate())
	ws, err := env.Store().WelcomeSeqs(ctx, archive, g)
	if err != nil || len(ws) != 2 {
		t.Fatalf("the archive's welcomes: %+v, %v; want the first commit's and the anchor's", ws, err)
	}
	mustSync(t, alice, carol)
	for _, c := range []*client.Client{alice, bob, carol} {
		waitText(t, c, g, "after the anchor")
		ms, err := c.Members(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(ms, func(m client.Member) bool { return m.Archive }) {
			t.Errorf("%s: the archive is not among the members after the anchor: %+v", c.User(), ms)
		}
	}
	if _, err := carol.Send(ctx, g, "and on"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	waitText(t, alice, g, "and on")
}
