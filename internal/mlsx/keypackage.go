package mlsx

import (
	"bytes"
	"crypto/ecdh"
	"encoding/json"
	"fmt"
	"time"

	"candor"

	"github.com/thomas-vilte/mls-go/ciphersuite"
	mlsext "github.com/thomas-vilte/mls-go/extensions"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/keypackages"
)

// KeyPackageLifetime is how long a KeyPackage made by a device stays valid.
const KeyPackageLifetime = 60 * 24 * time.Hour

// KeyPackageInfo is what a KeyPackage says in public, checked: the server's
// key directory reads it before storing an upload.
type KeyPackageInfo struct {
	Ref        []byte // KeyPackageRef (RFC 9420 §5.2): how Welcomes name it
	Suite      Suite
	Credential Credential
	LastResort bool
	NotBefore  time.Time
	NotAfter   time.Time
}

// KeyPackageSecrets are the private halves of one KeyPackage: the HPKE init
// key that opens the Welcome and the leaf's HPKE encryption key. They are the
// raw private scalars of the suite's KEM curve.
type KeyPackageSecrets struct {
	Init       []byte
	Encryption []byte
}

// storedKeyPackage is what a device keeps in its Store per KeyPackage.
type storedKeyPackage struct {
	KeyPackage []byte `json:"key_package"` // MLSMessage-wrapped
	Init       []byte `json:"init"`
	Encryption []byte `json:"encryption"`
	LastResort bool   `json:"last_resort"`
}

// ParseKeyPackage decodes an MLSMessage-wrapped KeyPackage, verifies its
// signature and, for X.509 credentials, that the certificate certifies the
// signing key. It checks the lifetime against now.
func ParseKeyPackage(msg []byte, now time.Time) (KeyPackageInfo, error) {
	kp, err := decodeKeyPackage(msg)
	if err != nil {
		return KeyPackageInfo{}, err
	}
	suite := Suite(kp.CipherSuite)
	if err := kp.Verify(kp.CipherSuite); err != nil {
		return KeyPackageInfo{}, fmt.Errorf("key package: %w", ErrBadSignature)
	}
	info := KeyPackageInfo{
		Ref:        keyPackageRef(kp),
		Suite:      suite,
		Credential: credentialFromLib(kp.LeafNode.Credential),
		LastResort: hasExtension(kp.Extensions, mlsext.ExtensionTypeLastResort),
	}
	if lt := kp.LeafNode.Lifetime; lt != nil {
		info.NotBefore = unixTime(lt.NotBefore)
		info.NotAfter = unixTime(lt.NotAfter)
		if now.Before(info.NotBefore) || now.After(info.NotAfter) {
			return KeyPackageInfo{}, fmt.Errorf("mlsx: key package is outside its lifetime: %w", candor.ErrInvalid)
		}
	}
	m := Member{Credential: info.Credential, SignatureKey: kp.LeafNode.SignatureKeyBytes}
	if err := m.bindingError(); err != nil {
		return KeyPackageInfo{}, fmt.Errorf("mlsx: key package: %w: %v", candor.ErrInvalid, err)
	}
	return info, nil
}

func unixTime(s uint64) time.Time {
	if s > uint64(1<<62) {
		return time.Unix(1<<62, 0)
	}
	return time.Unix(int64(s), 0)
}

func decodeKeyPackage(msg []byte) (*keypackages.KeyPackage, error) {
	m, err := framing.UnmarshalMLSMessage(msg)
	if err != nil || m.KeyPackage == nil {
		return nil, fmt.Errorf("key package: %w", ErrMalformed)
	}
	kp, err := keypackages.UnmarshalKeyPackage(m.KeyPackage)
	// The KeyPackageRef hashes the bytes as given; they must be canonical
	// or a joiner and a committer would compute different refs.
	if err != nil || kp.LeafNode == nil || !bytes.Equal(kp.Marshal(), m.KeyPackage) {
		return nil, fmt.Errorf("key package: %w", ErrMalformed)
	}
	if !Suite(kp.CipherSuite).Supported() {
		return nil, fmt.Errorf("key package: suite %s: %w", Suite(kp.CipherSuite), ErrMalformed)
	}
	return kp, nil
}

