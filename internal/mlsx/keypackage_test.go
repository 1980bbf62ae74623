package mlsx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"candor"
	"candor/internal/mlsx"
)

func TestKeyPackages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
	alice := newParty(t, ca, "alice", "laptop")
	bob := newParty(t, ca, "bob", "phone")

	kp := bob.keyPackage(t)
	info, err := mlsx.ParseKeyPackage(kp, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if info.Suite != mlsx.DefaultSuite || info.Credential.Kind != mlsx.CredentialX509 || info.LastResort {
		t.Fatalf("key package info: %+v", info)
	}
	if _, err := mlsx.ParseKeyPackage(kp, time.Now().Add(mlsx.KeyPackageLifetime+time.Hour)); !errors.Is(err, candor.ErrInvalid) {
		t.Fatalf("expired key package: %v, want ErrInvalid", err)
	}
	tampered := append([]byte(nil), kp...)
	tampered[len(tampered)-10] ^= 1
	if _, err := mlsx.ParseKeyPackage(tampered, time.Now()); err == nil {
		t.Fatal("a tampered key package was accepted")
	}

	last, err := bob.dev.LastResortKeyPackage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := mlsx.ParseKeyPackage(last, time.Now()); err != nil || !info.LastResort {
		t.Fatalf("last resort key package: %+v, %v", info, err)
	}

	// A one-time KeyPackage is forgotten after its Welcome; the last-resort
	// one is kept.
	for _, tc := range []struct {
		name     string
		kp       []byte
		reusable bool
	}{
		{"one-time", kp, false},
		{"last resort", last, true},
	} {
		g, err := alice.dev.CreateGroup(ctx, candor.GroupID("kp-"+tc.name), mlsx.GroupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := g.Commit(ctx, mlsx.CommitOptions{Add: [][]byte{tc.kp}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.dev.Join(ctx, c.Welcome); err != nil {
			t.Fatalf("%s: join: %v", tc.name, err)
		}
		if err := bob.store.DeleteGroup(ctx, g.ID()); err != nil {
			t.Fatal(err)
		}
		_, err = bob.dev.Join(ctx, c.Welcome)
		if tc.reusable && err != nil {
			t.Errorf("%s: second join: %v", tc.name, err)
		}
		if !tc.reusable && !errors.Is(err, mlsx.ErrNoKeyPackage) {
			t.Errorf("%s: second join: %v, want ErrNoKeyPackage", tc.name, err)
		}
	}
}

func TestCommitConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ps := newGroup(t, newTestCA(t), 3)
	alice, bob, carol := ps[0], ps[1], ps[2]

	// Alice and Bob commit in the same epoch; the server takes Bob's.
	mine, err := alice.group.Commit(ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.group.Encrypt(ctx, []byte("x")); !errors.Is(err, mlsx.ErrCommitPending) {
		t.Fatalf("encrypt with a pending commit: %v, want ErrCommitPending", err)
	}
	winner := commitAndDeliver(t, bob, mlsx.CommitOptions{}, []*party{bob, carol}, nil)
	if _, err := alice.group.Process(ctx, winner.Message); err != nil {
		t.Fatalf("alice processing the winning commit: %v", err)
	}
	if _, err := carol.group.Process(ctx, mine.Message); !errors.Is(err, mlsx.ErrStaleEpoch) {
		t.Fatalf("losing commit: %v, want ErrStaleEpoch", err)
	}
	send(t, alice, ps, "after the conflict")

	// Alice's next commit is accepted, but she crashes before confirming.
	c, err := alice.group.Commit(ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A restarted process loads the group afresh from the store.
	g, err := alice.dev.Group(ctx, alice.group.ID())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := g.Process(ctx, c.Message)
	if err != nil {
		t.Fatalf("adopting own commit after a restart: %v", err)
	}
	if ev.NewEpoch != winner.Epoch+2 {
		t.Fatalf("after adopting, epoch %d, want %d", ev.NewEpoch, winner.Epoch+2)
	}
	alice.group = g
	for _, p := range []*party{bob, carol} {
		if _, err := p.group.Process(ctx, c.Message); err != nil {
			t.Fatal(err)
		}
	}
	send(t, alice, ps, "after adopting")
}
