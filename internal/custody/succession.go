package custody

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// successionSignatureContext separates a succession from an endorsement
// and an approval: the same custodian key makes all three, and none may
// pass for another. An endorsement of the new statement by a custodian who
// also held the old one is not a succession, and a succession is not an
// endorsement of the document it names.
const successionSignatureContext = "candor custody succession signature v1"

// successionDigest is what the custodian in slot index of p signs to say
// that the document next succeeds the document previous, which publishes
// p (archive statements, see internal/ceremony).
func successionDigest(p *Policy, index int, previous, next [idLen]byte) []byte {
	h := sha256.New()
	h.Write([]byte(successionSignatureContext))
	h.Write([]byte{0})
	h.Write(p.id[:])
	h.Write([]byte{byte(index)})
	h.Write(previous[:])
	h.Write(next[:])
	return h.Sum(nil)
}

// Succeed is a custodian's signature, as the custodian of p in their slot,
// saying that the document next (the SHA-256 of a new archive statement)
// succeeds previous (the SHA-256 of the statement that publishes p). It
// opens no share: what it vouches for is the hand-over, and the new
// statement's own custodians vouch for their shares by endorsing it. A key
// that is not in p wraps ErrMismatch. The signature is ASN.1 ECDSA P-256
// with SHA-256 over successionSignatureContext, a zero byte, p's id, the
// slot, previous and next.
func (k *CustodianKey) Succeed(p *Policy, previous, next [32]byte) (slot int, sig []byte, err error) {
	slot, err = p.IndexOf(k.PublicKey())
	if err != nil {
		return 0, nil, err
	}
	sig, err = ecdsa.SignASN1(rand.Reader, k.sig, successionDigest(p, slot, previous, next))
	if err != nil {
		return 0, nil, fmt.Errorf("custody: signing a succession: %w", err)
	}
	return slot, sig, nil
}

// VerifySuccession checks that sig is the succession of previous by next
// signed by the custodian in slot index of p. A signature that does not
// verify is a CustodianError wrapping ErrBadSignature.
func (p *Policy) VerifySuccession(index int, previous, next [32]byte, sig []byte) error {
	slot, err := p.Custodian(index)
	if err != nil {
		return err
	}
	if len(sig) == 0 || len(sig) > maxSignatureLen ||
		!ecdsa.VerifyASN1(slot.PublicKey.sig, successionDigest(p, index, previous, next), sig) {
		return p.custodianError(index, ErrBadSignature)
	}
	return nil
}
