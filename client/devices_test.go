package client_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/client"
	"candor/internal/testenv"
)

// A person lists their devices and removes a lost one: the server refuses
// it, and the removing device commits its removal from their conversations
// at once.
func TestRemoveDevice(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := t.Context()
	laptop := env.Enrol(t, "alice", "laptop")
	phone := env.Enrol(t, "alice", "phone")
	bob := env.Enrol(t, "bob", "desk")

	devs, err := laptop.Devices(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID      candor.DeviceID
		Name    string
		This    bool
		Revoked bool
	}
	rows := func(ds []client.Device) []row {
		var out []row
		for _, d := range ds {
			out = append(out, row{d.ID, d.Name, d.This, !d.Revoked.IsZero()})
		}
		return out
	}
	want := []row{{laptop.Device(), "laptop", true, false}, {phone.Device(), "phone", false, false}}
	if diff := cmp.Diff(want, rows(devs)); diff != "" {
		t.Fatalf("alice's devices (-want +got):\n%s", diff)
	}

	g, err := bob.CreateGroup(ctx, "desk", "alice")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, laptop, phone)
	if err := laptop.RemoveDevice(ctx, phone.Device()); err != nil {
		t.Fatal(err)
	}
	// Bob sees the phone gone without anybody sending a message.
	mustSync(t, bob)
	if diff := cmp.Diff([]candor.DeviceID{laptop.Device()}, devicesOf(t, bob, g, "alice")); diff != "" {
		t.Errorf("alice's devices in bob's member list (-want +got):\n%s", diff)
	}
	if err := phone.Sync(ctx); !errors.Is(err, client.ErrRevoked) {
		t.Errorf("the removed phone's sync: %v, want ErrRevoked", err)
	}
	devs, err = bob.Devices(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want = []row{{laptop.Device(), "laptop", false, false}, {phone.Device(), "phone", false, true}}
	if diff := cmp.Diff(want, rows(devs)); diff != "" {
		t.Errorf("alice's devices as bob sees them (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		id   candor.DeviceID
	}{
		{"another person's device", bob.Device()},
		{"no such device", "0000000000000000"},
	} {
		if err := laptop.RemoveDevice(ctx, tc.id); !errors.Is(err, client.ErrNoSuchDevice) {
			t.Errorf("%s: %v, want ErrNoSuchDevice", tc.name, err)
		}
	}
	if _, err := laptop.Devices(ctx, "nobody"); !errors.Is(err, client.ErrUnknownUser) {
		t.Errorf("devices of nobody: %v, want ErrUnknownUser", err)
	}
}
