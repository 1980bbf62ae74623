package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"candor"
	"candor/api"
	"candor/internal/access"
	"candor/internal/translog"
)

// ErrAccessKeyChanged reports that the server presents another access log
// key than the one this device pinned: either the organisation replaced
// its log, which its administrators must explain, or the server is showing
// this device a log of its own making.
var ErrAccessKeyChanged = errors.New("the access log's key is not the one this device pinned")

// An AuditReport is what the organisation's access transparency log, as
// this device checked it, says that concerns this person.
type AuditReport struct {
	// Openings are the requests to open the archive whose scope reaches
	// this person, in log order.
	Openings []AuditEntry
	// Holds are the legal holds, in force or lifted, that name this person
	// or a conversation this device is or was in, in log order.
	Holds []AuditHold
	// Deletions are the deletions, under the retention period, of the
	// history of conversations this device is or was in, in log order.
	Deletions []AuditDeletion
}

// An AuditEntry is one request to open the archive whose scope reaches
// this person, as the access transparency log records it.
type AuditEntry struct {
	// Request is the request's id (hex), and Index its position in the log.
	Request string
	Index   int64
	// Case, Reason and Requester are as the request states them.
	Case, Reason, Requester string
	// Created is when the request was made.
	Created time.Time
	// From and To bound the messages in scope (To excluded).
	From, To time.Time
	// Groups are the conversations in scope that this device is or was
	// in; NamesYou is set when the request names this person.
	Groups   []candor.GroupID
	NamesYou bool
	// Approvals are the custodians who approved, in the order logged.
	Approvals []AuditApproval
	// Openings are the completed openings of the request; none while it
	// waits for approvals or was never carried out.
	Openings []AuditOpening
}

// Completed reports whether the request was carried out.
func (e AuditEntry) Completed() bool { return len(e.Openings) > 0 }

// An AuditApproval is one custodian's approval.
type AuditApproval struct {
	Custodian int // their slot in the custody policy
	Name      string
}

// An AuditOpening is one completed opening: when, and how much of which
// conversations it read.
type AuditOpening struct {
	Completed time.Time
	Groups    []access.Replayed
}

// An AuditHold is one legal hold that names this person or a conversation
// of theirs: while it is in force, nothing of what it covers is deleted
// under the retention period.
type AuditHold struct {
	// Hold is the hold's id (hex), and Index its position in the log.
	Hold  string
	Index int64
	// Case, Reason and By are as the hold states them; Set is when.
	Case, Reason, By string
	Set              time.Time
	// Groups are the conversations it names that this device is or was
	// in; NamesYou is set when it names this person, which covers every
	// conversation they were ever in.
	Groups   []candor.GroupID
	NamesYou bool
	// Lifted says when, by whom and why the hold was lifted; nil while it
	// is in force.
	Lifted *AuditRelease
}

// Active reports whether the hold is in force.
func (h AuditHold) Active() bool { return h.Lifted == nil }

// An AuditRelease is the lifting of a hold.
type AuditRelease struct {
	Index      int64
	Reason, By string
	At         time.Time
}

// An AuditDeletion is one deletion of a conversation's history under the
// organisation's retention period: its log entries (commits and messages)
// First to Last are gone from the server, and so from the archive.
type AuditDeletion struct {
	Index       int64
	Group       candor.GroupID
	First, Last uint64
	At          time.Time
	Retention   time.Duration
}

// Audit checks the organisation's access transparency log and returns what
// of it concerns this person (AuditReport): the openings whose scope
// touched them, the legal holds on them or their conversations, and the
// deletions of their conversations' history. A request or hold touches
// them when it names a conversation this device is or was in, or the
// person by name. On the way it
//
//   - pins the log's key at first use (profile file access.pub), and
//     fails with ErrAccessKeyChanged if the server later presents another;
//   - fetches the signed checkpoint with a proof that it extends the one
//     this device checked last (access.checkpoint), and keeps the new one;
//   - fetches every record with its proof of inclusion under that
//     checkpoint.
//
// A log that rolled back or forked since this device last looked fails
// with an error wrapping translog.ErrInconsistent (a
// *translog.InconsistentError, holding both signed checkpoints as
// evidence); the checkpoint kept stays the old one, so every later Audit
// fails the same way until people look into it, and the contradicting
// checkpoint is kept beside it (access.presented). A record that fails its
// proof wraps translog.ErrNotIncluded; one that does not parse, of a type
// this build does not know included, wraps access.ErrMalformed, so that a
// device too old for the log fails rather than show part of it.
func (c *Client) Audit(ctx context.Context) (*AuditReport, error) {
	lc, err := c.openLog(ctx, accessLog)
	if err != nil {
		return nil, err
	}
	var cp api.AccessCheckpoint
	if err := c.tr.call(ctx, "GET", fmt.Sprintf("%s?since=%d", api.PathAccessCheckpoint, lc.trustedSize()), nil, &cp); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	current, err := lc.update(cp.Checkpoint, cp.Proof)
	if err != nil {
		return nil, err
	}
	records, err := c.accessRecords(ctx, lc.v, current.Size)
	if err != nil {
		return nil, err
	}
	log, err := access.Read(0, records)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	groups, err := c.Groups(ctx)
	if err != nil {
		return nil, err
	}
	mine := make([]candor.GroupID, 0, len(groups))
	for _, g := range groups {
		mine = append(mine, g.ID)
	}
	out := &AuditReport{}
	for _, cs := range log.Cases {
		if access.Touches(cs.Request.Scope, mine, c.User()) {
			out.Openings = append(out.Openings, auditEntry(cs, mine, c.User()))
		}
	}
	for _, h := range log.Holds {
		// A hold reaches the person as a request's scope does: by
		// naming them or a conversation of theirs.
		if access.Touches(access.Scope{Groups: h.Hold.Groups, Users: h.Hold.Users}, mine, c.User()) {
			out.Holds = append(out.Holds, auditHold(h, mine, c.User()))
		}
	}
	for _, e := range log.Deletions {
		if d := e.Deletion; slices.Contains(mine, d.Group) {
			out.Deletions = append(out.Deletions, AuditDeletion{Index: e.Index, Group: d.Group, First: d.First, Last: d.Last, At: d.At, Retention: d.Retention})
		}
	}
	return out, nil
}

