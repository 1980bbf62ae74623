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
	"github.com/thomas-vilte/mls-go/treesync"
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
	// InitKey and EncryptionKey are the HPKE public keys (RFC 9420 §10):
	// what a Welcome is sealed to and the leaf's encryption key. The
	// archive ceremony compares them with the keys it derived.
	InitKey       []byte
	EncryptionKey []byte
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
	// The leaf node is signed on its own (RFC 9420 §7.2); members check
	// that signature when the KeyPackage is added, so the directory must
	// not hand out one they would refuse. It is checked through the tree
	// code's decoding, not the KeyPackage's.
	leaf, err := treesync.UnmarshalLeafNodeData(kp.LeafNode.Marshal())
	if err != nil {
		return KeyPackageInfo{}, fmt.Errorf("key package leaf node: %w", ErrMalformed)
	}
	if err := leaf.Verify(kp.CipherSuite); err != nil {
		return KeyPackageInfo{}, fmt.Errorf("key package leaf node: %w", ErrBadSignature)
	}
	info := KeyPackageInfo{
		Ref:           keyPackageRef(kp),
		Suite:         suite,
		Credential:    credentialFromLib(kp.LeafNode.Credential),
		LastResort:    hasExtension(kp.Extensions, mlsext.ExtensionTypeLastResort),
		InitKey:       bytes.Clone(kp.InitKey),
		EncryptionKey: bytes.Clone(kp.LeafNode.EncryptionKey),
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

// newKeyPackage makes one KeyPackage for id in suite, with fresh HPKE
// keys, signed, and its private keys encoded for the Store.
func newKeyPackage(id Identity, suite Suite, lastResort bool, now time.Time) (ref, wire, secrets []byte, err error) {
	kp, priv, err := buildKeyPackage(id, suite, nil, lastResort, now.Add(-time.Hour), now.Add(KeyPackageLifetime))
	if err != nil {
		return nil, nil, nil, err
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

// ArchiveKeyPackage makes a last-resort KeyPackage (RFC 9420 §17.3) for
// the organisation's archive at suite 0x0002, valid from notBefore to
// notAfter, whose HPKE keys are the given ones rather than fresh: the
// archive's keys are derived from the secret its custodians share, so that
// nothing private about it is ever stored and an opening recomputes them
// (see JoinPassive). The one KeyPackage serves every group, which its
// last_resort extension allows; the archive never commits, so its leaf
// keeps these keys. It returns the MLSMessage-wrapped KeyPackage.
func ArchiveKeyPackage(id Identity, secrets KeyPackageSecrets, notBefore, notAfter time.Time) ([]byte, error) {
	if !notBefore.Before(notAfter) {
		return nil, fmt.Errorf("mlsx: archive key package lifetime ends before it starts: %w", candor.ErrInvalid)
	}
	priv, err := secrets.lib(DefaultSuite)
	if err != nil {
		return nil, err
	}
	kp, _, err := buildKeyPackage(id, DefaultSuite, priv, true, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	return (&framing.MLSMessage{KeyPackage: kp.Marshal()}).Marshal(), nil
}

// buildKeyPackage makes and signs a KeyPackage for id in suite. Its HPKE
// keys are fresh, or those of keys when it is not nil.
func buildKeyPackage(id Identity, suite Suite, keys *keypackages.KeyPackagePrivateKeys, lastResort bool, notBefore, notAfter time.Time) (*keypackages.KeyPackage, *keypackages.KeyPackagePrivateKeys, error) {
	cred, err := id.credential()
	if err != nil {
		return nil, nil, err
	}
	life := keypackages.WithLifetime(uint64(max(notBefore.Unix(), 0)), uint64(max(notAfter.Unix(), 0)))
	kp, priv, err := keypackages.Generate(cred, suite.lib(), life)
	if err != nil {
		return nil, nil, fmt.Errorf("mlsx: making key package: %v", err)
	}
	signer := ciphersuite.NewSignaturePrivateKey(id.Key)
	resign := lastResort
	if keys != nil {
		// The library makes its own keys; the leaf node, which carries
		// the encryption key, is signed again over the given ones. For a
		// key_package leaf its to-be-signed part (RFC 9420 §7.2) is its
		// encoding without the trailing signature, an empty one being a
		// single zero length byte.
		kp.InitKey = keys.InitKey.PublicKey().Bytes()
		kp.LeafNode.EncryptionKey = keys.EncryptionKey.PublicKey().Bytes()
		kp.LeafNode.Signature = nil
		tbs := kp.LeafNode.Marshal()
		sig, err := ciphersuite.SignWithLabel(signer, "LeafNodeTBS", tbs[:len(tbs)-1])
		if err != nil {
			return nil, nil, fmt.Errorf("mlsx: signing leaf node: %v", err)
		}
		kp.LeafNode.Signature = sig.AsSlice()
		priv.InitKey, priv.EncryptionKey = keys.InitKey, keys.EncryptionKey
		resign = true
	}
	if lastResort {
		// The last_resort extension sits in the KeyPackage's own
		// extensions, outside the leaf node.
		ext, err := mlsext.NewLastResortExtension().ToExtension()
		if err != nil {
			return nil, nil, fmt.Errorf("mlsx: last resort extension: %v", err)
		}
		kp.Extensions = append(kp.Extensions, *ext)
	}
	if resign {
		sig, err := ciphersuite.SignWithLabel(signer, "KeyPackageTBS", kp.MarshalTBS())
		if err != nil {
			return nil, nil, fmt.Errorf("mlsx: signing key package: %v", err)
		}
		kp.Signature = sig.AsSlice()
	}
	return kp, priv, nil
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
