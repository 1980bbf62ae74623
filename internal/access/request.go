package access

import (
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"candor"
)

// OpeningKeySize is the size of an opening's one-time public key: an
// uncompressed P-256 point, the HPKE key custody.OpeningKey makes.
const OpeningKeySize = 65

// A RequestID names an opening request: the SHA-256 of the request's
// encoding, which is the record the access log holds. It is the value
// internal/custody calls RequestID, which every custodian's approval is
// bound to; because the request carries the opening's one-time key,
// approving the id and releasing a share to that key are one decision.
type RequestID [sha256.Size]byte

// String returns the id in lower-case hex.
func (id RequestID) String() string { return hex.EncodeToString(id[:]) }

// ParseRequestID is the inverse of String.
func ParseRequestID(s string) (RequestID, error) { return parseHexID[RequestID]("request id", s) }

// parseHexID reads a record id written in lower-case hex, the only
// spelling String gives, so that one id has one spelling on a command line.
func parseHexID[T ~[sha256.Size]byte](what, s string) (T, error) {
	var id T
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) || hex.EncodeToString(b) != s {
		return T{}, fmt.Errorf("access: %s %q is not %d bytes of lower-case hex: %w", what, s, len(id), candor.ErrInvalid)
	}
	copy(id[:], b)
	return id, nil
}

// checkTargets checks the groups and people a scope or a hold names: at
// least one of either, each id well formed, not too many.
func checkTargets(what string, groups []candor.GroupID, users []candor.UserID) error {
	var errs []error
	if len(groups) == 0 && len(users) == 0 {
		errs = append(errs, fmt.Errorf("access: a %s must name a group or a person: %w", what, candor.ErrInvalid))
	}
	if len(groups) > MaxScopeItems || len(users) > MaxScopeItems {
		errs = append(errs, fmt.Errorf("access: a %s of %d groups and %d people, at most %d of each: %w", what, len(groups), len(users), MaxScopeItems, candor.ErrInvalid))
	}
	for _, g := range groups {
		errs = append(errs, checkGroupID(g))
	}
	for _, u := range users {
		errs = append(errs, checkText("user id", string(u), MaxNameBytes, false))
	}
	return errors.Join(errs...)
}

// checkGroupID checks a group id: opaque bytes, but of a length the
// encodings' one-byte prefix can carry.
func checkGroupID(g candor.GroupID) error {
	if len(g) == 0 || len(g) > MaxNameBytes {
		return fmt.Errorf("access: group id of %d bytes: %w", len(g), candor.ErrInvalid)
	}
	return nil
}

// A Scope says what an opening may read: the conversations named, every
// conversation of the people named, within a time range.
type Scope struct {
	// Groups and Users are what the opening covers; at least one of the
	// two lists must name something. The encoding sorts them and drops
	// duplicates.
	Groups []candor.GroupID
	Users  []candor.UserID
	// From and To bound the messages in scope: From ≤ sent time < To,
	// whole seconds.
	From, To time.Time
}

// A Request asks to open the archive. It is the first record of every
// opening: the custodians approve its id only once it is in the log.
//
// Encoding (after the record header, type 1):
//
//	opaque case<1..255>
//	opaque reason<1..4096>           uint16 length
//	opaque requester<1..255>
//	uint64 created                   seconds since 1970
//	uint64 from, to                  seconds since 1970, from < to
//	opaque groups<0..2^16-1>         group ids, each opaque<1..255>, sorted
//	opaque users<0..2^16-1>          user ids, each opaque<1..255>, sorted
//	opaque opening_key[65]           uncompressed P-256 point
type Request struct {
	// Case is the organisation's case or matter id.
	Case string
	// Reason says why, in words every affected person will read.
	Reason string
	// Scope is what the opening may read.
	Scope Scope
	// Requester names who asks (a person or an office).
	Requester string
	// Created is when the request was made, a whole second.
	Created time.Time
	// OpeningKey is the opening's one-time HPKE public key, to which the
	// custodians seal their shares.
	OpeningKey []byte
}

// Validate checks every field against the format's rules.
func (q *Request) Validate() error {
	var errs []error
	errs = append(errs,
		checkText("case id", q.Case, MaxNameBytes, false),
		checkText("reason", q.Reason, MaxReasonBytes, true),
		checkText("requester", q.Requester, MaxNameBytes, false),
		checkTime("creation time", q.Created),
		q.Scope.validate(),
	)
	if len(q.OpeningKey) != OpeningKeySize {
		errs = append(errs, fmt.Errorf("access: opening key of %d bytes, want an uncompressed P-256 point of %d: %w", len(q.OpeningKey), OpeningKeySize, candor.ErrInvalid))
	} else if _, err := ecdh.P256().NewPublicKey(q.OpeningKey); err != nil {
		errs = append(errs, fmt.Errorf("access: opening key is not a P-256 point: %w", candor.ErrInvalid))
	}
	return errors.Join(errs...)
}

