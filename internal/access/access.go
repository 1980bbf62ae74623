// Package access defines the records of candor's access transparency log
// (docs/design/access-log.md): every request to open the archive, every
// custodian's approval of one, every opening that was carried out, every
// legal hold set and lifted, and every deletion of a conversation's history
// under the retention period. The records are entries of a translog Merkle
// log that the server keeps and every member's device checks, so that no
// opening of the archive, and no hold or deletion, can happen without a
// trace each affected person can see.
//
// The package is pure: formats, their canonical encodings and scope
// matching, with no I/O and no clock. It imports neither the custody nor
// the archive code, so the delivery server can link it: the custodian's
// approval travels inside an Approval record as opaque bytes, and only its
// fixed header (the request it approves and the custodian's slot) is read
// here, to keep the record and the approval it carries in agreement.
//
// Encoding. Every record is binary, in the TLS presentation language as
// MLS and internal/custody use it:
//
//	"cacc" | uint8 version = 1 | uint8 type | body
//
// with the body of the type's own doc comment. Each decoder accepts exactly
// what its encoder writes (sorted lists without duplicates, canonical
// lengths, no trailing bytes), so one record has one encoding, and the
// SHA-256 of a request's or a hold's encoding names it.
package access

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"candor"
)

// ErrMalformed reports bytes that are not a canonical record of this
// version. It wraps candor.ErrInvalid.
var ErrMalformed = fmt.Errorf("access: malformed record: %w", candor.ErrInvalid)

// magic opens every record; version is the format this package writes and
// reads.
const (
	magic   = "cacc"
	version = 1
)

// Type tags a record's kind.
type Type uint8

// Record types. The numbers are part of the format.
const (
	TypeRequest  Type = 1
	TypeApproval Type = 2
	TypeOpening  Type = 3
	TypeHold     Type = 4
	TypeRelease  Type = 5
	TypeDeletion Type = 6
)

