package client_test

import (
	"errors"
	"testing"

	"candor"
	"candor/client"
	"candor/internal/testenv"
)

// A direct conversation is found again from either side, and stops being
// the pair's once a third person is in it.
func TestDirect(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := t.Context()
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "laptop")
	env.Enrol(t, "carol", "desk")

	d, created, err := alice.Direct(ctx, "bob")
	if err != nil || !created {
		t.Fatalf("first direct: %v, created %v", err, created)
	}
	if !client.IsDirect(d) {
		t.Errorf("%s is not marked direct", d)
	}
	if again, created, err := alice.Direct(ctx, "bob"); err != nil || created || again != d {
		t.Errorf("direct again: %s, created %v, %v; want %s", again, created, err, d)
	}
	mustSync(t, bob)
	if fromBob, created, err := bob.Direct(ctx, "alice"); err != nil || created || fromBob != d {
		t.Errorf("bob's direct with alice: %s, created %v, %v; want %s", fromBob, created, err, d)
	}
	if _, err := bob.Send(ctx, d, "lunch?"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	waitText(t, alice, d, "lunch?")

	// With carol in it, it is no longer alice and bob's direct conversation.
	if err := alice.AddUsers(ctx, d, "carol"); err != nil {
		t.Fatal(err)
	}
	other, created, err := alice.Direct(ctx, "bob")
	if err != nil || !created || other == d {
		t.Errorf("direct after carol joined: %s, created %v, %v; want a new one", other, created, err)
	}

	g, err := alice.CreateGroup(ctx, "desk", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if client.IsDirect(g) {
		t.Errorf("a group is marked direct")
	}
	for _, tc := range []struct {
		name string
		user candor.UserID
		want error
	}{
		{"oneself", "alice", candor.ErrInvalid},
		{"nobody", "nobody", client.ErrUnknownUser},
	} {
		if _, _, err := alice.Direct(ctx, tc.user); !errors.Is(err, tc.want) {
			t.Errorf("direct with %s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
