package client_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor/client"
	"candor/internal/testenv"
)

// After bob leaves, with both his devices, alice's next message commits
// their removal first, so that neither can read it; bob keeps his history.
func TestLeave(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := t.Context()
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "laptop")
	bobPhone := env.Enrol(t, "bob", "phone")
	carol := env.Enrol(t, "carol", "desk")
	g, err := alice.CreateGroup(ctx, "desk", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, bobPhone, carol)
	if _, err := bob.Send(ctx, g, "see you"); err != nil {
		t.Fatal(err)
	}

	if err := bob.Leave(ctx, g); err != nil {
		t.Fatal(err)
	}
	gs, err := bob.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0].ID != g || !gs[0].Removed {
		t.Fatalf("bob's conversations after leaving: %+v", gs)
	}
	if _, err := bob.Send(ctx, g, "one more thing"); !errors.Is(err, client.ErrRemoved) {
		t.Errorf("sending after leaving: %v, want ErrRemoved", err)
	}
	if err := bob.Leave(ctx, g); !errors.Is(err, client.ErrRemoved) {
		t.Errorf("leaving twice: %v, want ErrRemoved", err)
	}
	waitText(t, bob, g, "see you") // the history stays

	// His phone hears of it from the server's proposals and cannot send:
	// it would have to commit its own removal.
	mustSync(t, bobPhone)
	if _, err := bobPhone.Send(ctx, g, "from the phone"); !errors.Is(err, client.ErrRemoved) {
		t.Errorf("bob's phone sending after he left: %v, want ErrRemoved", err)
	}

	mustSync(t, alice)
	if _, err := alice.Send(ctx, g, "bob has left"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, carol, bobPhone, bob)
	waitText(t, carol, g, "bob has left")
	for _, c := range []*client.Client{alice, carol} {
		ms, err := c.Members(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"alice", "archive", "carol"}, users(ms)); diff != "" {
			t.Errorf("%s's members (-want +got):\n%s", c.User(), diff)
		}
	}
	for _, c := range []*client.Client{bob, bobPhone} {
		ms, err := c.Messages(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(texts(ms), "bob has left") {
			t.Errorf("bob's %s read a message sent after he left", c.Device())
		}
		gs, err := c.Groups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) != 1 || !gs[0].Removed {
			t.Errorf("bob's %s does not know it left: %+v", c.Device(), gs)
		}
	}
	if err := carol.Leave(ctx, "no such group"); !errors.Is(err, client.ErrUnknownGroup) {
		t.Errorf("leaving an unknown conversation: %v, want ErrUnknownGroup", err)
	}
}
