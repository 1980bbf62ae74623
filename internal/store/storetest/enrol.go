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

func testInvitationRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	inv := invitation("inv-1", "alice")
	inv.Created = time.Date(2026, 11, 2, 10, 0, 0, 1, time.FixedZone("CET", 3600))
	must(t, s.CreateInvitation(ctx, inv))
	got, err := s.Invitation(ctx, "inv-1")
	must(t, err)
	diff(t, "Invitation", inv, got)

	_, err = s.Invitation(ctx, "inv-2")
	wantErr(t, "Invitation of an unknown id", err, candor.ErrNotFound)

	// A zero time would not come back as it went in (sqlstore's choice).
	bad := invitation("inv-3", "alice")
	bad.Expires = time.Time{}
	wantErr(t, "CreateInvitation without expiry", s.CreateInvitation(ctx, bad), candor.ErrInvalid)
}

func testInvitationDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	inv := invitation("inv-1", "alice")
	must(t, s.CreateInvitation(ctx, inv))
	other := invitation("inv-1", "mallory")
	other.SecretHash = secret("other")
	wantErr(t, "CreateInvitation of an existing id", s.CreateInvitation(ctx, other), candor.ErrConflict)
	got, err := s.Invitation(ctx, "inv-1")
	must(t, err)
	diff(t, "Invitation after the refused duplicate", inv, got)
}

func testEnrolSuccess(t *testing.T, s store.Store) {
	ctx := context.Background()
	inv := invitation("inv-1", "alice")
	must(t, s.CreateInvitation(ctx, inv))
	d := device("alice", "dev-1")
	must(t, s.Enrol(ctx, inv.ID, secret(inv.ID), inv.Expires.Add(-time.Nanosecond), d))

	got, err := s.Device(ctx, "dev-1")
	must(t, err)
	diff(t, "Device", d, got)
	if got.Revoked() {
		t.Errorf("a new device is revoked")
	}
	inv.Used = true
	gotInv, err := s.Invitation(ctx, inv.ID)
	must(t, err)
	diff(t, "Invitation after Enrol", inv, gotInv)
}

func testEnrolRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	// A used invitation, for the reuse case.
	enrol(t, s, "alice", "dev-0")
	for _, tc := range []struct {
		name   string
		id     string
		secret []byte
		now    time.Time
		user   candor.UserID
	}{
		{name: "UnknownInvitation", id: "inv-nope", secret: secret("inv-nope"), now: t0, user: "alice"},
		{name: "WrongSecret", id: "inv-1", secret: secret("inv-2"), now: t0, user: "alice"},
		{name: "ShortSecret", id: "inv-1", secret: secret("inv-1")[:31], now: t0, user: "alice"},
		{name: "NoSecret", id: "inv-1", secret: nil, now: t0, user: "alice"},
		{name: "Expired", id: "inv-1", secret: secret("inv-1"), now: t0.Add(25 * time.Hour), user: "alice"},
		{name: "ExpiresNow", id: "inv-1", secret: secret("inv-1"), now: t0.Add(24 * time.Hour), user: "alice"},
		{name: "WrongUser", id: "inv-1", secret: secret("inv-1"), now: t0, user: "mallory"},
		{name: "Reused", id: "inv-dev-0", secret: secret("inv-dev-0"), now: t0, user: "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: each case checks that nothing changed.
			if _, err := s.Invitation(ctx, "inv-1"); errors.Is(err, candor.ErrNotFound) {
				must(t, s.CreateInvitation(ctx, invitation("inv-1", "alice")))
			}
			before := snapshot(t, s, nil, []candor.DeviceID{"dev-0"}, "inv-1", "inv-dev-0")
			err := s.Enrol(ctx, tc.id, tc.secret, tc.now, device(tc.user, "dev-1"))
			wantErr(t, "Enrol", err, candor.ErrPermission)
			diff(t, "state after a refused Enrol", before, snapshot(t, s, nil, []candor.DeviceID{"dev-0"}, "inv-1", "inv-dev-0"))
			if _, err := s.Device(ctx, "dev-1"); !errors.Is(err, candor.ErrNotFound) {
				t.Errorf("the refused device was stored: %v", err)
			}
			for _, user := range []candor.UserID{"alice", "mallory"} {
				ds, err := s.Devices(ctx, user)
				must(t, err)
				if len(ds) > map[candor.UserID]int{"alice": 1}[user] {
					t.Errorf("Devices(%s) = %d devices after a refused Enrol", user, len(ds))
				}
			}
		})
	}
}

func testEnrolConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	inv := invitation("inv-1", "alice")
	must(t, s.CreateInvitation(ctx, inv))
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Enrol(ctx, inv.ID, inv.SecretHash, t0, device("alice", candor.DeviceID(fmt.Sprintf("dev-%02d", i))))
		})
	}
	wg.Wait()
	var won []int
	for i, err := range errs {
		switch {
		case err == nil:
			won = append(won, i)
		case !errors.Is(err, candor.ErrPermission):
			t.Errorf("Enrol %d: %v, want nil or ErrPermission", i, err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent Enrols with one invitation succeeded (%v), want 1", len(won), n, won)
	}
	ds, err := s.Devices(ctx, "alice")
	must(t, err)
	diff(t, "Devices", []store.Device{device("alice", candor.DeviceID(fmt.Sprintf("dev-%02d", won[0])))}, ds)
}

func testEnrolDeviceTaken(t *testing.T, s store.Store) {
	ctx := context.Background()
	enrol(t, s, "alice", "dev-1")
	sameCert := device("alice", "dev-2")
	sameCert.Certificate, sameCert.Fingerprint = device("alice", "dev-1").Certificate, device("alice", "dev-1").Fingerprint
	for _, tc := range []struct {
		name string
		d    store.Device
	}{
		{"SameID", device("alice", "dev-1")},
		{"SameCertificate", sameCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := invitation("inv-"+tc.name, "alice")
			must(t, s.CreateInvitation(ctx, inv))
			before := snapshot(t, s, nil, []candor.DeviceID{"dev-1"}, inv.ID)
			wantErr(t, "Enrol of a taken device", s.Enrol(ctx, inv.ID, inv.SecretHash, t0, tc.d), candor.ErrConflict)
			diff(t, "state after the refused Enrol", before, snapshot(t, s, nil, []candor.DeviceID{"dev-1"}, inv.ID))
		})
	}
}

// testEnrolInvalid: sqlstore refuses a fingerprint that is not the
// certificate's, which the store's DeviceByFingerprint lookups rest on.
func testEnrolInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	inv := invitation("inv-1", "alice")
	must(t, s.CreateInvitation(ctx, inv))
	d := device("alice", "dev-1")
	d.Fingerprint = bytes.Repeat([]byte{1}, 32)
	wantErr(t, "Enrol with a wrong fingerprint", s.Enrol(ctx, inv.ID, inv.SecretHash, t0, d), candor.ErrInvalid)
	got, err := s.Invitation(ctx, inv.ID)
	must(t, err)
	if got.Used {
		t.Errorf("a refused Enrol used the invitation")
	}
}

func testDeviceLookup(t *testing.T, s store.Store) {
	ctx := context.Background()
	d1 := enrol(t, s, "alice", "dev-1")
	d2 := enrol(t, s, "bob", "dev-2")
	for _, d := range []store.Device{d1, d2} {
		got, err := s.Device(ctx, d.ID)
		must(t, err)
		diff(t, "Device", d, got)
		got, err = s.DeviceByFingerprint(ctx, d.Fingerprint)
		must(t, err)
		diff(t, "DeviceByFingerprint", d, got)
	}
	_, err := s.Device(ctx, "dev-3")
	wantErr(t, "Device of an unknown id", err, candor.ErrNotFound)
	_, err = s.DeviceByFingerprint(ctx, make([]byte, 32))
	wantErr(t, "DeviceByFingerprint of an unknown fingerprint", err, candor.ErrNotFound)
	_, err = s.DeviceByFingerprint(ctx, nil)
	wantErr(t, "DeviceByFingerprint(nil)", err, candor.ErrNotFound)
}

func testDevicesOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	var want []store.Device
	// Ids out of alphabetical order, so that only enrolment order sorts them.
	for _, id := range []candor.DeviceID{"dev-c", "dev-a", "dev-b"} {
		want = append(want, enrol(t, s, "alice", id))
		enrol(t, s, "bob", id+"-bob")
	}
	got, err := s.Devices(ctx, "alice")
	must(t, err)
	diff(t, "Devices(alice)", want, got)

	got, err = s.Devices(ctx, "nobody")
	must(t, err)
	if len(got) != 0 {
		t.Errorf("Devices of an unknown user = %v, want none", got)
	}
}

