package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"candor"
	"candor/internal/store"
)

func testKeyPackagesAddCount(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	count := func(wantN int, wantLR bool) {
		t.Helper()
		n, lr, err := s.CountKeyPackages(ctx, d.ID)
		must(t, err)
		if n != wantN || lr != wantLR {
			t.Errorf("CountKeyPackages = %d, %v; want %d, %v", n, lr, wantN, wantLR)
		}
	}
	count(0, false)
	must(t, s.AddKeyPackages(ctx, d.ID, []store.KeyPackage{keyPackage(d.ID, 1), keyPackage(d.ID, 2)}, nil))
	count(2, false)
	must(t, s.AddKeyPackages(ctx, d.ID, nil, lastResort(d.ID, 3)))
	count(2, true)
	must(t, s.AddKeyPackages(ctx, d.ID, []store.KeyPackage{keyPackage(d.ID, 4)}, lastResort(d.ID, 5)))
	count(3, true)
	for _, ref := range [][]byte{keyPackage(d.ID, 1).Ref, lastResort(d.ID, 3).Ref, lastResort(d.ID, 5).Ref} {
		owner, err := s.KeyPackageOwner(ctx, ref)
		must(t, err)
		if owner != d.ID {
			t.Errorf("KeyPackageOwner(%q) = %s, want %s", ref, owner, d.ID)
		}
	}
	_, err := s.KeyPackageOwner(ctx, []byte("no such ref"))
	wantErr(t, "KeyPackageOwner of an unknown ref", err, candor.ErrNotFound)
	_, _, err = s.CountKeyPackages(ctx, "dev-9")
	wantErr(t, "CountKeyPackages of an unknown device", err, candor.ErrNotFound)
}

func testKeyPackagesAddRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	e := enrol(t, s, "bob", "dev-2")
	must(t, s.AddKeyPackages(ctx, d.ID, []store.KeyPackage{keyPackage(d.ID, 1)}, lastResort(d.ID, 2)))
	stolen := keyPackage(d.ID, 1)
	stolen.Device = e.ID
	for _, tc := range []struct {
		name   string
		device candor.DeviceID
		kps    []store.KeyPackage
		lr     *store.KeyPackage
		want   error
	}{
		{"RefStored", d.ID, []store.KeyPackage{keyPackage(d.ID, 3), keyPackage(d.ID, 1)}, nil, candor.ErrConflict},
		{"RefStoredForAnother", e.ID, []store.KeyPackage{stolen}, nil, candor.ErrConflict},
		{"RefTwiceInOneCall", d.ID, []store.KeyPackage{keyPackage(d.ID, 3), keyPackage(d.ID, 3)}, nil, candor.ErrConflict},
		{"LastResortStored", d.ID, []store.KeyPackage{keyPackage(d.ID, 3)}, lastResort(d.ID, 2), candor.ErrConflict},
		{"UnknownDevice", "dev-9", []store.KeyPackage{keyPackage("dev-9", 1)}, nil, candor.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s, nil, []candor.DeviceID{d.ID, e.ID})
			wantErr(t, "AddKeyPackages", s.AddKeyPackages(ctx, tc.device, tc.kps, tc.lr), tc.want)
			diff(t, "state after a refused AddKeyPackages", before, snapshot(t, s, nil, []candor.DeviceID{d.ID, e.ID}))
			if _, err := s.KeyPackageOwner(ctx, keyPackage(d.ID, 3).Ref); !errors.Is(err, candor.ErrNotFound) {
				t.Errorf("part of a refused AddKeyPackages was stored: %v", err)
			}
		})
	}
}

func testClaimOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	d1 := enrol(t, s, "alice", "dev-1")
	d2 := enrol(t, s, "alice", "dev-2")
	enrol(t, s, "bob", "dev-3")
	must(t, s.AddKeyPackages(ctx, d1.ID, []store.KeyPackage{keyPackage(d1.ID, 1), keyPackage(d1.ID, 2)}, lastResort(d1.ID, 3)))
	must(t, s.AddKeyPackages(ctx, d1.ID, []store.KeyPackage{keyPackage(d1.ID, 4)}, nil))
	must(t, s.AddKeyPackages(ctx, d2.ID, []store.KeyPackage{keyPackage(d2.ID, 1)}, lastResort(d2.ID, 2)))
	must(t, s.AddKeyPackages(ctx, "dev-3", []store.KeyPackage{keyPackage("dev-3", 1)}, nil))

	for i, want := range [][]store.KeyPackage{
		{keyPackage(d1.ID, 1), keyPackage(d2.ID, 1)},
		{keyPackage(d1.ID, 2), *lastResort(d2.ID, 2)},
		{keyPackage(d1.ID, 4), *lastResort(d2.ID, 2)},
		{*lastResort(d1.ID, 3), *lastResort(d2.ID, 2)},
		{*lastResort(d1.ID, 3), *lastResort(d2.ID, 2)},
	} {
		got, err := s.ClaimKeyPackages(ctx, "alice", t0.Add(time.Duration(i)*time.Minute))
		must(t, err)
		diff(t, fmt.Sprintf("claim %d", i+1), want, got)
	}
	// Claimed ones are remembered for routing, and no longer counted.
	for _, kp := range []store.KeyPackage{keyPackage(d1.ID, 1), keyPackage(d1.ID, 4), keyPackage(d2.ID, 1)} {
		owner, err := s.KeyPackageOwner(ctx, kp.Ref)
		must(t, err)
		if owner != kp.Device {
			t.Errorf("KeyPackageOwner(%q) = %s, want %s", kp.Ref, owner, kp.Device)
		}
	}
	n, lr, err := s.CountKeyPackages(ctx, d1.ID)
	must(t, err)
	if n != 0 || !lr {
		t.Errorf("CountKeyPackages after the claims = %d, %v; want 0, true", n, lr)
	}
	// Bob's were not touched.
	n, _, err = s.CountKeyPackages(ctx, "dev-3")
	must(t, err)
	if n != 1 {
		t.Errorf("another user's device has %d KeyPackages left, want 1", n)
	}
}

