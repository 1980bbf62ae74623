package ceremony_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor/internal/ceremony"
	"candor/internal/custody"
)

// rotation is an organisation's archive and its successor: prev by o's
// custodians, next by next's, with the same CA, an hour later.
type rotation struct {
	o, next  *orgFixture
	prev, st *ceremony.Statement
}

func newRotation(t testing.TB) *rotation {
	t.Helper()
	o := newOrg(t, 2, "Ana", "Bea", "Cid")
	n := newOrg(t, 2, "Dan", "Eva", "Fay")
	n.ca, n.cfg.CA = o.ca, o.ca
	n.cfg.KeyID = "archive-2"
	n.cfg.Now = func() time.Time { return epoch.Add(time.Hour) }
	return &rotation{o: o, next: n, prev: o.run(t), st: n.run(t)}
}

// successions has the previous custodians in slots signed succeed.
func (r *rotation) successions(t testing.TB, slots ...int) []*ceremony.Succession {
	t.Helper()
	var out []*ceremony.Succession
	for _, s := range slots {
		e, err := ceremony.Succeed(r.prev, r.st, r.o.keys[s-1])
		if err != nil {
			t.Fatalf("custodian %d succeeding: %v", s, err)
		}
		if e.Slot() != s || e.Previous() != r.prev.Hash() || e.Next() != r.st.Hash() {
			t.Fatalf("custodian %d's succession says slot %d, %s to %s", s, e.Slot(), e.Previous(), e.Next())
		}
		out = append(out, e)
	}
	return out
}

// successionBytes spells a succession out field by field.
func successionBytes(prev, next ceremony.Hash, slot byte, sig []byte) []byte {
	b := append([]byte("csuc\x01"), prev[:]...)
	b = append(b, next[:]...)
	b = append(b, slot, byte(len(sig)))
	return append(b, sig...)
}

func TestSuccessionEncodingByHand(t *testing.T) {
	t.Parallel()
	r := newRotation(t)
	e := r.successions(t, 3)[0]
	enc := e.Bytes()
	head := successionBytes(r.prev.Hash(), r.st.Hash(), 3, nil)
	head = head[:len(head)-1] // everything before the signature's length
	if !bytes.HasPrefix(enc, head) {
		t.Fatalf("succession starts %x, want %x", enc[:min(len(enc), len(head))], head)
	}
	sig := enc[len(head):]
	if len(sig) < 2 || int(sig[0]) != len(sig)-1 || sig[1] != 0x30 { // signature<1..72>, an ASN.1 SEQUENCE
		t.Errorf("succession signature field %x", sig)
	}
	back, err := ceremony.ParseSuccession(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Bytes(), enc) {
		t.Error("a succession re-encodes differently")
	}
	if err := ceremony.CheckSuccession(r.prev, r.st, back); err != nil {
		t.Errorf("the parsed succession does not check: %v", err)
	}
}

func TestParseSuccessionRefuses(t *testing.T) {
	t.Parallel()
	r := newRotation(t)
	good := r.successions(t, 1)[0].Bytes()
	h := r.prev.Hash()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"an endorsement", r.o.endorseAll(t, r.prev)[0].Bytes()},
		{"version 2", append([]byte("csuc\x02"), good[5:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"slot 0", successionBytes(h, r.st.Hash(), 0, []byte{0x30, 0})},
		{"empty signature", successionBytes(h, r.st.Hash(), 1, nil)},
		{"a statement succeeding itself", successionBytes(h, h, 1, []byte{0x30, 0})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ceremony.ParseSuccession(tc.b); !errors.Is(err, ceremony.ErrMalformed) {
				t.Errorf("ParseSuccession: %v, want ErrMalformed", err)
			}
		})
	}
}

