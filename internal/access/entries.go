package access

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"candor"
)

// MaxCustodians is the largest custodian slot, as internal/custody bounds
// it.
const MaxCustodians = 64

// The custodian's approval (internal/custody's Approval encoding) begins
//
//	"capp" | uint8 version = 1 | opaque policy_id[32] | opaque request_id[32] | uint8 index
//
// This package reads that prefix and nothing else: it is enough to tie an
// Approval record to the request and slot the custodian signed, without
// the custody code, which the server must not link. A test of this package
// builds approvals with internal/custody and checks that the two agree.
const (
	custodyApprovalMagic   = "capp"
	custodyApprovalVersion = 1
	custodyApprovalPrefix  = len(custodyApprovalMagic) + 1 + 32 + 32 + 1
)

// ApprovalHeader reads the request id and the custodian's slot from the
// start of a custodian's approval. It checks only that header: whether the
// approval is signed, and by whom, is for whoever holds the custody policy
// (custody.Approval.Verify).
func ApprovalHeader(approval []byte) (RequestID, int, error) {
	if len(approval) < custodyApprovalPrefix || string(approval[:4]) != custodyApprovalMagic {
		return RequestID{}, 0, fmt.Errorf("access: not a custodian's approval: %w", candor.ErrInvalid)
	}
	if approval[4] != custodyApprovalVersion {
		return RequestID{}, 0, fmt.Errorf("access: custodian's approval of format version %d, this build reads %d: %w", approval[4], custodyApprovalVersion, candor.ErrInvalid)
	}
	var id RequestID
	copy(id[:], approval[5+32:5+64])
	index := int(approval[custodyApprovalPrefix-1])
	if index < 1 || index > MaxCustodians {
		return RequestID{}, 0, fmt.Errorf("access: custodian's approval for slot %d, want 1 to %d: %w", index, MaxCustodians, candor.ErrInvalid)
	}
	return id, index, nil
}

// An Approval records one custodian's consent to one request.
//
// Encoding (after the record header, type 2):
//
//	opaque request_id[32]
//	uint8  custodian                  the custodian's slot, 1..64
//	opaque custodian_name<1..255>
//	opaque approval<1..4096>          uint16 length: internal/custody's Approval
//
// The approval's own header must name the same request and slot.
type Approval struct {
	Request RequestID
	// Custodian is the approving custodian's slot in the custody policy,
	// and CustodianName their name as the policy lists it.
	Custodian     int
	CustodianName string
	// Custody is the custodian's signed approval, opaque here. It holds
	// their share sealed to the opening's one-time key: only the opener
	// can read it, so it may be public.
	Custody []byte
}

// Validate checks the fields, and that the custodian's approval names the
// same request and slot as the record.
func (a *Approval) Validate() error {
	var errs []error
	if a.Custodian < 1 || a.Custodian > MaxCustodians {
		errs = append(errs, fmt.Errorf("access: custodian slot %d, want 1 to %d: %w", a.Custodian, MaxCustodians, candor.ErrInvalid))
	}
	errs = append(errs, checkText("custodian name", a.CustodianName, MaxNameBytes, false))
	if len(a.Custody) > MaxApproval {
		errs = append(errs, fmt.Errorf("access: custodian's approval of %d bytes, at most %d: %w", len(a.Custody), MaxApproval, candor.ErrInvalid))
	} else if id, slot, err := ApprovalHeader(a.Custody); err != nil {
		errs = append(errs, err)
	} else if id != a.Request || slot != a.Custodian {
		errs = append(errs, fmt.Errorf("access: the custodian's approval is for request %v, slot %d, not request %v, slot %d: %w", id, slot, a.Request, a.Custodian, candor.ErrInvalid))
	}
	return errors.Join(errs...)
}

// MarshalBinary returns the record's encoding.
func (a *Approval) MarshalBinary() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	addHeader(&b, TypeApproval)
	b.AddBytes(a.Request[:])
	b.AddUint8(uint8(a.Custodian))
	addText(&b, a.CustodianName, false)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(a.Custody) })
	return b.Bytes()
}