func testClaimLeavesOut(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.ClaimKeyPackages(ctx, "nobody", t0)
	must(t, err)
	if len(got) != 0 {
		t.Errorf("claim for an unknown user = %v, want none", got)
	}
	d1 := enrol(t, s, "alice", "dev-1")
	enrol(t, s, "alice", "dev-2") // has none
	must(t, s.AddKeyPackages(ctx, d1.ID, []store.KeyPackage{keyPackage(d1.ID, 1)}, nil))
	got, err = s.ClaimKeyPackages(ctx, "alice", t0)
	must(t, err)
	diff(t, "first claim", []store.KeyPackage{keyPackage(d1.ID, 1)}, got)
	got, err = s.ClaimKeyPackages(ctx, "alice", t0)
	must(t, err)
	diff(t, "second claim", []store.KeyPackage{}, got)
}

// testLastResortReplaced: a last-resort KeyPackage handed out and then
// replaced is still routed: its Welcome may be on the way.
func testLastResortReplaced(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	must(t, s.AddKeyPackages(ctx, d.ID, nil, lastResort(d.ID, 1)))
	got, err := s.ClaimKeyPackages(ctx, "alice", t0)
	must(t, err)
	diff(t, "claim", []store.KeyPackage{*lastResort(d.ID, 1)}, got)
	must(t, s.AddKeyPackages(ctx, d.ID, nil, lastResort(d.ID, 2)))
	got, err = s.ClaimKeyPackages(ctx, "alice", t0)
	must(t, err)
	diff(t, "claim after replacement", []store.KeyPackage{*lastResort(d.ID, 2)}, got)
	owner, err := s.KeyPackageOwner(ctx, lastResort(d.ID, 1).Ref)
	must(t, err)
	if owner != d.ID {
		t.Errorf("KeyPackageOwner of the replaced last resort = %s, want %s", owner, d.ID)
	}
	n, lr, err := s.CountKeyPackages(ctx, d.ID)
	must(t, err)
	if n != 0 || !lr {
		t.Errorf("CountKeyPackages = %d, %v; want 0, true", n, lr)
	}
}

func testConcurrentClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	d1 := enrol(t, s, "carol", "dev-1")
	d2 := enrol(t, s, "carol", "dev-2")
	var kps1, kps2 []store.KeyPackage
	for i := range 10 {
		kps1 = append(kps1, keyPackage(d1.ID, i))
	}
	for i := range 3 {
		kps2 = append(kps2, keyPackage(d2.ID, i))
	}
	must(t, s.AddKeyPackages(ctx, d1.ID, kps1, lastResort(d1.ID, 99)))
	must(t, s.AddKeyPackages(ctx, d2.ID, kps2, nil)) // no last resort

	const claims = 16
	results := make([][]store.KeyPackage, claims)
	errs := make([]error, claims)
	var wg sync.WaitGroup
	for i := range claims {
		wg.Go(func() { results[i], errs[i] = s.ClaimKeyPackages(ctx, "carol", t0) })
	}
	wg.Wait()

	handedOut := map[string]int{}
	lastResorts := 0
	for i := range claims {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		var devs []candor.DeviceID
		for _, kp := range results[i] {
			devs = append(devs, kp.Device)
			if kp.LastResort {
				lastResorts++
				if !bytes.Equal(kp.Ref, lastResort(d1.ID, 99).Ref) {
					t.Errorf("claim %d: last resort %q", i, kp.Ref)
				}
				continue
			}
			handedOut[string(kp.Ref)]++
		}
		// dev-1 always has one; dev-2 until its three are gone.
		if len(devs) == 0 || devs[0] != d1.ID || len(devs) > 2 || (len(devs) == 2 && devs[1] != d2.ID) {
			t.Errorf("claim %d returned KeyPackages of %v", i, devs)
		}
	}
	for ref, n := range handedOut {
		if n > 1 {
			t.Errorf("one-time KeyPackage %q handed out %d times", ref, n)
		}
	}
	if want := len(kps1) + len(kps2); len(handedOut) != want {
		t.Errorf("%d one-time KeyPackages handed out, want all %d", len(handedOut), want)
	}
	if want := claims - len(kps1); lastResorts != want {
		t.Errorf("last resort handed out %d times, want %d", lastResorts, want)
	}
	for _, d := range []candor.DeviceID{d1.ID, d2.ID} {
		n, _, err := s.CountKeyPackages(ctx, d)
		must(t, err)
		if n != 0 {
			t.Errorf("%s has %d one-time KeyPackages left, want 0", d, n)
		}
	}
}
