package access_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/access"
	"candor/internal/journal"
)

func sampleHold() *access.Hold {
	return &access.Hold{
		Case:   "LIT-2026-04",
		Reason: "Litigation hold: Acme v. Example Bank.\nKeep everything.",
		By:     "Legal office",
		Set:    time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		Groups: []candor.GroupID{"\x02\x02", "\x01"},
		Users:  []candor.UserID{"bob", "alice"},
	}
}

func sampleRelease(t testing.TB) *access.Release {
	t.Helper()
	id, err := sampleHold().ID()
	if err != nil {
		t.Fatal(err)
	}
	return &access.Release{Hold: id, Reason: "Settled.", By: "Legal office", At: time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)}
}

func sampleDeletion() *access.Deletion {
	return &access.Deletion{
		Group: "\x01\x02\x03", First: 1, Last: 41,
		LastHash:  journal.Hash(bytes.Repeat([]byte{0xcd}, journal.HashSize)),
		At:        time.Date(2027, 1, 5, 8, 0, 0, 0, time.UTC),
		Retention: 2555 * 24 * time.Hour,
	}
}

// TestHoldBytes checks a hold's encoding against bytes written out by
// hand from the format in Hold's doc comment.
func TestHoldBytes(t *testing.T) {
	t.Parallel()
	h := sampleHold()
	h.Reason = "r"
	h.Users = []candor.UserID{"b", "a", "b"}
	got, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"63616363", "01", "04", // "cacc", version 1, type hold
		"0b" + hex.EncodeToString([]byte("LIT-2026-04")),
		"0001" + "72", // reason "r", two-byte length
		"0c" + hex.EncodeToString([]byte("Legal office")),
		"000000006b055210",         // set 2026-11-24T09:00:00Z
		"0005" + "0101" + "020202", // groups, sorted: 01, 0202
		"0004" + "0161" + "0162",   // users, sorted, the repeat dropped: a, b
	}, "")
	if hex.EncodeToString(got) != want {
		t.Errorf("encoding\n got %x\nwant %s", got, want)
	}
	id, err := h.ID()
	if err != nil {
		t.Fatal(err)
	}
	if id != sha256.Sum256(got) {
		t.Errorf("ID %v is not the SHA-256 of the encoding", id)
	}
}

// TestReleaseBytes checks a release's encoding against bytes written out
// by hand.
func TestReleaseBytes(t *testing.T) {
	t.Parallel()
	r := sampleRelease(t)
	r.Hold = access.HoldID(bytes.Repeat([]byte{0xab}, 32))
	r.Reason = "ok"
	r.By = "L"
	got, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"63616363", "01", "05", // "cacc", version 1, type release
		strings.Repeat("ab", 32), // the hold's id
		"0002" + "6f6b",          // reason "ok", two-byte length
		"01" + "4c",              // by "L"
		"000000006b0f0418",       // at 2026-12-01T17:30:00Z
	}, "")
	if hex.EncodeToString(got) != want {
		t.Errorf("encoding\n got %x\nwant %s", got, want)
	}
}

// TestDeletionBytes checks a deletion's encoding against bytes written
// out by hand.
func TestDeletionBytes(t *testing.T) {
	t.Parallel()
	got, err := sampleDeletion().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"63616363", "01", "06", // "cacc", version 1, type deletion
		"03" + "010203",          // group
		"0000000000000001",       // first
		"0000000000000029",       // last, 41
		strings.Repeat("cd", 32), // chain hash of entry 41
		"000000006b3ca300",       // at 2027-01-05T08:00:00Z
		"000000000d286880",       // retention: 2555 days in seconds
	}, "")
	if hex.EncodeToString(got) != want {
		t.Errorf("encoding\n got %x\nwant %s", got, want)
	}
}

func TestHoldValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*access.Hold)
	}{
		{"no case", func(h *access.Hold) { h.Case = "" }},
		{"escape in the reason", func(h *access.Hold) { h.Reason = "a\x1b]0;b" }},
		{"line feed in who", func(h *access.Hold) { h.By = "a\nb" }},
		{"blank who", func(h *access.Hold) { h.By = "  " }},
		{"nothing covered", func(h *access.Hold) { h.Groups, h.Users = nil, nil }},
		{"fractional second", func(h *access.Hold) { h.Set = h.Set.Add(time.Millisecond) }},
		{"empty group id", func(h *access.Hold) { h.Groups = []candor.GroupID{""} }},
		{"group id too long", func(h *access.Hold) { h.Groups = []candor.GroupID{candor.GroupID(strings.Repeat("g", 256))} }},
		{"user id with a control character", func(h *access.Hold) { h.Users = []candor.UserID{"a\x7fb"} }},
		{"too many people", func(h *access.Hold) {
			h.Users = nil
			for i := range access.MaxScopeItems + 1 {
				h.Users = append(h.Users, candor.UserID(strings.Repeat("u", 1+i%200)+string(rune('a'+i/200))))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := sampleHold()
			tc.change(h)
			if _, err := h.MarshalBinary(); !errors.Is(err, candor.ErrInvalid) {
				t.Errorf("MarshalBinary: %v, want ErrInvalid", err)
			}
			if _, err := h.ID(); !errors.Is(err, candor.ErrInvalid) {
				t.Errorf("ID: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestReleaseValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*access.Release)
	}{
		{"no reason", func(r *access.Release) { r.Reason = "" }},
		{"reason too long", func(r *access.Release) { r.Reason = strings.Repeat("x", access.MaxReasonBytes+1) }},
		{"no one lifted it", func(r *access.Release) { r.By = "" }},
		{"not UTF-8", func(r *access.Release) { r.By = "\xff" }},
		{"before 1970", func(r *access.Release) { r.At = time.Unix(-1, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := sampleRelease(t)
			tc.change(r)
			if _, err := r.MarshalBinary(); !errors.Is(err, candor.ErrInvalid) {
				t.Errorf("MarshalBinary: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestDeletionValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*access.Deletion)
	}{
		{"no group", func(d *access.Deletion) { d.Group = "" }},
		{"first 0", func(d *access.Deletion) { d.First = 0 }},
		{"first after last", func(d *access.Deletion) { d.First, d.Last = 5, 4 }},
		{"no chain hash", func(d *access.Deletion) { d.LastHash = journal.Hash{} }},
		{"fractional second", func(d *access.Deletion) { d.At = d.At.Add(time.Nanosecond) }},
		{"no retention period", func(d *access.Deletion) { d.Retention = 0 }},
		{"negative retention period", func(d *access.Deletion) { d.Retention = -time.Hour }},
		{"retention period not whole seconds", func(d *access.Deletion) { d.Retention = 90 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := sampleDeletion()
			tc.change(d)
			if _, err := d.MarshalBinary(); !errors.Is(err, candor.ErrInvalid) {
				t.Errorf("MarshalBinary: %v, want ErrInvalid", err)
			}
		})
	}
	one := sampleDeletion()
	one.First, one.Last = 7, 7
	if _, err := one.MarshalBinary(); err != nil {
		t.Errorf("a deletion of one entry: %v", err)
	}
}

// TestNewRecordsNonCanonical checks that the decoders of holds, releases
// and deletions refuse every other spelling of a valid record.
func TestNewRecordsNonCanonical(t *testing.T) {
	t.Parallel()
	h := sampleHold()
	h.Users = []candor.UserID{"a", "b"}
	hold, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	release, err := sampleRelease(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	deletion, err := sampleDeletion().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Offsets into the deletion: header 6, group 1+3, first 8, last 8,
	// hash 32, at 8, then the retention period.
	const retentionAt = 6 + 4 + 8 + 8 + 32 + 8
	withRetention := func(secs uint64) []byte {
		b := bytes.Clone(deletion)
		for i := range 8 {
			b[retentionAt+i] = byte(secs >> (56 - 8*i))
		}
		return b
	}
	swapFirstLast := bytes.Clone(deletion)
	copy(swapFirstLast[10:18], deletion[18:26])
	copy(swapFirstLast[18:26], deletion[10:18])
	for _, tc := range []struct {
		name string
		orig []byte
		b    []byte
	}{
		{"hold: users out of order", hold, bytes.Replace(hold, []byte("\x01a\x01b"), []byte("\x01b\x01a"), 1)},
		{"hold: a user twice", hold, bytes.Replace(hold, []byte("\x01a\x01b"), []byte("\x01a\x01a"), 1)},
		{"hold: empty user id", hold, bytes.Replace(hold, []byte("\x00\x04\x01a\x01b"), []byte("\x00\x03\x00\x01b"), 1)},
		{"hold: trailing byte", hold, append(bytes.Clone(hold), 0)},
		{"hold: truncated", hold, hold[:len(hold)-1]},
		{"hold: read as a release", hold, append([]byte("cacc\x01\x05"), hold[6:]...)},
		{"release: trailing byte", release, append(bytes.Clone(release), 0)},
		{"release: truncated", release, release[:len(release)-1]},
		{"release: time past 9999", release, append(bytes.Clone(release[:len(release)-8]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"deletion: trailing byte", deletion, append(bytes.Clone(deletion), 0)},
		{"deletion: truncated", deletion, deletion[:len(deletion)-1]},
		{"deletion: first after last", deletion, swapFirstLast},
		{"deletion: no retention period", deletion, withRetention(0)},
		{"deletion: a period no Duration holds", deletion, withRetention(1 << 63)},
		{"deletion: version 2", deletion, append([]byte("cacc\x02"), deletion[5:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if bytes.Equal(tc.b, tc.orig) {
				t.Fatal("the test's change did not change the encoding")
			}
			if _, err := access.ParseRecord(tc.orig); err != nil {
				t.Fatalf("the unchanged record does not parse: %v", err)
			}
			if _, err := access.ParseRecord(tc.b); !errors.Is(err, access.ErrMalformed) {
				t.Errorf("ParseRecord: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseHoldID(t *testing.T) {
	t.Parallel()
	id, err := sampleHold().ID()
	if err != nil {
		t.Fatal(err)
	}
	back, err := access.ParseHoldID(id.String())
	if err != nil || back != id {
		t.Errorf("ParseHoldID(%v) = %v, %v", id, back, err)
	}
	for _, s := range []string{"", "zz", strings.ToUpper(id.String()), id.String()[2:]} {
		if _, err := access.ParseHoldID(s); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("ParseHoldID(%q): %v, want ErrInvalid", s, err)
		}
	}
}

// TestHeldGroups checks which groups the holds in force cover: those they
// name, and every group of each person they name, as the caller knows
// them; lifted holds cover nothing.
func TestHeldGroups(t *testing.T) {
	t.Parallel()
	set := time.Unix(1790000000, 0).UTC()
	onGroup := &access.Hold{Case: "G", Reason: "r", By: "L", Set: set, Groups: []candor.GroupID{"g1"}}
	onCarol := &access.Hold{Case: "C", Reason: "r", By: "L", Set: set, Groups: []candor.GroupID{"g2"}, Users: []candor.UserID{"carol"}}
	onDan := &access.Hold{Case: "D", Reason: "r", By: "L", Set: set, Users: []candor.UserID{"dan", "carol"}}
	lifted := &access.Hold{Case: "X", Reason: "r", By: "L", Set: set, Groups: []candor.GroupID{"g9"}, Users: []candor.UserID{"erin"}}
	liftedID, err := lifted.ID()
	if err != nil {
		t.Fatal(err)
	}
	l, err := access.Read(0, []access.Record{{Hold: onGroup}, {Hold: lifted}, {Hold: onCarol}, {Hold: onDan},
		{Release: &access.Release{Hold: liftedID, Reason: "done", By: "L", At: set}}})
	if err != nil {
		t.Fatal(err)
	}
	groups := map[candor.UserID][]candor.GroupID{
		// carol was in g2 (which C also names) and g3, dan in g3, erin
		// in g4; D names carol too, so covers her groups.
		"carol": {"g2", "g3"}, "dan": {"g3"}, "erin": {"g4"},
	}
	var asked []candor.UserID
	held, err := l.HeldGroups(func(u candor.UserID) ([]candor.GroupID, error) {
		asked = append(asked, u)
		return groups[u], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[candor.GroupID][]string{}
	for g, hs := range held {
		for _, h := range hs {
			got[g] = append(got[g], h.Hold.Case)
		}
	}
	want := map[candor.GroupID][]string{"g1": {"G"}, "g2": {"C", "D"}, "g3": {"C", "D"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("held groups (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]candor.UserID{"carol", "dan"}, asked); diff != "" {
		t.Errorf("people asked about (-want +got): each held person once, none for lifted holds:\n%s", diff)
	}

	failure := errors.New("the store is down")
	if _, err := l.HeldGroups(func(candor.UserID) ([]candor.GroupID, error) { return nil, failure }); !errors.Is(err, failure) {
		t.Errorf("HeldGroups with a failing lookup: %v, want its error", err)
	}
}
