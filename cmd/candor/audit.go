package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"candor"
	"candor/client"
	"candor/internal/translog"
)

// runAudit lists what of the organisation's access transparency log,
// checked on this device, concerns this person: the openings of the
// archive, the legal holds and the deletions of their conversations'
// history. Then it checks that the archive's journal of each of their
// conversations holds what this device received (client.CheckJournal).
func runAudit(ctx context.Context, e *env, _ []string) error {
	// Conversations this device has not caught up with yet count too.
	if err := e.c.Sync(ctx); err != nil {
		return err
	}
	report, err := e.c.Audit(ctx)
	if err != nil {
		return err
	}
	gs, err := e.c.Groups(ctx)
	if err != nil {
		return err
	}
	names := make(map[candor.GroupID]string, len(gs))
	for _, g := range gs {
		short := g.ID.String()[:min(shortID, len(g.ID.String()))]
		if g.Name != "" {
			names[g.ID] = fmt.Sprintf("%q (%s)", g.Name, short)
		} else {
			names[g.ID] = "conversation " + short
		}
	}
	switch n := len(report.Openings); n {
	case 0:
		fmt.Fprintln(e.out, "No request to open the archive concerns you: the organisation's access log, checked on this device, names neither you nor any conversation you are or were in.")
	case 1:
		fmt.Fprintln(e.out, "1 request to open the archive concerns you. The access log was checked on this device.")
	default:
		fmt.Fprintf(e.out, "%d requests to open the archive concern you. The access log was checked on this device.\n", n)
	}
	for _, en := range report.Openings {
		fmt.Fprintln(e.out)
		writeAuditEntry(e, en, names)
	}
	if len(report.Holds) > 0 {
		fmt.Fprintln(e.out)
		fmt.Fprintf(e.out, "Legal holds on you or your conversations: %d (%d in force).\n", len(report.Holds), countActive(report.Holds))
		for _, h := range report.Holds {
			fmt.Fprintln(e.out)
			writeAuditHold(e, h, names)
		}
	}
	if len(report.Deletions) > 0 {
		fmt.Fprintln(e.out)
		fmt.Fprintln(e.out, "History deleted under the organisation's retention period, from the server and the archive:")
		for _, d := range report.Deletions {
			fmt.Fprintf(e.out, "  %s: entries %d to %d, deleted on %s under a retention period of %s\n",
				names[d.Group], d.First, d.Last, d.At.Local().Format(timeLayout), retentionText(d.Retention))
		}
	}
	journal, err := e.c.CheckJournal(ctx)
	if journal == nil {
		return journalError{err}
	}
	fmt.Fprintln(e.out)
	fmt.Fprintf(e.out, "The archive's journal, checked against what this device received (signed journal heads: %s):\n", plural(journal.Size, "record"))
	for _, g := range journal.Groups {
		fmt.Fprintf(e.out, "  %s: %s\n", names[g.Group], journalText(g))
	}
	if err != nil {
		return journalError{err}
	}
	return nil
}

// journalError is a failure of the journal check, which explanationOf
// tells from the access log's.
type journalError struct{ err error }

func (e journalError) Error() string { return e.err.Error() }
func (e journalError) Unwrap() error { return e.err }

// journalText says what the journal check found for one conversation.
func journalText(g client.JournalGroup) string {
	switch g.Status {
	case client.JournalAgrees:
		if g.Signed == g.Seq {
			return fmt.Sprintf("as received, up to entry %d", g.Seq)
		}
		return fmt.Sprintf("as received, up to entry %d (signed up to entry %d)", g.Seq, g.Signed)
	case client.JournalNotCovered:
		return "not yet covered: the server has signed no journal head of it yet; check again later"
	case client.JournalNothingYet:
		return "nothing to check yet: no entry since this device joined"
	}
	return fmt.Sprintf("DIFFERS from what this device received (up to entry %d; signed up to entry %d)", g.Seq, g.Signed)
}

// writeAuditHold describes one legal hold.
func writeAuditHold(e *env, h client.AuditHold, names map[candor.GroupID]string) {
	fmt.Fprintf(e.out, "Hold %s, set by %s on %s\n", h.Case, h.By, h.Set.Local().Format(timeLayout))
	fmt.Fprintf(e.out, "  Reason:    %s\n", strings.ReplaceAll(h.Reason, "\n", "\n             "))
	var scope []string
	for _, g := range h.Groups {
		scope = append(scope, names[g])
	}
	if h.NamesYou {
		scope = append(scope, "you, by name (every conversation you were ever in)")
	}
	fmt.Fprintf(e.out, "  Covers:    %s\n", strings.Join(scope, "; "))
	if h.Active() {
		fmt.Fprintln(e.out, "  Status:    IN FORCE: nothing it covers is deleted under the retention period")
		return
	}
	fmt.Fprintf(e.out, "  Status:    lifted by %s on %s: %s\n", h.Lifted.By, h.Lifted.At.Local().Format(timeLayout),
		strings.ReplaceAll(h.Lifted.Reason, "\n", "\n             "))
}

