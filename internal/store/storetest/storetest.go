// Package storetest is the contract test suite of [store.Store]. Every
// implementation runs [Run] on every engine it supports, so that they all
// behave as the server expects.
//
// Where store.Store's documentation is silent the suite pins what sqlstore
// does, and says so in the test: an unknown device is ErrNotFound for the
// methods that take one; a zero time is ErrInvalid; a cursor cannot move
// past the log's head; a Welcome only goes to a member; a device must be
// enrolled and unrevoked to join a group or add KeyPackages; WelcomeSeqs
// and Spans of an unknown device, and WelcomeSeqs in an unknown group, are
// ErrNotFound.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"candor"
	"candor/internal/journal"
	"candor/internal/store"
)

// Run runs the contract of [store.Store] against the stores open returns:
// one fresh, empty store per subtest, which open arranges to close with
// t.Cleanup. The subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

var tests = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"Invitation/RoundTrip", testInvitationRoundTrip},
	{"Invitation/DuplicateID", testInvitationDuplicate},
	{"Enrol/Success", testEnrolSuccess},
	{"Enrol/Refused", testEnrolRefused},
	{"Enrol/Concurrent", testEnrolConcurrent},
	{"Enrol/DeviceTaken", testEnrolDeviceTaken},
	{"Enrol/Invalid", testEnrolInvalid},
	{"Device/Lookup", testDeviceLookup},
	{"Device/EnrolmentOrder", testDevicesOrder},
	{"Device/Revoke", testRevoke},
	{"Device/RevokedSince", testRevokedSince},
	{"KeyPackage/AddAndCount", testKeyPackagesAddCount},
	{"KeyPackage/AddRefused", testKeyPackagesAddRefused},
	{"KeyPackage/ClaimOrder", testClaimOrder},
	{"KeyPackage/ClaimLeavesOut", testClaimLeavesOut},
	{"KeyPackage/LastResortReplaced", testLastResortReplaced},
	{"KeyPackage/ConcurrentClaims", testConcurrentClaims},
	{"Group/Create", testCreateGroup},
	{"Group/NotFound", testGroupNotFound},
	{"Append/Sequence", testAppendSequence},
	{"Append/StalePrevHead", testAppendStale},
	{"Append/Race", testAppendRace},
	{"Append/ManyGroups", testAppendManyGroups},
	{"Append/Replay", testAppendReplay},
	{"Append/SecondCommitForEpoch", testSecondCommit},
	{"Append/Invalid", testAppendInvalid},
	{"Log/Paging", testLogPaging},
	{"CommitSeq", testCommitSeq},
	{"Cursor", testCursor},
	{"Members/Replace", testMembersReplace},
	{"Members/Refused", testMembersRefused},
	{"Welcome/QueueAndDelete", testWelcomes},
	{"Welcome/Refused", testWelcomesRefused},
	{"GroupsOf", testGroupsOf},
	{"NotAliased/Inputs", testInputsNotAliased},
	{"NotAliased/Outputs", testOutputsNotAliased},
	{"LargeValues", testLargeValues},
	{"Retention/Cut", testDeleteBeforeCut},
	{"Retention/CutAgain", testDeleteBeforeAgain},
	{"Retention/Refused", testDeleteBeforeRefused},
	{"Retention/Concurrent", testDeleteBeforeConcurrent},
	{"Retention/WelcomeSeqs", testWelcomeSeqs},
	{"Retention/Spans", testSpans},
}

// t0 is when the tests happen; the nanoseconds check the stores keep them.
var t0 = time.Date(2026, 11, 2, 9, 30, 0, 123456789, time.UTC)

// Group ids are bytes, not text: these have a NUL and invalid UTF-8.
const (
	groupA = candor.GroupID("\x00group-a\xff")
	groupB = candor.GroupID("\x00group-b\xfe")
)

