package access_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/access"
	"candor/internal/custody"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixedKey is a P-256 point from a fixed private scalar, so that the
// encodings below are the same on every run.
func fixedKey(t testing.TB) []byte {
	t.Helper()
	k, err := ecdh.P256().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

func sampleRequest(t testing.TB) *access.Request {
	return &access.Request{
		Case:      "CASE-2026-17",
		Reason:    "Regulator's request about trades of 3 March.\nSee letter 44.",
		Requester: "Compliance office",
		Created:   time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		Scope: access.Scope{
			Groups: []candor.GroupID{"\x02\x02", "\x01"},
			Users:  []candor.UserID{"bob", "alice"},
			From:   time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
			To:     time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC),
		},
		OpeningKey: fixedKey(t),
	}
}

// fakeCustodyApproval is the prefix internal/custody writes, followed by
// bytes this package does not read.
func fakeCustodyApproval(id access.RequestID, slot byte) []byte {
	b := append([]byte("capp\x01"), bytes.Repeat([]byte{0xaa}, 32)...)
	b = append(b, id[:]...)
	b = append(b, slot)
	return append(b, bytes.Repeat([]byte{0xbb}, 20)...)
}

// TestRequestBytes checks the request's encoding against bytes written
// out by hand from the format in Request's doc comment.
func TestRequestBytes(t *testing.T) {
	t.Parallel()
	q := sampleRequest(t)
	q.Reason = "r"
	q.Scope.Groups = []candor.GroupID{"\x02\x02", "\x01"}
	q.Scope.Users = []candor.UserID{"b", "a"}
	got, err := q.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"63616363", "01", "01", // "cacc", version 1, type request
		"0c" + hex.EncodeToString([]byte("CASE-2026-17")),
		"0001" + "72", // reason "r", two-byte length
		"11" + hex.EncodeToString([]byte("Compliance office")),
		"000000006b055210",         // created 2026-11-24T09:00:00Z
		"0000000069a38180",         // from 2026-03-01
		"0000000069acbc00",         // to 2026-03-08
		"0005" + "0101" + "020202", // groups, sorted: 01, 0202
		"0004" + "0161" + "0162",   // users, sorted: a, b
		hex.EncodeToString(fixedKey(t)),
	}, "")
	if hex.EncodeToString(got) != want {
		t.Errorf("encoding\n got %x\nwant %s", got, want)
	}
	id, err := q.ID()
	if err != nil {
		t.Fatal(err)
	}
	if id != sha256.Sum256(got) {
		t.Errorf("ID %v is not the SHA-256 of the encoding", id)
	}
}

// TestGolden pins one record of each type; -update rewrites the files.
func TestGolden(t *testing.T) {
	t.Parallel()
	q := sampleRequest(t)
	id, err := q.ID()
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]access.Record{
		"request.bin":  {Request: q},
		"approval.bin": {Approval: &access.Approval{Request: id, Custodian: 2, CustodianName: "Bea Ortiz", Custody: fakeCustodyApproval(id, 2)}},
		"opening.bin": {Opening: &access.Opening{Request: id, Completed: time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC),
			Groups: []access.Replayed{{Group: "\x02\x02", Records: 17}, {Group: "\x01", Records: 1 << 40}}}},
		"hold.bin":     {Hold: sampleHold()},
		"release.bin":  {Release: sampleRelease(t)},
		"deletion.bin": {Deletion: sampleDeletion()},
	}
	for name, r := range records {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			enc, err := r.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, enc, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, golden) {
				t.Errorf("encoding differs from %s (run with -update if the format changed on purpose)", path)
			}
			back, err := access.ParseRecord(golden)
			if err != nil {
				t.Fatal(err)
			}
			again, err := back.MarshalBinary()
			if err != nil || !bytes.Equal(again, golden) {
				t.Errorf("re-encoding the parsed record: %v, equal %v", err, bytes.Equal(again, golden))
			}
		})
	}
}

