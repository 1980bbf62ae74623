package translog

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"candor"
)

// maxProofHashes bounds the hashes of a proof: a proof in a tree of at most
// 2⁶³ records has at most 63 (inclusion) or 64 (consistency) of them.
const maxProofHashes = 64

// The first line of each proof's text form names its kind and version, so
// that one kind is never read as the other.
const (
	inclusionHeader   = "candor translog inclusion proof v1"
	consistencyHeader = "candor translog consistency proof v1"
)

// An InclusionProof shows that the record at Index is in the tree of Size
// records (RFC 6962 §2.1.1, an audit path): with the record and the
// checkpoint of that size, [VerifyInclusion] recomputes the root hash.
//
// Its text form, which MarshalText writes and UnmarshalText reads, is
//
//	candor translog inclusion proof v1\n
//	index <decimal>\n
//	size <decimal>\n
//	<hash, standard base64>\n   (one line per hash, leaf to root)
type InclusionProof struct {
	Index, Size int64
	Hashes      []tlog.Hash
}

// A ConsistencyProof shows that the tree of Old records is a prefix of the
// tree of New records (RFC 6962 §2.1.2): nothing in the older tree was
// changed or removed. Its text form is that of [InclusionProof] with the
// header "candor translog consistency proof v1" and the lines "old" and
// "new" in place of "index" and "size".
type ConsistencyProof struct {
	Old, New int64
	Hashes   []tlog.Hash
}

// MarshalText returns the proof's text form.
func (p InclusionProof) MarshalText() ([]byte, error) {
	if p.Index < 0 || p.Index >= p.Size || len(p.Hashes) > maxProofHashes {
		return nil, fmt.Errorf("translog: inclusion proof of record %d in %d with %d hashes: %w", p.Index, p.Size, len(p.Hashes), candor.ErrInvalid)
	}
	return marshalProof(inclusionHeader, "index", p.Index, "size", p.Size, p.Hashes), nil
}

// UnmarshalText parses the text form. Malformed input, including any
// non-canonical spelling of a number or hash, fails with candor.ErrInvalid.
func (p *InclusionProof) UnmarshalText(text []byte) error {
	a, b, hashes, err := unmarshalProof(text, inclusionHeader, "index", "size")
	if err != nil {
		return err
	}
	if a >= b {
		return fmt.Errorf("translog: inclusion proof of record %d in a tree of %d: %w", a, b, candor.ErrInvalid)
	}
	*p = InclusionProof{Index: a, Size: b, Hashes: hashes}
	return nil
}

// MarshalText returns the proof's text form.
func (p ConsistencyProof) MarshalText() ([]byte, error) {
	if p.Old < 0 || p.Old > p.New || len(p.Hashes) > maxProofHashes {
		return nil, fmt.Errorf("translog: consistency proof from %d to %d with %d hashes: %w", p.Old, p.New, len(p.Hashes), candor.ErrInvalid)
	}
	return marshalProof(consistencyHeader, "old", p.Old, "new", p.New, p.Hashes), nil
}

// UnmarshalText parses the text form. Malformed input, including any
// non-canonical spelling of a number or hash, fails with candor.ErrInvalid.
func (p *ConsistencyProof) UnmarshalText(text []byte) error {
	a, b, hashes, err := unmarshalProof(text, consistencyHeader, "old", "new")
	if err != nil {
		return err
	}
	if a > b {
		return fmt.Errorf("translog: consistency proof from %d back to %d: %w", a, b, candor.ErrInvalid)
	}
	*p = ConsistencyProof{Old: a, New: b, Hashes: hashes}
	return nil
}

