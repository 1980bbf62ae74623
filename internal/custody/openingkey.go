package custody

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Bytes returns the opening key's private scalar, for the opener to keep
// between making the request and receiving the approvals (the opening
// tool's key file). Whoever holds it and k logged approvals can rebuild
// the archive's seed: the caller keeps it as it would the seed, and
// clears the slice.
func (o *OpeningKey) Bytes() ([]byte, error) {
	b, err := o.k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("custody: encoding opening key: %w", err)
	}
	return b, nil
}

// ParseOpeningKey rebuilds an opening key from the scalar Bytes returns.
func ParseOpeningKey(b []byte) (*OpeningKey, error) {
	k, err := hpkeKEM.NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: opening key is not a P-256 private scalar", ErrMalformed)
	}
	return &OpeningKey{k: k}, nil
}

// Fingerprint is what the opener reads to each custodian, who sees the
// same when reviewing the request: the first 16 bytes of the key's
// SHA-256, in groups of four hex digits.
func (o *OpeningPublicKey) Fingerprint() string {
	sum := sha256.Sum256(o.Bytes())
	h := hex.EncodeToString(sum[:16])
	parts := make([]string, 0, len(h)/4)
	for i := 0; i < len(h); i += 4 {
		parts = append(parts, h[i:i+4])
	}
	return strings.Join(parts, " ")
}
