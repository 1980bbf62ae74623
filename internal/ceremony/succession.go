package ceremony

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"candor/internal/custody"

	"golang.org/x/crypto/cryptobyte"
)

// magicSuccession opens a succession's encoding.
const magicSuccession = "csuc"

// Why a successor is refused. VerifySuccession's errors wrap one of these,
// or custody.CustodianError values that name a custodian.
var (
	// ErrNotSuccessor: the new statement cannot follow the old one at all
	// (another organisation, the same key id, made before it).
	ErrNotSuccessor = errors.New("ceremony: not a successor of the archive")
	// ErrMissingSuccession: fewer than K of the previous archive's
	// custodians have endorsed the new statement as its successor.
	ErrMissingSuccession = errors.New("ceremony: too few successions")
	// ErrOtherSuccession: a succession names another pair of statements.
	ErrOtherSuccession = errors.New("ceremony: succession is for other statements")
)

// A Succession is one custodian of an archive key saying, with the
// custodian key they hold for it, that a new statement succeeds that
// archive's statement: the organisation's move to a new archive key
// (docs/design/custody.md, "Succession"). A client that pinned the old
// statement moves to the new one only when K of the old custodians say so
// and all of the new ones endorse it, so neither a server holding the CA
// key nor the new custodians alone can move an organisation's record to a
// key of their choosing. It is public.
//
// Encoding (Bytes, ParseSuccession):
//
//	"csuc" | uint8 version = 1
//	opaque previous_statement_hash[32]
//	opaque next_statement_hash[32]
//	uint8  slot                   the custodian's slot in the previous policy, 1..n
//	opaque signature<1..72>       ASN.1 ECDSA P-256 with SHA-256
//
// The signature is custody's (CustodianKey.Succeed), under a context
// string of its own, so it is neither an endorsement nor an approval.
type Succession struct {
	previous, next Hash
	slot           int
	signature      []byte
}

// ParseSuccession decodes the encoding Bytes produces and nothing else. It
// does not check the signature: VerifySuccession does.
func ParseSuccession(b []byte) (*Succession, error) {
	s := cryptobyte.String(b)
	var magic []byte
	var version, slot uint8
	var sig cryptobyte.String
	if !s.ReadBytes(&magic, len(magicSuccession)) || string(magic) != magicSuccession {
		return nil, fmt.Errorf("%w: not an archive succession", ErrMalformed)
	}
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: succession: truncated", ErrMalformed)
	}
	if version != formatVersion {
		return nil, fmt.Errorf("%w: succession: format version %d, this build reads version %d", ErrMalformed, version, formatVersion)
	}
	e := &Succession{}
	if !s.CopyBytes(e.previous[:]) || !s.CopyBytes(e.next[:]) || !s.ReadUint8(&slot) || !s.ReadUint8LengthPrefixed(&sig) {
		return nil, fmt.Errorf("%w: succession: truncated", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: succession: %d trailing bytes", ErrMalformed, len(s))
	}
	if slot < 1 || slot > custody.MaxCustodians {
		return nil, fmt.Errorf("%w: succession: custodian slot %d outside 1..%d", ErrMalformed, slot, custody.MaxCustodians)
	}
	if len(sig) == 0 || len(sig) > maxSignatureLen {
		return nil, fmt.Errorf("%w: succession: signature of %d bytes", ErrMalformed, len(sig))
	}
	if e.previous == e.next {
		return nil, fmt.Errorf("%w: succession: a statement cannot succeed itself", ErrMalformed)
	}
	e.slot = int(slot)
	e.signature = append([]byte(nil), sig...)
	return e, nil
}

// Bytes returns the succession's encoding.
func (e *Succession) Bytes() []byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte(magicSuccession))
	b.AddUint8(formatVersion)
	b.AddBytes(e.previous[:])
	b.AddBytes(e.next[:])
	b.AddUint8(uint8(e.slot))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.signature) })
	// Slot and signature length were bounded where they were set.
	return b.BytesOrPanic()
}

// Previous returns the hash of the statement succeeded.
func (e *Succession) Previous() Hash { return e.previous }

