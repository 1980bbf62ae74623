package access

import "fmt"

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

// Collect groups a log's records, the first at index first, into cases in
// the order of their requests. An approval or opening naming a request
// that does not come before it in the log is an error: the server never
// logs one, so its presence means the log is not what candor writes.
func Collect(first int64, records []Record) ([]*Case, error) {
	var cases []*Case
	byID := make(map[RequestID]*Case)
	for i, r := range records {
		index := first + int64(i)
		switch r.Type() {
		case TypeRequest:
			id, err := r.Request.ID()
			if err != nil {
				return nil, fmt.Errorf("access: record %d: %w", index, err)
			}
			if byID[id] != nil {
				return nil, fmt.Errorf("access: record %d repeats request %v: %w", index, id, ErrMalformed)
			}
			c := &Case{ID: id, Index: index, Request: r.Request}
			byID[id] = c
			cases = append(cases, c)
		case TypeApproval:
			c := byID[r.Approval.Request]
			if c == nil {
				return nil, fmt.Errorf("access: record %d approves request %v, which the log does not hold before it: %w", index, r.Approval.Request, ErrMalformed)
			}
			if !c.approvedBy(r.Approval.Custodian) {
				c.Approvals = append(c.Approvals, r.Approval)
			}
		case TypeOpening:
			c := byID[r.Opening.Request]
			if c == nil {
				return nil, fmt.Errorf("access: record %d reports an opening for request %v, which the log does not hold before it: %w", index, r.Opening.Request, ErrMalformed)
			}
			c.Openings = append(c.Openings, r.Opening)
		default:
			return nil, fmt.Errorf("access: record %d holds no entry: %w", index, ErrMalformed)
		}
	}
	return cases, nil
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
