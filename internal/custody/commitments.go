package custody

import (
	"bytes"
	"fmt"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
	"golang.org/x/crypto/cryptobyte"
)

// Commitments are the Feldman commitments of a split: the points a_j·G for
// the coefficients a_0 = seed, a_1, …, a_{k-1} of the sharing polynomial.
// With them anyone holding share (i, f(i)) checks f(i)·G = Σ a_j·G·i^j
// without learning anything else. They are public, published with the
// policy.
//
// a_0·G = seed·G is among them: the seed is hidden from a holder of fewer
// than k shares only computationally (discrete logarithm on P-256), not
// information-theoretically as with plain Shamir. That is the price of
// letting custodians check their shares; docs/design/custody.md weighs it.
//
// Encoding (Bytes, ParseCommitments):
//
//	"ccom" | uint8 version = 1
//	opaque policy_id[32]
//	uint8  k
//	opaque points[k][33]   compressed P-256 points, a_0·G first
type Commitments struct {
	policy PolicyID
	points []group.Element
}

// ParseCommitments decodes the encoding Bytes produces. Whether the
// commitments fit a given policy is checked where they are used.
func ParseCommitments(b []byte) (*Commitments, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, magicCommitments, "commitments"); err != nil {
		return nil, err
	}
	c := &Commitments{}
	var k uint8
	if !s.CopyBytes(c.policy[:]) || !s.ReadUint8(&k) {
		return nil, fmt.Errorf("%w: commitments: truncated", ErrMalformed)
	}
	if k < MinThreshold || k > MaxCustodians {
		return nil, fmt.Errorf("%w: commitments: %d points, need %d..%d", ErrMalformed, k, MinThreshold, MaxCustodians)
	}
	for i := range int(k) {
		var raw []byte
		if !s.ReadBytes(&raw, compressedLen) {
			return nil, fmt.Errorf("%w: commitments: truncated", ErrMalformed)
		}
		e, err := parsePoint(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: commitments: point %d: %v", ErrMalformed, i, err)
		}
		c.points = append(c.points, e)
	}
	if err := finish(s, "commitments"); err != nil {
		return nil, err
	}
	return c, nil
}

// parsePoint decodes one compressed point, refusing the identity and any
// encoding other than the canonical one.
func parsePoint(raw []byte) (group.Element, error) {
	if raw[0] != 2 && raw[0] != 3 {
		return nil, fmt.Errorf("not a compressed point")
	}
	e := group.P256.NewElement()
	if err := e.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("not a P-256 point")
	}
	again, err := e.MarshalBinaryCompress()
	if err != nil || !bytes.Equal(again, raw) {
		return nil, fmt.Errorf("not a canonical encoding")
	}
	return e, nil
}

// Bytes returns the commitments' encoding.
func (c *Commitments) Bytes() []byte {
	var b cryptobyte.Builder
	addHeader(&b, magicCommitments)
	b.AddBytes(c.policy[:])
	b.AddUint8(uint8(len(c.points)))
	for _, e := range c.points {
		raw, err := e.MarshalBinaryCompress()
		if err != nil {
			b.SetError(err)
			break
		}
		b.AddBytes(raw)
	}
	// Every point was decoded or computed as a non-identity point, which
	// always encodes.
	return b.BytesOrPanic()
}

// PolicyID returns the policy the commitments were made under.
func (c *Commitments) PolicyID() PolicyID { return c.policy }

// check reports whether c belongs to p.
func (c *Commitments) check(p *Policy) error {
	if c.policy != p.id {
		return fmt.Errorf("custody: commitments are for policy %s, not %s: %w", c.policy, p.id, ErrMismatch)
	}
	if len(c.points) != p.k {
		return fmt.Errorf("custody: %d commitments for a policy with k = %d: %w", len(c.points), p.k, ErrMismatch)
	}
	return nil
}

// verify reports whether value is custodian index's share of the secret
// the commitments describe.
func (c *Commitments) verify(index int, value []byte) bool {
	s, ok := shareFromBytes(index, value)
	if !ok {
		return false
	}
	defer s.Value.SetUint64(0)
	return secretsharing.Verify(uint(len(c.points)-1), s, c.points)
}

// shareFromBytes converts a slot and a share value to circl's form; false
// if the value is not a scalar (not below n).
func shareFromBytes(index int, value []byte) (secretsharing.Share, bool) {
	v := group.P256.NewScalar()
	if err := v.UnmarshalBinary(value); err != nil {
		return secretsharing.Share{}, false
	}
	id := group.P256.NewScalar()
	id.SetUint64(uint64(index))
	return secretsharing.Share{ID: id, Value: v}, true
}

// commitsTo reports whether seed·G is the first commitment, the final check
// of a reconstruction.
func (c *Commitments) commitsTo(seed group.Scalar) bool {
	return group.P256.NewElement().MulGen(seed).IsEqual(c.points[0])
}
