package journal_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/journal"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The preimage of one entry's hash, written out byte by byte from the
// definition in the package comment.
func TestEntryHashByHand(t *testing.T) {
	t.Parallel()
	prev := journal.Genesis
	e := journal.Entry{
		Seq: 2, Epoch: 1, Commit: true, Sender: "d1",
		Time:    time.UnixMilli(0x0102030405).Add(999 * time.Microsecond), // sub-millisecond part is not hashed
		Message: []byte{0xAA, 0xBB, 0xCC},
	}
	var pre []byte
	pre = append(pre, "candor/journal/v1/entry"...)
	pre = append(pre, 0x00)                                  // label terminator
	pre = append(pre, 0, 0, 0, 2, 'g', '1')                  // len(group)=2, group "g1"
	pre = append(pre, 0, 0, 0, 0, 0, 0, 0, 2)                // seq 2
	pre = append(pre, 0, 0, 0, 0, 0, 0, 0, 1)                // epoch 1
	pre = append(pre, 1)                                     // commit
	pre = append(pre, 0, 0, 0, 2, 'd', '1')                  // len(sender)=2, sender "d1"
	pre = append(pre, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05) // time in ms
	pre = append(pre, 0, 0, 0, 3, 0xAA, 0xBB, 0xCC)          // len(message)=3, message
	pre = append(pre, prev[:]...)                            // previous hash
	want := sha256.Sum256(pre)
	if got := journal.EntryHash("g1", e, prev); got != journal.Hash(want) {
		t.Fatalf("EntryHash = %s, want %x", got, want)
	}
	if g := sha256.Sum256([]byte("candor/journal/v1/genesis")); journal.Genesis != journal.Hash(g) {
		t.Fatalf("Genesis = %s, want %x", journal.Genesis, g)
	}
}

// chain makes n entries of group and their hashes, as a server would have
// stored them.
func chain(group candor.GroupID, n int) []journal.Linked {
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	out := make([]journal.Linked, n)
	prev := journal.Genesis
	for i := range out {
		e := journal.Entry{
			Seq:     uint64(i + 1),
			Epoch:   candor.Epoch(i / 3),
			Commit:  i%3 == 2,
			Sender:  candor.DeviceID(fmt.Sprintf("dev%d", i%2)),
			Time:    start.Add(time.Duration(i) * time.Second),
			Message: []byte(fmt.Sprintf("message %d", i+1)),
		}
		prev = journal.EntryHash(group, e, prev)
		out[i] = journal.Linked{Entry: e, Hash: prev}
	}
	return out
}

// The hashes of a fixed chain, kept in testdata: a change of definition
// must be a new Version, never a silent change.
func TestGolden(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for _, e := range chain("golden-group", 6) {
		fmt.Fprintf(&b, "%d %s\n", e.Seq, e.Hash)
	}
	path := filepath.Join("testdata", "chain.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("chain hashes changed (-golden +now):\n%s", diff)
	}
}