// ParseApproval decodes an approval record; anything but a canonical
// encoding of a valid one fails with ErrMalformed.
func ParseApproval(b []byte) (*Approval, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, TypeApproval); err != nil {
		return nil, err
	}
	a := &Approval{}
	var slot uint8
	var name string
	var custody cryptobyte.String
	ok := s.CopyBytes(a.Request[:]) && s.ReadUint8(&slot)
	if ok {
		name, ok = readText(&s, false)
	}
	if !ok || !s.ReadUint16LengthPrefixed(&custody) {
		return nil, fmt.Errorf("%w: approval: truncated", ErrMalformed)
	}
	if err := finish(s, "approval"); err != nil {
		return nil, err
	}
	a.Custodian, a.CustodianName, a.Custody = int(slot), name, slices.Clone([]byte(custody))
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return a, nil
}

// A Replayed group is one conversation an opening read, and how many of
// its records (commits and messages) it replayed.
type Replayed struct {
	Group   candor.GroupID
	Records uint64
}

// An Opening records that an opening was carried out: which request it
// served and what it read.
//
// Encoding (after the record header, type 3):
//
//	opaque request_id[32]
//	uint64 completed                  seconds since 1970
//	opaque groups<0..2^16-1>          each: opaque group<1..255> | uint64 records; sorted by group, no repeats
type Opening struct {
	Request RequestID
	// Completed is when the replay finished, a whole second.
	Completed time.Time
	// Groups are the conversations replayed, in any order; the encoding
	// sorts them. An opening that found nothing in scope lists none.
	Groups []Replayed
}

// Validate checks the fields.
func (o *Opening) Validate() error {
	var errs []error
	errs = append(errs, checkTime("completion time", o.Completed))
	if len(o.Groups) > MaxScopeItems {
		errs = append(errs, fmt.Errorf("access: %d groups replayed, at most %d: %w", len(o.Groups), MaxScopeItems, candor.ErrInvalid))
	}
	seen := make(map[candor.GroupID]bool, len(o.Groups))
	for _, g := range o.Groups {
		errs = append(errs, checkGroupID(g.Group))
		if seen[g.Group] {
			errs = append(errs, fmt.Errorf("access: group %v listed twice: %w", g.Group, candor.ErrInvalid))
		}
		seen[g.Group] = true
	}
	return errors.Join(errs...)
}

// MarshalBinary returns the record's encoding.
func (o *Opening) MarshalBinary() ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	groups := slices.Clone(o.Groups)
	slices.SortFunc(groups, func(a, b Replayed) int {
		switch {
		case a.Group < b.Group:
			return -1
		case a.Group > b.Group:
			return 1
		}
		return 0
	})
	var b cryptobyte.Builder
	addHeader(&b, TypeOpening)
	b.AddBytes(o.Request[:])
	addTime(&b, o.Completed)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, g := range groups {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(g.Group)) })
			b.AddUint64(g.Records)
		}
	})
	return b.Bytes()
}

// ParseOpening decodes an opening record; anything but a canonical
// encoding of a valid one fails with ErrMalformed.
func ParseOpening(b []byte) (*Opening, error) {
	s := cryptobyte.String(b)
	if err := readHeader(&s, TypeOpening); err != nil {
		return nil, err
	}
	o := &Opening{}
	var ok bool
	var list cryptobyte.String
	if !s.CopyBytes(o.Request[:]) {
		return nil, fmt.Errorf("%w: opening: truncated", ErrMalformed)
	}
	if o.Completed, ok = readTime(&s); !ok || !s.ReadUint16LengthPrefixed(&list) {
		return nil, fmt.Errorf("%w: opening: truncated or out-of-range time", ErrMalformed)
	}
	for !list.Empty() {
		var id cryptobyte.String
		var g Replayed
		if !list.ReadUint8LengthPrefixed(&id) || len(id) == 0 || !list.ReadUint64(&g.Records) {
			return nil, fmt.Errorf("%w: opening: truncated group", ErrMalformed)
		}
		if len(o.Groups) == MaxScopeItems {
			return nil, fmt.Errorf("%w: opening: more than %d groups", ErrMalformed, MaxScopeItems)
		}
		g.Group = candor.GroupID(id)
		if n := len(o.Groups); n > 0 && o.Groups[n-1].Group >= g.Group {
			return nil, fmt.Errorf("%w: opening: groups are not sorted or repeat one", ErrMalformed)
		}
		o.Groups = append(o.Groups, g)
	}
	if err := finish(s, "opening"); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return o, nil
}
