package custody

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// endorsementSignatureContext separates an endorsement from an approval:
// the custodian's one signature key makes both, and neither may pass for
// the other.
const endorsementSignatureContext = "candor custody endorsement signature v1"

// endorsementDigest is what a custodian in slot index signs to endorse
// document under policy p.
func endorsementDigest(p *Policy, index int, document [idLen]byte) []byte {
	h := sha256.New()
	h.Write([]byte(endorsementSignatureContext))
	h.Write([]byte{0})
	h.Write(p.id[:])
	h.Write([]byte{byte(index)})
	h.Write(document[:])
	return h.Sum(nil)
}

// Endorse is a custodian's signature on the document that publishes p, c
// and s: document is its SHA-256 (the archive statement, see
// internal/ceremony). It first opens and checks the share as OpenShare
// does, and signs only a share that matches the commitments, so an
// endorsement says "my share of this policy's secret is real, and I vouch
// for this document". The signature is ASN.1 ECDSA P-256 with SHA-256 over
// endorsementSignatureContext, a zero byte, the policy id, the slot and
// document.
func (k *CustodianKey) Endorse(p *Policy, c *Commitments, s *SealedShare, document [32]byte) ([]byte, error) {
	share, err := k.OpenShare(p, c, s)
	if err != nil {
		return nil, err
	}
	share.Destroy()
	sig, err := ecdsa.SignASN1(rand.Reader, k.sig, endorsementDigest(p, s.index, document))
	if err != nil {
		return nil, fmt.Errorf("custody: signing endorsement: %w", err)
	}
	return sig, nil
}

// VerifyEndorsement checks that sig is the endorsement of document by the
// custodian in slot index of p. It needs no secret. A signature that does
// not verify is a CustodianError wrapping ErrBadSignature.
func (p *Policy) VerifyEndorsement(index int, document [32]byte, sig []byte) error {
	slot, err := p.Custodian(index)
	if err != nil {
		return err
	}
	if len(sig) == 0 || len(sig) > maxSignatureLen ||
		!ecdsa.VerifyASN1(slot.PublicKey.sig, endorsementDigest(p, index, document), sig) {
		return p.custodianError(index, ErrBadSignature)
	}
	return nil
}
