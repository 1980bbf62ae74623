package custody

import (
	"crypto/ecdsa"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"candor"

	"golang.org/x/crypto/cryptobyte"
)

// RequestID identifies an opening request: the SHA-256 of the request as
// it is entered in the access transparency log. The request must name the
// opening's one-time public key, so that approving the request id and
// sealing to that key are the same decision.
type RequestID [idLen]byte

// String returns the id in hex.
func (id RequestID) String() string { return hex.EncodeToString(id[:]) }

// An OpeningKey is the one-time HPKE key pair of one opening. The opener
// makes it, puts the public half in the request, receives the custodians'
// approvals sealed to it, and discards it after Reconstruct. It prints and
// logs as its public half only.
type OpeningKey struct {
	k hpke.PrivateKey
}

// NewOpeningKey makes a fresh opening key from crypto/rand.
func NewOpeningKey() (*OpeningKey, error) {
	k, err := hpkeKEM.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("custody: generating opening key: %w", err)
	}
	return &OpeningKey{k: k}, nil
}

// PublicKey returns the public half, which the opening request carries.
func (o *OpeningKey) PublicKey() *OpeningPublicKey { return &OpeningPublicKey{k: o.k.PublicKey()} }

// String shows the public half only.
func (o *OpeningKey) String() string { return "custody.OpeningKey(" + o.PublicKey().String() + ")" }

// GoString shows the public half only.
func (o *OpeningKey) GoString() string { return o.String() }

// LogValue logs the public half only.
func (o *OpeningKey) LogValue() slog.Value { return slog.StringValue(o.PublicKey().String()) }

// An OpeningPublicKey is the public half of an OpeningKey.
type OpeningPublicKey struct {
	k hpke.PublicKey
}

// ParseOpeningPublicKey decodes an uncompressed P-256 point.
func ParseOpeningPublicKey(b []byte) (*OpeningPublicKey, error) {
	k, err := hpkeKEM.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: opening key is not an uncompressed P-256 point", ErrMalformed)
	}
	return &OpeningPublicKey{k: k}, nil
}

// Bytes returns the uncompressed point.
func (o *OpeningPublicKey) Bytes() []byte { return o.k.Bytes() }

// Equal reports whether o and q are the same key.
func (o *OpeningPublicKey) Equal(q *OpeningPublicKey) bool {
	return subtle.ConstantTimeCompare(o.k.Bytes(), q.k.Bytes()) == 1
}

// String returns the point in hex.
func (o *OpeningPublicKey) String() string { return hex.EncodeToString(o.k.Bytes()) }

// An Approval is one custodian's consent to one opening request: their
// share, sealed to the opening's one-time key, and their signature over the
// whole. Anyone can check who approved what (Verify); only the opener can
// read the share.
//
// Encoding (Bytes, ParseApproval):
//
//	"capp" | uint8 version = 1
//	opaque policy_id[32]
//	opaque request_id[32]
//	uint8  index                 the custodian's slot, 1..n
//	opaque opening_key[65]       uncompressed P-256 point
//	opaque sealed[113]           HPKE enc[65] | AES-256-GCM(share value[32])
//	opaque signature<1..72>      ASN.1 ECDSA P-256 with SHA-256
//
// The signature covers approvalSignatureContext, a zero byte, and every
// byte before the signature field. The HPKE info binds the organisation,
// archive key id, policy id, request id and slot, so an approval that is
// re-signed onto another request (by a custodian tricked into it) still
// does not open there.
type Approval struct {
	policy    PolicyID
	request   RequestID
	index     int
	opening   *OpeningPublicKey
	sealed    []byte
	signature []byte
}

const approvalSignatureContext = "candor custody approval signature v1"

// ParseApproval decodes the encoding Bytes produces. It does not check the
// signature: Verify does, against a policy.
func ParseApproval(b []byte) (*Approval, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, magicApproval, "approval"); err != nil {
		return nil, err
	}
	a := &Approval{}
	var index uint8
	var opening, sealed []byte
	var sig cryptobyte.String
	if !s.CopyBytes(a.policy[:]) || !s.CopyBytes(a.request[:]) || !s.ReadUint8(&index) ||
		!s.ReadBytes(&opening, pointLen) || !s.ReadBytes(&sealed, sealedLen) ||
		!s.ReadUint8LengthPrefixed(&sig) {
		return nil, fmt.Errorf("%w: approval: truncated", ErrMalformed)
	}
	if err := finish(s, "approval"); err != nil {
		return nil, err
	}
	if index < 1 || index > MaxCustodians {
		return nil, fmt.Errorf("%w: approval: custodian index %d outside 1..%d", ErrMalformed, index, MaxCustodians)
	}
	if len(sig) == 0 || len(sig) > maxSignatureLen {
		return nil, fmt.Errorf("%w: approval: signature of %d bytes", ErrMalformed, len(sig))
	}
	var err error
	if a.opening, err = ParseOpeningPublicKey(opening); err != nil {
		return nil, fmt.Errorf("approval: %w", err)
	}
	a.index = int(index)
	a.sealed = append([]byte(nil), sealed...)
	a.signature = append([]byte(nil), sig...)
	return a, nil
}

// signed encodes every field before the signature.
func (a *Approval) signed() []byte {
	var b cryptobyte.Builder
	addHeader(&b, magicApproval)
	b.AddBytes(a.policy[:])
	b.AddBytes(a.request[:])
	b.AddUint8(uint8(a.index))
	b.AddBytes(a.opening.Bytes())
	b.AddBytes(a.sealed)
	return b.BytesOrPanic()
}

