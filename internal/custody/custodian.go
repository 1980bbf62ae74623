package custody

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"

	"golang.org/x/crypto/cryptobyte"
)

// The HPKE suite every sealed share and approval uses (RFC 9180 §7):
// DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. All three are
// FIPS-approved. AES-256 rather than AES-128 costs nothing at this size and
// leaves the P-256 exchange as the only 128-bit-strength link.
var (
	hpkeKEM  = hpke.DHKEM(ecdh.P256())
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.AES256GCM()
)

// A CustodianPublicKey is what a custodian publishes and what the policy
// lists for their slot: an HPKE key to which their share is sealed and an
// ECDSA P-256 key that verifies their approvals. Two keys rather than one
// used for both, because a key should serve one algorithm.
//
// Encoding (Bytes, ParseCustodianPublicKey):
//
//	"cpub" | uint8 version = 1
//	opaque hpke_key[65]       uncompressed P-256 point
//	opaque signature_key[65]  uncompressed P-256 point
type CustodianPublicKey struct {
	hpke hpke.PublicKey
	sig  *ecdsa.PublicKey
	raw  [2 * pointLen]byte // hpke_key || signature_key
}

// ParseCustodianPublicKey decodes the encoding Bytes produces.
func ParseCustodianPublicKey(b []byte) (*CustodianPublicKey, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, magicPublicKey, "custodian public key"); err != nil {
		return nil, err
	}
	var raw []byte
	if !s.ReadBytes(&raw, 2*pointLen) {
		return nil, fmt.Errorf("%w: custodian public key: truncated", ErrMalformed)
	}
	if err := finish(s, "custodian public key"); err != nil {
		return nil, err
	}
	return publicKeyFromRaw(raw)
}

// publicKeyFromRaw checks and decodes the two points of a public key.
func publicKeyFromRaw(raw []byte) (*CustodianPublicKey, error) {
	h, err := hpkeKEM.NewPublicKey(raw[:pointLen])
	if err != nil {
		return nil, fmt.Errorf("%w: custodian HPKE key is not a P-256 point", ErrMalformed)
	}
	sig, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw[pointLen:])
	if err != nil {
		return nil, fmt.Errorf("%w: custodian signature key is not a P-256 point", ErrMalformed)
	}
	if subtle.ConstantTimeCompare(raw[:pointLen], raw[pointLen:]) == 1 {
		return nil, fmt.Errorf("%w: custodian HPKE and signature keys are the same key", ErrMalformed)
	}
	p := &CustodianPublicKey{hpke: h, sig: sig}
	copy(p.raw[:], raw)
	return p, nil
}

// Bytes returns the public key's encoding.
func (p *CustodianPublicKey) Bytes() []byte {
	var b cryptobyte.Builder
	addHeader(&b, magicPublicKey)
	b.AddBytes(p.raw[:])
	return b.BytesOrPanic()
}

// Equal reports whether p and q are the same key pair's public half.
func (p *CustodianPublicKey) Equal(q *CustodianPublicKey) bool {
	return subtle.ConstantTimeCompare(p.raw[:], q.raw[:]) == 1
}

// Fingerprint is the first 16 bytes of SHA-256 over both points, in hex:
// what a custodian reads aloud, at the ceremony, to confirm that the policy
// lists their key.
func (p *CustodianPublicKey) Fingerprint() string {
	h := sha256.Sum256(p.raw[:])
	return hex.EncodeToString(h[:16])
}

// A CustodianKey is a custodian's private key pair. It lives in the key
// file the custodian keeps (EncryptKeyFile) and in memory while they review
// their share or approve an opening. It prints and logs as its fingerprint
// only.
type CustodianKey struct {
	hpke hpke.PrivateKey
	sig  *ecdsa.PrivateKey
	pub  *CustodianPublicKey
}

// GenerateCustodianKey makes a new custodian key pair from crypto/rand.
func GenerateCustodianKey() (*CustodianKey, error) {
	h, err := hpkeKEM.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("custody: generating HPKE key: %w", err)
	}
	sig, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("custody: generating signature key: %w", err)
	}
	return assembleCustodianKey(h, sig)
}

// custodianKeyFromScalars rebuilds a key pair from the two private scalars
// a key file holds.
func custodianKeyFromScalars(hpkeScalar, sigScalar []byte) (*CustodianKey, error) {
	h, err := hpkeKEM.NewPrivateKey(hpkeScalar)
	if err != nil {
		return nil, fmt.Errorf("%w: custodian HPKE private key out of range", ErrMalformed)
	}
	sig, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), sigScalar)
	if err != nil {
		return nil, fmt.Errorf("%w: custodian signature private key out of range", ErrMalformed)
	}
	return assembleCustodianKey(h, sig)
}

func assembleCustodianKey(h hpke.PrivateKey, sig *ecdsa.PrivateKey) (*CustodianKey, error) {
	sigPub, err := sig.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("custody: encoding signature key: %w", err)
	}
	raw := append(h.PublicKey().Bytes(), sigPub...)
	pub, err := publicKeyFromRaw(raw)
	if err != nil {
		return nil, err
	}
	return &CustodianKey{hpke: h, sig: sig, pub: pub}, nil
}

// PublicKey returns the public half, for the policy.
func (k *CustodianKey) PublicKey() *CustodianPublicKey { return k.pub }

// String shows the key's fingerprint, never the key.
func (k *CustodianKey) String() string {
	return "custody.CustodianKey(" + k.pub.Fingerprint() + ")"
}

// GoString is String, so that %#v does not print the private scalars.
func (k *CustodianKey) GoString() string { return k.String() }

// LogValue logs the key's fingerprint only.
func (k *CustodianKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("fingerprint", k.pub.Fingerprint()))
}

// scalars returns the two private scalars, for the key file.
func (k *CustodianKey) scalars() (hpkeScalar, sigScalar []byte, err error) {
	hpkeScalar, err = k.hpke.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("custody: encoding HPKE private key: %w", err)
	}
	sigScalar, err = k.sig.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("custody: encoding signature private key: %w", err)
	}
	return hpkeScalar, sigScalar, nil
}