// A successor needs K of the previous custodians, each signing for this
// very pair, with a succession signature; and it must be a later key of
// the same organisation.
func TestVerifySuccession(t *testing.T) {
	t.Parallel()
	r := newRotation(t)
	ca := r.o.ca.Certificate()
	now := epoch.Add(2 * time.Hour)
	if err := ceremony.Verify(r.st, r.next.endorseAll(t, r.st), ca, now); err != nil {
		t.Fatalf("the successor is not fully endorsed: %v", err)
	}

	// Another archive of the same organisation, with custodians of its
	// own, whose successions are for another pair.
	other := newOrg(t, 2, "Gil", "Hal", "Ivo")
	other.ca, other.cfg.CA = r.o.ca, r.o.ca
	other.cfg.KeyID = "archive-x"
	otherSt := other.run(t)
	elsewhere, err := ceremony.Succeed(otherSt, r.st, other.keys[1])
	if err != nil {
		t.Fatal(err)
	}
	// A custodian of the successor (not of prev) signing for the pair,
	// under slot 2 of prev's policy.
	_, outsiderSig, err := r.next.keys[1].Succeed(r.prev.Policy(), r.prev.Hash(), r.st.Hash())
	if !errors.Is(err, custody.ErrMismatch) {
		t.Fatalf("a non-custodian succeeding: %v, want ErrMismatch", err)
	}
	if outsiderSig != nil {
		t.Fatal("a non-custodian got a signature")
	}
	forged := parseSuccession(t, successionBytes(r.prev.Hash(), r.st.Hash(), 2, mustSig(t, r.next.keys[1], r.prev, r.st)))
	// An endorsement of the successor by a custodian who held the old
	// key too, recast as a succession: same key, wrong domain.
	dual := newDualRotation(t)
	endorsement := dual.next.endorseAll(t, dual.st)[0]
	recast := parseSuccession(t, successionBytes(dual.prev.Hash(), dual.st.Hash(), 1, endorsementSig(endorsement)))

	two := r.successions(t, 1, 3)
	for _, tc := range []struct {
		name     string
		r        *rotation
		got      []*ceremony.Succession
		want     error
		refusing bool
	}{
		{name: "K successions", r: r, got: two},
		{name: "all three", r: r, got: r.successions(t, 1, 2, 3)},
		{name: "K-1 successions", r: r, got: two[:1], want: ceremony.ErrMissingSuccession, refusing: true},
		{name: "one custodian twice", r: r, got: []*ceremony.Succession{two[0], r.successions(t, 1)[0]}, want: ceremony.ErrMissingSuccession, refusing: true},
		{name: "none", r: r, want: ceremony.ErrMissingSuccession, refusing: true},
		{name: "one for another pair", r: r, got: append([]*ceremony.Succession{elsewhere}, two...), want: ceremony.ErrOtherSuccession, refusing: true},
		{name: "one by a non-custodian", r: r, got: append([]*ceremony.Succession{forged}, two...), want: custody.ErrBadSignature, refusing: true},
		{name: "an endorsement as a succession", r: dual, got: append([]*ceremony.Succession{recast}, dual.successions(t, 2, 3)...), want: custody.ErrBadSignature, refusing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ceremony.VerifySuccession(tc.r.prev, tc.r.st, tc.got, ca, now)
			if !tc.refusing {
				if err != nil {
					t.Fatalf("VerifySuccession: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifySuccession: %v, want %v", err, tc.want)
			}
		})
	}

	// The pair itself must be a succession, whoever signs.
	if _, err := ceremony.Succeed(r.st, r.prev, r.next.keys[0]); !errors.Is(err, ceremony.ErrNotSuccessor) {
		t.Errorf("succeeding a later key by an earlier one: %v, want ErrNotSuccessor", err)
	}
	if _, err := ceremony.Succeed(r.prev, r.prev, r.o.keys[0]); !errors.Is(err, ceremony.ErrNotSuccessor) {
		t.Errorf("a key succeeding itself: %v, want ErrNotSuccessor", err)
	}
	foreign := newOrg(t, 2, "Jo", "Kim", "Lu")
	foreign.cfg.KeyID = "archive-9"
	foreign.cfg.Now = func() time.Time { return epoch.Add(time.Hour) }
	if err := ceremony.VerifySuccession(r.prev, foreign.run(t), nil, ca, now); !errors.Is(err, ceremony.ErrCertificate) {
		t.Errorf("another organisation's archive as successor: %v, want ErrCertificate", err)
	}
}

// newDualRotation is a rotation whose first new custodian also held slot
// 1 of the previous archive, with the same custodian key.
func newDualRotation(t testing.TB) *rotation {
	t.Helper()
	r := newRotation(t)
	n := r.next
	n.keys[0] = r.o.keys[0]
	n.cfg.Custodians[0] = custody.Custodian{Name: "Ana", PublicKey: r.o.keys[0].PublicKey()}
	r.st = n.run(t)
	return r
}

func mustSig(t testing.TB, k *custody.CustodianKey, prev, next *ceremony.Statement) []byte {
	t.Helper()
	// Signing as slot 1 of a policy this key is in (its own archive's)
	// gives a valid signature over the wrong policy: what a non-custodian
	// can produce.
	o := newOrg(t, 2, "X", "Y")
	o.keys[0] = k
	o.cfg.Custodians[0] = custody.Custodian{Name: "X", PublicKey: k.PublicKey()}
	own := o.run(t)
	_, sig, err := k.Succeed(own.Policy(), prev.Hash(), next.Hash())
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func endorsementSig(e *ceremony.Endorsement) []byte {
	b := e.Bytes()
	return b[4+1+32+1+1:]
}

func parseSuccession(t testing.TB, b []byte) *ceremony.Succession {
	t.Helper()
	e, err := ceremony.ParseSuccession(b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// FuzzParseSuccession: whatever parses re-encodes to the same bytes, and
// only the genuine successions check for the pair.
func FuzzParseSuccession(f *testing.F) {
	r := newRotation(f)
	genuine := map[string]bool{}
	for _, e := range r.successions(f, 1, 2, 3) {
		genuine[string(e.Bytes())] = true
		f.Add(e.Bytes())
	}
	f.Add(r.o.endorseAll(f, r.prev)[0].Bytes())
	f.Add([]byte("csuc\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ceremony.ParseSuccession(b)
		if err != nil {
			if genuine[string(b)] {
				t.Fatalf("a genuine succession does not parse: %v", err)
			}
			return
		}
		if diff := cmp.Diff(b, e.Bytes()); diff != "" {
			t.Fatalf("re-encoding differs (-input +Bytes):\n%s", diff)
		}
		err = ceremony.CheckSuccession(r.prev, r.st, e)
		if err == nil && !genuine[string(b)] {
			// ECDSA signatures are malleable in s; a valid one is only
			// possible with the custodian's key.
			if e.Previous() != r.prev.Hash() || e.Next() != r.st.Hash() {
				t.Fatal("a succession for another pair checks")
			}
		}
		if err != nil && genuine[string(b)] {
			t.Fatalf("a genuine succession does not check: %v", err)
		}
	})
}
