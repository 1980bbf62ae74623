package custody

import (
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cloudflare/circl/secretsharing"
	"golang.org/x/crypto/cryptobyte"
)

// A SealedShare is one custodian's share of the seed, sealed with HPKE to
// that custodian's key. The server may store it: only the custodian can
// open it.
//
// Encoding (Bytes, ParseSealedShare):
//
//	"csha" | uint8 version = 1
//	opaque policy_id[32]
//	uint8  index            the custodian's slot, 1..n
//	opaque sealed[113]      HPKE enc[65] | AES-256-GCM(share value[32])
//
// The HPKE info is shareInfo: the organisation, archive key id, policy id
// and slot. A sealed share moved into another slot, policy or organisation
// (even one whose custodian holds the same key) does not open.
type SealedShare struct {
	policy PolicyID
	index  int
	sealed []byte
}

// ParseSealedShare decodes the encoding Bytes produces.
func ParseSealedShare(b []byte) (*SealedShare, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, magicSealedShare, "sealed share"); err != nil {
		return nil, err
	}
	sh := &SealedShare{}
	var index uint8
	if !s.CopyBytes(sh.policy[:]) || !s.ReadUint8(&index) || !s.ReadBytes(&sh.sealed, sealedLen) {
		return nil, fmt.Errorf("%w: sealed share: truncated", ErrMalformed)
	}
	if err := finish(s, "sealed share"); err != nil {
		return nil, err
	}
	if index < 1 || index > MaxCustodians {
		return nil, fmt.Errorf("%w: sealed share: custodian index %d outside 1..%d", ErrMalformed, index, MaxCustodians)
	}
	sh.index = int(index)
	sh.sealed = append([]byte(nil), sh.sealed...)
	return sh, nil
}

// Bytes returns the sealed share's encoding.
func (s *SealedShare) Bytes() []byte {
	var b cryptobyte.Builder
	addHeader(&b, magicSealedShare)
	b.AddBytes(s.policy[:])
	b.AddUint8(uint8(s.index))
	b.AddBytes(s.sealed)
	return b.BytesOrPanic()
}

// Index returns the custodian slot the share is sealed for.
func (s *SealedShare) Index() int { return s.index }

// PolicyID returns the policy the share was made under.
func (s *SealedShare) PolicyID() PolicyID { return s.policy }

// bindingInfo is the HPKE info of a sealed share (label "share") or an
// approval (label "approval", with the request id): it names everything the
// ciphertext must not be moved away from.
func bindingInfo(label string, p *Policy, request *RequestID, index int) []byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte("candor custody " + label + " v1"))
	b.AddUint8(0)
	addText(&b, p.org)
	addText(&b, p.keyID)
	b.AddBytes(p.id[:])
	if request != nil {
		b.AddBytes(request[:])
	}
	b.AddUint8(uint8(index))
	return b.BytesOrPanic()
}

// A Share is one custodian's decrypted share: their slot and f(slot). It is
// secret; it prints and logs without its value.
type Share struct {
	index int
	value [scalarLen]byte
}

// Index returns the custodian slot the share belongs to.
func (s *Share) Index() int { return s.index }

// String never shows the share's value.
func (s *Share) String() string { return fmt.Sprintf("custody.Share(custodian %d, REDACTED)", s.index) }

// GoString never shows the share's value.
func (s *Share) GoString() string { return s.String() }

// LogValue never logs the share's value.
func (s *Share) LogValue() slog.Value { return slog.GroupValue(slog.Int("custodian", s.index)) }

// Destroy overwrites the share's value.
func (s *Share) Destroy() { clear(s.value[:]) }