func marshalProof(header, aName string, a int64, bName string, b int64, hashes []tlog.Hash) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s\n%s %d\n%s %d\n", header, aName, a, bName, b)
	for _, h := range hashes {
		buf.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func unmarshalProof(text []byte, header, aName, bName string) (a, b int64, hashes []tlog.Hash, err error) {
	bad := func(what string) (int64, int64, []tlog.Hash, error) {
		return 0, 0, nil, fmt.Errorf("translog: malformed proof: %s: %w", what, candor.ErrInvalid)
	}
	// Three lines of header and numbers, and one line of 44 characters
	// and a newline per hash.
	if len(text) > len(header)+2*(len(aName)+len(bName)+22)+maxProofHashes*45 {
		return bad("too long")
	}
	s := string(text)
	if !strings.HasSuffix(s, "\n") {
		return bad("does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) < 3 || lines[0] != header {
		return bad("not a " + header)
	}
	if a, err = numberLine(lines[1], aName); err != nil {
		return bad(err.Error())
	}
	if b, err = numberLine(lines[2], bName); err != nil {
		return bad(err.Error())
	}
	if len(lines)-3 > maxProofHashes {
		return bad("too many hashes")
	}
	hashes = make([]tlog.Hash, len(lines)-3)
	for i, line := range lines[3:] {
		raw, err := base64.StdEncoding.Strict().DecodeString(line)
		if err != nil || len(raw) != tlog.HashSize || base64.StdEncoding.EncodeToString(raw) != line {
			return bad(fmt.Sprintf("hash %d is not 32 bytes of canonical base64", i))
		}
		copy(hashes[i][:], raw)
	}
	return a, b, hashes, nil
}

// numberLine parses "<name> <decimal>", the decimal canonical and not
// negative.
func numberLine(line, name string) (int64, error) {
	v, ok := strings.CutPrefix(line, name+" ")
	if !ok {
		return 0, fmt.Errorf("want a %q line", name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
		return 0, fmt.Errorf("%s is not a canonical decimal", name)
	}
	return n, nil
}

// VerifyInclusion checks that record is the record at p.Index in the tree
// c describes. The proof must be for c's size (candor.ErrInvalid
// otherwise); a proof that does not lead to c's root hash, because the
// record or the proof was altered or the record is not in the log, fails
// with ErrNotIncluded.
func VerifyInclusion(c Checkpoint, record []byte, p InclusionProof) error {
	if p.Size != c.Size || p.Index < 0 || p.Index >= p.Size {
		return fmt.Errorf("translog: proof of record %d in %d records, checkpoint has %d: %w", p.Index, p.Size, c.Size, candor.ErrInvalid)
	}
	if len(p.Hashes) > maxProofHashes {
		return fmt.Errorf("translog: inclusion proof of %d hashes: %w", len(p.Hashes), candor.ErrInvalid)
	}
	if err := tlog.CheckRecord(p.Hashes, c.Size, c.Hash, p.Index, tlog.RecordHash(record)); err != nil {
		return fmt.Errorf("translog: record %d under checkpoint %d: %w", p.Index, c.Size, ErrNotIncluded)
	}
	return nil
}

// VerifyConsistency checks that the tree newer describes extends the tree
// older describes: both of one origin, newer no smaller, and, where the
// sizes differ, p proving the older tree a prefix of the newer.
//
// A newer checkpoint smaller than the older one, one of the same size with
// another root hash, or a proof that fails fails with an
// [*InconsistentError] (errors.Is(err, ErrInconsistent)). Checkpoints of
// different origins, or a proof between other sizes than the
// checkpoints', fail with candor.ErrInvalid: they are a caller's mistake,
// not evidence against the log.
func VerifyConsistency(older, newer Checkpoint, p ConsistencyProof) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("translog: checkpoints of %q and %q: %w", older.Origin, newer.Origin, candor.ErrInvalid)
	}
	switch {
	case newer.Size < older.Size:
		return &InconsistentError{Kind: Rollback, Trusted: older, Presented: newer}
	case newer.Size == older.Size:
		if newer.Hash != older.Hash {
			return &InconsistentError{Kind: Fork, Trusted: older, Presented: newer}
		}
		return nil
	case older.Size == 0:
		// Every tree extends the empty one.
		return nil
	}
	if p.Old != older.Size || p.New != newer.Size {
		return fmt.Errorf("translog: consistency proof from %d to %d for checkpoints %d and %d: %w", p.Old, p.New, older.Size, newer.Size, candor.ErrInvalid)
	}
	if len(p.Hashes) > maxProofHashes {
		return fmt.Errorf("translog: consistency proof of %d hashes: %w", len(p.Hashes), candor.ErrInvalid)
	}
	if err := tlog.CheckTree(p.Hashes, newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return &InconsistentError{Kind: Fork, Trusted: older, Presented: newer, Unproven: true}
	}
	return nil
}
