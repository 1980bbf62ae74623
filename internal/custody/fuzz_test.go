package custody

import (
	"bytes"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"testing"
)

// Each decoder is fuzzed for two properties: whatever it accepts re-encodes
// to exactly the input (the encodings are canonical, so hashes identify
// objects), and whatever differs from the genuine object is refused where
// it is used.

// addMutations seeds f with b and a few damaged copies of it.
func addMutations(f *testing.F, b []byte) {
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Add(append(append([]byte(nil), b...), 0))
	for _, i := range []int{0, 4, 5, len(b) / 2, len(b) - 1} {
		m := append([]byte(nil), b...)
		m[i] ^= 0x01
		f.Add(m)
	}
}

func FuzzParsePolicy(f *testing.F) {
	c := newCeremony(f, 2, 3)
	addMutations(f, c.policy.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(p.Bytes(), b) {
			t.Fatalf("accepted %x, re-encodes as %x", b, p.Bytes())
		}
		if p.ID() != sha256.Sum256(b) {
			t.Fatal("policy id is not the hash of its encoding")
		}
	})
}

func FuzzParseCustodianPublicKey(f *testing.F) {
	addMutations(f, newKeys(f, 1)[0].PublicKey().Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseCustodianPublicKey(b)
		if err != nil {
			return
		}
		if !bytes.Equal(k.Bytes(), b) {
			t.Fatalf("accepted %x, re-encodes as %x", b, k.Bytes())
		}
	})
}

func FuzzParseCommitments(f *testing.F) {
	c := newCeremony(f, 2, 3)
	genuine := c.comm.Bytes()
	addMutations(f, genuine)
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, err := ParseCommitments(b)
		if err != nil {
			return
		}
		if !bytes.Equal(comm.Bytes(), b) {
			t.Fatalf("accepted %x, re-encodes as %x", b, comm.Bytes())
		}
		_, err = c.keys[0].OpenShare(c.policy, comm, c.sealed[0])
		if !bytes.Equal(b, genuine) && err == nil {
			t.Fatal("a share verified against altered commitments")
		}
	})
}

func FuzzParseSealedShare(f *testing.F) {
	c := newCeremony(f, 2, 3)
	genuine := c.sealed[0].Bytes()
	addMutations(f, genuine)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSealedShare(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Bytes(), b) {
			t.Fatalf("accepted %x, re-encodes as %x", b, s.Bytes())
		}
		_, err = c.keys[0].OpenShare(c.policy, c.comm, s)
		if !bytes.Equal(b, genuine) && err == nil {
			t.Fatal("an altered sealed share opened")
		}
	})
}

func FuzzParseApproval(f *testing.F) {
	c := newCeremony(f, 2, 3)
	a1, a2, a3 := c.approve(f, 1), c.approve(f, 2), c.approve(f, 3)
	addMutations(f, a2.Bytes())
	addMutations(f, a3.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseApproval(b)
		if err != nil {
			return
		}
		if !bytes.Equal(a.Bytes(), b) {
			t.Fatalf("accepted %x, re-encodes as %x", b, a.Bytes())
		}
		seed, err := Reconstruct(c.policy, c.comm, c.request, c.opening, []*Approval{a1, a})
		if err != nil {
			return
		}
		// ECDSA signatures are malleable, so only the signed part must
		// be genuine for an approval to count.
		if !bytes.Equal(a.signed(), a2.signed()) && !bytes.Equal(a.signed(), a3.signed()) {
			t.Fatalf("an altered approval was accepted: %x", b)
		}
		if !seed.Equal(c.seed) {
			t.Fatal("reconstructed a different seed")
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	// A structurally valid file without running PBKDF2 for every seed.
	k := newKeys(f, 1)[0]
	file := &keyFile{iterations: keyFileIterations, public: k.pub, sealed: bytes.Repeat([]byte{7}, keyFileSealed)}
	f.Add(file.encode())
	block, _ := pem.Decode(file.encode())
	for _, i := range []int{4, 5, 6, 9, 30, len(block.Bytes) - 1} {
		m := append([]byte(nil), block.Bytes...)
		m[i] ^= 0x40
		f.Add(pem.EncodeToMemory(&pem.Block{Type: keyFilePEMType, Bytes: m}))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := parseKeyFile(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// PEM allows spacing variations, so compare the decoded body.
		block, _ := pem.Decode(b)
		if got := append(kf.header(), kf.sealed...); !bytes.Equal(got, block.Bytes) {
			t.Fatalf("accepted %x, re-encodes as %x", block.Bytes, got)
		}
	})
}