// auditHold describes one hold for this person.
func auditHold(h *access.HoldState, mine []candor.GroupID, me candor.UserID) AuditHold {
	a := AuditHold{
		Hold: h.ID.String(), Index: h.Index,
		Case: h.Hold.Case, Reason: h.Hold.Reason, By: h.Hold.By, Set: h.Hold.Set,
		NamesYou: slices.Contains(h.Hold.Users, me),
	}
	for _, g := range h.Hold.Groups {
		if slices.Contains(mine, g) {
			a.Groups = append(a.Groups, g)
		}
	}
	if r := h.Release; r != nil {
		a.Lifted = &AuditRelease{Index: h.ReleaseIndex, Reason: r.Reason, By: r.By, At: r.At}
	}
	return a
}

// auditEntry describes one case for this person.
func auditEntry(cs *access.Case, mine []candor.GroupID, me candor.UserID) AuditEntry {
	q := cs.Request
	e := AuditEntry{
		Request: cs.ID.String(), Index: cs.Index,
		Case: q.Case, Reason: q.Reason, Requester: q.Requester, Created: q.Created,
		From: q.Scope.From, To: q.Scope.To,
		NamesYou: slices.Contains(q.Scope.Users, me),
	}
	for _, g := range q.Scope.Groups {
		if slices.Contains(mine, g) {
			e.Groups = append(e.Groups, g)
		}
	}
	for _, a := range cs.Approvals {
		e.Approvals = append(e.Approvals, AuditApproval{Custodian: a.Custodian, Name: a.CustodianName})
	}
	for _, o := range cs.Openings {
		e.Openings = append(e.Openings, AuditOpening{Completed: o.Completed, Groups: slices.Clone(o.Groups)})
	}
	return e
}

// accessRecords fetches the first size records and checks each one's
// inclusion under the checkpoint v trusts, of that size.
func (c *Client) accessRecords(ctx context.Context, v *translog.Verifier, size int64) ([]access.Record, error) {
	out := make([]access.Record, 0, size)
	for from := int64(0); from < size; {
		var page api.AccessRecords
		p := fmt.Sprintf("%s?from=%d&size=%d&limit=%d", api.PathAccessRecords, from, size, api.MaxAccessPage)
		if err := c.tr.call(ctx, "GET", p, nil, &page); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		if page.Size != size || len(page.Records) == 0 {
			return nil, fmt.Errorf("audit: asked for records from %d of %d, the server sent %d of %d: %w", from, size, len(page.Records), page.Size, ErrProtocol)
		}
		for _, r := range page.Records {
			if r.Index != from {
				return nil, fmt.Errorf("audit: the server sent record %d where %d belongs: %w", r.Index, from, ErrProtocol)
			}
			var proof translog.InclusionProof
			if err := proof.UnmarshalText(r.Proof); err != nil {
				return nil, fmt.Errorf("audit: the proof of record %d: %w: %w", from, ErrProtocol, err)
			}
			if proof.Index != from {
				return nil, fmt.Errorf("audit: the server sent a proof of record %d for record %d: %w", proof.Index, from, ErrProtocol)
			}
			if err := v.VerifyInclusion(r.Record, proof); err != nil {
				return nil, fmt.Errorf("audit: access log record %d: %w", from, err)
			}
			rec, err := access.ParseRecord(r.Record)
			if err != nil {
				return nil, fmt.Errorf("audit: access log record %d: %w", from, err)
			}
			out = append(out, rec)
			from++
			if from == size {
				break
			}
		}
	}
	return out, nil
}