// digest is what the custodian signs.
func (a *Approval) digest() []byte {
	h := sha256.New()
	h.Write([]byte(approvalSignatureContext))
	h.Write([]byte{0})
	h.Write(a.signed())
	return h.Sum(nil)
}

// Bytes returns the approval's encoding.
func (a *Approval) Bytes() []byte {
	b := cryptobyte.NewBuilder(a.signed())
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(a.signature) })
	return b.BytesOrPanic()
}

// Index returns the approving custodian's slot.
func (a *Approval) Index() int { return a.index }

// RequestID returns the request approved.
func (a *Approval) RequestID() RequestID { return a.request }

// PolicyID returns the policy the approval was made under.
func (a *Approval) PolicyID() PolicyID { return a.policy }

// OpeningKey returns the one-time key the share is sealed to.
func (a *Approval) OpeningKey() *OpeningPublicKey { return a.opening }

// Verify checks that the approval belongs to p and is signed by the
// custodian in its slot. It needs no secret: auditors run it on approvals
// in the access log. Errors wrap ErrMismatch or ErrBadSignature; a bad
// signature is a CustodianError naming the slot it claims.
func (a *Approval) Verify(p *Policy) error {
	if a.policy != p.id {
		return fmt.Errorf("custody: approval is for policy %s, not %s: %w", a.policy, p.id, ErrMismatch)
	}
	slot, err := p.Custodian(a.index)
	if err != nil {
		return err
	}
	if !ecdsa.VerifyASN1(slot.PublicKey.sig, a.digest(), a.signature) {
		return p.custodianError(a.index, ErrBadSignature)
	}
	return nil
}

// Approve releases the custodian's share to one opening: it opens and
// checks the share as OpenShare does, seals it to the request's one-time
// key, bound to the request id, and signs the approval. The caller must
// first have checked that the request, naming this opening key, is in the
// access log under a checkpoint the custodian verified.
func (k *CustodianKey) Approve(p *Policy, c *Commitments, s *SealedShare, request RequestID, opening *OpeningPublicKey) (*Approval, error) {
	share, err := k.OpenShare(p, c, s)
	if err != nil {
		return nil, err
	}
	defer share.Destroy()
	return k.approve(p, share, request, opening)
}

// approve seals and signs a share already checked by the caller.
func (k *CustodianKey) approve(p *Policy, share *Share, request RequestID, opening *OpeningPublicKey) (*Approval, error) {
	info := bindingInfo("approval", p, &request, share.index)
	ct, err := hpke.Seal(opening.k, hpkeKDF, hpkeAEAD, info, share.value[:])
	if err != nil {
		return nil, fmt.Errorf("custody: sealing approval: %w", err)
	}
	a := &Approval{policy: p.id, request: request, index: share.index, opening: opening, sealed: ct}
	if a.signature, err = ecdsa.SignASN1(rand.Reader, k.sig, a.digest()); err != nil {
		return nil, fmt.Errorf("custody: signing approval: %w", err)
	}
	return a, nil
}

// Reconstruct rebuilds the seed for one opening from the custodians'
// approvals. Every approval must belong to p and to request, be sealed to
// o, carry a valid signature from its slot's custodian, open, and match the
// commitments c. Each one that does not is reported as a CustodianError
// naming the custodian, and nothing is reconstructed: a tampered approval
// is a reason to stop and look, not to route around. With no bad approval
// but fewer than K distinct custodians, it fails with ErrNotEnoughShares.
func Reconstruct(p *Policy, c *Commitments, request RequestID, o *OpeningKey, approvals []*Approval) (*Seed, error) {
	if err := c.check(p); err != nil {
		return nil, err
	}
	var errs []error
	var shares []*Share
	defer func() {
		for _, s := range shares {
			s.Destroy()
		}
	}()
	seen := make(map[int]bool, len(approvals))
	for i, a := range approvals {
		if a == nil {
			return nil, fmt.Errorf("custody: approval %d is nil: %w", i, candor.ErrInvalid)
		}
		share, err := openApproval(p, c, request, o, a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[a.index] {
			errs = append(errs, p.custodianError(a.index, fmt.Errorf("more than one approval: %w", ErrMismatch)))
			share.Destroy()
			continue
		}
		seen[a.index] = true
		shares = append(shares, share)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(shares) < p.k {
		return nil, fmt.Errorf("%w: %d of the %d needed", ErrNotEnoughShares, len(shares), p.k)
	}
	return combine(c, shares[:p.k])
}

// openApproval checks one approval and returns the share inside it.
func openApproval(p *Policy, c *Commitments, request RequestID, o *OpeningKey, a *Approval) (*Share, error) {
	if err := a.Verify(p); err != nil {
		return nil, err
	}
	if a.request != request {
		return nil, p.custodianError(a.index, fmt.Errorf("approval is for request %s: %w", a.request, ErrMismatch))
	}
	if !a.opening.Equal(o.PublicKey()) {
		return nil, p.custodianError(a.index, fmt.Errorf("approval is sealed to another opening key: %w", ErrMismatch))
	}
	value, err := hpke.Open(o.k, hpkeKDF, hpkeAEAD, bindingInfo("approval", p, &request, a.index), a.sealed)
	if err != nil {
		return nil, p.custodianError(a.index, ErrDecrypt)
	}
	defer clear(value)
	if len(value) != scalarLen || !c.verify(a.index, value) {
		return nil, p.custodianError(a.index, ErrBadShare)
	}
	s := &Share{index: a.index}
	copy(s.value[:], value)
	return s, nil
}
