package access

import (
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"candor"
	"candor/internal/journal"
)

// A Deletion records that the server deleted a prefix of a group's log
// under the organisation's retention period: entries First to Last, the
// commits and messages the archive would have replayed. It is logged
// before the entries are deleted, so a deletion that happened is always in
// the log; one interrupted after its record may be logged again, with the
// same First, when the server tries again. LastHash is the chain hash of
// entry Last, which the log keeps as the predecessor of the first entry
// it still holds: a replay from there checks its chain against it, and
// anyone can check that the record and the log's start agree.
//
// Encoding (after the record header, type 6):
//
//	opaque group<1..255>
//	uint64 first, last               1 <= first <= last
//	opaque last_hash[32]             journal chain hash of entry last
//	uint64 at                        seconds since 1970
//	uint64 retention                 seconds, > 0
type Deletion struct {
	Group       candor.GroupID
	First, Last uint64
	LastHash    journal.Hash
	// At is when the prefix was deleted, a whole second.
	At time.Time
	// Retention is the period the deletion applied: entries older than
	// it, before the group's latest replay anchor older than it, go. A
	// whole number of seconds.
	Retention time.Duration
}

// maxRetentionSeconds is the longest period a time.Duration holds.
const maxRetentionSeconds = math.MaxInt64 / uint64(time.Second)

// Validate checks the fields.
func (d *Deletion) Validate() error {
	var errs []error
	errs = append(errs, checkGroupID(d.Group))
	if d.First < 1 || d.First > d.Last {
		errs = append(errs, fmt.Errorf("access: deletion of entries %d to %d, want 1 <= first <= last: %w", d.First, d.Last, candor.ErrInvalid))
	}
	// No chain hash is zero (it is a SHA-256 output); a zero one is a
	// field left unset.
	if d.LastHash == (journal.Hash{}) {
		errs = append(errs, fmt.Errorf("access: deletion without the chain hash of its last entry: %w", candor.ErrInvalid))
	}
	errs = append(errs, checkTime("deletion time", d.At))
	if d.Retention <= 0 || d.Retention%time.Second != 0 {
		errs = append(errs, fmt.Errorf("access: retention period %v, want a positive whole number of seconds: %w", d.Retention, candor.ErrInvalid))
	}
	return errors.Join(errs...)
}

// MarshalBinary returns the record's encoding.
func (d *Deletion) MarshalBinary() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	addHeader(&b, TypeDeletion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(d.Group)) })
	b.AddUint64(d.First)
	b.AddUint64(d.Last)
	b.AddBytes(d.LastHash[:])
	addTime(&b, d.At)
	b.AddUint64(uint64(d.Retention / time.Second))
	return b.Bytes()
}

// ParseDeletion decodes a deletion record; anything but the canonical
// encoding of a valid one fails with ErrMalformed.
func ParseDeletion(b []byte) (*Deletion, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, TypeDeletion); err != nil {
		return nil, err
	}
	d := &Deletion{}
	var group cryptobyte.String
	var retention uint64
	ok := s.ReadUint8LengthPrefixed(&group) && s.ReadUint64(&d.First) && s.ReadUint64(&d.Last) && s.CopyBytes(d.LastHash[:])
	if ok {
		d.At, ok = readTime(&s)
	}
	if !ok || !s.ReadUint64(&retention) {
		return nil, fmt.Errorf("%w: deletion: truncated or out-of-range time", ErrMalformed)
	}
	if retention > maxRetentionSeconds {
		return nil, fmt.Errorf("%w: deletion: retention period of %d seconds", ErrMalformed, retention)
	}
	if err := finish(s, "deletion"); err != nil {
		return nil, err
	}
	d.Group, d.Retention = candor.GroupID(group), time.Duration(retention)*time.Second
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return d, nil
}