// Every field of an entry is covered by its hash.
func TestEveryFieldIsHashed(t *testing.T) {
	t.Parallel()
	base := chain("g", 1)[0].Entry
	h := journal.EntryHash("g", base, journal.Genesis)
	changes := map[string]func(e *journal.Entry){
		"seq":     func(e *journal.Entry) { e.Seq++ },
		"epoch":   func(e *journal.Entry) { e.Epoch++ },
		"commit":  func(e *journal.Entry) { e.Commit = !e.Commit },
		"sender":  func(e *journal.Entry) { e.Sender += "x" },
		"time":    func(e *journal.Entry) { e.Time = e.Time.Add(time.Millisecond) },
		"message": func(e *journal.Entry) { e.Message = append(bytes.Clone(e.Message), 0) },
	}
	for name, change := range changes {
		e := base
		change(&e)
		if journal.EntryHash("g", e, journal.Genesis) == h {
			t.Errorf("changing the %s leaves the hash as it was", name)
		}
	}
	if journal.EntryHash("h", base, journal.Genesis) == h {
		t.Error("the group id is not hashed")
	}
	if journal.EntryHash("g", base, journal.Hash{}) == h {
		t.Error("the previous hash is not hashed")
	}
	// Lengths keep fields apart: moving a byte from the sender to the
	// group changes the hash.
	a := base
	a.Sender = "bc"
	b := base
	b.Sender = "c"
	if journal.EntryHash("a", a, journal.Genesis) == journal.EntryHash("ab", b, journal.Genesis) {
		t.Error("group and sender run into each other")
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const group = candor.GroupID("desk")
	tests := []struct {
		name   string
		change func(c []journal.Linked) []journal.Linked
		want   error
	}{
		{
			name:   "intact",
			change: func(c []journal.Linked) []journal.Linked { return c },
		},
		{
			name: "message changed",
			change: func(c []journal.Linked) []journal.Linked {
				c[4].Message = []byte("forged")
				return c
			},
			want: &journal.TamperError{Group: group, Seq: 5},
		},
		{
			name: "sender changed",
			change: func(c []journal.Linked) []journal.Linked {
				c[2].Sender = "mallory"
				return c
			},
			want: &journal.TamperError{Group: group, Seq: 3},
		},
		{
			name: "stored hash changed",
			change: func(c []journal.Linked) []journal.Linked {
				c[6].Hash[0] ^= 1
				return c
			},
			want: &journal.TamperError{Group: group, Seq: 7},
		},
		{
			name: "entry missing",
			change: func(c []journal.Linked) []journal.Linked {
				return append(c[:3:3], c[4:]...)
			},
			want: &journal.GapError{Group: group, Want: 4, Got: 5},
		},
		{
			name: "first entry missing",
			change: func(c []journal.Linked) []journal.Linked {
				return c[1:]
			},
			want: &journal.GapError{Group: group, Want: 1, Got: 2},
		},
		{
			name: "entries swapped",
			change: func(c []journal.Linked) []journal.Linked {
				c[5], c[6] = c[6], c[5]
				return c
			},
			want: &journal.GapError{Group: group, Want: 6, Got: 7},
		},
		{
			name: "entry moved back",
			change: func(c []journal.Linked) []journal.Linked {
				out := append([]journal.Linked(nil), c[:8]...)
				return append(out, c[2])
			},
			want: &journal.OrderError{Group: group, Want: 9, Got: 3},
		},
		{
			name: "entry twice",
			change: func(c []journal.Linked) []journal.Linked {
				out := append([]journal.Linked(nil), c[:5]...)
				return append(out, c[4:]...)
			},
			want: &journal.OrderError{Group: group, Want: 6, Got: 5, Duplicate: true},
		},
		{
			name: "contents swapped, seqs and hashes kept",
			change: func(c []journal.Linked) []journal.Linked {
				c[5].Message, c[6].Message = c[6].Message, c[5].Message
				return c
			},
			want: &journal.TamperError{Group: group, Seq: 6},
		},
		{
			name: "chain of another group",
			change: func(c []journal.Linked) []journal.Linked {
				return chain("other", len(c))
			},
			want: &journal.TamperError{Group: group, Seq: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := chain(group, 10)
			head := c[len(c)-1].Hash
			got, err := journal.Verify(group, tt.change(c))
			if tt.want == nil {
				if err != nil || got != head {
					t.Fatalf("Verify = %s, %v; want %s, nil", got, err, head)
				}
				return
			}
			if !errors.Is(err, journal.ErrBroken) || !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("Verify error %v does not wrap ErrBroken and ErrInvalid", err)
			}
			if diff := cmp.Diff(tt.want, err); diff != "" {
				t.Errorf("Verify error (-want +got):\n%s", diff)
			}
		})
	}
}

// A resumed verifier continues a chain from a head checked before, and a
// verifier that found a break stays at the last good entry.
func TestResumeAndStay(t *testing.T) {
	t.Parallel()
	c := chain("g", 8)
	v := journal.ResumeVerifier("g", 4, c[3].Hash)
	if _, err := v.Check(c[3].Entry, c[3].Hash); err == nil {
		t.Fatal("a resumed verifier took the entry it resumed after")
	}
	for _, e := range c[4:6] {
		if _, err := v.Check(e.Entry, e.Hash); err != nil {
			t.Fatalf("seq %d: %v", e.Seq, err)
		}
	}
	bad := c[6]
	bad.Message = []byte("x")
	if _, err := v.Check(bad.Entry, bad.Hash); !errors.As(err, new(*journal.TamperError)) {
		t.Fatalf("tampered entry: %v", err)
	}
	if seq, head := v.Head(); seq != 6 || head != c[5].Hash {
		t.Fatalf("after a break the verifier is at %d %s, want 6 %s", seq, head, c[5].Hash)
	}
	for _, e := range c[6:] {
		if _, err := v.Check(e.Entry, e.Hash); err != nil {
			t.Fatalf("seq %d after the break was refused: %v", e.Seq, err)
		}
	}
	// Follow (no stored hashes) computes the same chain.
	f := journal.NewVerifier("g")
	for _, e := range c {
		h, err := f.Follow(e.Entry)
		if err != nil || h != e.Hash {
			t.Fatalf("Follow seq %d = %s, %v; want %s", e.Seq, h, err, e.Hash)
		}
	}
	if _, err := f.Follow(c[2].Entry); !errors.As(err, new(*journal.OrderError)) {
		t.Fatalf("Follow of a passed seq: %v", err)
	}
}

func TestParseHash(t *testing.T) {
	t.Parallel()
	h := chain("g", 1)[0].Hash
	got, err := journal.ParseHash(h[:])
	if err != nil || got != h {
		t.Fatalf("ParseHash = %s, %v", got, err)
	}
	for _, n := range []int{0, 31, 33} {
		if _, err := journal.ParseHash(make([]byte, n)); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("ParseHash of %d bytes: %v", n, err)
		}
	}
	if s := h.String(); s != hex.EncodeToString(h[:]) {
		t.Errorf("String = %s", s)
	}
}
