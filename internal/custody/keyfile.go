package custody

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"fmt"

	"candor"

	"golang.org/x/crypto/cryptobyte"
)

// A custodian's key file is a PEM block of type keyFilePEMType holding:
//
//	"ckey" | uint8 version = 1
//	uint8  kdf = 1                 PBKDF2-HMAC-SHA256
//	uint32 iterations              keyFileMinIterations..keyFileMaxIterations
//	opaque salt[16]
//	opaque public_key[130]         the key pair's public half, as in the policy
//	opaque sealed[92]              AES-256-GCM: nonce[12] | ciphertext[64] | tag[16]
//
// The AES key is PBKDF2-HMAC-SHA256(passphrase, salt, iterations, 32); the
// plaintext is the HPKE private scalar then the signature private scalar;
// the additional data is every byte before sealed, so the header cannot be
// altered without the passphrase failing. The public key sits in the clear
// so a tool can say which key a file holds before asking for the passphrase.
const (
	keyFilePEMType  = "CANDOR CUSTODIAN KEY"
	kdfPBKDF2SHA256 = 1
	saltLen         = 16
	gcmNonceLen     = 12
	keyFileSealed   = gcmNonceLen + 2*scalarLen + 16
)

// Iteration bounds. The minimum is OWASP's 2023 figure for
// PBKDF2-HMAC-SHA256; the maximum keeps a hostile file from pinning a CPU
// for minutes.
const (
	keyFileIterations    = 600_000
	keyFileMinIterations = 600_000
	keyFileMaxIterations = 20_000_000
)

// MinPassphraseLen is the shortest passphrase EncryptKeyFile accepts, in
// bytes. Opening a file accepts any non-empty passphrase: the file exists.
const MinPassphraseLen = 12

// keyFile is a parsed key file before decryption.
type keyFile struct {
	iterations uint32
	salt       [saltLen]byte
	public     *CustodianPublicKey
	sealed     []byte
}

// header encodes everything before sealed: the AES-GCM additional data.
func (f *keyFile) header() []byte {
	var b cryptobyte.Builder
	addHeader(&b, magicKeyFile)
	b.AddUint8(kdfPBKDF2SHA256)
	b.AddUint32(f.iterations)
	b.AddBytes(f.salt[:])
	b.AddBytes(f.public.raw[:])
	return b.BytesOrPanic()
}

func (f *keyFile) encode() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: keyFilePEMType, Bytes: append(f.header(), f.sealed...)})
}

// parseKeyFile decodes the structure of a key file without the passphrase.
func parseKeyFile(data []byte) (*keyFile, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != keyFilePEMType {
		return nil, fmt.Errorf("%w: no %q PEM block", ErrMalformed, keyFilePEMType)
	}
	if len(block.Headers) != 0 || len(rest) != 0 {
		return nil, fmt.Errorf("%w: key file: unexpected PEM headers or trailing data", ErrMalformed)
	}
	s := cryptobyte.String(block.Bytes)
	if err := readHeader(&s, magicKeyFile, "key file"); err != nil {
		return nil, err
	}
	f := &keyFile{}
	var kdf uint8
	var pub, sealed []byte
	if !s.ReadUint8(&kdf) || !s.ReadUint32(&f.iterations) || !s.CopyBytes(f.salt[:]) ||
		!s.ReadBytes(&pub, 2*pointLen) || !s.ReadBytes(&sealed, keyFileSealed) {
		return nil, fmt.Errorf("%w: key file: truncated", ErrMalformed)
	}
	if err := finish(s, "key file"); err != nil {
		return nil, err
	}
	if kdf != kdfPBKDF2SHA256 {
		return nil, fmt.Errorf("%w: key file: unknown key derivation %d", ErrMalformed, kdf)
	}
	if f.iterations < keyFileMinIterations || f.iterations > keyFileMaxIterations {
		return nil, fmt.Errorf("%w: key file: %d PBKDF2 iterations, outside %d..%d",
			ErrMalformed, f.iterations, keyFileMinIterations, keyFileMaxIterations)
	}
	var err error
	if f.public, err = publicKeyFromRaw(pub); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	f.sealed = sealed
	return f, nil
}

// aead derives the file's AES-256-GCM from the passphrase.
func (f *keyFile) aead(passphrase []byte) (cipher.AEAD, error) {
	key, err := pbkdf2.Key(sha256.New, string(passphrase), f.salt[:], int(f.iterations), 32)
	if err != nil {
		return nil, fmt.Errorf("custody: deriving key file key: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("custody: key file cipher: %w", err)
	}
	// A random nonce generated inside the cipher is what FIPS 140-3
	// (SP 800-38D §8.2.2) approves; a salt per file means a key per file
	// as well, so the nonce never repeats under one key anyway.
	return cipher.NewGCMWithRandomNonce(block)
}

// EncryptKeyFile returns k as a key file protected by passphrase, which must
// be at least MinPassphraseLen bytes. The custodian keeps the file; it never
// goes to the server.
func EncryptKeyFile(k *CustodianKey, passphrase []byte) ([]byte, error) {
	if len(passphrase) < MinPassphraseLen {
		return nil, fmt.Errorf("custody: passphrase is %d bytes, at least %d needed: %w",
			len(passphrase), MinPassphraseLen, candor.ErrInvalid)
	}
	f := &keyFile{iterations: keyFileIterations, public: k.pub}
	if _, err := rand.Read(f.salt[:]); err != nil {
		return nil, err
	}
	hs, ss, err := k.scalars()
	if err != nil {
		return nil, err
	}
	plain := append(hs, ss...)
	defer clear(plain)
	aead, err := f.aead(passphrase)
	if err != nil {
		return nil, err
	}
	f.sealed = aead.Seal(nil, nil, plain, f.header())
	return f.encode(), nil
}

// DecryptKeyFile opens a key file with the custodian's passphrase. A wrong
// passphrase and an altered file both give ErrPassphrase; a file that is
// not a key file at all gives ErrMalformed.
func DecryptKeyFile(data, passphrase []byte) (*CustodianKey, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("custody: empty passphrase: %w", candor.ErrInvalid)
	}
	f, err := parseKeyFile(data)
	if err != nil {
		return nil, err
	}
	aead, err := f.aead(passphrase)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nil, f.sealed, f.header())
	if err != nil {
		return nil, ErrPassphrase
	}
	defer clear(plain)
	k, err := custodianKeyFromScalars(plain[:scalarLen], plain[scalarLen:])
	if err != nil {
		// Authenticated yet out of range: written by something other
		// than EncryptKeyFile.
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !k.pub.Equal(f.public) {
		return nil, fmt.Errorf("%w: key file's public key does not match its private key", ErrMalformed)
	}
	return k, nil
}