func testRevoke(t *testing.T, s store.Store) {
	ctx := context.Background()
	d1 := enrol(t, s, "alice", "dev-1")
	d2 := enrol(t, s, "alice", "dev-2")
	must(t, s.AddKeyPackages(ctx, d1.ID, []store.KeyPackage{keyPackage(d1.ID, 1), keyPackage(d1.ID, 2)}, lastResort(d1.ID, 3)))
	must(t, s.AddKeyPackages(ctx, d2.ID, []store.KeyPackage{keyPackage(d2.ID, 1)}, lastResort(d2.ID, 2)))
	// One claimed, so that claimed ones go too.
	claimed, err := s.ClaimKeyPackages(ctx, "alice", t0)
	must(t, err)
	if len(claimed) != 2 {
		t.Fatalf("claimed %d KeyPackages, want 2", len(claimed))
	}

	at := t0.Add(2 * time.Hour)
	must(t, s.RevokeDevice(ctx, d1.ID, at))
	d1.RevokedAt = at
	got, err := s.Device(ctx, d1.ID)
	must(t, err)
	diff(t, "revoked Device", d1, got)
	if !got.Revoked() {
		t.Errorf("Revoked() = false after RevokeDevice")
	}

	// Again: no error, the first time stays.
	must(t, s.RevokeDevice(ctx, d1.ID, at.Add(time.Hour)))
	got, err = s.Device(ctx, d1.ID)
	must(t, err)
	diff(t, "Device revoked twice", d1, got)

	// Its KeyPackages are gone, claimed or not.
	n, lr, err := s.CountKeyPackages(ctx, d1.ID)
	must(t, err)
	if n != 0 || lr {
		t.Errorf("CountKeyPackages of a revoked device = %d, %v; want 0, false", n, lr)
	}
	for _, ref := range [][]byte{keyPackage(d1.ID, 1).Ref, keyPackage(d1.ID, 2).Ref, lastResort(d1.ID, 3).Ref} {
		_, err := s.KeyPackageOwner(ctx, ref)
		wantErr(t, fmt.Sprintf("KeyPackageOwner(%q) of a revoked device", ref), err, candor.ErrNotFound)
	}
	// The other device's stay.
	owner, err := s.KeyPackageOwner(ctx, keyPackage(d2.ID, 1).Ref)
	must(t, err)
	if owner != d2.ID {
		t.Errorf("KeyPackageOwner = %s, want %s", owner, d2.ID)
	}

	// Claims leave it out; Devices still lists it; it cannot add more.
	claimed, err = s.ClaimKeyPackages(ctx, "alice", t0)
	must(t, err)
	diff(t, "claim after revocation", []store.KeyPackage{*lastResort(d2.ID, 2)}, claimed)
	ds, err := s.Devices(ctx, "alice")
	must(t, err)
	diff(t, "Devices", []store.Device{d1, d2}, ds)
	wantErr(t, "AddKeyPackages of a revoked device",
		s.AddKeyPackages(ctx, d1.ID, []store.KeyPackage{keyPackage(d1.ID, 4)}, nil), candor.ErrPermission)

	wantErr(t, "RevokeDevice of an unknown device", s.RevokeDevice(ctx, "dev-9", at), candor.ErrNotFound)
}

func testRevokedSince(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, id := range []candor.DeviceID{"dev-1", "dev-2", "dev-3", "dev-4"} {
		enrol(t, s, "alice", id)
	}
	got, err := s.RevokedSince(ctx, t0)
	must(t, err)
	diff(t, "RevokedSince with none revoked", []candor.DeviceID{}, got)
	must(t, s.RevokeDevice(ctx, "dev-1", t0.Add(time.Hour)))
	must(t, s.RevokeDevice(ctx, "dev-2", t0.Add(2*time.Hour)))
	must(t, s.RevokeDevice(ctx, "dev-3", t0.Add(3*time.Hour)))
	for _, tc := range []struct {
		name  string
		since time.Time
		want  []candor.DeviceID
	}{
		{"before all", t0, []candor.DeviceID{"dev-1", "dev-2", "dev-3"}},
		{"at one", t0.Add(2 * time.Hour), []candor.DeviceID{"dev-2", "dev-3"}},
		{"just after one", t0.Add(2*time.Hour + time.Nanosecond), []candor.DeviceID{"dev-3"}},
		{"after all", t0.Add(4 * time.Hour), []candor.DeviceID{}},
	} {
		got, err := s.RevokedSince(ctx, tc.since)
		must(t, err)
		diff(t, "RevokedSince "+tc.name, tc.want, sortedIDs(got...))
	}
	_, err = s.RevokedSince(ctx, time.Time{})
	wantErr(t, "RevokedSince the zero time", err, candor.ErrInvalid)
}
