package mlsx_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
)

// party is one device under test with its own store.
type party struct {
	name  string
	dev   *mlsx.Device
	store *mlsxtest.Store
	group *mlsx.Group
}

func newParty(t testing.TB, ca *mlsxtest.CA, user, device string) *party {
	t.Helper()
	id, err := ca.Issue(user, device)
	if err != nil {
		t.Fatal(err)
	}
	store := mlsxtest.NewStore()
	dev, err := mlsx.NewDevice(context.Background(), mlsx.Config{Identity: id, Store: store, Validator: ca.Validator()})
	if err != nil {
		t.Fatal(err)
	}
	return &party{name: user + "/" + device, dev: dev, store: store}
}

func (p *party) keyPackage(t testing.TB) []byte {
	t.Helper()
	kps, err := p.dev.KeyPackages(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return kps[0]
}

// commitAndDeliver makes committer commit opts, confirms it, has every other
// party in members process it, and joins every party in joiners.
func commitAndDeliver(t testing.TB, committer *party, opts mlsx.CommitOptions, members, joiners []*party) *mlsx.Commit {
	t.Helper()
	ctx := context.Background()
	c, err := committer.group.Commit(ctx, opts)
	if err != nil {
		t.Fatalf("%s commit: %v", committer.name, err)
	}
	if _, err := committer.group.Confirm(ctx); err != nil {
		t.Fatalf("%s confirm: %v", committer.name, err)
	}
	for _, m := range members {
		if m == committer {
			continue
		}
		if _, err := m.group.Process(ctx, c.Message); err != nil {
			t.Fatalf("%s processing commit: %v", m.name, err)
		}
	}
	for _, j := range joiners {
		g, err := j.dev.Join(ctx, c.Welcome)
		if err != nil {
			t.Fatalf("%s join: %v", j.name, err)
		}
		j.group = g
	}
	return c
}

func newGroup(t testing.TB, ca *mlsxtest.CA, n int) []*party {
	t.Helper()
	ctx := context.Background()
	parties := make([]*party, n)
	for i := range parties {
		parties[i] = newParty(t, ca, fmt.Sprintf("user%d", i), "laptop")
	}
	g, err := parties[0].dev.CreateGroup(ctx, candor.GroupID("group-under-test"), mlsx.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parties[0].group = g
	if n > 1 {
		var add [][]byte
		for _, p := range parties[1:] {
			add = append(add, p.keyPackage(t))
		}
		commitAndDeliver(t, parties[0], mlsx.CommitOptions{Add: add}, parties[:1], parties[1:])
	}
	return parties
}

func send(t testing.TB, from *party, to []*party, text string) {
	t.Helper()
	ctx := context.Background()
	ct, err := from.group.Encrypt(ctx, []byte(text))
	if err != nil {
		t.Fatalf("%s encrypt: %v", from.name, err)
	}
	for _, p := range to {
		if p == from {
			continue
		}
		ev, err := p.group.Process(ctx, ct)
		if err != nil {
			t.Fatalf("%s decrypting from %s: %v", p.name, from.name, err)
		}
		if got := string(ev.Plaintext); got != text {
			t.Fatalf("%s got %q, want %q", p.name, got, text)
		}
		if ev.Sender.Index != from.group.OwnLeaf() {
			t.Fatalf("%s: sender leaf %d, want %d", p.name, ev.Sender.Index, from.group.OwnLeaf())
		}
	}
}

func TestGroupLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
	ps := newGroup(t, ca, 3)
	alice, bob, carol := ps[0], ps[1], ps[2]

	for _, p := range ps {
		if got := len(p.group.Members()); got != 3 {
			t.Fatalf("%s sees %d members, want 3", p.name, got)
		}
		if p.group.Epoch() != 1 {
			t.Fatalf("%s at epoch %d, want 1", p.name, p.group.Epoch())
		}
	}
	send(t, alice, ps, "Guten Tag")
	send(t, bob, ps, "Bonjour à tous")
	send(t, carol, ps, "こんにちは")
	send(t, bob, ps, "second from bob")

	// Key rotation: an empty commit.
	commitAndDeliver(t, bob, mlsx.CommitOptions{}, ps, nil)
	send(t, carol, ps, "after rotation")
	auth := alice.group.EpochAuthenticator()
	for _, p := range ps[1:] {
		if string(p.group.EpochAuthenticator()) != string(auth) {
			t.Fatalf("%s disagrees on the epoch authenticator", p.name)
		}
	}

	// Remove carol; she can no longer read.
	c := commitAndDeliver(t, alice, mlsx.CommitOptions{Remove: []uint32{carol.group.OwnLeaf()}}, ps[:2], nil)
	if len(c.Removed) != 1 || len(c.Added) != 0 {
		t.Fatalf("commit removed %d and added %d, want 1 and 0", len(c.Removed), len(c.Added))
	}
	ct, err := alice.group.Encrypt(ctx, []byte("carol must not read this"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.group.Process(ctx, ct); !errors.Is(err, mlsx.ErrStaleEpoch) {
		t.Fatalf("removed member processing a new-epoch message: %v, want ErrStaleEpoch", err)
	}
	if _, err := bob.group.Process(ctx, ct); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.group.Process(ctx, ct); !errors.Is(err, mlsx.ErrReplay) {
		t.Fatalf("replayed message: %v, want ErrReplay", err)
	}
	if _, err := alice.group.Process(ctx, ct); !errors.Is(err, mlsx.ErrOwnMessage) {
		t.Fatalf("own message: %v, want ErrOwnMessage", err)
	}
}

func TestReloadedGroupsCarryOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
	ps := newGroup(t, ca, 2)
	send(t, ps[0], ps, "one")
	send(t, ps[1], ps, "two")
	for _, p := range ps {
		g, err := p.dev.Group(ctx, p.group.ID())
		if err != nil {
			t.Fatal(err)
		}
		p.group = g
	}
	send(t, ps[0], ps, "three")
	send(t, ps[1], ps, "four")
	commitAndDeliver(t, ps[1], mlsx.CommitOptions{}, ps, nil)
	send(t, ps[0], ps, "five")
}

func TestCrashAfterEncryptUsesFreshGeneration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
	ps := newGroup(t, ca, 2)
	alice, bob := ps[0], ps[1]
	send(t, alice, ps, "before")

	// Alice encrypts, and the process dies before anything else is written:
	// a restarted process finds exactly what the store held at that moment.
	lost, err := alice.group.Encrypt(ctx, []byte("encrypted, then the process died"))
	if err != nil {
		t.Fatal(err)
	}
	restarted := newPartyFrom(t, ca, alice, alice.store.Clone())
	next, err := restarted.group.Encrypt(ctx, []byte("after the restart"))
	if err != nil {
		t.Fatal(err)
	}
	evLost, err := bob.group.Process(ctx, lost)
	if err != nil {
		t.Fatal(err)
	}
	evNext, err := bob.group.Process(ctx, next)
	if err != nil {
		t.Fatalf("message after restart: %v", err)
	}
	if evNext.Generation <= evLost.Generation {
		t.Fatalf("after restart alice used generation %d, not past %d", evNext.Generation, evLost.Generation)
	}
}

// newPartyFrom is p's device restarted on store.
func newPartyFrom(t testing.TB, ca *mlsxtest.CA, p *party, store *mlsxtest.Store) *party {
	t.Helper()
	ctx := context.Background()
	dev, err := mlsx.NewDevice(ctx, mlsx.Config{Identity: p.dev.Identity(), Store: store, Validator: ca.Validator()})
	if err != nil {
		t.Fatal(err)
	}
	g, err := dev.Group(ctx, p.group.ID())
	if err != nil {
		t.Fatal(err)
	}
	return &party{name: p.name + " (restarted)", dev: dev, store: store, group: g}
}

func TestFailedReservationEncryptsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := newTestCA(t)
	ps := newGroup(t, ca, 2)
	alice := ps[0]
	alice.store.FailWrites = errors.New("disk full")
	if ct, err := alice.group.Encrypt(ctx, []byte("x")); err == nil || ct != nil {
		t.Fatalf("Encrypt with a failing store returned %d bytes, err %v", len(ct), err)
	}
	alice.store.FailWrites = nil
	send(t, alice, ps, "after the disk was freed")
}

func TestPolicyRefusesUnenrolledDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bank := mlsxtest.NewCA(t, "Example Bank")
	other := mlsxtest.NewCA(t, "Somebody Else")
	ps := newGroup(t, bank, 2)
	alice, bob := ps[0], ps[1]
	stranger := newParty(t, other, "mallory", "phone")

	_, err := alice.group.Commit(ctx, mlsx.CommitOptions{Add: [][]byte{stranger.keyPackage(t)}})
	var pe *mlsx.PolicyError
	if !errors.As(err, &pe) || !errors.Is(err, candor.ErrPermission) {
		t.Fatalf("adding a device of another CA: %v, want a PolicyError", err)
	}

	// A member whose own validator admits the stranger commits the add;
	// bob's validator refuses it, and bob's group stays as it was.
	lax := newPartyFrom(t, bank, alice, alice.store.Clone())
	laxDev, err := mlsx.NewDevice(ctx, mlsx.Config{Identity: alice.dev.Identity(), Store: lax.store, Validator: mlsxtest.AcceptAll})
	if err != nil {
		t.Fatal(err)
	}
	g, err := laxDev.Group(ctx, alice.group.ID())
	if err != nil {
		t.Fatal(err)
	}
	c, err := g.Commit(ctx, mlsx.CommitOptions{Add: [][]byte{stranger.keyPackage(t)}})
	if err != nil {
		t.Fatal(err)
	}
	epoch := bob.group.Epoch()
	if _, err := bob.group.Process(ctx, c.Message); !errors.As(err, &pe) {
		t.Fatalf("bob processing a commit adding a stranger: %v, want a PolicyError", err)
	}
	if bob.group.Epoch() != epoch || len(bob.group.Members()) != 2 {
		t.Fatalf("bob's group changed after a refused commit")
	}
	send(t, alice, ps, "the group carries on")
}

func newTestCA(t testing.TB) *mlsxtest.CA { return mlsxtest.NewCA(t, "Example Bank") }
