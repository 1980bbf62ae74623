package mlsx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"candor"

	"github.com/thomas-vilte/mls-go/ciphersuite"
	"github.com/thomas-vilte/mls-go/credentials"
	mlsext "github.com/thomas-vilte/mls-go/extensions"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/group"
	"github.com/thomas-vilte/mls-go/keypackages"
)

// DefaultPadding is the block to which application plaintexts are padded,
// so ciphertext lengths reveal message sizes only to the nearest block.
const DefaultPadding = 64

// Config configures a [Device].
type Config struct {
	// Identity is the device's signing key and certificate. Required.
	Identity Identity
	// Store keeps the device's MLS state. Required.
	Store Store
	// Validator decides who may be a member. Required: there is no safe
	// default for who may read a conversation.
	Validator Validator
	// Padding is the block application plaintexts are padded to; zero means
	// DefaultPadding.
	Padding int
	// Now tells the time, for KeyPackage lifetimes; nil means time.Now.
	// Randomness comes from crypto/rand inside the MLS library and cannot
	// be replaced.
	Now func() time.Time
}

// Device is one enrolled device's MLS side: it makes KeyPackages, creates,
// joins and loads groups. It is safe for concurrent use.
type Device struct {
	id        Identity
	signer    *ciphersuite.SignaturePrivateKey
	store     Store
	validator Validator
	padding   int
	now       func() time.Time
}

