package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"

	"candor"
	"candor/internal/store"
)

// testInputsNotAliased: a store keeps copies of what it is given.
func testInputsNotAliased(t *testing.T, s store.Store) {
	ctx := context.Background()
	inv := invitation("inv-1", "alice")
	must(t, s.CreateInvitation(ctx, inv))
	wantInv := invitation("inv-1", "alice")
	inv.SecretHash[0] ^= 0xff

	d := device("alice", "dev-1")
	must(t, s.Enrol(ctx, "inv-1", wantInv.SecretHash, t0, d))
	wantDev := device("alice", "dev-1")
	d.Certificate[0] ^= 0xff
	d.Fingerprint[0] ^= 0xff

	kps := []store.KeyPackage{keyPackage(d.ID, 1)}
	lr := lastResort(d.ID, 2)
	must(t, s.AddKeyPackages(ctx, d.ID, kps, lr))
	kps[0].Ref[0] ^= 0xff
	kps[0].Data[0] ^= 0xff
	lr.Data[0] ^= 0xff

	g := store.Group{ID: groupA, Roster: []byte("roster"), Created: t0}
	must(t, s.CreateGroup(ctx, g, d.ID))
	g.Roster[0] ^= 0xff

	req := store.AppendRequest{
		Group:    groupA,
		Entry:    store.Entry{Epoch: 0, Commit: true, Sender: d.ID, Time: t0, Message: []byte("commit")},
		Roster:   []byte("roster 1"),
		Epoch:    1,
		Members:  []candor.DeviceID{d.ID},
		Welcomes: []store.Welcome{{ID: "w-1", Device: d.ID, Time: t0, Data: []byte("welcome")}},
	}
	_, err := s.Append(ctx, req)
	must(t, err)
	req.Entry.Message[0] ^= 0xff
	req.Roster[0] ^= 0xff
	req.Welcomes[0].Data[0] ^= 0xff
	req.Members[0] = "dev-x"

	gotInv, err := s.Invitation(ctx, "inv-1")
	must(t, err)
	wantInv.Used = true
	diff(t, "Invitation", wantInv, gotInv)
	gotDev, err := s.Device(ctx, d.ID)
	must(t, err)
	diff(t, "Device", wantDev, gotDev)
	claimed, err := s.ClaimKeyPackages(ctx, "alice", t0)
	must(t, err)
	diff(t, "claimed", []store.KeyPackage{keyPackage(d.ID, 1)}, claimed)
	claimed, err = s.ClaimKeyPackages(ctx, "alice", t0)
	must(t, err)
	diff(t, "claimed last resort", []store.KeyPackage{*lastResort(d.ID, 2)}, claimed)
	gotGroup, err := s.Group(ctx, groupA)
	must(t, err)
	diff(t, "Group", store.Group{ID: groupA, Epoch: 1, Head: 1, Roster: []byte("roster 1"), Created: t0}, gotGroup)
	log, err := s.Log(ctx, groupA, 0, 10)
	must(t, err)
	diff(t, "Log", chained(groupA, []store.Entry{{Seq: 1, Epoch: 0, Commit: true, Sender: d.ID, Time: t0, Message: []byte("commit")}}), log)
	ws, err := s.Welcomes(ctx, d.ID)
	must(t, err)
	diff(t, "Welcomes", []store.Welcome{{ID: "w-1", Device: d.ID, Group: groupA, Seq: 1, Time: t0, Data: []byte("welcome")}}, ws)
	ms, err := s.Members(ctx, groupA)
	must(t, err)
	diff(t, "Members", []candor.DeviceID{d.ID}, ms)
}

