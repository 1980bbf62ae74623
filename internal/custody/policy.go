package custody

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"candor"

	"golang.org/x/crypto/cryptobyte"
)

// Bounds on a policy. Two custodians at least, because with k = 1 every
// share is the secret itself and there is no custody. At most 64, a
// generous bound on people who can gather for a ceremony that also keeps
// every loop over custodians small.
const (
	MinThreshold  = 2
	MaxCustodians = 64
)

// PolicyID is the SHA-256 of a policy's encoding. Commitments, sealed shares
// and approvals carry it, so none of them can be used under another policy.
type PolicyID [idLen]byte

// String returns the id in hex.
func (id PolicyID) String() string { return hex.EncodeToString(id[:]) }

// Custodian is one slot of a policy.
type Custodian struct {
	// Name is how people know the custodian: "Ana Lima, Compliance".
	Name string
	// PublicKey is the custodian's key pair's public half.
	PublicKey *CustodianPublicKey
}

// PolicyConfig describes a custody policy to NewPolicy.
type PolicyConfig struct {
	// Organisation identifies the organisation whose archive this is.
	Organisation string
	// ArchiveKeyID names this archive key among the organisation's archive
	// keys over time; a rotation makes a new one.
	ArchiveKeyID string
	// K is how many custodians must approve an opening, MinThreshold..N.
	K int
	// Custodians are the n slots, in order: the first is custodian 1.
	Custodians []Custodian
}

// A Policy is a checked custody policy: who holds shares of which archive
// key, and how many must agree. It is immutable and published beside the
// archive in the directory.
//
// Encoding (Bytes, ParsePolicy):
//
//	"cpol" | uint8 version = 1
//	opaque organisation<1..255>
//	opaque archive_key_id<1..255>
//	uint8  k
//	uint8  n
//	struct {
//	    opaque name<1..255>
//	    opaque hpke_key[65]
//	    opaque signature_key[65]
//	} custodians[n]
//
// Text fields are UTF-8 without control characters. Names and keys are
// distinct across custodians.
type Policy struct {
	org, keyID string
	k          int
	custodians []Custodian
	encoded    []byte
	id         PolicyID
}

// NewPolicy checks cfg and returns the policy it describes.
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	p, err := newPolicy(cfg)
	if err != nil {
		return nil, fmt.Errorf("custody: policy: %v: %w", err, candor.ErrInvalid)
	}
	return p, nil
}

func newPolicy(cfg PolicyConfig) (*Policy, error) {
	if err := checkText(cfg.Organisation, "organisation"); err != nil {
		return nil, err
	}
	if err := checkText(cfg.ArchiveKeyID, "archive key id"); err != nil {
		return nil, err
	}
	n := len(cfg.Custodians)
	if n > MaxCustodians {
		return nil, fmt.Errorf("%d custodians, at most %d allowed", n, MaxCustodians)
	}
	if cfg.K < MinThreshold || cfg.K > n {
		return nil, fmt.Errorf("threshold k = %d with n = %d custodians; need %d <= k <= n", cfg.K, n, MinThreshold)
	}
	names := make(map[string]int, n)
	keys := make(map[[2 * pointLen]byte]int, n)
	for i, c := range cfg.Custodians {
		if err := checkText(c.Name, fmt.Sprintf("custodian %d name", i+1)); err != nil {
			return nil, err
		}
		if c.PublicKey == nil {
			return nil, fmt.Errorf("custodian %d (%q) has no public key", i+1, c.Name)
		}
		if j, dup := names[c.Name]; dup {
			return nil, fmt.Errorf("custodians %d and %d are both named %q", j, i+1, c.Name)
		}
		if j, dup := keys[c.PublicKey.raw]; dup {
			return nil, fmt.Errorf("custodians %d and %d have the same key", j, i+1)
		}
		names[c.Name], keys[c.PublicKey.raw] = i+1, i+1
	}
	p := &Policy{org: cfg.Organisation, keyID: cfg.ArchiveKeyID, k: cfg.K,
		custodians: append([]Custodian(nil), cfg.Custodians...)}
	p.encoded = p.encode()
	p.id = sha256.Sum256(p.encoded)
	return p, nil
}

