package devkey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// A sealed record is
//
//	version (1 byte, 1) || nonce (12 bytes) || AES-256-GCM ciphertext || tag (16 bytes)
//
// The version byte lets a later format be told apart from this one instead
// of failing as damage. The nonce is random: GCM with random 96-bit nonces
// stays within its bounds for 2^32 seals per key, and each purpose has its
// own key (below), so a device would have to write a record per second for
// 136 years to reach it.
const (
	sealVersion = 1
	// Overhead is how much longer a sealed record is than its plaintext.
	Overhead = 1 + 12 + 16
)

// Sealer seals and opens records under the key of one purpose, derived
// from a storage key. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer derives the key of purpose from k with HKDF-SHA256 (RFC 5869)
// and returns a Sealer under it. Each use of the storage key (the device
// database, the device's private key file, ...) names its own purpose, so
// a record sealed for one can never be opened as the other's.
func NewSealer(k Key, purpose string) (*Sealer, error) {
	sub, err := hkdf.Key(sha256.New, k[:], nil, "candor devkey v1 "+purpose, KeySize)
	if err != nil {
		return nil, fmt.Errorf("devkey: deriving the %s key: %w", purpose, err)
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, fmt.Errorf("devkey: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("devkey: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext and authenticates it with ad, the additional
// data that says where the record belongs (table, column, row key): a
// record opens only with the same ad.
func (s *Sealer) Seal(ad, plaintext []byte) []byte {
	out := make([]byte, 1, Overhead+len(plaintext))
	out[0] = sealVersion
	return s.aead.Seal(out, nil, plaintext, ad)
}

// Open decrypts what Seal returned for the same ad. Any failure, whatever
// its cause, is ErrUnreadable.
func (s *Sealer) Open(ad, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead || sealed[0] != sealVersion {
		return nil, ErrUnreadable
	}
	plain, err := s.aead.Open(nil, nil, sealed[1:], ad)
	if err != nil {
		return nil, ErrUnreadable
	}
	return plain, nil
}