// countActive counts the holds in force.
func countActive(holds []client.AuditHold) int {
	n := 0
	for _, h := range holds {
		if h.Active() {
			n++
		}
	}
	return n
}

// retentionText writes a retention period in days when it is whole days,
// as organisations state them.
func retentionText(d time.Duration) string {
	const day = 24 * time.Hour
	if d%day == 0 {
		return plural(uint64(d/day), "day")
	}
	return d.String()
}

func writeAuditEntry(e *env, en client.AuditEntry, names map[candor.GroupID]string) {
	fmt.Fprintf(e.out, "Case %s, requested by %s on %s\n", en.Case, en.Requester, en.Created.Local().Format(timeLayout))
	fmt.Fprintf(e.out, "  Reason:    %s\n", strings.ReplaceAll(en.Reason, "\n", "\n             "))
	var scope []string
	for _, g := range en.Groups {
		scope = append(scope, names[g])
	}
	if en.NamesYou {
		scope = append(scope, "you, by name (every conversation of yours)")
	}
	fmt.Fprintf(e.out, "  Covers:    %s\n", strings.Join(scope, "; "))
	fmt.Fprintf(e.out, "  Messages:  sent from %s until %s\n", en.From.Local().Format(timeLayout), en.To.Local().Format(timeLayout))
	if len(en.Approvals) == 0 {
		fmt.Fprintln(e.out, "  Approved:  by no custodian yet")
	} else {
		var who []string
		for _, a := range en.Approvals {
			who = append(who, a.Name)
		}
		fmt.Fprintf(e.out, "  Approved:  by %s\n", strings.Join(who, ", "))
	}
	if !en.Completed() {
		fmt.Fprintln(e.out, "  Status:    not opened")
		return
	}
	for _, o := range en.Openings {
		var records uint64
		for _, g := range o.Groups {
			records += g.Records
		}
		fmt.Fprintf(e.out, "  Status:    OPENED on %s: %s, %s read\n", o.Completed.Local().Format(timeLayout), plural(len(o.Groups), "conversation"), plural(records, "record"))
	}
}

// inconsistentExplanation is what a person reads when the access log
// contradicts what this device saw before.
func inconsistentExplanation(err error) explanation {
	what := "THE ORGANISATION'S ACCESS LOG HAS BEEN ALTERED: it contradicts what this device saw before"
	if ie, ok := errors.AsType[*translog.InconsistentError](err); ok {
		switch ie.Kind {
		case translog.Rollback:
			what += fmt.Sprintf(" (it now shows %d records, after showing %d: records were removed)", ie.Presented.Size, ie.Trusted.Size)
		case translog.Fork:
			what += fmt.Sprintf(" (the server presents a history of %d records that does not extend the %d records seen before)", ie.Presented.Size, ie.Trusted.Size)
		}
	}
	return explanation{what + ". Openings of the archive may be hidden from you.",
		"Tell your organisation's security or compliance officer now, and keep this profile folder as it is: its files access.checkpoint and access.presented are the evidence."}
}

// journalInconsistentExplanation is what a person reads when the
// journal-heads log contradicts what this device saw before.
func journalInconsistentExplanation(err error) explanation {
	what := "THE SIGNED RECORD OF THE ARCHIVE'S JOURNAL HAS BEEN ALTERED: it contradicts what this device saw before"
	if ie, ok := errors.AsType[*translog.InconsistentError](err); ok {
		what += fmt.Sprintf(" (a %s: it now shows %d records, after showing %d)", ie.Kind, ie.Presented.Size, ie.Trusted.Size)
	}
	return explanation{what + ". The history the archive keeps of your conversations may have been rewritten.",
		"Tell your organisation's security or compliance officer now, and keep this profile folder as it is: its files journal.checkpoint and journal.presented are the evidence."}
}

// journalMismatchExplanation is what a person reads when the archive's
// journal of a conversation is not what this device received.
var journalMismatchExplanation = explanation{"THE ARCHIVE'S JOURNAL OF A CONVERSATION DIFFERS FROM WHAT THIS DEVICE RECEIVED: the server keeps, or signs, another history than the one it delivered (details below name the conversation and the entries).",
	"Tell your organisation's security or compliance officer now, and keep this profile folder as it is."}

// keyChangedExplanation is what a person reads when a log's key is not
// the one this device pinned.
func keyChangedExplanation(log string) explanation {
	return explanation{fmt.Sprintf("the server signs %s with another key than the one this device trusted first.", log),
		"Ask your organisation's security officer whether the log was replaced on purpose. Until then this device cannot check the log."}
}

// plural writes a count of things in words.
func plural[N int | int64 | uint64](n N, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
