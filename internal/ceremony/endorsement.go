package ceremony

import (
	"fmt"

	"candor/internal/custody"

	"golang.org/x/crypto/cryptobyte"
)

// maxSignatureLen bounds an ASN.1 ECDSA P-256 signature: a SEQUENCE of two
// INTEGERs of at most 33 bytes each.
const maxSignatureLen = 72

// An Endorsement is one custodian's signature on a statement's hash, made
// after they opened their own sealed share and checked it against the
// statement's commitments (custody.CustodianKey.Endorse). It is public.
//
// Encoding (Bytes, ParseEndorsement):
//
//	"cend" | uint8 version = 1
//	opaque statement_hash[32]
//	uint8  slot                   the custodian's slot in the policy, 1..n
//	opaque signature<1..72>       ASN.1 ECDSA P-256 with SHA-256
//
// What the signature covers is custody's to define (the policy id, the slot
// and the statement hash, under a context string of its own), so that the
// custodian's key signs nothing here that could pass for an approval.
type Endorsement struct {
	statement Hash
	slot      int
	signature []byte
}

// ParseEndorsement decodes the encoding Bytes produces and nothing else. It
// does not check the signature: a Statement does (CheckEndorsement).
func ParseEndorsement(b []byte) (*Endorsement, error) {
	s := cryptobyte.String(b)
	var magic []byte
	var version, slot uint8
	var sig cryptobyte.String
	if !s.ReadBytes(&magic, len(magicEndorsement)) || string(magic) != magicEndorsement {
		return nil, fmt.Errorf("%w: not an archive statement endorsement", ErrMalformed)
	}
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: endorsement: truncated", ErrMalformed)
	}
	if version != formatVersion {
		return nil, fmt.Errorf("%w: endorsement: format version %d, this build reads version %d", ErrMalformed, version, formatVersion)
	}
	e := &Endorsement{}
	if !s.CopyBytes(e.statement[:]) || !s.ReadUint8(&slot) || !s.ReadUint8LengthPrefixed(&sig) {
		return nil, fmt.Errorf("%w: endorsement: truncated", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: endorsement: %d trailing bytes", ErrMalformed, len(s))
	}
	if slot < 1 || slot > custody.MaxCustodians {
		return nil, fmt.Errorf("%w: endorsement: custodian slot %d outside 1..%d", ErrMalformed, slot, custody.MaxCustodians)
	}
	if len(sig) == 0 || len(sig) > maxSignatureLen {
		return nil, fmt.Errorf("%w: endorsement: signature of %d bytes", ErrMalformed, len(sig))
	}
	e.slot = int(slot)
	e.signature = append([]byte(nil), sig...)
	return e, nil
}

// Bytes returns the endorsement's encoding.
func (e *Endorsement) Bytes() []byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte(magicEndorsement))
	b.AddUint8(formatVersion)
	b.AddBytes(e.statement[:])
	b.AddUint8(uint8(e.slot))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.signature) })
	// Slot and signature length were bounded where they were set.
	return b.BytesOrPanic()
}

// Statement returns the hash of the statement endorsed.
func (e *Endorsement) Statement() Hash { return e.statement }

// Slot returns the endorsing custodian's slot, 1..n.
func (e *Endorsement) Slot() int { return e.slot }

// Endorse is what a custodian runs on a statement they were handed: it
// checks that the statement is coherent (Consistent), finds the custodian's
// slot by their key, opens their sealed share and checks it against the
// commitments, and only then signs the statement's hash. Checking the
// statement against the organisation's CA is the caller's step before
// this one (Check), since it needs the CA certificate and a clock.
//
// Errors name the custodian (custody.CustodianError) when their share does
// not open (custody.ErrDecrypt) or does not match the commitments
// (custody.ErrBadShare); a key that is not in the policy wraps
// custody.ErrMismatch.
func Endorse(st *Statement, key *custody.CustodianKey) (*Endorsement, error) {
	if err := st.Consistent(); err != nil {
		return nil, err
	}
	slot, err := st.policy.IndexOf(key.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}
	sig, err := key.Endorse(st.policy, st.commitments, st.shares[slot-1], st.hash)
	if err != nil {
		return nil, fmt.Errorf("ceremony: endorsing: %w", err)
	}
	return &Endorsement{statement: st.hash, slot: slot, signature: sig}, nil
}