// Split is the heart of the custody ceremony: it splits seed among the
// policy's custodians so that any K of them can rebuild it, and returns the
// public commitments and one sealed share per custodian, in slot order.
// Each share is checked against the commitments before it is sealed.
//
// circl's polynomial arithmetic on P-256 is not constant time and keeps the
// coefficients in big.Int values this package cannot wipe: run the ceremony
// on a machine that is trusted for the seed anyway, and end the process
// after it.
func Split(p *Policy, seed *Seed) (*Commitments, []*SealedShare, error) {
	secret, err := seed.scalar()
	if err != nil {
		return nil, nil, err
	}
	defer secret.SetUint64(0)
	ss := secretsharing.New(rand.Reader, uint(p.k-1), secret)
	comm := &Commitments{policy: p.id, points: ss.CommitSecret()}
	for i, e := range comm.points {
		if e.IsIdentity() {
			// Only when a random coefficient is zero: probability 2^-256.
			return nil, nil, fmt.Errorf("custody: commitment %d is the identity; split again", i)
		}
	}
	shares := ss.Share(uint(len(p.custodians)))
	defer func() {
		for _, s := range shares {
			s.Value.SetUint64(0)
		}
	}()
	sealed := make([]*SealedShare, len(shares))
	for i, s := range shares {
		index := i + 1
		if !secretsharing.Verify(uint(p.k-1), s, comm.points) {
			return nil, nil, fmt.Errorf("custody: share %d fails its own commitments", index)
		}
		value, err := s.Value.MarshalBinary()
		if err != nil {
			return nil, nil, err
		}
		pub := p.custodians[i].PublicKey.hpke
		ct, err := hpke.Seal(pub, hpkeKDF, hpkeAEAD, bindingInfo("share", p, nil, index), value)
		clear(value)
		if err != nil {
			return nil, nil, fmt.Errorf("custody: sealing share %d: %w", index, err)
		}
		sealed[i] = &SealedShare{policy: p.id, index: index, sealed: ct}
	}
	return comm, sealed, nil
}

// OpenShare decrypts the custodian's sealed share and checks it against the
// published commitments: what a custodian runs after the ceremony to know
// that what they hold is a real share of the published secret. It fails
// with ErrMismatch if the share, commitments or key do not belong to p and
// its slot, ErrDecrypt if the share does not open, and ErrBadShare if it
// opens but does not match the commitments.
func (k *CustodianKey) OpenShare(p *Policy, c *Commitments, s *SealedShare) (*Share, error) {
	if err := c.check(p); err != nil {
		return nil, err
	}
	if s.policy != p.id {
		return nil, fmt.Errorf("custody: share is for policy %s, not %s: %w", s.policy, p.id, ErrMismatch)
	}
	slot, err := p.Custodian(s.index)
	if err != nil {
		return nil, err
	}
	if !slot.PublicKey.Equal(k.pub) {
		return nil, fmt.Errorf("custody: share is for custodian %d (%q), not key %s: %w",
			s.index, slot.Name, k.pub.Fingerprint(), ErrMismatch)
	}
	value, err := hpke.Open(k.hpke, hpkeKDF, hpkeAEAD, bindingInfo("share", p, nil, s.index), s.sealed)
	if err != nil {
		return nil, p.custodianError(s.index, ErrDecrypt)
	}
	defer clear(value)
	if len(value) != scalarLen || !c.verify(s.index, value) {
		return nil, p.custodianError(s.index, ErrBadShare)
	}
	sh := &Share{index: s.index}
	copy(sh.value[:], value)
	return sh, nil
}

// combine interpolates the seed from k shares that were each checked
// against c, and checks the result against the first commitment.
func combine(c *Commitments, shares []*Share) (*Seed, error) {
	in := make([]secretsharing.Share, len(shares))
	defer func() {
		for _, s := range in {
			if s.Value != nil {
				s.Value.SetUint64(0)
			}
		}
	}()
	for i, s := range shares {
		v, ok := shareFromBytes(s.index, s.value[:])
		if !ok {
			return nil, fmt.Errorf("custody: share %d is not a scalar", s.index)
		}
		in[i] = v
	}
	secret, err := secretsharing.Recover(uint(len(c.points)-1), in)
	if err != nil {
		return nil, fmt.Errorf("custody: recovering the seed: %w", err)
	}
	defer secret.SetUint64(0)
	// Every share matched the commitments, so the polynomial through them
	// is the committed one; this guards the arithmetic itself.
	if !c.commitsTo(secret) {
		return nil, errors.New("custody: recovered seed does not match the first commitment")
	}
	return seedFromScalar(secret)
}