func (p *Policy) encode() []byte {
	var b cryptobyte.Builder
	addHeader(&b, magicPolicy)
	addText(&b, p.org)
	addText(&b, p.keyID)
	b.AddUint8(uint8(p.k))
	b.AddUint8(uint8(len(p.custodians)))
	for _, c := range p.custodians {
		addText(&b, c.Name)
		b.AddBytes(c.PublicKey.raw[:])
	}
	return b.BytesOrPanic()
}

// ParsePolicy decodes and checks the encoding Bytes produces.
func ParsePolicy(b []byte) (*Policy, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, magicPolicy, "policy"); err != nil {
		return nil, err
	}
	var cfg PolicyConfig
	if err := readText(&s, &cfg.Organisation, "organisation"); err != nil {
		return nil, err
	}
	if err := readText(&s, &cfg.ArchiveKeyID, "archive key id"); err != nil {
		return nil, err
	}
	var k, n uint8
	if !s.ReadUint8(&k) || !s.ReadUint8(&n) {
		return nil, fmt.Errorf("%w: policy: truncated", ErrMalformed)
	}
	if n > MaxCustodians {
		return nil, fmt.Errorf("%w: policy: %d custodians, at most %d allowed", ErrMalformed, n, MaxCustodians)
	}
	cfg.K = int(k)
	for i := range int(n) {
		var c Custodian
		var raw []byte
		if err := readText(&s, &c.Name, fmt.Sprintf("custodian %d name", i+1)); err != nil {
			return nil, err
		}
		if !s.ReadBytes(&raw, 2*pointLen) {
			return nil, fmt.Errorf("%w: policy: truncated", ErrMalformed)
		}
		pub, err := publicKeyFromRaw(raw)
		if err != nil {
			return nil, fmt.Errorf("policy: custodian %d: %w", i+1, err)
		}
		c.PublicKey = pub
		cfg.Custodians = append(cfg.Custodians, c)
	}
	if err := finish(s, "policy"); err != nil {
		return nil, err
	}
	p, err := newPolicy(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: policy: %v", ErrMalformed, err)
	}
	return p, nil
}

// Bytes returns the policy's encoding.
func (p *Policy) Bytes() []byte { return append([]byte(nil), p.encoded...) }

// ID returns the SHA-256 of the policy's encoding.
func (p *Policy) ID() PolicyID { return p.id }

// Organisation returns the organisation the policy belongs to.
func (p *Policy) Organisation() string { return p.org }

// ArchiveKeyID returns the archive key the policy protects.
func (p *Policy) ArchiveKeyID() string { return p.keyID }

// K returns how many custodians must approve an opening.
func (p *Policy) K() int { return p.k }

// N returns the number of custodians.
func (p *Policy) N() int { return len(p.custodians) }

// Custodians returns the slots in order; custodian i is at index i-1.
func (p *Policy) Custodians() []Custodian { return append([]Custodian(nil), p.custodians...) }

// Custodian returns slot i, 1..N.
func (p *Policy) Custodian(i int) (Custodian, error) {
	if i < 1 || i > len(p.custodians) {
		return Custodian{}, fmt.Errorf("custody: custodian %d: policy has slots 1..%d: %w", i, len(p.custodians), ErrMismatch)
	}
	return p.custodians[i-1], nil
}

// IndexOf returns the slot whose key is pub, or an error wrapping
// ErrMismatch if pub is not one of the policy's custodians.
func (p *Policy) IndexOf(pub *CustodianPublicKey) (int, error) {
	for i, c := range p.custodians {
		if c.PublicKey.Equal(pub) {
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("custody: key %s is not a custodian of policy %s: %w", pub.Fingerprint(), p.id, ErrMismatch)
}

// custodianError attributes err to slot i.
func (p *Policy) custodianError(i int, err error) error {
	return &CustodianError{Index: i, Name: p.custodians[i-1].Name, Err: err}
}
