package client_test

import (
	"slices"
	"testing"
	"time"

	"candor"
	"candor/client"
	"candor/internal/testenv"
)

// devicesOf lists the devices of user among a conversation's members.
func devicesOf(t *testing.T, c *client.Client, g candor.GroupID, user candor.UserID) []candor.DeviceID {
	t.Helper()
	ms, err := c.Members(t.Context(), g)
	if err != nil {
		t.Fatalf("%s: members: %v", c.User(), err)
	}
	var out []candor.DeviceID
	for _, m := range ms {
		if m.User == user {
			out = append(out, m.Device)
		}
	}
	slices.Sort(out)
	return out
}

func groupOf(t *testing.T, c *client.Client, g candor.GroupID) client.Group {
	t.Helper()
	gs, err := c.Groups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, gr := range gs {
		if gr.ID == g {
			return gr
		}
	}
	t.Fatalf("%s/%s does not know %s", c.User(), c.Device(), g)
	return client.Group{}
}

// A person's new device joins their conversations without anybody adding
// it: their device already in them does, when it next catches up.
func TestNewDeviceJoinsOnSync(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, _, g := trio(t, env)
	ctx := t.Context()
	if _, err := bob.Send(ctx, g, "before the phone"); err != nil {
		t.Fatal(err)
	}

	phone := env.Enrol(t, "alice", "phone")
	mustSync(t, alice) // adds the phone
	mustSync(t, phone) // joins
	want := []candor.DeviceID{alice.Device(), phone.Device()}
	slices.Sort(want)
	for _, c := range []*client.Client{alice, phone} {
		if got := devicesOf(t, c, g, "alice"); !slices.Equal(got, want) {
			t.Errorf("%s/%s sees alice's devices %v, want %v", c.User(), c.Device(), got, want)
		}
	}
	mustSync(t, bob)
	if got := devicesOf(t, bob, g, "alice"); !slices.Equal(got, want) {
		t.Errorf("bob sees alice's devices %v, want %v", got, want)
	}

	// From now on the phone reads the conversation; what came before its
	// joining was never encrypted for it.
	if _, err := bob.Send(ctx, g, "after the phone"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, phone)
	waitText(t, phone, g, "after the phone")
	ms, err := phone.Messages(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(ms); slices.Contains(got, "before the phone") {
		t.Errorf("the phone has a message sent before it joined: %q", got)
	}
	// It knows where its history starts, which front ends show, and what
	// its person has not read yet.
	phoneGroup, aliceGroup := groupOf(t, phone, g), groupOf(t, alice, g)
	if aliceGroup.JoinedSeq != 0 || phoneGroup.JoinedSeq <= 1 || phoneGroup.Joined.IsZero() {
		t.Errorf("joined at: alice %d, phone %d at %v; want 0 and a later entry", aliceGroup.JoinedSeq, phoneGroup.JoinedSeq, phoneGroup.Joined)
	}
	if before := ms[0].Seq; before <= phoneGroup.JoinedSeq {
		t.Errorf("the phone's first message is at %d, not after it joined at %d", before, phoneGroup.JoinedSeq)
	}
	if phoneGroup.Unread != 1 {
		t.Errorf("phone: %d unread, want 1", phoneGroup.Unread)
	}
	if err := phone.MarkRead(ctx, g, ms[len(ms)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if n := groupOf(t, phone, g).Unread; n != 0 {
		t.Errorf("phone: %d unread after reading, want 0", n)
	}

	// Catching up again changes nothing: the phone is in already.
	mustSync(t, alice, phone)
	if got := devicesOf(t, alice, g, "alice"); !slices.Equal(got, want) {
		t.Errorf("after a second sync alice sees %v, want %v", got, want)
	}
}

// Both of a person's devices may try to add the third at once; one commit
// wins and the other finds nothing left to do.
func TestSiblingsRaceToAddNewDevice(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, _, _, g := trio(t, env)
	phone := env.Enrol(t, "alice", "phone")
	mustSync(t, alice, phone)
	tablet := env.Enrol(t, "alice", "tablet")

	errs := make(chan error, 2)
	for _, c := range []*client.Client{alice, phone} {
		go func() { errs <- c.Sync(t.Context()) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, alice, phone, tablet)
	want := []candor.DeviceID{alice.Device(), phone.Device(), tablet.Device()}
	slices.Sort(want)
	for _, c := range []*client.Client{alice, phone, tablet} {
		if got := devicesOf(t, c, g, "alice"); !slices.Equal(got, want) {
			t.Errorf("%s sees alice's devices %v, want %v", c.Device(), got, want)
		}
	}
}

// A device that stays connected hears of its person's new device from the
// server and adds it at once, without catching up by hand.
func TestNewDeviceJoinsLive(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, _, _, g := trio(t, env)
	run(t, alice)
	phone := env.Enrol(t, "alice", "phone")
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(devicesOf(t, alice, g, "alice"), phone.Device()) {
		if time.Now().After(deadline) {
			t.Fatalf("alice's laptop never added the phone: %v", devicesOf(t, alice, g, "alice"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustSync(t, phone)
	if got := devicesOf(t, phone, g, "alice"); !slices.Contains(got, phone.Device()) {
		t.Errorf("the phone sees alice's devices %v", got)
	}
}
