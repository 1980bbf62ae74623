package custody

import (
	"crypto/sha256"
	"errors"
	"testing"
)

// An endorsement is made only over a share that opens and matches the
// commitments, verifies for its slot and document only, and no approval
// signature passes for one.
func TestEndorse(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 2, 3)
	doc := sha256.Sum256([]byte("an archive statement"))
	sig, err := c.keys[1].Endorse(c.policy, c.comm, c.sealed[1], doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.policy.VerifyEndorsement(2, doc, sig); err != nil {
		t.Fatalf("VerifyEndorsement: %v", err)
	}

	other := sha256.Sum256([]byte("another statement"))
	approval := c.approve(t, 2).signature
	tests := []struct {
		name string
		slot int
		doc  [32]byte
		sig  []byte
		want error
	}{
		{"another document", 2, other, sig, ErrBadSignature},
		{"another custodian's slot", 1, doc, sig, ErrBadSignature},
		{"a slot outside the policy", 4, doc, sig, ErrMismatch},
		{"an approval's signature", 2, doc, approval, ErrBadSignature},
		{"no signature", 2, doc, nil, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := c.policy.VerifyEndorsement(tt.slot, tt.doc, tt.sig)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyEndorsement = %v, want %v", err, tt.want)
			}
		})
	}

	// A share that does not open or does not match is not endorsed, and
	// the custodian is named.
	otherSplit := newCeremonyWith(t, c.policy, c.keys)
	var ce *CustodianError
	if _, err := c.keys[0].Endorse(c.policy, c.comm, otherSplit.sealed[0], doc); !errors.Is(err, ErrBadShare) || !errors.As(err, &ce) || ce.Index != 1 {
		t.Errorf("a share of another split: %v, want a CustodianError for slot 1 wrapping ErrBadShare", err)
	}
	if _, err := c.keys[0].Endorse(c.policy, c.comm, relabel(c.sealed[1], c.policy.ID(), 1), doc); !errors.Is(err, ErrDecrypt) {
		t.Errorf("custodian 2's sealed share relabelled for slot 1: %v, want ErrDecrypt", err)
	}
	if _, err := c.keys[0].Endorse(c.policy, c.comm, c.sealed[1], doc); !errors.Is(err, ErrMismatch) {
		t.Errorf("another custodian's share: %v, want ErrMismatch", err)
	}
}
