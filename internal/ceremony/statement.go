package ceremony

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"candor"
	"candor/internal/custody"

	"golang.org/x/crypto/cryptobyte"
)

// ErrMalformed reports bytes that are not a canonical encoding of a
// statement or an endorsement. It wraps candor.ErrInvalid.
var ErrMalformed = fmt.Errorf("ceremony: malformed encoding: %w", candor.ErrInvalid)

// formatVersion is the version byte after each magic. A later format gets a
// new number, so that this build refuses it clearly rather than misreading
// it.
const formatVersion = 1

const (
	magicStatement   = "cast"
	magicEndorsement = "cend"
)

// Hash is the SHA-256 of a statement's encoding: what custodians sign and
// what an invitation pins.
type Hash [sha256.Size]byte

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// A Statement is what the custody ceremony publishes about one archive key:
// the archive's certificate and KeyPackage, the custody policy with its
// commitments, and every custodian's sealed share. Everything in it is
// public; the server may store and serve it. It is immutable.
//
// Encoding (Bytes, ParseStatement), TLS presentation language as MLS uses:
//
//	"cast" | uint8 version = 1
//	uint64 created                    Unix seconds, UTC
//	opaque certificate<1..2^16-1>     DER, issued by the organisation's CA
//	opaque key_package<1..2^16-1>     MLSMessage-wrapped KeyPackage number 0
//	opaque policy<1..2^16-1>          custody.Policy encoding
//	opaque commitments<1..2^16-1>     custody.Commitments encoding
//	uint8  n
//	opaque sealed_share<1..2^16-1>[n] custody.SealedShare encodings, slot order
//
// The organisation and the archive key id are the policy's; the
// certificate must say the same (Check). Each embedded object is in its own
// canonical encoding, so the statement's encoding is canonical too and its
// SHA-256 identifies it.
type Statement struct {
	created     time.Time
	certDER     []byte
	cert        *x509.Certificate
	keyPackage  []byte
	policy      *custody.Policy
	commitments *custody.Commitments
	shares      []*custody.SealedShare
	encoded     []byte
	hash        Hash
}

// newStatement assembles and encodes a statement from its parts.
func newStatement(created time.Time, certDER, keyPackage []byte, p *custody.Policy, c *custody.Commitments, shares []*custody.SealedShare) (*Statement, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("ceremony: archive certificate: %w: %v", candor.ErrInvalid, err)
	}
	st := &Statement{
		created:     time.Unix(created.Unix(), 0).UTC(),
		certDER:     append([]byte(nil), certDER...),
		cert:        cert,
		keyPackage:  append([]byte(nil), keyPackage...),
		policy:      p,
		commitments: c,
		shares:      append([]*custody.SealedShare(nil), shares...),
	}
	if st.encoded, err = st.encode(); err != nil {
		return nil, err
	}
	st.hash = sha256.Sum256(st.encoded)
	return st, nil
}

func (st *Statement) encode() ([]byte, error) {
	if st.created.Unix() < 0 {
		return nil, fmt.Errorf("ceremony: creation time %v is before 1970: %w", st.created, candor.ErrInvalid)
	}
	if len(st.shares) > math.MaxUint8 {
		return nil, fmt.Errorf("ceremony: %d sealed shares: %w", len(st.shares), candor.ErrInvalid)
	}
	var b cryptobyte.Builder
	b.AddBytes([]byte(magicStatement))
	b.AddUint8(formatVersion)
	b.AddUint64(uint64(st.created.Unix()))
	addVector(&b, st.certDER)
	addVector(&b, st.keyPackage)
	addVector(&b, st.policy.Bytes())
	addVector(&b, st.commitments.Bytes())
	b.AddUint8(uint8(len(st.shares)))
	for _, s := range st.shares {
		addVector(&b, s.Bytes())
	}
	out, err := b.Bytes()
	if err != nil {
		// A field longer than 2^16-1 bytes: only a policy far beyond
		// custody's bounds or a certificate of another kind could be.
		return nil, fmt.Errorf("ceremony: encoding the statement: %w: %v", candor.ErrInvalid, err)
	}
	return out, nil
}

// addVector adds a non-empty vector with a two-byte length. An empty or
// oversized one makes the builder fail.
func addVector(b *cryptobyte.Builder, v []byte) {
	if len(v) == 0 {
		b.SetError(errors.New("empty field"))
		return
	}
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v) })
}

func readVector(s *cryptobyte.String, what string) ([]byte, error) {
	var v cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&v) {
		return nil, fmt.Errorf("%w: statement: %s: truncated", ErrMalformed, what)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: statement: %s is empty", ErrMalformed, what)
	}
	return []byte(v), nil
}

