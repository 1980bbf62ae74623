package custody

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
)

// Every encoding starts with a four-byte magic naming the object and a
// one-byte format version, so that an approval handed over where a policy is
// expected fails with a clear error instead of a confusing one further in,
// and so that a later format can be told apart from this one. The rest is
// TLS presentation language (RFC 8446 §3), as MLS uses: fixed-size fields
// and length-prefixed vectors, big-endian. The encodings are canonical: a
// parser accepts exactly the bytes its encoder produces, so the hash of an
// encoding identifies the object.
const formatVersion = 1

const (
	magicPolicy      = "cpol"
	magicCommitments = "ccom"
	magicSealedShare = "csha"
	magicApproval    = "capp"
	magicPublicKey   = "cpub"
	magicKeyFile     = "ckey"
)

// Sizes of the fixed fields.
const (
	pointLen      = 65 // uncompressed P-256 point, SEC 1 §2.3.3
	compressedLen = 33 // compressed P-256 point, SEC 1 §2.3.3
	scalarLen     = 32 // P-256 scalar, big-endian
	idLen         = 32 // SHA-256 output
	// sealedLen is an HPKE single-shot ciphertext of one scalar: the
	// DHKEM(P-256) encapsulated key, the scalar and the AES-GCM tag.
	sealedLen = pointLen + scalarLen + 16
	// maxSignatureLen bounds an ASN.1 ECDSA P-256 signature: a SEQUENCE of
	// two INTEGERs of at most 33 bytes each.
	maxSignatureLen = 72
)

// maxText is the longest organisation, archive key id or custodian name, in
// bytes; they are length-prefixed with one byte.
const maxText = 255

func addHeader(b *cryptobyte.Builder, magic string) {
	b.AddBytes([]byte(magic))
	b.AddUint8(formatVersion)
}

// readHeader consumes the magic and version of what, which names the object
// in errors.
func readHeader(s *cryptobyte.String, magic, what string) error {
	var m []byte
	var v uint8
	if !s.ReadBytes(&m, len(magic)) || string(m) != magic {
		return fmt.Errorf("%w: not a custody %s", ErrMalformed, what)
	}
	if !s.ReadUint8(&v) {
		return fmt.Errorf("%w: %s: truncated", ErrMalformed, what)
	}
	if v != formatVersion {
		return fmt.Errorf("%w: %s: format version %d, this build reads version %d", ErrMalformed, what, v, formatVersion)
	}
	return nil
}

func addText(b *cryptobyte.Builder, s string) {
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
}

func readText(s *cryptobyte.String, out *string, what string) error {
	var v cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&v) {
		return fmt.Errorf("%w: %s: truncated", ErrMalformed, what)
	}
	if err := checkText(string(v), what); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	*out = string(v)
	return nil
}

// checkText is the rule for every name the package stores: non-empty, at
// most maxText bytes, UTF-8, and free of control characters, which could
// otherwise rewrite what a custodian's terminal shows them when they review
// a policy.
func checkText(s, what string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > maxText:
		return fmt.Errorf("%s is %d bytes, longer than %d", what, len(s), maxText)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s contains control character %U", what, r)
		}
	}
	return nil
}

// finish checks that s was consumed entirely.
func finish(s cryptobyte.String, what string) error {
	if !s.Empty() {
		return fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, what, len(s))
	}
	return nil
}