// NewDevice checks cfg and returns a device. It does no I/O.
func NewDevice(ctx context.Context, cfg Config) (*Device, error) {
	if err := cfg.Identity.check(); err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Validator == nil {
		return nil, fmt.Errorf("mlsx: device needs a Store and a Validator: %w", candor.ErrInvalid)
	}
	d := &Device{
		id:        cfg.Identity,
		signer:    ciphersuite.NewSignaturePrivateKey(cfg.Identity.Key),
		store:     cfg.Store,
		validator: cfg.Validator,
		padding:   cfg.Padding,
		now:       cfg.Now,
	}
	if d.padding == 0 {
		d.padding = DefaultPadding
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d, nil
}

// Identity returns the device's identity.
func (d *Device) Identity() Identity { return d.id }

// KeyPackages makes n KeyPackages, stores their private keys and returns
// them MLSMessage-wrapped, for upload to the key directory. Each is meant to
// be used once.
func (d *Device) KeyPackages(ctx context.Context, n int) ([][]byte, error) {
	out := make([][]byte, 0, n)
	for range n {
		kp, err := d.keyPackage(ctx, false)
		if err != nil {
			return nil, err
		}
		out = append(out, kp)
	}
	return out, nil
}

// LastResortKeyPackage makes a KeyPackage carrying the last_resort extension
// (RFC 9420 §17.3): the directory hands it out when the device's others are
// used up, and the device keeps its private keys after a join.
func (d *Device) LastResortKeyPackage(ctx context.Context) ([]byte, error) {
	return d.keyPackage(ctx, true)
}

func (d *Device) keyPackage(ctx context.Context, lastResort bool) ([]byte, error) {
	ref, wire, secrets, err := newKeyPackage(d.id, DefaultSuite, lastResort, d.now())
	if err != nil {
		return nil, err
	}
	if err := d.store.SaveKeyPackage(ctx, ref, secrets); err != nil {
		return nil, fmt.Errorf("mlsx: saving key package: %w", err)
	}
	return wire, nil
}

// ExternalSender is a party outside the group allowed to send it proposals
// (RFC 9420 §12.1.8.1): for candor, the server, which proposes the removal
// of revoked devices.
type ExternalSender struct {
	Key   *ecdsa.PublicKey // P-256
	Chain [][]byte         // its X.509 certificate chain, leaf first
}

// GroupOptions are the choices made when a group is created.
type GroupOptions struct {
	// ExternalSenders are written into the external_senders extension.
	ExternalSenders []ExternalSender
}

// CreateGroup creates a group with this device as its only member, at epoch
// 0, and saves it. Members are added with [Group.Commit].
func (d *Device) CreateGroup(ctx context.Context, id candor.GroupID, opts GroupOptions) (*Group, error) {
	if len(id) == 0 || len(id) > 255 {
		return nil, fmt.Errorf("mlsx: group id must be 1 to 255 bytes: %w", candor.ErrInvalid)
	}
	if _, err := d.store.LoadGroup(ctx, id); err == nil {
		return nil, fmt.Errorf("mlsx: group %s exists: %w", id, candor.ErrConflict)
	} else if !errors.Is(err, candor.ErrNotFound) {
		return nil, fmt.Errorf("mlsx: loading group %s: %w", id, err)
	}
	exts, err := groupExtensions(opts)
	if err != nil {
		return nil, err
	}
	cred, err := d.id.credential()
	if err != nil {
		return nil, err
	}
	kp, priv, err := keypackages.Generate(cred, DefaultSuite.lib())
	if err != nil {
		return nil, fmt.Errorf("mlsx: creator key package: %v", err)
	}
	lg, err := group.NewGroup(group.NewGroupID([]byte(id)), DefaultSuite.lib(), kp, priv, group.WithExtensions(exts))
	if err != nil {
		return nil, translate("creating group", err)
	}
	g := d.wrap(lg)
	if err := g.validateLeaves(ctx, nil); err != nil {
		return nil, err
	}
	if err := g.saveSnapshot(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// groupExtensions builds the GroupContext extensions of a candor group.
func groupExtensions(opts GroupOptions) ([]group.Extension, error) {
	// required_capabilities (RFC 9420 §11.1) lists what every member must
	// support beyond the defaults. Candor's KeyPackages advertise nothing
	// beyond them (the library fixes their capabilities), so the list is
	// empty; the X.509 requirement is enforced by the Validator on every
	// member instead. Candor writes the RFC encoding itself (three empty
	// vectors): the library's own encoder adds two fields RFC 9420 does not
	// have, and its decoder would read an RFC credential_types list as
	// required extensions. See docs/design/mls-adapter.md.
	required := []byte{0x00, 0x00, 0x00}
	exts := []group.Extension{{Type: mlsext.ExtensionTypeRequiredCapabilities, Data: required}}
	if len(opts.ExternalSenders) > 0 {
		senders := mlsext.NewExternalSendersExtension()
		for _, s := range opts.ExternalSenders {
			if s.Key == nil || len(s.Chain) == 0 {
				return nil, fmt.Errorf("mlsx: external sender needs a key and a certificate: %w", candor.ErrInvalid)
			}
			if err := senders.AddSender(mlsext.ExternalSender{
				Credential: credentials.NewX509Credential(s.Chain),
				PublicKey:  s.Key,
			}); err != nil {
				return nil, fmt.Errorf("mlsx: external sender: %w: %v", candor.ErrInvalid, err)
			}
		}
		ext, err := senders.ToExtension()
		if err != nil {
			return nil, fmt.Errorf("mlsx: external senders: %v", err)
		}
		exts = append(exts, *ext)
	}
	return exts, nil
}

// Join joins a group from a Welcome addressed to one of this device's
// KeyPackages, checks every member against the Validator and saves the group.
// The KeyPackage's private keys are deleted unless it is the last-resort one.
func (d *Device) Join(ctx context.Context, welcome []byte) (*Group, error) {
	w, err := decodeWelcome(welcome)
	if err != nil {
		return nil, err
	}
	if Suite(w.CipherSuite) != DefaultSuite {
		return nil, fmt.Errorf("mlsx: welcome for suite %s: %w", Suite(w.CipherSuite), ErrPolicy)
	}
	for _, s := range w.Secrets {
		raw, err := d.store.LoadKeyPackage(ctx, s.NewMember)
		if errors.Is(err, candor.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("mlsx: loading key package: %w", err)
		}
		var stored storedKeyPackage
		if err := json.Unmarshal(raw, &stored); err != nil {
			return nil, fmt.Errorf("mlsx: stored key package: %w", candor.ErrInvalid)
		}
		kp, err := decodeKeyPackage(stored.KeyPackage)
		if err != nil {
			return nil, err
		}
		secrets := KeyPackageSecrets{Init: stored.Init, Encryption: stored.Encryption}
		g, err := join(ctx, w, kp, secrets, nil, d.store, d.validator, d)
		if err != nil {
			return nil, err
		}
		if !stored.LastResort {
			if err := d.store.DeleteKeyPackage(ctx, s.NewMember); err != nil {
				return nil, fmt.Errorf("mlsx: deleting used key package: %w", err)
			}
		}
		return g, nil
	}
	return nil, ErrNoKeyPackage
}

// Group loads a group this device is a member of.
func (d *Device) Group(ctx context.Context, id candor.GroupID) (*Group, error) {
	return load(ctx, id, d.store, d.validator, d)
}

func (d *Device) wrap(lg *group.Group) *Group {
	lg.SetPaddingSize(d.padding)
	return newGroup(lg, d.store, d.validator, d)
}

// PassiveConfig configures a passive member.
type PassiveConfig struct {
	Store     Store     // required
	Validator Validator // required
}

// PSK is an external pre-shared key (RFC 9420 §8.4) a passive member holds.
type PSK struct {
	ID     []byte `json:"id"`
	Secret []byte `json:"secret"`
}

// JoinPassive joins a group from a Welcome as a member that only reads: it
// holds the KeyPackage's private keys but no signing key, so it can follow
// every commit and decrypt every message but never send. It is how the
// archive replays a conversation from custody-recovered keys, and how the
// IETF passive-client vectors are run. keyPackage is MLSMessage-wrapped.
func JoinPassive(ctx context.Context, cfg PassiveConfig, welcome, keyPackage []byte, secrets KeyPackageSecrets, psks []PSK) (*Group, error) {
	if cfg.Store == nil || cfg.Validator == nil {
		return nil, fmt.Errorf("mlsx: passive member needs a Store and a Validator: %w", candor.ErrInvalid)
	}
	w, err := decodeWelcome(welcome)
	if err != nil {
		return nil, err
	}
	kp, err := decodeKeyPackage(keyPackage)
	if err != nil {
		return nil, err
	}
	pskMap := make(map[string][]byte, len(psks))
	for _, p := range psks {
		pskMap[string(p.ID)] = p.Secret
	}
	return join(ctx, w, kp, secrets, pskMap, cfg.Store, cfg.Validator, nil)
}

// LoadPassive loads a group joined with JoinPassive.
func LoadPassive(ctx context.Context, cfg PassiveConfig, id candor.GroupID) (*Group, error) {
	return load(ctx, id, cfg.Store, cfg.Validator, nil)
}

func decodeWelcome(msg []byte) (*group.Welcome, error) {
	m, err := framing.UnmarshalMLSMessage(msg)
	if err != nil || m.Welcome == nil {
		return nil, fmt.Errorf("welcome: %w", ErrMalformed)
	}
	// The library keeps a Welcome's bytes as given and its decoder ignores
	// trailing bytes: re-encoding is the check that the bytes are canonical.
	w, err := group.UnmarshalWelcome(m.Welcome)
	if err != nil || !bytes.Equal(w.Marshal(), m.Welcome) {
		return nil, fmt.Errorf("welcome: %w", ErrMalformed)
	}
	if !Suite(w.CipherSuite).Supported() {
		return nil, fmt.Errorf("welcome: suite %s: %w", Suite(w.CipherSuite), ErrMalformed)
	}
	return w, nil
}

// join is the one path from a Welcome to a saved group, for devices
// (dev != nil) and passive members alike.
func join(ctx context.Context, w *group.Welcome, kp *keypackages.KeyPackage, secrets KeyPackageSecrets, psks map[string][]byte, store Store, v Validator, dev *Device) (*Group, error) {
	suite := Suite(w.CipherSuite)
	if Suite(kp.CipherSuite) != suite {
		return nil, fmt.Errorf("mlsx: welcome and key package differ in suite: %w", ErrMalformed)
	}
	priv, err := secrets.lib(suite)
	if err != nil {
		return nil, err
	}
	lg, err := group.JoinFromWelcomeWithContext(ctx, w, kp, priv, psks)
	if err != nil {
		return nil, translate("joining from welcome", err)
	}
	// The library accepts a Welcome without a ratchet tree and then trusts
	// an empty one, checking no signature. Candor sends the tree in every
	// Welcome (RFC 9420 §12.4.3.3) and refuses a Welcome without one.
	if w.GroupInfo == nil || !hasExtension(w.GroupInfo.Extensions, mlsext.ExtensionTypeRatchetTree) {
		return nil, fmt.Errorf("mlsx: welcome carries no ratchet tree: %w", ErrMalformed)
	}
	var g *Group
	if dev != nil {
		g = dev.wrap(lg)
	} else {
		g = newGroup(lg, store, v, nil)
	}
	if err := g.validateLeaves(ctx, nil); err != nil {
		return nil, err
	}
	if err := g.saveSnapshot(ctx); err != nil {
		return nil, err
	}
	return g, nil
}