// ParseStatement decodes the encoding Bytes produces and nothing else. It
// checks that every embedded object decodes as what it should be; whether
// they agree with each other, with the organisation's CA and with the
// clock is for Check and Verify.
func ParseStatement(b []byte) (*Statement, error) {
	s := cryptobyte.String(b)
	var magic []byte
	var version uint8
	if !s.ReadBytes(&magic, len(magicStatement)) || string(magic) != magicStatement {
		return nil, fmt.Errorf("%w: not an archive statement", ErrMalformed)
	}
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: statement: truncated", ErrMalformed)
	}
	if version != formatVersion {
		return nil, fmt.Errorf("%w: statement: format version %d, this build reads version %d", ErrMalformed, version, formatVersion)
	}
	var created uint64
	if !s.ReadUint64(&created) {
		return nil, fmt.Errorf("%w: statement: truncated", ErrMalformed)
	}
	if created > math.MaxInt64 {
		return nil, fmt.Errorf("%w: statement: creation time out of range", ErrMalformed)
	}
	var fields [4][]byte
	for i, what := range []string{"certificate", "key package", "policy", "commitments"} {
		v, err := readVector(&s, what)
		if err != nil {
			return nil, err
		}
		fields[i] = v
	}
	var n uint8
	if !s.ReadUint8(&n) {
		return nil, fmt.Errorf("%w: statement: truncated", ErrMalformed)
	}
	var shares []*custody.SealedShare
	for i := range int(n) {
		v, err := readVector(&s, fmt.Sprintf("sealed share %d", i+1))
		if err != nil {
			return nil, err
		}
		sh, err := custody.ParseSealedShare(v)
		if err != nil {
			return nil, fmt.Errorf("%w: statement: sealed share %d: %v", ErrMalformed, i+1, err)
		}
		shares = append(shares, sh)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: statement: %d trailing bytes", ErrMalformed, len(s))
	}
	if _, err := x509.ParseCertificate(fields[0]); err != nil {
		return nil, fmt.Errorf("%w: statement: certificate: %v", ErrMalformed, err)
	}
	policy, err := custody.ParsePolicy(fields[2])
	if err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrMalformed, err)
	}
	commitments, err := custody.ParseCommitments(fields[3])
	if err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrMalformed, err)
	}
	st, err := newStatement(time.Unix(int64(created), 0), fields[0], fields[1], policy, commitments, shares)
	if err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrMalformed, err)
	}
	// The certificate and KeyPackage are kept as the bytes given, and the
	// custody parsers promise canonical input; comparing the re-encoding
	// makes this parser's canonicality rest on itself, not that promise.
	if string(st.encoded) != string(b) {
		return nil, fmt.Errorf("%w: statement: not in canonical form", ErrMalformed)
	}
	return st, nil
}

// Bytes returns the statement's encoding.
func (st *Statement) Bytes() []byte { return append([]byte(nil), st.encoded...) }

// Hash returns the SHA-256 of the statement's encoding.
func (st *Statement) Hash() Hash { return st.hash }

// Organisation returns the organisation whose archive this is.
func (st *Statement) Organisation() string { return st.policy.Organisation() }

// KeyID returns the archive key's id (its generation).
func (st *Statement) KeyID() string { return st.policy.ArchiveKeyID() }

// Created returns when the ceremony ran, to the second.
func (st *Statement) Created() time.Time { return st.created }

// Certificate returns the archive's certificate, DER.
func (st *Statement) Certificate() []byte { return append([]byte(nil), st.certDER...) }

// KeyPackage returns the archive's MLSMessage-wrapped KeyPackage (number 0
// in the custody key derivation).
func (st *Statement) KeyPackage() []byte { return append([]byte(nil), st.keyPackage...) }

// Policy returns the custody policy: k, n, the custodians' names and keys.
func (st *Statement) Policy() *custody.Policy { return st.policy }

// Commitments returns the Feldman commitments of the seed's split.
func (st *Statement) Commitments() *custody.Commitments { return st.commitments }

// SealedShares returns the sealed shares in the order they are encoded,
// which Check requires to be slot order.
func (st *Statement) SealedShares() []*custody.SealedShare {
	return append([]*custody.SealedShare(nil), st.shares...)
}

// NotAfter returns the end of the archive certificate's validity, which is
// also the KeyPackage's.
func (st *Statement) NotAfter() time.Time { return st.cert.NotAfter }