// Next returns the hash of the successor statement.
func (e *Succession) Next() Hash { return e.next }

// Slot returns the custodian's slot in the previous statement's policy.
func (e *Succession) Slot() int { return e.slot }

// successorOf checks what next must be to follow prev at all, whoever
// signs for it: the same organisation, another archive key, made no
// earlier.
func successorOf(prev, next *Statement) error {
	var errs []error
	if prev.Organisation() != next.Organisation() {
		errs = append(errs, fmt.Errorf("%w: the new archive is organisation %q's, the old one %q's",
			ErrNotSuccessor, next.Organisation(), prev.Organisation()))
	}
	if prev.KeyID() == next.KeyID() {
		errs = append(errs, fmt.Errorf("%w: both are archive key %q", ErrNotSuccessor, next.KeyID()))
	}
	// Statements carry whole seconds: two ceremonies in one second are
	// in order, not one before the other.
	if next.Created().Before(prev.Created()) {
		errs = append(errs, fmt.Errorf("%w: the new archive was made at %v, before the old one (%v)",
			ErrNotSuccessor, next.Created(), prev.Created()))
	}
	return errors.Join(errs...)
}

// Succeed is what a custodian of the archive prev runs to hand it over to
// next: it checks that next can follow prev (same organisation, another
// key, made no earlier) and signs the pair with key, which must be one of
// prev's custodians' (custody.ErrMismatch otherwise). Checking next
// against the organisation's CA is the caller's step before this one
// (Check), as for Endorse.
func Succeed(prev, next *Statement, key *custody.CustodianKey) (*Succession, error) {
	if err := successorOf(prev, next); err != nil {
		return nil, err
	}
	if err := next.Consistent(); err != nil {
		return nil, err
	}
	slot, sig, err := key.Succeed(prev.policy, prev.hash, next.hash)
	if err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}
	return &Succession{previous: prev.hash, next: next.hash, slot: slot, signature: sig}, nil
}

// CheckSuccession checks that e is a succession of prev by next signed by
// the custodian of prev in the slot it names. Errors are
// custody.CustodianError values naming that custodian.
func CheckSuccession(prev, next *Statement, e *Succession) error {
	c, err := prev.policy.Custodian(e.slot)
	if err != nil {
		return fmt.Errorf("ceremony: succession: %w", err)
	}
	if e.previous != prev.hash || e.next != next.hash {
		return &custody.CustodianError{Index: e.slot, Name: c.Name,
			Err: fmt.Errorf("%w: %s to %s, not %s to %s", ErrOtherSuccession, e.previous, e.next, prev.hash, next.hash)}
	}
	return prev.policy.VerifySuccession(e.slot, prev.hash, next.hash, e.signature)
}

// VerifySuccession is what a client that pinned prev runs before it moves
// to next: next passes Check against the organisation's CA at now, can
// follow prev (same organisation, another key, made no earlier), every
// succession given is valid for the pair, and at least K distinct
// custodians of prev (K of its policy: as many as could open it) signed
// one. Whether next's own custodians all endorsed it is Verify's, which
// the client runs as well: moving takes both. As in Verify, one invalid
// succession fails the whole, however many valid ones there are.
func VerifySuccession(prev, next *Statement, successions []*Succession, ca *x509.Certificate, now time.Time) error {
	var errs []error
	if err := next.Check(ca, now); err != nil {
		errs = append(errs, err)
	}
	if err := successorOf(prev, next); err != nil {
		errs = append(errs, err)
	}
	signed := map[int]bool{}
	for _, e := range successions {
		if err := CheckSuccession(prev, next, e); err != nil {
			errs = append(errs, err)
			continue
		}
		signed[e.slot] = true
	}
	if k := prev.policy.K(); len(signed) < k {
		errs = append(errs, fmt.Errorf("%w: %d of archive key %q's custodians endorsed %q as its successor, %d must",
			ErrMissingSuccession, len(signed), prev.KeyID(), next.KeyID(), k))
	}
	return errors.Join(errs...)
}