func (t Type) String() string {
	switch t {
	case TypeRequest:
		return "request"
	case TypeApproval:
		return "approval"
	case TypeOpening:
		return "opening"
	case TypeHold:
		return "hold"
	case TypeRelease:
		return "release"
	case TypeDeletion:
		return "deletion"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Limits on the fields. They keep every record far below translog's
// record limit and a listing on a screen readable.
const (
	MaxNameBytes   = 255  // case id, requester, custodian name, who set or lifted a hold, user and group ids
	MaxReasonBytes = 4096 // the reason of a request, a hold or its release
	MaxScopeItems  = 1000 // groups, and users, of one scope or hold
	MaxApproval    = 4096 // the custodian's approval, opaque
)

// A Record is one entry of the access log: exactly one of its fields is
// set, the one its Type names.
type Record struct {
	Request  *Request
	Approval *Approval
	Opening  *Opening
	Hold     *Hold
	Release  *Release
	Deletion *Deletion
}

// Type returns the kind of record r holds, or 0 if it holds none or more
// than one.
func (r Record) Type() Type {
	var t Type
	n := 0
	for _, f := range []struct {
		set bool
		t   Type
	}{
		{r.Request != nil, TypeRequest},
		{r.Approval != nil, TypeApproval},
		{r.Opening != nil, TypeOpening},
		{r.Hold != nil, TypeHold},
		{r.Release != nil, TypeRelease},
		{r.Deletion != nil, TypeDeletion},
	} {
		if f.set {
			t, n = f.t, n+1
		}
	}
	if n != 1 {
		return 0
	}
	return t
}

// MarshalBinary returns the record's encoding: what the log stores.
func (r Record) MarshalBinary() ([]byte, error) {
	switch r.Type() {
	case TypeRequest:
		return r.Request.MarshalBinary()
	case TypeApproval:
		return r.Approval.MarshalBinary()
	case TypeOpening:
		return r.Opening.MarshalBinary()
	case TypeHold:
		return r.Hold.MarshalBinary()
	case TypeRelease:
		return r.Release.MarshalBinary()
	case TypeDeletion:
		return r.Deletion.MarshalBinary()
	}
	return nil, fmt.Errorf("access: a record must hold exactly one entry: %w", candor.ErrInvalid)
}

// ParseRecord decodes a record of any type. Anything but a canonical
// encoding of this version fails with ErrMalformed.
func ParseRecord(b []byte) (Record, error) {
	if len(b) < len(magic)+2 {
		return Record{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	switch Type(b[len(magic)+1]) {
	case TypeRequest:
		q, err := ParseRequest(b)
		return Record{Request: q}, err
	case TypeApproval:
		a, err := ParseApproval(b)
		return Record{Approval: a}, err
	case TypeOpening:
		o, err := ParseOpening(b)
		return Record{Opening: o}, err
	case TypeHold:
		h, err := ParseHold(b)
		return Record{Hold: h}, err
	case TypeRelease:
		rl, err := ParseRelease(b)
		return Record{Release: rl}, err
	case TypeDeletion:
		d, err := ParseDeletion(b)
		return Record{Deletion: d}, err
	}
	// Check the header first so that the error names the real problem.
	s := cryptobyte.String(b)
	if err := readHeader(&s, Type(b[len(magic)+1])); err != nil {
		return Record{}, err
	}
	return Record{}, fmt.Errorf("%w: unknown record type %d", ErrMalformed, b[len(magic)+1])
}

func addHeader(b *cryptobyte.Builder, t Type) {
	b.AddBytes([]byte(magic))
	b.AddUint8(version)
	b.AddUint8(uint8(t))
}

// readHeader consumes the header of a record of type want.
func readHeader(s *cryptobyte.String, want Type) error {
	var m []byte
	var v, t uint8
	if !s.ReadBytes(&m, len(magic)) || !s.ReadUint8(&v) || !s.ReadUint8(&t) {
		return fmt.Errorf("%w: truncated header", ErrMalformed)
	}
	if string(m) != magic {
		return fmt.Errorf("%w: not an access log record", ErrMalformed)
	}
	if v != version {
		return fmt.Errorf("%w: format version %d, this build reads version %d", ErrMalformed, v, version)
	}
	if Type(t) != want {
		return fmt.Errorf("%w: a %s record, want a %s", ErrMalformed, Type(t), want)
	}
	return nil
}

// finish checks that nothing follows a record's last field.
func finish(s cryptobyte.String, what string) error {
	if !s.Empty() {
		return fmt.Errorf("%w: %s: %d bytes after the end", ErrMalformed, what, len(s))
	}
	return nil
}

// checkText checks a text field: UTF-8, between 1 and max bytes, and free
// of control characters, which could rewrite the terminal of whoever reads
// the log. multiline allows line feeds and tabs (a reason's paragraphs).
func checkText(field, v string, max int, multiline bool) error {
	if v == "" || len(v) > max {
		return fmt.Errorf("access: %s of %d bytes, want 1 to %d: %w", field, len(v), max, candor.ErrInvalid)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("access: %s is not UTF-8: %w", field, candor.ErrInvalid)
	}
	for _, r := range v {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("access: %s holds the control character %U: %w", field, r, candor.ErrInvalid)
		}
	}
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("access: %s is blank: %w", field, candor.ErrInvalid)
	}
	return nil
}

// addText and readText carry a text field with a length prefix of one
// byte (names) or two (a reason).
func addText(b *cryptobyte.Builder, v string, long bool) {
	if long {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(v)) })
		return
	}
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(v)) })
}

func readText(s *cryptobyte.String, long bool) (string, bool) {
	var v cryptobyte.String
	if long {
		if !s.ReadUint16LengthPrefixed(&v) {
			return "", false
		}
	} else if !s.ReadUint8LengthPrefixed(&v) {
		return "", false
	}
	return string(v), true
}

// Times are whole seconds since 1970 in a uint64: the log records when
// things happened to the second, and one instant has one encoding.
func addTime(b *cryptobyte.Builder, t time.Time) { b.AddUint64(uint64(t.Unix())) }

func readTime(s *cryptobyte.String) (time.Time, bool) {
	var v uint64
	if !s.ReadUint64(&v) || v > maxUnix {
		return time.Time{}, false
	}
	return time.Unix(int64(v), 0).UTC(), true
}

// maxUnix is the last second of the year 9999: far enough, and every time
// up to it prints as RFC 3339.
const maxUnix = 253402300799

func checkTime(field string, t time.Time) error {
	if t.Unix() < 0 || t.Unix() > maxUnix || t.Nanosecond() != 0 {
		return fmt.Errorf("access: %s %v is not a whole second between 1970 and 9999: %w", field, t, candor.ErrInvalid)
	}
	return nil
}

// sortedUnique reports whether items are in strictly increasing byte
// order: the canonical order of the scope's lists.
func sortedUnique[T ~string](items []T) bool {
	for i := 1; i < len(items); i++ {
		if items[i-1] >= items[i] {
			return false
		}
	}
	return true
}

// normalise returns a sorted copy of items without duplicates.
func normalise[T ~string](items []T) []T {
	out := slices.Clone(items)
	slices.Sort(out)
	return slices.Compact(out)
}
