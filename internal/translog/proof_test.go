package translog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
)

// memTree is a tree of records kept in memory with tlog's stored hashes,
// for the tests of this file that need no storage.
type memTree struct {
	records [][]byte
	hashes  []tlog.Hash
}

func newMemTree(t testing.TB, n int) *memTree {
	t.Helper()
	m := &memTree{}
	for i := range n {
		r := fmt.Appendf(nil, "record %d", i)
		h, err := tlog.StoredHashes(int64(i), r, m)
		if err != nil {
			t.Fatal(err)
		}
		m.records = append(m.records, r)
		m.hashes = append(m.hashes, h...)
	}
	return m
}

func (m *memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memTree) checkpoint(t testing.TB, size int64) Checkpoint {
	t.Helper()
	h, err := tlog.TreeHash(size, m)
	if err != nil {
		t.Fatal(err)
	}
	return Checkpoint{Origin: "candor.test/log", Size: size, Hash: h}
}

func (m *memTree) inclusion(t testing.TB, index, size int64) InclusionProof {
	t.Helper()
	p, err := tlog.ProveRecord(size, index, m)
	if err != nil {
		t.Fatal(err)
	}
	return InclusionProof{Index: index, Size: size, Hashes: p}
}

func (m *memTree) consistency(t testing.TB, older, newer int64) ConsistencyProof {
	t.Helper()
	p, err := tlog.ProveTree(newer, older, m)
	if err != nil {
		t.Fatal(err)
	}
	return ConsistencyProof{Old: older, New: newer, Hashes: p}
}