func keyPackageRef(kp *keypackages.KeyPackage) []byte {
	raw := kp.Raw
	if len(raw) == 0 {
		raw = kp.Marshal()
	}
	return ciphersuite.MakeKeyPackageRef(raw, kp.CipherSuite.HashFunction()).AsSlice()
}

func hasExtension(exts []mlsext.Extension, t mlsext.ExtensionType) bool {
	for _, e := range exts {
		if e.Type == t {
			return true
		}
	}
	return false
}

// newKeyPackage makes one KeyPackage for id in suite, signed, with its
// private keys encoded for the Store.
func newKeyPackage(id Identity, suite Suite, lastResort bool, now time.Time) (ref, wire, secrets []byte, err error) {
	cred, err := id.credential()
	if err != nil {
		return nil, nil, nil, err
	}
	notBefore := uint64(now.Add(-time.Hour).Unix())
	notAfter := uint64(now.Add(KeyPackageLifetime).Unix())
	kp, priv, err := keypackages.Generate(cred, suite.lib(), keypackages.WithLifetime(notBefore, notAfter))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mlsx: making key package: %v", err)
	}
	if lastResort {
		// The last_resort extension (RFC 9420 §17.3) sits in the KeyPackage's
		// own extensions, outside the LeafNode, so only the outer signature
		// needs redoing.
		ext, err := mlsext.NewLastResortExtension().ToExtension()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("mlsx: last resort extension: %v", err)
		}
		kp.Extensions = append(kp.Extensions, *ext)
		sig, err := ciphersuite.SignWithLabel(ciphersuite.NewSignaturePrivateKey(id.Key), "KeyPackageTBS", kp.MarshalTBS())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("mlsx: signing key package: %v", err)
		}
		kp.Signature = sig.AsSlice()
	}
	wire = (&framing.MLSMessage{KeyPackage: kp.Marshal()}).Marshal()
	secrets, err = json.Marshal(storedKeyPackage{
		KeyPackage: wire,
		Init:       priv.InitKey.Bytes(),
		Encryption: priv.EncryptionKey.Bytes(),
		LastResort: lastResort,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return keyPackageRef(kp), wire, secrets, nil
}

// kemCurve is the Diffie-Hellman group of a suite's HPKE KEM.
func kemCurve(s Suite) ecdh.Curve {
	switch s {
	case SuiteX25519AES128, SuiteX25519ChaCha20:
		return ecdh.X25519()
	case SuiteP521AES256:
		return ecdh.P521()
	default:
		return ecdh.P256()
	}
}

func (s KeyPackageSecrets) lib(suite Suite) (*keypackages.KeyPackagePrivateKeys, error) {
	curve := kemCurve(suite)
	init, err := curve.NewPrivateKey(padScalar(curve, s.Init))
	if err != nil {
		return nil, fmt.Errorf("mlsx: init key: %w", candor.ErrInvalid)
	}
	enc, err := curve.NewPrivateKey(padScalar(curve, s.Encryption))
	if err != nil {
		return nil, fmt.Errorf("mlsx: encryption key: %w", candor.ErrInvalid)
	}
	return &keypackages.KeyPackagePrivateKeys{InitKey: init, EncryptionKey: enc}, nil
}

// padScalar restores leading zero bytes that some encoders drop from P-521
// scalars (the IETF vectors do).
func padScalar(curve ecdh.Curve, k []byte) []byte {
	if curve == ecdh.P521() && len(k) < 66 {
		return append(bytes.Repeat([]byte{0}, 66-len(k)), k...)
	}
	return k
}
