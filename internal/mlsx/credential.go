package mlsx

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"candor"

	"github.com/thomas-vilte/mls-go/credentials"
	"github.com/thomas-vilte/mls-go/treesync"
)

// Identity is what a device signs with: its ECDSA P-256 private key and the
// X.509 chain, leaf first, that the organisation's CA issued for it. The leaf
// certificate's public key must be the public half of Key.
type Identity struct {
	Key   *ecdsa.PrivateKey
	Chain [][]byte
}

// LogValue prints the certificate's subject, never the key.
func (id Identity) LogValue() slog.Value {
	if len(id.Chain) == 0 {
		return slog.StringValue("identity(no certificate)")
	}
	cert, err := x509.ParseCertificate(id.Chain[0])
	if err != nil {
		return slog.StringValue("identity(unparsable certificate)")
	}
	return slog.StringValue(cert.Subject.String())
}

func (id Identity) check() error {
	if id.Key == nil || id.Key.Curve != elliptic.P256() {
		return fmt.Errorf("mlsx: identity key must be ECDSA P-256: %w", candor.ErrInvalid)
	}
	if len(id.Chain) == 0 {
		return fmt.Errorf("mlsx: identity has no certificate: %w", candor.ErrInvalid)
	}
	cert, err := x509.ParseCertificate(id.Chain[0])
	if err != nil {
		return fmt.Errorf("mlsx: identity certificate: %w: %v", candor.ErrInvalid, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&id.Key.PublicKey) {
		return fmt.Errorf("mlsx: identity certificate does not certify its key: %w", candor.ErrInvalid)
	}
	return nil
}

func (id Identity) credential() (*credentials.CredentialWithKey, error) {
	pub, err := id.Key.PublicKey.ECDH()
	if err != nil {
		return nil, fmt.Errorf("mlsx: identity key: %w", err)
	}
	return &credentials.CredentialWithKey{
		Credential:        credentials.NewX509Credential(id.Chain),
		SignatureKey:      &id.Key.PublicKey,
		PrivateKey:        id.Key,
		SignatureKeyBytes: pub.Bytes(),
	}, nil
}

// CredentialKind is an MLS credential type (RFC 9420 §5.3).
type CredentialKind uint16

const (
	CredentialBasic CredentialKind = 0x0001
	CredentialX509  CredentialKind = 0x0002
)

// Credential is a member's MLS credential.
type Credential struct {
	Kind     CredentialKind `json:"kind"`
	Identity []byte         `json:"identity,omitempty"` // basic credentials only
	Chain    [][]byte       `json:"chain,omitempty"`    // X.509 credentials only: DER, leaf first
}

// Certificate parses the leaf certificate of an X.509 credential.
func (c Credential) Certificate() (*x509.Certificate, error) {
	if c.Kind != CredentialX509 || len(c.Chain) == 0 {
		return nil, fmt.Errorf("mlsx: credential is not X.509: %w", candor.ErrInvalid)
	}
	return x509.ParseCertificate(c.Chain[0])
}

// Member is one leaf of a group's ratchet tree.
type Member struct {
	Leaf         uint32     `json:"leaf"`
	Credential   Credential `json:"credential"`
	SignatureKey []byte     `json:"signature_key"` // the leaf's signature public key as MLS encodes it
}

// Validator decides who may be a member of a candor group. The adapter calls
// it for every member that a Welcome, a commit or a proposal introduces or
// changes, after the adapter has checked that an X.509 credential certifies
// the leaf's own signature key. It returns nil to admit the member and an
// error saying why not otherwise; the adapter then refuses the whole
// operation with a [PolicyError]. Implementations must be safe for
// concurrent use.
type Validator interface {
	ValidateMember(ctx context.Context, group candor.GroupID, m Member) error
}

// ValidatorFunc adapts a function to [Validator].
type ValidatorFunc func(ctx context.Context, group candor.GroupID, m Member) error

func (f ValidatorFunc) ValidateMember(ctx context.Context, group candor.GroupID, m Member) error {
	return f(ctx, group, m)
}

func credentialFromLib(c *credentials.Credential) Credential {
	if c == nil {
		return Credential{}
	}
	out := Credential{Kind: CredentialKind(c.CredentialType)}
	switch out.Kind {
	case CredentialBasic:
		out.Identity = bytes.Clone(c.Identity)
	case CredentialX509:
		for _, der := range c.Certificates {
			out.Chain = append(out.Chain, bytes.Clone(der))
		}
	}
	return out
}

func memberFromLeaf(leaf uint32, data *treesync.LeafNodeData) Member {
	return Member{
		Leaf:         leaf,
		Credential:   credentialFromLib(data.Credential),
		SignatureKey: bytes.Clone(data.SigKeyBytes()),
	}
}

// bindingError is non-nil when an X.509 credential does not certify the
// signature key the leaf uses. Other credential kinds are left to the
// Validator.
func (m Member) bindingError() error {
	if m.Credential.Kind != CredentialX509 {
		return nil
	}
	cert, err := m.Credential.Certificate()
	if err != nil {
		return fmt.Errorf("certificate does not parse: %v", err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("certificate key is not ECDSA")
	}
	ecdhPub, err := pub.ECDH()
	if err != nil {
		return errors.New("certificate key is not on a supported curve")
	}
	leafKey, err := ecdh.P256().NewPublicKey(m.SignatureKey)
	if err != nil || !bytes.Equal(leafKey.Bytes(), ecdhPub.Bytes()) {
		return errors.New("certificate does not certify the leaf's signature key")
	}
	return nil
}