func TestProofTextByHand(t *testing.T) {
	t.Parallel()
	h1, h2 := tlog.RecordHash([]byte("x")), tlog.RecordHash([]byte("y"))
	b64 := func(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }
	for _, tc := range []struct {
		name  string
		proof interface {
			MarshalText() ([]byte, error)
		}
		want string
	}{
		{"inclusion", InclusionProof{Index: 5, Size: 12, Hashes: []tlog.Hash{h1, h2}},
			"candor translog inclusion proof v1\n" +
				"index 5\n" +
				"size 12\n" +
				b64(h1) + "\n" + // the sibling of the leaf
				b64(h2) + "\n"}, // then one hash per level up
		{"single-record tree", InclusionProof{Index: 0, Size: 1},
			"candor translog inclusion proof v1\nindex 0\nsize 1\n"},
		{"consistency", ConsistencyProof{Old: 3, New: 9, Hashes: []tlog.Hash{h2}},
			"candor translog consistency proof v1\n" +
				"old 3\n" +
				"new 9\n" +
				b64(h2) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.proof.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("MarshalText:\n%s\nwant\n%s", got, tc.want)
			}
			switch p := tc.proof.(type) {
			case InclusionProof:
				var back InclusionProof
				if err := back.UnmarshalText([]byte(tc.want)); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(p, back, cmp.Comparer(sameHashes)); diff != "" {
					t.Errorf("UnmarshalText (-want +got):\n%s", diff)
				}
			case ConsistencyProof:
				var back ConsistencyProof
				if err := back.UnmarshalText([]byte(tc.want)); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(p, back, cmp.Comparer(sameHashes)); diff != "" {
					t.Errorf("UnmarshalText (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// sameHashes compares hash lists treating nil and empty alike.
func sameHashes(a, b []tlog.Hash) bool {
	return len(a) == len(b) && (len(a) == 0 || cmp.Equal([]tlog.Hash(a), []tlog.Hash(b)))
}

func TestProofTextRejects(t *testing.T) {
	t.Parallel()
	h := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct{ name, text string }{
		{"empty", ""},
		{"other kind", "candor translog consistency proof v1\nindex 0\nsize 1\n"},
		{"other version", "candor translog inclusion proof v2\nindex 0\nsize 1\n"},
		{"no final newline", "candor translog inclusion proof v1\nindex 0\nsize 1"},
		{"index at size", "candor translog inclusion proof v1\nindex 1\nsize 1\n"},
		{"leading zero", "candor translog inclusion proof v1\nindex 01\nsize 2\n"},
		{"negative", "candor translog inclusion proof v1\nindex -1\nsize 2\n"},
		{"names swapped", "candor translog inclusion proof v1\nsize 2\nindex 0\n"},
		{"two spaces", "candor translog inclusion proof v1\nindex  0\nsize 2\n"},
		{"short hash", "candor translog inclusion proof v1\nindex 0\nsize 2\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n"},
		{"unpadded hash", "candor translog inclusion proof v1\nindex 0\nsize 2\n" + strings.TrimRight(h, "=") + "\n"},
		{"blank line", "candor translog inclusion proof v1\nindex 0\nsize 2\n\n"},
		{"too many hashes", "candor translog inclusion proof v1\nindex 0\nsize 2\n" + strings.Repeat(h+"\n", maxProofHashes+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var p InclusionProof
			if err := p.UnmarshalText([]byte(tc.text)); !errors.Is(err, candor.ErrInvalid) {
				t.Errorf("UnmarshalText = %+v, %v; want ErrInvalid", p, err)
			}
		})
	}
	var c ConsistencyProof
	if err := c.UnmarshalText([]byte("candor translog consistency proof v1\nold 5\nnew 4\n")); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("consistency proof going backwards: %v, want ErrInvalid", err)
	}
}

// TestVerify checks every inclusion and consistency proof of a tree of 37
// records, and that a changed record or proof hash is caught.
func TestVerify(t *testing.T) {
	t.Parallel()
	const n = 37
	m := newMemTree(t, n)
	for size := int64(1); size <= n; size++ {
		c := m.checkpoint(t, size)
		for i := range size {
			p := m.inclusion(t, i, size)
			if err := VerifyInclusion(c, m.records[i], p); err != nil {
				t.Fatalf("record %d in %d: %v", i, size, err)
			}
			if err := VerifyInclusion(c, append(bytes.Clone(m.records[i]), '!'), p); !errors.Is(err, ErrNotIncluded) {
				t.Fatalf("altered record %d in %d: %v, want ErrNotIncluded", i, size, err)
			}
			if i+1 < size {
				if err := VerifyInclusion(c, m.records[i+1], p); !errors.Is(err, ErrNotIncluded) {
					t.Fatalf("record %d with the proof of %d: %v, want ErrNotIncluded", i+1, i, err)
				}
			}
			for j := range p.Hashes {
				bad := InclusionProof{Index: i, Size: size, Hashes: slices.Clone(p.Hashes)}
				bad.Hashes[j][0] ^= 1
				if err := VerifyInclusion(c, m.records[i], bad); !errors.Is(err, ErrNotIncluded) {
					t.Fatalf("record %d in %d, proof hash %d altered: %v", i, size, j, err)
				}
			}
		}
		for older := int64(1); older < size; older++ {
			o := m.checkpoint(t, older)
			p := m.consistency(t, older, size)
			if err := VerifyConsistency(o, c, p); err != nil {
				t.Fatalf("%d to %d: %v", older, size, err)
			}
			for j := range p.Hashes {
				bad := ConsistencyProof{Old: older, New: size, Hashes: slices.Clone(p.Hashes)}
				bad.Hashes[j][0] ^= 1
				var ie *InconsistentError
				if err := VerifyConsistency(o, c, bad); !errors.As(err, &ie) || ie.Kind != Fork || !ie.Unproven {
					t.Fatalf("%d to %d, proof hash %d altered: %v, want an unproven fork", older, size, j, err)
				}
			}
			if err := VerifyConsistency(c, o, ConsistencyProof{}); !isKind(err, Rollback) {
				t.Fatalf("%d back to %d: %v, want a rollback", size, older, err)
			}
		}
	}
	// A proof for other sizes is a caller's mistake, not an inconsistency.
	if err := VerifyInclusion(m.checkpoint(t, 5), m.records[0], m.inclusion(t, 0, 6)); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("proof for a size other than the checkpoint's: %v, want ErrInvalid", err)
	}
	if err := VerifyConsistency(m.checkpoint(t, 5), m.checkpoint(t, 9), m.consistency(t, 4, 9)); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("consistency proof from another size: %v, want ErrInvalid", err)
	}
	other := m.checkpoint(t, 9)
	other.Origin = "candor.test/other"
	if err := VerifyConsistency(m.checkpoint(t, 5), other, m.consistency(t, 5, 9)); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("checkpoints of two logs: %v, want ErrInvalid", err)
	}
	// Same size, another root: a fork, proven by the pair alone.
	forked := m.checkpoint(t, 9)
	forked.Hash[0] ^= 1
	var ie *InconsistentError
	if err := VerifyConsistency(m.checkpoint(t, 9), forked, ConsistencyProof{}); !errors.As(err, &ie) || ie.Kind != Fork || ie.Unproven {
		t.Errorf("same size, other root: %v, want a proven fork", err)
	}
}

func isKind(err error, k InconsistencyKind) bool {
	var ie *InconsistentError
	return errors.Is(err, ErrInconsistent) && errors.As(err, &ie) && ie.Kind == k
}

// FuzzInclusionProof decodes fuzzed proofs: what decodes re-encodes to
// the same text, and a proof that verifies for a record of the test tree
// is the true proof of that record.
func FuzzInclusionProof(f *testing.F) {
	const n = 13
	m := newMemTree(f, n)
	checkpoints := make([]Checkpoint, n+1)
	for size := int64(1); size <= n; size++ {
		checkpoints[size] = m.checkpoint(f, size)
		for _, i := range []int64{0, size / 2, size - 1} {
			text, err := m.inclusion(f, i, size).MarshalText()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(text)
		}
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		var p InclusionProof
		if err := p.UnmarshalText(text); err != nil {
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		back, err := p.MarshalText()
		if err != nil || !bytes.Equal(back, text) {
			t.Fatalf("round trip: %q became %q, %v", text, back, err)
		}
		if p.Size > n {
			return
		}
		if err := VerifyInclusion(checkpoints[p.Size], m.records[p.Index], p); err == nil {
			if want := m.inclusion(t, p.Index, p.Size); !sameHashes(p.Hashes, want.Hashes) {
				t.Fatalf("a proof other than the true one verifies: %q", text)
			}
		} else if !errors.Is(err, ErrNotIncluded) {
			t.Fatalf("unnamed error %v", err)
		}
	})
}

// FuzzConsistencyProof is FuzzInclusionProof for consistency proofs.
func FuzzConsistencyProof(f *testing.F) {
	const n = 13
	m := newMemTree(f, n)
	checkpoints := make([]Checkpoint, n+1)
	checkpoints[0] = Checkpoint{Origin: "candor.test/log", Hash: emptyTree}
	for size := int64(1); size <= n; size++ {
		checkpoints[size] = m.checkpoint(f, size)
		for older := int64(1); older < size; older += 3 {
			text, err := m.consistency(f, older, size).MarshalText()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(text)
		}
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		var p ConsistencyProof
		if err := p.UnmarshalText(text); err != nil {
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		back, err := p.MarshalText()
		if err != nil || !bytes.Equal(back, text) {
			t.Fatalf("round trip: %q became %q, %v", text, back, err)
		}
		if p.New > n {
			return
		}
		err = VerifyConsistency(checkpoints[p.Old], checkpoints[p.New], p)
		switch {
		case err == nil:
			if p.Old > 0 && p.Old < p.New {
				if want := m.consistency(t, p.Old, p.New); !sameHashes(p.Hashes, want.Hashes) {
					t.Fatalf("a proof other than the true one verifies: %q", text)
				}
			}
		case !isKind(err, Fork):
			t.Fatalf("error %v, want nil or a fork", err)
		}
	})
}
