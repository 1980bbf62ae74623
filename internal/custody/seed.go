package custody

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cloudflare/circl/group"
)

// A Seed is the archive's one secret: every private key the archive uses
// derives from it. It is a non-zero P-256 scalar, kept as its canonical
// 32-byte big-endian encoding.
//
// Why a scalar rather than 32 arbitrary bytes: Shamir's scheme here works
// in the P-256 scalar field, whose order n is just below 2^256, so not
// every 32-byte string is a field element and an arbitrary string would not
// survive the split exactly. NewSeed therefore draws the seed uniformly
// from 1..n-1 (rejection sampling), and the archive's keys derive from this
// canonical encoding. The loss against a uniform 256-bit string is under
// 2^-32 of the space.
//
// The Seed should exist only during the ceremony and an opening. It prints
// and logs as "REDACTED"; Destroy overwrites it when the caller is done.
type Seed struct {
	b [scalarLen]byte
}

// NewSeed draws a new archive seed from crypto/rand.
func NewSeed() (*Seed, error) {
	for range 64 {
		var s Seed
		if _, err := rand.Read(s.b[:]); err != nil {
			return nil, err
		}
		if inScalarRange(s.b[:]) {
			return &s, nil
		}
	}
	// Each draw fails with probability below 2^-32.
	return nil, errors.New("custody: random source keeps returning values outside the P-256 scalar range")
}

// p256Order is n, the order of the P-256 group, big-endian.
var p256Order = elliptic.P256().Params().N.FillBytes(make([]byte, scalarLen))

// inScalarRange reports whether b, big-endian, is in 1..n-1. It runs in time
// independent of b's value.
func inScalarRange(b []byte) bool {
	var zero [scalarLen]byte
	return len(b) == scalarLen && subtle.ConstantTimeCompare(b, zero[:]) == 0 && lessThanOrder(b)
}

// lessThanOrder compares b with n in constant time, from the most
// significant byte down, keeping the first difference.
func lessThanOrder(b []byte) bool {
	lt, decided := 0, 0
	for i := range scalarLen {
		x, y := int(b[i]), int(p256Order[i])
		less := subtle.ConstantTimeLessOrEq(x+1, y) // x < y
		diff := 1 - subtle.ConstantTimeByteEq(b[i], p256Order[i])
		lt = subtle.ConstantTimeSelect(decided, lt, less)
		decided |= diff
	}
	return lt == 1
}

// scalar converts the seed to circl's representation, for splitting.
func (s *Seed) scalar() (group.Scalar, error) {
	k := group.P256.NewScalar()
	if err := k.UnmarshalBinary(s.b[:]); err != nil {
		return nil, fmt.Errorf("custody: seed is not a P-256 scalar: %w", err)
	}
	return k, nil
}

// seedFromScalar is the inverse of scalar, for reconstruction.
func seedFromScalar(k group.Scalar) (*Seed, error) {
	b, err := k.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if !inScalarRange(b) {
		return nil, errors.New("custody: reconstructed secret is zero")
	}
	var s Seed
	copy(s.b[:], b)
	return &s, nil
}

// Equal reports, in constant time, whether s and t are the same seed.
func (s *Seed) Equal(t *Seed) bool { return subtle.ConstantTimeCompare(s.b[:], t.b[:]) == 1 }

// Destroy overwrites the seed. Go may have copied it elsewhere in memory (a
// moving stack, circl's big.Int arithmetic during a split), so this narrows
// the window rather than closing it; the process that held a seed should
// exit when the ceremony or opening is over.
func (s *Seed) Destroy() { clear(s.b[:]) }

// String never shows the seed.
func (s *Seed) String() string { return "custody.Seed(REDACTED)" }

// GoString never shows the seed.
func (s *Seed) GoString() string { return s.String() }

// LogValue never logs the seed.
func (s *Seed) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// Key derivation. The archive's keys derive from the seed with HKDF-SHA256
// (RFC 5869, SP 800-56C): one extract with a fixed salt, then one expand per
// key with its own label, so keys for different roles or KeyPackages are
// independent. A P-256 private key is taken by rejection sampling: expand
// 32 bytes for candidate c = 0, 1, …; the first candidate in 1..n-1 is the
// key, as FIPS 186-5 §A.4.2 does with a random bit string (here the HKDF
// output is that string). Each candidate fails with probability below 2^-32.
//
// The Feldman commitments publish seed·G, so the seed itself must never be
// used as a key: every key goes through HKDF, whose outputs seed·G says
// nothing about.
const (
	kdfSalt          = "candor archive keys v1"
	labelSignature   = "candor archive v1 mls signature"
	labelInit        = "candor archive v1 mls init"
	labelEncryption  = "candor archive v1 mls encryption"
	maxDeriveRetries = 16
)

// deriveScalar returns the P-256 private scalar for label and index.
func (s *Seed) deriveScalar(label string, index uint32) ([]byte, error) {
	prk, err := hkdf.Extract(sha256.New, s.b[:], []byte(kdfSalt))
	if err != nil {
		return nil, err
	}
	defer clear(prk)
	info := make([]byte, len(label)+1+4+1)
	copy(info, label)
	binary.BigEndian.PutUint32(info[len(label)+1:], index)
	for c := range maxDeriveRetries {
		info[len(info)-1] = byte(c)
		k, err := hkdf.Expand(sha256.New, prk, string(info), scalarLen)
		if err != nil {
			return nil, err
		}
		if inScalarRange(k) {
			return k, nil
		}
		clear(k)
	}
	return nil, errors.New("custody: key derivation found no P-256 scalar")
}

// SignatureKey returns the archive's MLS signature key (ECDSA P-256, the
// signature scheme of MLS cipher suite 0x0002). The organisation's CA
// certifies its public half as the archive's credential.
func (s *Seed) SignatureKey() (*ecdsa.PrivateKey, error) {
	k, err := s.deriveScalar(labelSignature, 0)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return ecdsa.ParseRawPrivateKey(elliptic.P256(), k)
}

// KeyPackageKeys are the two HPKE private keys of one archive KeyPackage
// (RFC 9420 §10): init_key, which a Welcome is encrypted to, and the leaf
// node's encryption_key.
type KeyPackageKeys struct {
	Init       *ecdh.PrivateKey
	Encryption *ecdh.PrivateKey
}

// KeyPackageKeys returns the keys of the archive's KeyPackage number index.
// The ceremony publishes KeyPackages for a range of indexes; an opening
// re-derives the keys of the one a Welcome names. Every index gives
// different keys, so no two KeyPackages share an init_key.
func (s *Seed) KeyPackageKeys(index uint32) (KeyPackageKeys, error) {
	ik, err := s.deriveScalar(labelInit, index)
	if err != nil {
		return KeyPackageKeys{}, err
	}
	defer clear(ik)
	ek, err := s.deriveScalar(labelEncryption, index)
	if err != nil {
		return KeyPackageKeys{}, err
	}
	defer clear(ek)
	var kp KeyPackageKeys
	if kp.Init, err = ecdh.P256().NewPrivateKey(ik); err != nil {
		return KeyPackageKeys{}, err
	}
	if kp.Encryption, err = ecdh.P256().NewPrivateKey(ek); err != nil {
		return KeyPackageKeys{}, err
	}
	return kp, nil
}