// opts compare what stores return: nil and empty slices are alike, and
// times are compared as instants (cmp uses time.Time.Equal).
var opts = cmp.Options{cmpopts.EquateEmpty()}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func diff[T any](t *testing.T, what string, want, got T) {
	t.Helper()
	if d := cmp.Diff(want, got, opts); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

// chained returns entries, a group's log from its first entry, with the
// chain hashes the contract says the store computes (store.Entry.Hash).
func chained(group candor.GroupID, entries []store.Entry) []store.Entry {
	out := slices.Clone(entries)
	prev := journal.Genesis
	for i, e := range out {
		out[i].Hash = journal.EntryHash(group, journal.Entry{
			Seq: e.Seq, Epoch: e.Epoch, Commit: e.Commit, Sender: e.Sender, Time: e.Time, Message: e.Message,
		}, prev)
		prev = out[i].Hash
	}
	return out
}

func secret(id string) []byte {
	h := sha256.Sum256([]byte("secret of " + id))
	return h[:]
}

func invitation(id string, user candor.UserID) store.Invitation {
	return store.Invitation{
		ID:         id,
		User:       user,
		SecretHash: secret(id),
		Created:    t0,
		Expires:    t0.Add(24 * time.Hour),
	}
}

func device(user candor.UserID, id candor.DeviceID) store.Device {
	cert := []byte("DER certificate of " + string(id))
	fp := sha256.Sum256(cert)
	return store.Device{
		ID:          id,
		User:        user,
		Name:        "laptop " + string(id),
		Certificate: cert,
		Fingerprint: fp[:],
		EnrolledAt:  t0.Add(time.Minute),
	}
}

// enrol enrols a device through an invitation of its own.
func enrol(t *testing.T, s store.Store, user candor.UserID, id candor.DeviceID) store.Device {
	t.Helper()
	ctx := context.Background()
	inv := invitation("inv-"+string(id), user)
	must(t, s.CreateInvitation(ctx, inv))
	d := device(user, id)
	must(t, s.Enrol(ctx, inv.ID, inv.SecretHash, t0.Add(time.Minute), d))
	return d
}

func keyPackage(device candor.DeviceID, n int) store.KeyPackage {
	return store.KeyPackage{
		Ref:    []byte(fmt.Sprintf("ref %s %d", device, n)),
		Device: device,
		Data:   []byte(fmt.Sprintf("KeyPackage %s %d", device, n)),
		Added:  t0.Add(time.Duration(n) * time.Second),
	}
}

func lastResort(device candor.DeviceID, n int) *store.KeyPackage {
	kp := keyPackage(device, n)
	kp.Ref = []byte(fmt.Sprintf("last-resort ref %s %d", device, n))
	kp.LastResort = true
	return &kp
}

func createGroup(t *testing.T, s store.Store, id candor.GroupID, creator candor.DeviceID) store.Group {
	t.Helper()
	g := store.Group{ID: id, Roster: []byte("roster of " + string(id) + " at 0"), Created: t0}
	must(t, s.CreateGroup(context.Background(), g, creator))
	return g
}

func entry(sender candor.DeviceID, epoch candor.Epoch, msg string) store.Entry {
	return store.Entry{Epoch: epoch, Sender: sender, Time: t0.Add(time.Hour), Message: []byte(msg)}
}

// send appends an application message at the group's head.
func send(t *testing.T, s store.Store, id candor.GroupID, sender candor.DeviceID, msg string) uint64 {
	t.Helper()
	ctx := context.Background()
	g, err := s.Group(ctx, id)
	must(t, err)
	seq, err := s.Append(ctx, store.AppendRequest{Group: id, PrevHead: g.Head, Entry: entry(sender, g.Epoch, msg)})
	must(t, err)
	if seq != g.Head+1 {
		t.Fatalf("Append after %d returned %d", g.Head, seq)
	}
	return seq
}

// commit appends a commit at the group's head that moves it to the next
// epoch with members (nil: unchanged) and Welcomes.
func commit(t *testing.T, s store.Store, id candor.GroupID, sender candor.DeviceID, members []candor.DeviceID, welcomes ...store.Welcome) uint64 {
	t.Helper()
	ctx := context.Background()
	g, err := s.Group(ctx, id)
	must(t, err)
	e := entry(sender, g.Epoch, fmt.Sprintf("commit ending epoch %d", g.Epoch))
	e.Commit = true
	seq, err := s.Append(ctx, store.AppendRequest{
		Group:    id,
		PrevHead: g.Head,
		Entry:    e,
		Roster:   []byte(fmt.Sprintf("roster of %s at %d", id, g.Epoch+1)),
		Epoch:    g.Epoch + 1,
		Members:  members,
		Welcomes: welcomes,
	})
	must(t, err)
	return seq
}

// state is everything a store says about some groups and devices, to check
// that a refused write changed nothing.
type state struct {
	Groups    map[candor.GroupID]store.Group
	Logs      map[candor.GroupID][]store.Entry
	Members   map[candor.GroupID][]candor.DeviceID
	GroupsOf  map[candor.DeviceID][]store.Membership
	Welcomes  map[candor.DeviceID][]store.Welcome
	Devices   map[candor.DeviceID]store.Device
	KPCounts  map[candor.DeviceID][2]int
	Invitions map[string]store.Invitation
}

func snapshot(t *testing.T, s store.Store, groups []candor.GroupID, devices []candor.DeviceID, invitations ...string) state {
	t.Helper()
	ctx := context.Background()
	st := state{
		Groups:    map[candor.GroupID]store.Group{},
		Logs:      map[candor.GroupID][]store.Entry{},
		Members:   map[candor.GroupID][]candor.DeviceID{},
		GroupsOf:  map[candor.DeviceID][]store.Membership{},
		Welcomes:  map[candor.DeviceID][]store.Welcome{},
		Devices:   map[candor.DeviceID]store.Device{},
		KPCounts:  map[candor.DeviceID][2]int{},
		Invitions: map[string]store.Invitation{},
	}
	var err error
	for _, g := range groups {
		st.Groups[g], err = s.Group(ctx, g)
		must(t, err)
		st.Logs[g], err = s.Log(ctx, g, 0, 1000)
		must(t, err)
		st.Members[g], err = s.Members(ctx, g)
		must(t, err)
	}
	for _, d := range devices {
		st.GroupsOf[d], err = s.GroupsOf(ctx, d)
		must(t, err)
		st.Welcomes[d], err = s.Welcomes(ctx, d)
		must(t, err)
		st.Devices[d], err = s.Device(ctx, d)
		must(t, err)
		n, lr, err := s.CountKeyPackages(ctx, d)
		must(t, err)
		st.KPCounts[d] = [2]int{n, map[bool]int{true: 1}[lr]}
	}
	for _, id := range invitations {
		st.Invitions[id], err = s.Invitation(ctx, id)
		must(t, err)
	}
	return st
}

func sortedIDs(ids ...candor.DeviceID) []candor.DeviceID {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}
