package access

import (
	"fmt"

	"candor"
)

// A Log is what an access log's records say, read in one pass: the
// opening cases, the legal holds and the deletions.
type Log struct {
	// Cases are the opening requests with what followed each, in the
	// order of their requests.
	Cases []*Case
	// Holds are every hold set, lifted or not, in log order.
	Holds []*HoldState
	// Deletions are the deletions of history, in log order.
	Deletions []*DeletionEntry
}

// A Case is one opening request with what the log says of it since.
type Case struct {
	ID      RequestID
	Index   int64 // the request's position in the log
	Request *Request
	// Approvals are the custodians' approvals logged for it, in log
	// order, one per custodian slot (a later one of the same slot is a
	// repeat and is left out).
	Approvals []*Approval
	// Openings are the completed openings logged for it, in log order.
	Openings []*Opening
}

// A HoldState is one legal hold and whether it was lifted.
type HoldState struct {
	ID    HoldID
	Index int64 // the hold's position in the log
	Hold  *Hold
	// Release lifted the hold, at ReleaseIndex in the log; nil while the
	// hold is in force.
	Release      *Release
	ReleaseIndex int64
}

// Active reports whether the hold is in force: set and not lifted.
func (h *HoldState) Active() bool { return h.Release == nil }

// A DeletionEntry is one deletion of history and its position in the log.
type DeletionEntry struct {
	Index    int64
	Deletion *Deletion
}

// Read reads a log's records, the first at index first. A record that
// refers to one that does not come before it in the log (an approval or
// opening of an unknown request, a release of an unknown hold), a request
// or hold logged twice, or a hold lifted twice is an error wrapping
// ErrMalformed: the server never logs one, so its presence means the log
// is not what candor writes. A record of no known type is one too, so a
// device too old for the log fails loudly rather than show half of it.
func Read(first int64, records []Record) (*Log, error) {
	l := &Log{}
	cases := make(map[RequestID]*Case)
	holds := make(map[HoldID]*HoldState)
	for i, r := range records {
		index := first + int64(i)
		switch r.Type() {
		case TypeRequest:
			id, err := r.Request.ID()
			if err != nil {
				return nil, fmt.Errorf("access: record %d: %w", index, err)
			}
			if cases[id] != nil {
				return nil, fmt.Errorf("access: record %d repeats request %v: %w", index, id, ErrMalformed)
			}
			c := &Case{ID: id, Index: index, Request: r.Request}
			cases[id] = c
			l.Cases = append(l.Cases, c)
		case TypeApproval:
			c := cases[r.Approval.Request]
			if c == nil {
				return nil, fmt.Errorf("access: record %d approves request %v, which the log does not hold before it: %w", index, r.Approval.Request, ErrMalformed)
			}
			if !c.approvedBy(r.Approval.Custodian) {
				c.Approvals = append(c.Approvals, r.Approval)
			}
		case TypeOpening:
			c := cases[r.Opening.Request]
			if c == nil {
				return nil, fmt.Errorf("access: record %d reports an opening for request %v, which the log does not hold before it: %w", index, r.Opening.Request, ErrMalformed)
			}
			c.Openings = append(c.Openings, r.Opening)
		case TypeHold:
			id, err := r.Hold.ID()
			if err != nil {
				return nil, fmt.Errorf("access: record %d: %w", index, err)
			}
			if holds[id] != nil {
				return nil, fmt.Errorf("access: record %d repeats hold %v: %w", index, id, ErrMalformed)
			}
			h := &HoldState{ID: id, Index: index, Hold: r.Hold}
			holds[id] = h
			l.Holds = append(l.Holds, h)
		case TypeRelease:
			h := holds[r.Release.Hold]
			if h == nil {
				return nil, fmt.Errorf("access: record %d lifts hold %v, which the log does not hold before it: %w", index, r.Release.Hold, ErrMalformed)
			}
			if !h.Active() {
				return nil, fmt.Errorf("access: record %d lifts hold %v, already lifted at record %d: %w", index, h.ID, h.ReleaseIndex, ErrMalformed)
			}
			h.Release, h.ReleaseIndex = r.Release, index
		case TypeDeletion:
			l.Deletions = append(l.Deletions, &DeletionEntry{Index: index, Deletion: r.Deletion})
		default:
			return nil, fmt.Errorf("access: record %d holds no entry: %w", index, ErrMalformed)
		}
	}
	return l, nil
}

// Case returns the case of request id, or nil if the log holds none.
func (l *Log) Case(id RequestID) *Case {
	for _, c := range l.Cases {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// Hold returns hold id, lifted or not, or nil if the log holds none.
func (l *Log) Hold(id HoldID) *HoldState {
	for _, h := range l.Holds {
		if h.ID == id {
			return h
		}
	}
	return nil
}

// ActiveHolds returns the holds in force, in log order.
func (l *Log) ActiveHolds() []*HoldState {
	var out []*HoldState
	for _, h := range l.Holds {
		if h.Active() {
			out = append(out, h)
		}
	}
	return out
}

// HeldGroups returns the groups the holds in force cover, each with the
// holds that cover it, in log order: every group a hold names, and every
// group any device of a person it names was ever a member of, so that
// leaving a conversation does not take it out of a hold on its member.
// The log does not know memberships: groupsOf returns a person's groups,
// past ones included (from the store's membership spans), and is asked
// once per person. Its error is returned as is.
func (l *Log) HeldGroups(groupsOf func(candor.UserID) ([]candor.GroupID, error)) (map[candor.GroupID][]*HoldState, error) {
	held := make(map[candor.GroupID][]*HoldState)
	cover := func(g candor.GroupID, h *HoldState) {
		// A hold naming a group and a person in it covers it once.
		if hs := held[g]; len(hs) == 0 || hs[len(hs)-1] != h {
			held[g] = append(hs, h)
		}
	}
	groupsByUser := make(map[candor.UserID][]candor.GroupID)
	for _, h := range l.ActiveHolds() {
		for _, g := range h.Hold.Groups {
			cover(g, h)
		}
		for _, u := range h.Hold.Users {
			gs, asked := groupsByUser[u]
			if !asked {
				var err error
				if gs, err = groupsOf(u); err != nil {
					return nil, err
				}
				groupsByUser[u] = gs
			}
			for _, g := range gs {
				cover(g, h)
			}
		}
	}
	return held, nil
}

// approvedBy reports whether the custodian in slot has approved c.
func (c *Case) approvedBy(slot int) bool {
	for _, a := range c.Approvals {
		if a.Custodian == slot {
			return true
		}
	}
	return false
}
