package mlsx_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
)

func archiveSecrets(t *testing.T) mlsx.KeyPackageSecrets {
	t.Helper()
	var keys [2][]byte
	for i := range keys {
		k, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k.Bytes()
	}
	return mlsx.KeyPackageSecrets{Init: keys[0], Encryption: keys[1]}
}

// The archive's one KeyPackage, made from keys it was given, joins every
// group it is added to, and a passive member holding those keys (and
// nothing stored) reads each group's messages.
func TestArchiveKeyPackage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
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
	info, err := mlsx.ParseKeyPackage(kp, now)
	if err != nil {
		t.Fatalf("the archive's key package does not verify: %v", err)
	}
	if !info.LastResort || info.NotAfter.Before(now.Add(364*24*time.Hour)) {
		t.Errorf("archive key package: %+v", info)
	}
	if _, err := mlsx.ParseKeyPackage(kp, now.Add(366*24*time.Hour)); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("after its lifetime: %v, want ErrInvalid", err)
	}
	// The leaf node's own signature is checked too.
	for _, at := range []int{40, len(kp) - 80} {
		bad := append([]byte(nil), kp...)
		bad[at] ^= 1
		if _, err := mlsx.ParseKeyPackage(bad, now); err == nil {
			t.Errorf("a key package changed at byte %d was accepted", at)
		}
	}

	for _, name := range []string{"desk", "compliance"} {
		alice := newParty(t, ca, "alice", "laptop")
		bob := newParty(t, ca, "bob", "phone")
		g, err := alice.dev.CreateGroup(ctx, candor.GroupID(name), mlsx.GroupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		alice.group = g
		c := commitAndDeliver(t, alice, mlsx.CommitOptions{Add: [][]byte{bob.keyPackage(t), kp}}, []*party{alice}, []*party{bob})

		wrong := archiveSecrets(t)
		if _, err := mlsx.JoinPassive(ctx, mlsx.PassiveConfig{Store: mlsxtest.NewStore(), Validator: ca.Validator()}, c.Welcome, kp, wrong, nil); err == nil {
			t.Fatal("the archive's Welcome opened with other keys")
		}
		archive, err := mlsx.JoinPassive(ctx, mlsx.PassiveConfig{Store: mlsxtest.NewStore(), Validator: ca.Validator()}, c.Welcome, kp, secrets, nil)
		if err != nil {
			t.Fatalf("%s: the archive cannot join: %v", name, err)
		}
		send(t, alice, []*party{bob, {name: "archive", group: archive}}, "for the record: "+name)
		// A later commit's path secrets reach the archive's leaf too.
		carol := newParty(t, ca, "carol", "desk")
		c = commitAndDeliver(t, bob, mlsx.CommitOptions{Add: [][]byte{carol.keyPackage(t)}}, []*party{alice, bob}, []*party{carol})
		if _, err := archive.Process(ctx, c.Message); err != nil {
			t.Fatalf("%s: the archive cannot follow a commit: %v", name, err)
		}
		send(t, carol, []*party{alice, bob, {name: "archive", group: archive}}, "after the commit")
	}
}
