package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"candor"
	"candor/internal/access"
	"candor/internal/server"
)

const holdUsage = `usage:
  candord hold set   --data DIR --case ID --reason TEXT --by NAME
                     [--groups HEX,...] [--users USER,...]
  candord hold lift  --data DIR --reason TEXT --by NAME HOLD
  candord hold list  --data DIR [--all]

  set   set a legal hold on the groups (hex ids) and people named, and
        print its id and index; a hold on a person covers every group any
        of their devices was ever in. Nothing a hold in force covers is
        deleted under the retention period
  lift  lift the hold whose id is HOLD
  list  list the holds in force, with what they cover; --all lists the
        lifted ones too

Holds are records of the access transparency log: every member of a held
conversation sees them ('candor audit'), and a hold ends only by a
logged lift. These commands may run while 'candord serve' uses the same
folder.
`

// runHold runs one hold subcommand.
func runHold(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, holdUsage)
		return errUsage
	}
	fs, data, parse := subcommand("candord hold "+args[0], holdUsage, args[1:], stderr)
	switch args[0] {
	case "set":
		caseID := fs.String("case", "", "the case or matter id (required)")
		reason := fs.String("reason", "", "why, in words the affected people will read (required)")
		by := fs.String("by", "", "who sets the hold (required)")
		groups := fs.String("groups", "", "comma-separated hex ids of the groups held")
		users := fs.String("users", "", "comma-separated user ids of the people held")
		if err := parse(0, caseID, reason, by); err != nil {
			return err
		}
		h := &access.Hold{Case: *caseID, Reason: *reason, By: *by, Set: time.Now().UTC().Truncate(time.Second)}
		for _, g := range splitList(*groups) {
			id, err := candor.ParseGroupID(g)
			if err != nil {
				return fmt.Errorf("--groups: %q: %w", g, err)
			}
			h.Groups = append(h.Groups, id)
		}
		for _, u := range splitList(*users) {
			h.Users = append(h.Users, candor.UserID(u))
		}
		if len(h.Groups) == 0 && len(h.Users) == 0 {
			return fmt.Errorf("a hold must cover something: name groups (--groups) or people (--users): %w", candor.ErrInvalid)
		}
		return withAccessLog(ctx, *data, func(l *server.AccessLog) error {
			id, index, err := l.LogHold(ctx, h)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "hold %s set at index %d\n", id, index)
			return err
		})
	case "lift":
		reason := fs.String("reason", "", "why the hold is lifted (required)")
		by := fs.String("by", "", "who lifts it (required)")
		if err := parse(1, reason, by); err != nil {
			return err
		}
		id, err := access.ParseHoldID(fs.Arg(0))
		if err != nil {
			return err
		}
		r := &access.Release{Hold: id, Reason: *reason, By: *by, At: time.Now().UTC().Truncate(time.Second)}
		return withAccessLog(ctx, *data, func(l *server.AccessLog) error {
			index, err := l.LogRelease(ctx, r)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "hold %s lifted at index %d\n", id, index)
			return err
		})
	case "list":
		all := fs.Bool("all", false, "list lifted holds too")
		if err := parse(0); err != nil {
			return err
		}
		return withAccessLog(ctx, *data, func(l *server.AccessLog) error {
			log, err := l.Read(ctx)
			if err != nil {
				return err
			}
			holds := log.ActiveHolds()
			if *all {
				holds = log.Holds
			}
			return writeHolds(stdout, holds, *all)
		})
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, holdUsage)
		return nil
	}
	fmt.Fprint(stderr, holdUsage)
	return errUsage
}

// writeHolds lists holds for an administrator: ids in full, to paste into
// candord hold lift, and times in UTC.
func writeHolds(w io.Writer, holds []*access.HoldState, all bool) error {
	var b strings.Builder
	switch {
	case len(holds) == 0 && all:
		b.WriteString("no legal hold has been set\n")
	case len(holds) == 0:
		b.WriteString("no legal hold is in force\n")
	}
	for i, h := range holds {
		if i > 0 {
			b.WriteByte('\n')
		}
		status := "in force"
		if !h.Active() {
			status = "lifted"
		}
		fmt.Fprintf(&b, "hold %s (index %d): %s\n", h.ID, h.Index, status)
		fmt.Fprintf(&b, "  case:    %s\n", h.Hold.Case)
		fmt.Fprintf(&b, "  reason:  %s\n", indent(h.Hold.Reason))
		fmt.Fprintf(&b, "  set:     by %s on %s\n", h.Hold.By, h.Hold.Set.Format(time.RFC3339))
		var scope []string
		for _, g := range h.Hold.Groups {
			scope = append(scope, "group "+g.String())
		}
		for _, u := range h.Hold.Users {
			scope = append(scope, "user "+string(u))
		}
		fmt.Fprintf(&b, "  covers:  %s\n", strings.Join(scope, ", "))
		if r := h.Release; r != nil {
			fmt.Fprintf(&b, "  lifted:  by %s on %s (index %d): %s\n", r.By, r.At.Format(time.RFC3339), h.ReleaseIndex, indent(r.Reason))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// indent lines a reason's later lines up under its first.
func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n           ") }