// testOutputsNotAliased: what a store returns is the caller's to change.
func testOutputsNotAliased(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	createGroup(t, s, groupA, d.ID)
	commit(t, s, groupA, d.ID, []candor.DeviceID{d.ID}, store.Welcome{ID: "w-1", Device: d.ID, Data: []byte("welcome")})
	must(t, s.AddKeyPackages(ctx, d.ID, nil, lastResort(d.ID, 1)))

	for _, tc := range []struct {
		name  string
		bytes func() [][]byte
	}{
		{"Invitation", func() [][]byte {
			inv, err := s.Invitation(ctx, "inv-dev-1")
			must(t, err)
			return [][]byte{inv.SecretHash}
		}},
		{"Device", func() [][]byte {
			got, err := s.Device(ctx, d.ID)
			must(t, err)
			return [][]byte{got.Certificate, got.Fingerprint}
		}},
		{"DeviceByFingerprint", func() [][]byte {
			got, err := s.DeviceByFingerprint(ctx, d.Fingerprint)
			must(t, err)
			return [][]byte{got.Certificate, got.Fingerprint}
		}},
		{"Devices", func() [][]byte {
			got, err := s.Devices(ctx, "alice")
			must(t, err)
			return [][]byte{got[0].Certificate, got[0].Fingerprint}
		}},
		{"Group", func() [][]byte {
			got, err := s.Group(ctx, groupA)
			must(t, err)
			return [][]byte{got.Roster}
		}},
		{"GroupsOf", func() [][]byte {
			got, err := s.GroupsOf(ctx, d.ID)
			must(t, err)
			return [][]byte{got[0].Group.Roster}
		}},
		{"Log", func() [][]byte {
			got, err := s.Log(ctx, groupA, 0, 10)
			must(t, err)
			return [][]byte{got[0].Message}
		}},
		{"Welcomes", func() [][]byte {
			got, err := s.Welcomes(ctx, d.ID)
			must(t, err)
			return [][]byte{got[0].Data}
		}},
		{"ClaimKeyPackages", func() [][]byte {
			got, err := s.ClaimKeyPackages(ctx, "alice", t0)
			must(t, err)
			return [][]byte{got[0].Ref, got[0].Data}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := tc.bytes()
			want := make([][]byte, len(first))
			for i, b := range first {
				want[i] = bytes.Clone(b)
				for j := range b {
					b[j] ^= 0xff
				}
			}
			diff(t, "after changing what was returned", want, tc.bytes())
		})
	}
}

func testLargeValues(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := enrol(t, s, "alice", "dev-1")
	createGroup(t, s, groupA, d.ID)
	// Epochs use all 64 bits.
	for i, epoch := range []candor.Epoch{1 << 31, 1 << 32, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64 - 1} {
		c := entry(d.ID, epoch, fmt.Sprint("commit ", i))
		c.Commit = true
		seq, err := s.Append(ctx, store.AppendRequest{Group: groupA, PrevHead: uint64(i), Entry: c, Roster: []byte("r"), Epoch: epoch + 1})
		must(t, err)
		g, err := s.Group(ctx, groupA)
		must(t, err)
		if g.Epoch != epoch+1 {
			t.Errorf("Group.Epoch = %d, want %d", g.Epoch, epoch+1)
		}
		got, err := s.CommitSeq(ctx, groupA, epoch)
		must(t, err)
		if got != seq {
			t.Errorf("CommitSeq(%d) = %d, want %d", epoch, got, seq)
		}
		log, err := s.Log(ctx, groupA, seq-1, 1)
		must(t, err)
		if len(log) != 1 || log[0].Epoch != epoch {
			t.Errorf("Log entry of epoch %d: %+v", epoch, log)
		}
	}
	// A message of a megabyte, and a roster of four.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	roster := bytes.Repeat([]byte{0x5a}, 4<<20)
	e := entry(d.ID, math.MaxUint64, "")
	e.Message = big
	seq, err := s.Append(ctx, store.AppendRequest{Group: groupA, PrevHead: 5, Entry: e, Roster: roster, Epoch: math.MaxUint64})
	must(t, err)
	log, err := s.Log(ctx, groupA, seq-1, 1)
	must(t, err)
	if len(log) != 1 || !bytes.Equal(log[0].Message, big) {
		t.Errorf("a %d-byte message did not come back", len(big))
	}
	g, err := s.Group(ctx, groupA)
	must(t, err)
	if !bytes.Equal(g.Roster, roster) {
		t.Errorf("a %d-byte roster came back as %d bytes", len(roster), len(g.Roster))
	}
}
