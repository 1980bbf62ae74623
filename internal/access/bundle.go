package access

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
	"candor/internal/translog"
)

// A Bundle carries one record of the access log to someone who is not an
// enrolled device and so cannot ask the server: a custodian reviewing an
// opening request. It holds the record, the proof that the record is in
// the log, and the log's signed checkpoint that proof leads to. The
// custodian checks it against the log's public key (access.pub), which
// they were given beforehand and keep: whoever hands them the bundle
// cannot then show them a request the log does not hold, or one the
// members' devices will not see (they check the same checkpoints).
//
// Encoding (MarshalBinary, ParseBundle):
//
//	"cabn" | uint8 version = 1
//	uint64 index                       the record's position in the log
//	uint64 size                        the checkpoint's size
//	opaque record<1..2^24-1>           the record, as the log holds it
//	uint8  count | opaque hash[count][32]   the inclusion proof's hashes
//	opaque checkpoint<1..2^16-1>       the signed note (translog.Sign)
//
// Every field has one encoding, so a bundle has one.
type Bundle struct {
	Record     []byte
	Proof      translog.InclusionProof
	Checkpoint []byte
}

const (
	bundleMagic   = "cabn"
	bundleVersion = 1

	// maxBundleRecord bounds a record: far above the largest the formats
	// allow (a request of 1,000 groups and 1,000 people).
	maxBundleRecord = 1<<24 - 1
	// maxProofHashes bounds an inclusion proof: a tree of 2^63 records
	// needs 63.
	maxProofHashes = 63
)

// MarshalBinary encodes the bundle. It checks only the shape (a proof
// within its size, a record and a checkpoint present), not the proof.
func (b *Bundle) MarshalBinary() ([]byte, error) {
	if err := b.validShape(); err != nil {
		return nil, err
	}
	var out cryptobyte.Builder
	out.AddBytes([]byte(bundleMagic))
	out.AddUint8(bundleVersion)
	out.AddUint64(uint64(b.Proof.Index))
	out.AddUint64(uint64(b.Proof.Size))
	out.AddUint24LengthPrefixed(func(o *cryptobyte.Builder) { o.AddBytes(b.Record) })
	out.AddUint8(uint8(len(b.Proof.Hashes)))
	for _, h := range b.Proof.Hashes {
		out.AddBytes(h[:])
	}
	out.AddUint16LengthPrefixed(func(o *cryptobyte.Builder) { o.AddBytes(b.Checkpoint) })
	return out.Bytes()
}

func (b *Bundle) validShape() error {
	var errs []error
	if len(b.Record) == 0 || len(b.Record) > maxBundleRecord {
		errs = append(errs, fmt.Errorf("access: bundle record of %d bytes, want 1 to %d: %w", len(b.Record), maxBundleRecord, candor.ErrInvalid))
	}
	if b.Proof.Index < 0 || b.Proof.Index >= b.Proof.Size {
		errs = append(errs, fmt.Errorf("access: bundle proof of record %d in a log of %d: %w", b.Proof.Index, b.Proof.Size, candor.ErrInvalid))
	}
	if len(b.Proof.Hashes) > maxProofHashes {
		errs = append(errs, fmt.Errorf("access: bundle proof of %d hashes, at most %d: %w", len(b.Proof.Hashes), maxProofHashes, candor.ErrInvalid))
	}
	if len(b.Checkpoint) == 0 || len(b.Checkpoint) > translog.MaxCheckpointSize {
		errs = append(errs, fmt.Errorf("access: bundle checkpoint of %d bytes, want 1 to %d: %w", len(b.Checkpoint), translog.MaxCheckpointSize, candor.ErrInvalid))
	}
	return errors.Join(errs...)
}

// ParseBundle decodes what MarshalBinary writes; anything else fails with
// ErrMalformed. It checks neither the signature nor the proof: Verify does.
func ParseBundle(raw []byte) (*Bundle, error) {
	s := cryptobyte.String(raw)
	var m []byte
	var v uint8
	if !s.ReadBytes(&m, len(bundleMagic)) || !s.ReadUint8(&v) {
		return nil, fmt.Errorf("%w: bundle: truncated header", ErrMalformed)
	}
	if string(m) != bundleMagic {
		return nil, fmt.Errorf("%w: not an access log bundle", ErrMalformed)
	}
	if v != bundleVersion {
		return nil, fmt.Errorf("%w: bundle format version %d, this build reads version %d", ErrMalformed, v, bundleVersion)
	}
	var index, size uint64
	var record, checkpoint cryptobyte.String
	var count uint8
	if !s.ReadUint64(&index) || !s.ReadUint64(&size) || !s.ReadUint24LengthPrefixed(&record) || !s.ReadUint8(&count) {
		return nil, fmt.Errorf("%w: bundle: truncated", ErrMalformed)
	}
	if size > 1<<63-1 {
		return nil, fmt.Errorf("%w: bundle: log size %d", ErrMalformed, size)
	}
	b := &Bundle{Record: slices.Clone([]byte(record))}
	b.Proof.Index, b.Proof.Size = int64(index), int64(size)
	if count > maxProofHashes {
		return nil, fmt.Errorf("%w: bundle: proof of %d hashes", ErrMalformed, count)
	}
	b.Proof.Hashes = make([]tlog.Hash, count)
	for i := range b.Proof.Hashes {
		if !s.CopyBytes(b.Proof.Hashes[i][:]) {
			return nil, fmt.Errorf("%w: bundle: truncated proof", ErrMalformed)
		}
	}
	if !s.ReadUint16LengthPrefixed(&checkpoint) {
		return nil, fmt.Errorf("%w: bundle: truncated checkpoint", ErrMalformed)
	}
	b.Checkpoint = slices.Clone([]byte(checkpoint))
	if err := finish(s, "bundle"); err != nil {
		return nil, err
	}
	if err := b.validShape(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return b, nil
}

// BundleError says which part of a bundle failed its check.
type BundleError struct {
	Part string // "checkpoint", "inclusion proof" or "record"
	Err  error
}

func (e *BundleError) Error() string {
	return fmt.Sprintf("access: bundle: the %s does not check: %v", e.Part, e.Err)
}

func (e *BundleError) Unwrap() error { return e.Err }

// Verify checks the bundle against the access log's key: the checkpoint
// is signed by it, the record is in the tree the checkpoint describes at
// the proof's index, and the record parses. It returns the record and
// the checkpoint; a failure is a *BundleError naming the part.
func (b *Bundle) Verify(key note.Verifier) (Record, translog.Checkpoint, error) {
	c, err := translog.Open(b.Checkpoint, key)
	if err != nil {
		return Record{}, translog.Checkpoint{}, &BundleError{Part: "checkpoint", Err: err}
	}
	if err := translog.VerifyInclusion(c, b.Record, b.Proof); err != nil {
		return Record{}, translog.Checkpoint{}, &BundleError{Part: "inclusion proof", Err: err}
	}
	r, err := ParseRecord(b.Record)
	if err != nil {
		return Record{}, translog.Checkpoint{}, &BundleError{Part: "record", Err: err}
	}
	return r, c, nil
}