func (sc Scope) validate() error {
	errs := []error{checkTargets("scope", sc.Groups, sc.Users)}
	errs = append(errs, checkTime("start of the time range", sc.From), checkTime("end of the time range", sc.To))
	if !sc.From.Before(sc.To) {
		errs = append(errs, fmt.Errorf("access: time range from %v to %v is empty: %w", sc.From, sc.To, candor.ErrInvalid))
	}
	return errors.Join(errs...)
}

// MarshalBinary returns the request's encoding, the record the log holds.
func (q *Request) MarshalBinary() ([]byte, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	addHeader(&b, TypeRequest)
	addText(&b, q.Case, false)
	addText(&b, q.Reason, true)
	addText(&b, q.Requester, false)
	addTime(&b, q.Created)
	addTime(&b, q.Scope.From)
	addTime(&b, q.Scope.To)
	addIDs(&b, normalise(q.Scope.Groups))
	addIDs(&b, normalise(q.Scope.Users))
	b.AddBytes(q.OpeningKey)
	return b.Bytes()
}

// ID returns the request's id, the SHA-256 of its encoding.
func (q *Request) ID() (RequestID, error) {
	enc, err := q.MarshalBinary()
	if err != nil {
		return RequestID{}, err
	}
	return sha256.Sum256(enc), nil
}

// ParseRequest decodes a request record. Anything but the canonical
// encoding of a valid request fails with ErrMalformed or
// candor.ErrInvalid.
func ParseRequest(b []byte) (*Request, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, TypeRequest); err != nil {
		return nil, err
	}
	q := &Request{}
	var ok bool
	var key []byte
	if q.Case, ok = readText(&s, false); !ok {
		return nil, fmt.Errorf("%w: request: truncated", ErrMalformed)
	}
	if q.Reason, ok = readText(&s, true); !ok {
		return nil, fmt.Errorf("%w: request: truncated", ErrMalformed)
	}
	if q.Requester, ok = readText(&s, false); !ok {
		return nil, fmt.Errorf("%w: request: truncated", ErrMalformed)
	}
	for _, t := range []*time.Time{&q.Created, &q.Scope.From, &q.Scope.To} {
		if *t, ok = readTime(&s); !ok {
			return nil, fmt.Errorf("%w: request: truncated or out-of-range time", ErrMalformed)
		}
	}
	var err error
	if q.Scope.Groups, err = readIDs[candor.GroupID](&s, "groups"); err != nil {
		return nil, err
	}
	if q.Scope.Users, err = readIDs[candor.UserID](&s, "users"); err != nil {
		return nil, err
	}
	if !s.ReadBytes(&key, OpeningKeySize) {
		return nil, fmt.Errorf("%w: request: truncated", ErrMalformed)
	}
	q.OpeningKey = slices.Clone(key)
	if err := finish(s, "request"); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return q, nil
}

// addIDs writes a sorted list of ids, each with a one-byte length.
func addIDs[T ~string](b *cryptobyte.Builder, ids []T) {
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, id := range ids {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(id)) })
		}
	})
}

// readIDs reads what addIDs writes and refuses a list out of order or with
// a duplicate, which would give one scope two encodings.
func readIDs[T ~string](s *cryptobyte.String, what string) ([]T, error) {
	var list cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&list) {
		return nil, fmt.Errorf("%w: %s: truncated", ErrMalformed, what)
	}
	var out []T
	for !list.Empty() {
		var id cryptobyte.String
		if !list.ReadUint8LengthPrefixed(&id) || len(id) == 0 {
			return nil, fmt.Errorf("%w: %s: truncated or empty id", ErrMalformed, what)
		}
		if len(out) == MaxScopeItems {
			return nil, fmt.Errorf("%w: more than %d %s", ErrMalformed, MaxScopeItems, what)
		}
		out = append(out, T(id))
	}
	if !sortedUnique(out) {
		return nil, fmt.Errorf("%w: %s are not sorted or repeat one", ErrMalformed, what)
	}
	return out, nil
}

// Touches reports whether a request's scope reaches a person: whether it
// names them, or names one of the groups they are or were in. The time
// range is not compared: a device does not know every moment it was a
// member, and a person is better told of an opening that found nothing
// of theirs than not told of one that did.
func Touches(sc Scope, groups []candor.GroupID, user candor.UserID) bool {
	if slices.Contains(sc.Users, user) {
		return true
	}
	for _, g := range groups {
		if slices.Contains(sc.Groups, g) {
			return true
		}
	}
	return false
}
