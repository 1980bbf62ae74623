package translog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
)

// MaxCheckpointSize bounds a signed checkpoint a parser accepts. A candor
// checkpoint is under 200 bytes; the bound leaves room for the
// cosignatures of witnesses and refuses input meant to exhaust memory.
const MaxCheckpointSize = 16 << 10

// maxExtensions bounds the extension lines a checkpoint may carry.
const maxExtensions = 16

// emptyTree is the root hash of a tree of no records, SHA-256 of nothing
// (RFC 6962 §2.1); tlog computes it without reading a hash.
var emptyTree, _ = tlog.TreeHash(0, nil)

// A Checkpoint is a log's state as its operator states it: the log's
// origin, how many records it holds, and the root hash of the Merkle tree
// over them (RFC 6962 §2.1, as computed by tlog). Its text form is C2SP
// tlog-checkpoint (https://c2sp.org/tlog-checkpoint):
//
//	<origin>\n
//	<size in decimal, no leading zeros>\n
//	<root hash, standard base64 with padding>\n
//	<extension line>\n   (zero or more; candor writes none)
//
// and the log signs that text as a C2SP signed note (see [Sign]).
type Checkpoint struct {
	// Origin names the log. It is also the name of the key that signs
	// its checkpoints.
	Origin string
	// Size is the number of records in the tree.
	Size int64
	// Hash is the tree's root hash.
	Hash tlog.Hash
	// Extensions are the lines after the root hash, kept so that a
	// checkpoint from another implementation round-trips; candor
	// ignores their meaning.
	Extensions []string
}

// MarshalText returns the checkpoint's body in the C2SP form above.
func (c Checkpoint) MarshalText() ([]byte, error) {
	if err := c.valid(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Hash[:]))
	b.WriteByte('\n')
	for _, e := range c.Extensions {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// valid checks what MarshalText needs to write a body ParseCheckpoint
// reads back as the same checkpoint.
func (c Checkpoint) valid() error {
	if !validLine(c.Origin) {
		return fmt.Errorf("translog: checkpoint origin %q: %w", c.Origin, candor.ErrInvalid)
	}
	if c.Size < 0 {
		return fmt.Errorf("translog: checkpoint size %d: %w", c.Size, candor.ErrInvalid)
	}
	// RFC 6962 defines the empty tree's hash; a checkpoint of no records
	// with another one is a mistake, and a consistency check starting
	// from it would take its hash on faith.
	if c.Size == 0 && c.Hash != emptyTree {
		return fmt.Errorf("translog: checkpoint of an empty log with root hash %v: %w", c.Hash, candor.ErrInvalid)
	}
	if len(c.Extensions) > maxExtensions {
		return fmt.Errorf("translog: %d checkpoint extension lines: %w", len(c.Extensions), candor.ErrInvalid)
	}
	for _, e := range c.Extensions {
		if !validLine(e) {
			return fmt.Errorf("translog: checkpoint extension line %q: %w", e, candor.ErrInvalid)
		}
	}
	return nil
}

// validLine reports whether s can be one line of a checkpoint: not empty
// (an empty line would end the note's text), UTF-8, and free of control
// characters, which signed notes forbid.
func validLine(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// UnmarshalText parses a checkpoint body. It accepts only the canonical
// form MarshalText writes (no leading zeros, padded base64 of exactly 32
// bytes), so that one state has one text and one signature.
func (c *Checkpoint) UnmarshalText(text []byte) error {
	v, err := ParseCheckpoint(text)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseCheckpoint parses a checkpoint body (the text of a signed note,
// without its signatures). Malformed input fails with candor.ErrInvalid.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	bad := func(what string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("translog: malformed checkpoint: %s: %w", what, candor.ErrInvalid)
	}
	if len(text) > MaxCheckpointSize {
		return bad("too long")
	}
	s := string(text)
	if !strings.HasSuffix(s, "\n") {
		return bad("does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) < 3 {
		return bad("fewer than three lines")
	}
	if len(lines) > 3+maxExtensions {
		return bad("too many extension lines")
	}
	c := Checkpoint{Origin: lines[0]}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return bad("tree size is not a canonical decimal")
	}
	c.Size = size
	hash, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(hash) != tlog.HashSize || base64.StdEncoding.EncodeToString(hash) != lines[2] {
		return bad("root hash is not 32 bytes of canonical base64")
	}
	copy(c.Hash[:], hash)
	if len(lines) > 3 {
		c.Extensions = lines[3:]
	}
	if err := c.valid(); err != nil {
		return Checkpoint{}, err
	}
	return c, nil
}

// Sign returns the checkpoint signed as a C2SP signed note by s, whose
// name must be the checkpoint's origin.
func Sign(c Checkpoint, s note.Signer) ([]byte, error) {
	if s.Name() != c.Origin {
		return nil, fmt.Errorf("translog: signing key %q is not the log's (%q): %w", s.Name(), c.Origin, candor.ErrInvalid)
	}
	text, err := c.MarshalText()
	if err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: string(text)}, s)
	if err != nil {
		return nil, fmt.Errorf("translog: signing checkpoint: %w", err)
	}
	return signed, nil
}

// Open checks a signed checkpoint against the log's key and returns the
// checkpoint. The key's name must be the log's origin, and the checkpoint
// must name that origin. Signatures by other keys (witnesses' cosignatures)
// are allowed and ignored.
//
// A signature by the log's key that does not verify, or a note without
// one, fails with ErrBadSignature; a checkpoint of another log with
// ErrWrongOrigin; malformed input with candor.ErrInvalid.
func Open(signed []byte, key note.Verifier) (Checkpoint, error) {
	if key == nil {
		return Checkpoint{}, fmt.Errorf("translog: opening a checkpoint without the log's key: %w", candor.ErrInvalid)
	}
	if len(signed) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("translog: signed checkpoint of %d bytes: %w", len(signed), candor.ErrInvalid)
	}
	n, err := note.Open(signed, note.VerifierList(key))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return Checkpoint{}, fmt.Errorf("translog: checkpoint is not signed by %s: %w", key.Name(), ErrBadSignature)
	case errors.As(err, &invalid):
		return Checkpoint{}, fmt.Errorf("translog: checkpoint signature by %s: %w", key.Name(), ErrBadSignature)
	case err != nil:
		return Checkpoint{}, fmt.Errorf("translog: signed checkpoint: %v: %w", err, candor.ErrInvalid)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != key.Name() {
		return Checkpoint{}, fmt.Errorf("translog: checkpoint of %q, want %q: %w", c.Origin, key.Name(), ErrWrongOrigin)
	}
	return c, nil
}
