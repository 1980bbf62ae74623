package access

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"candor"
)

// A HoldID names a legal hold: the SHA-256 of the hold's encoding, the
// record the log holds, as a RequestID names a request. A Release names
// the hold it lifts by it.
type HoldID [sha256.Size]byte

// String returns the id in lower-case hex.
func (id HoldID) String() string { return hex.EncodeToString(id[:]) }

// ParseHoldID is the inverse of String.
func ParseHoldID(s string) (HoldID, error) { return parseHexID[HoldID]("hold id", s) }

// A Hold is a legal hold set by an administrator: while it is in force,
// nothing of the conversations it covers is deleted under the retention
// period. It covers the groups it names, and every group that any device
// of a person it names was ever a member of. A hold is in force from its
// record until a Release naming it; both are in the log, so no hold can
// end without a trace. Log.HeldGroups applies the rule.
//
// Encoding (after the record header, type 4):
//
//	opaque case<1..255>
//	opaque reason<1..4096>           uint16 length
//	opaque by<1..255>
//	uint64 set                       seconds since 1970
//	opaque groups<0..2^16-1>         group ids, each opaque<1..255>, sorted
//	opaque users<0..2^16-1>          user ids, each opaque<1..255>, sorted
type Hold struct {
	// Case is the organisation's case or matter id the hold serves.
	Case string
	// Reason says why, in words every affected person will read.
	Reason string
	// By names the administrator or office that set it.
	By string
	// Set is when it was set, a whole second.
	Set time.Time
	// Groups and Users are what it covers; at least one of the two lists
	// must name something. The encoding sorts them and drops duplicates.
	Groups []candor.GroupID
	Users  []candor.UserID
}

// Validate checks every field against the format's rules.
func (h *Hold) Validate() error {
	return errors.Join(
		checkText("case id", h.Case, MaxNameBytes, false),
		checkText("reason", h.Reason, MaxReasonBytes, true),
		checkText("name of who set the hold", h.By, MaxNameBytes, false),
		checkTime("time the hold was set", h.Set),
		checkTargets("hold", h.Groups, h.Users),
	)
}

// MarshalBinary returns the hold's encoding, the record the log holds.
func (h *Hold) MarshalBinary() ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	addHeader(&b, TypeHold)
	addText(&b, h.Case, false)
	addText(&b, h.Reason, true)
	addText(&b, h.By, false)
	addTime(&b, h.Set)
	addIDs(&b, normalise(h.Groups))
	addIDs(&b, normalise(h.Users))
	return b.Bytes()
}

// ID returns the hold's id, the SHA-256 of its encoding.
func (h *Hold) ID() (HoldID, error) {
	enc, err := h.MarshalBinary()
	if err != nil {
		return HoldID{}, err
	}
	return sha256.Sum256(enc), nil
}

// ParseHold decodes a hold record; anything but the canonical encoding of
// a valid hold fails with ErrMalformed.
func ParseHold(b []byte) (*Hold, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, TypeHold); err != nil {
		return nil, err
	}
	h := &Hold{}
	var ok bool
	if h.Case, ok = readText(&s, false); ok {
		if h.Reason, ok = readText(&s, true); ok {
			if h.By, ok = readText(&s, false); ok {
				h.Set, ok = readTime(&s)
			}
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: hold: truncated or out-of-range time", ErrMalformed)
	}
	var err error
	if h.Groups, err = readIDs[candor.GroupID](&s, "groups"); err != nil {
		return nil, err
	}
	if h.Users, err = readIDs[candor.UserID](&s, "users"); err != nil {
		return nil, err
	}
	if err := finish(s, "hold"); err != nil {
		return nil, err
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return h, nil
}

// A Release lifts a legal hold.
//
// Encoding (after the record header, type 5):
//
//	opaque hold_id[32]
//	opaque reason<1..4096>           uint16 length
//	opaque by<1..255>
//	uint64 at                        seconds since 1970
type Release struct {
	// Hold is the id of the hold lifted.
	Hold HoldID
	// Reason says why it is lifted, and By who lifted it.
	Reason string
	By     string
	// At is when it was lifted, a whole second.
	At time.Time
}

// Validate checks the fields.
func (r *Release) Validate() error {
	return errors.Join(
		checkText("reason", r.Reason, MaxReasonBytes, true),
		checkText("name of who lifted the hold", r.By, MaxNameBytes, false),
		checkTime("time the hold was lifted", r.At),
	)
}

// MarshalBinary returns the record's encoding.
func (r *Release) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	addHeader(&b, TypeRelease)
	b.AddBytes(r.Hold[:])
	addText(&b, r.Reason, true)
	addText(&b, r.By, false)
	addTime(&b, r.At)
	return b.Bytes()
}

// ParseRelease decodes a release record; anything but the canonical
// encoding of a valid one fails with ErrMalformed.
func ParseRelease(b []byte) (*Release, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, TypeRelease); err != nil {
		return nil, err
	}
	r := &Release{}
	ok := s.CopyBytes(r.Hold[:])
	if ok {
		if r.Reason, ok = readText(&s, true); ok {
			if r.By, ok = readText(&s, false); ok {
				r.At, ok = readTime(&s)
			}
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: release: truncated or out-of-range time", ErrMalformed)
	}
	if err := finish(s, "release"); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return r, nil
}