// TestRequestIDIsCustodyRequestID checks that the request id this package
// computes is what the custodians' approvals are bound to, and that
// ApprovalHeader reads internal/custody's approval as custody does.
func TestRequestIDIsCustodyRequestID(t *testing.T) {
	t.Parallel()
	cfg := custody.PolicyConfig{Organisation: "Example Bank", ArchiveKeyID: "archive-1", K: 2}
	var keys []*custody.CustodianKey
	for _, name := range []string{"Ana", "Bea", "Cid"} {
		k, err := custody.GenerateCustodianKey()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		cfg.Custodians = append(cfg.Custodians, custody.Custodian{Name: name, PublicKey: k.PublicKey()})
	}
	policy, err := custody.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := custody.NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	commitments, sealed, err := custody.Split(policy, seed)
	if err != nil {
		t.Fatal(err)
	}
	opening, err := custody.NewOpeningKey()
	if err != nil {
		t.Fatal(err)
	}
	q := sampleRequest(t)
	q.OpeningKey = opening.PublicKey().Bytes()
	id, err := q.ID()
	if err != nil {
		t.Fatal(err)
	}
	logged, err := access.Record{Request: q}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if custody.RequestID(sha256.Sum256(logged)) != custody.RequestID(id) {
		t.Fatal("the request id is not the SHA-256 of the record the log holds")
	}
	a, err := keys[2].Approve(policy, commitments, sealed[2], custody.RequestID(id), opening.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	gotID, slot, err := access.ApprovalHeader(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if gotID != access.RequestID(a.RequestID()) || slot != a.Index() || slot != 3 {
		t.Errorf("ApprovalHeader read request %v slot %d; custody says %v slot %d", gotID, slot, a.RequestID(), a.Index())
	}
	rec := access.Approval{Request: id, Custodian: 3, CustodianName: "Cid", Custody: a.Bytes()}
	enc, err := rec.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := access.ParseApproval(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := custody.ParseApproval(back.Custody); err != nil {
		t.Errorf("the approval carried through the log no longer parses: %v", err)
	}
	other := rec
	other.Custodian = 1
	if _, err := other.MarshalBinary(); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("an approval record naming another slot than the custodian's approval: %v", err)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*access.Request)
	}{
		{"no case", func(q *access.Request) { q.Case = "" }},
		{"escape in the case", func(q *access.Request) { q.Case = "a\x1b[2Jb" }},
		{"line feed in the requester", func(q *access.Request) { q.Requester = "a\nb" }},
		{"blank reason", func(q *access.Request) { q.Reason = " \n " }},
		{"reason too long", func(q *access.Request) { q.Reason = strings.Repeat("x", access.MaxReasonBytes+1) }},
		{"not UTF-8", func(q *access.Request) { q.Requester = "\xff" }},
		{"empty scope", func(q *access.Request) { q.Scope.Groups, q.Scope.Users = nil, nil }},
		{"empty time range", func(q *access.Request) { q.Scope.To = q.Scope.From }},
		{"fractional second", func(q *access.Request) { q.Created = q.Created.Add(time.Millisecond) }},
		{"before 1970", func(q *access.Request) { q.Scope.From = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"short key", func(q *access.Request) { q.OpeningKey = q.OpeningKey[:64] }},
		{"not a point", func(q *access.Request) { q.OpeningKey = append([]byte{4}, bytes.Repeat([]byte{1}, 64)...) }},
		{"empty group id", func(q *access.Request) { q.Scope.Groups = []candor.GroupID{""} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := sampleRequest(t)
			tc.change(q)
			if _, err := q.MarshalBinary(); !errors.Is(err, candor.ErrInvalid) {
				t.Errorf("MarshalBinary: %v, want ErrInvalid", err)
			}
		})
	}
}

// TestNonCanonical checks that the decoders refuse the other spellings of
// a valid record: unsorted or repeated lists, trailing bytes, other
// versions and types.
func TestNonCanonical(t *testing.T) {
	t.Parallel()
	q := sampleRequest(t)
	q.Scope.Users = []candor.UserID{"a", "b"}
	enc, err := q.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	swapped := bytes.Replace(enc, []byte("\x01a\x01b"), []byte("\x01b\x01a"), 1)
	repeated := bytes.Replace(enc, []byte("\x01a\x01b"), []byte("\x01a\x01a"), 1)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"users out of order", swapped},
		{"a user twice", repeated},
		{"trailing byte", append(bytes.Clone(enc), 0)},
		{"truncated", enc[:len(enc)-1]},
		{"version 2", append([]byte("cacc\x02"), enc[5:]...)},
		{"other magic", append([]byte("capp"), enc[4:]...)},
		{"unknown type", append([]byte("cacc\x01\x09"), enc[6:]...)},
		{"approval header on a request", append([]byte("cacc\x01\x02"), enc[6:]...)},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if bytes.Equal(tc.b, enc) {
				t.Fatal("the test's change did not change the encoding")
			}
			if _, err := access.ParseRecord(tc.b); !errors.Is(err, access.ErrMalformed) {
				t.Errorf("ParseRecord: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestTouches(t *testing.T) {
	t.Parallel()
	sc := access.Scope{Groups: []candor.GroupID{"g1", "g2"}, Users: []candor.UserID{"carol"}}
	for _, tc := range []struct {
		name   string
		groups []candor.GroupID
		user   candor.UserID
		want   bool
	}{
		{"a member of a group in scope", []candor.GroupID{"g0", "g2"}, "alice", true},
		{"a person in scope, in no such group", []candor.GroupID{"g9"}, "carol", true},
		{"a person in scope, in no group", nil, "carol", true},
		{"neither", []candor.GroupID{"g3"}, "alice", false},
		{"no groups, another person", nil, "alice", false},
		{"a group id that is a prefix of one in scope", []candor.GroupID{"g"}, "alice", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := access.Touches(sc, tc.groups, tc.user); got != tc.want {
				t.Errorf("Touches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	q1, q2 := sampleRequest(t), sampleRequest(t)
	q2.Case = "CASE-2"
	id1, _ := q1.ID()
	id2, _ := q2.ID()
	appr := func(id access.RequestID, slot int, name string) access.Record {
		return access.Record{Approval: &access.Approval{Request: id, Custodian: slot, CustodianName: name, Custody: fakeCustodyApproval(id, byte(slot))}}
	}
	done := &access.Opening{Request: id1, Completed: time.Unix(1800000000, 0).UTC()}
	h1, h2 := sampleHold(), sampleHold()
	h2.Case = "LIT-2"
	hid1, _ := h1.ID()
	hid2, _ := h2.ID()
	lift := func(id access.HoldID) access.Record {
		return access.Record{Release: &access.Release{Hold: id, Reason: "Settled.", By: "Legal", At: time.Unix(1800000000, 0).UTC()}}
	}
	del1, del2 := sampleDeletion(), sampleDeletion()
	del2.First, del2.Last = 42, 90
	records := []access.Record{
		{Request: q1}, {Hold: h1}, appr(id1, 1, "Ana"), {Request: q2}, {Deletion: del1}, appr(id1, 1, "Ana"),
		{Hold: h2}, appr(id1, 3, "Cid"), {Opening: done}, lift(hid1), {Deletion: del2},
	}
	l, err := access.Read(10, records)
	if err != nil {
		t.Fatal(err)
	}
	type caseSummary struct {
		ID        access.RequestID
		Index     int64
		Approvers []string
		Openings  int
	}
	type holdSummary struct {
		ID           access.HoldID
		Index        int64
		Case         string
		Active       bool
		ReleaseIndex int64
	}
	type summary struct {
		Cases     []caseSummary
		Holds     []holdSummary
		Active    []access.HoldID
		Deletions []int64
		Last      []uint64
	}
	var got summary
	for _, c := range l.Cases {
		s := caseSummary{ID: c.ID, Index: c.Index, Openings: len(c.Openings)}
		for _, a := range c.Approvals {
			s.Approvers = append(s.Approvers, a.CustodianName)
		}
		got.Cases = append(got.Cases, s)
	}
	for _, h := range l.Holds {
		got.Holds = append(got.Holds, holdSummary{ID: h.ID, Index: h.Index, Case: h.Hold.Case, Active: h.Active(), ReleaseIndex: h.ReleaseIndex})
	}
	for _, h := range l.ActiveHolds() {
		got.Active = append(got.Active, h.ID)
	}
	for _, d := range l.Deletions {
		got.Deletions = append(got.Deletions, d.Index)
		got.Last = append(got.Last, d.Deletion.Last)
	}
	want := summary{
		Cases:     []caseSummary{{ID: id1, Index: 10, Approvers: []string{"Ana", "Cid"}, Openings: 1}, {ID: id2, Index: 13}},
		Holds:     []holdSummary{{ID: hid1, Index: 11, Case: h1.Case, ReleaseIndex: 19}, {ID: hid2, Index: 16, Case: "LIT-2", Active: true}},
		Active:    []access.HoldID{hid2},
		Deletions: []int64{14, 20},
		Last:      []uint64{41, 90},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the log read (-want +got):\n%s", diff)
	}
	if c := l.Case(id2); c == nil || c.Index != 13 {
		t.Errorf("Case(%v) = %+v", id2, c)
	}
	if l.Case(access.RequestID{}) != nil || l.Hold(access.HoldID{}) != nil {
		t.Error("an id the log does not hold is found")
	}
	if h := l.Hold(hid1); h == nil || h.Active() || h.Release.By != "Legal" {
		t.Errorf("Hold(%v) = %+v, want the lifted hold", hid1, h)
	}
	for _, tc := range []struct {
		name    string
		records []access.Record
	}{
		{"an approval before its request", []access.Record{appr(id2, 1, "Ana"), {Request: q2}}},
		{"an opening of a request not logged", []access.Record{{Request: q2}, {Opening: done}}},
		{"a request logged twice", []access.Record{{Request: q1}, {Request: q1}}},
		{"a hold logged twice", []access.Record{{Hold: h1}, {Hold: h1}}},
		{"a release before its hold", []access.Record{lift(hid1), {Hold: h1}}},
		{"a release of a hold never set", []access.Record{{Hold: h2}, lift(hid1)}},
		{"a hold lifted twice", []access.Record{{Hold: h1}, lift(hid1), lift(hid1)}},
		{"an empty record", []access.Record{{Hold: h1}, {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := access.Read(0, tc.records); !errors.Is(err, access.ErrMalformed) {
				t.Errorf("Read: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseRequestID(t *testing.T) {
	t.Parallel()
	id, _ := sampleRequest(t).ID()
	back, err := access.ParseRequestID(id.String())
	if err != nil || back != id {
		t.Errorf("ParseRequestID(%v) = %v, %v", id, back, err)
	}
	for _, s := range []string{"", "00", strings.ToUpper(id.String()), id.String() + "00"} {
		if _, err := access.ParseRequestID(s); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("ParseRequestID(%q): %v, want ErrInvalid", s, err)
		}
	}
}
