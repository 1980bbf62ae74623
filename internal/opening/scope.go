package opening

import (
	"context"
	"fmt"
	"slices"
	"time"

	"candor"
	"candor/internal/access"
	"candor/internal/archive"
	"candor/internal/store"
)

// replayScope turns a request's scope into what the replay reads from s.
//
// The groups it names are replayed whole within the time range. A person
// it names brings in every group any of the person's devices (revoked
// ones included) was a member of at some time within the range, and in
// those groups only the entries the person's devices were members for:
// from the commit that added a device to the commit that removed it, both
// included, which is what the person could read
// (docs/design/archive.md, "Opening a case"). A group named both ways is
// replayed whole.
func replayScope(ctx context.Context, s store.Store, sc access.Scope) (archive.Scope, error) {
	out := archive.Scope{From: sc.From, To: sc.To}
	named := make(map[candor.GroupID]bool, len(sc.Groups))
	for _, g := range sc.Groups {
		named[g] = true
	}
	seqs := make(map[candor.GroupID][]archive.SeqRange)
	logs := make(map[candor.GroupID]*spanLog)
	for _, u := range sc.Users {
		spans, err := store.UserSpans(ctx, s, u)
		if err != nil {
			return archive.Scope{}, fmt.Errorf("opening: %w", err)
		}
		for _, sp := range spans {
			l, ok := logs[sp.Group]
			if !ok {
				if l, err = openSpanLog(ctx, s, sp.Group); err != nil {
					return archive.Scope{}, err
				}
				logs[sp.Group] = l
			}
			r, in, err := l.overlap(ctx, sp, sc.From, sc.To)
			if err != nil {
				return archive.Scope{}, fmt.Errorf("opening: %s's device %s in group %s: %w", u, sp.Device, sp.Group, err)
			}
			if in && !named[sp.Group] {
				seqs[sp.Group] = append(seqs[sp.Group], r)
			}
		}
	}
	for g := range named {
		out.Groups = append(out.Groups, g)
	}
	for g := range seqs {
		out.Groups = append(out.Groups, g)
	}
	slices.Sort(out.Groups)
	if len(seqs) > 0 {
		out.Seqs = seqs
	}
	return out, nil
}

// spanLog is what the overlap of a membership with a time range needs of
// one group's log.
type spanLog struct {
	s     store.Store
	group candor.GroupID
	start uint64 // the first entry kept
	head  uint64
}

func openSpanLog(ctx context.Context, s store.Store, g candor.GroupID) (*spanLog, error) {
	grp, err := s.Group(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("opening: group %s: %w", g, err)
	}
	ls, err := s.LogStart(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("opening: where the log of group %s starts: %w", g, err)
	}
	return &spanLog{s: s, group: g, start: max(ls.Seq, 1), head: grp.Head}, nil
}

// overlap says whether the membership sp was one at some time within
// [from, to), and the range of seqs it covers. Seqs are mapped to times
// through the entries' server times. A device joined before to if the
// first entry of its membership the log still holds is before to (the
// entries retention deleted are older than it; if it is not before to,
// nothing the log holds of the membership is in range); it had not left
// before from if it is still a member or the commit that removed it is at
// or after from. A membership wholly in the deleted prefix, or in a log
// with no entries, has nothing to read.
//
// A membership that ended at or after to is given an open end: the time
// range bounds it as well, and so the scope does not change when a person
// leaves a group after the range, and a resumed opening's scope is the
// one it began with.
func (l *spanLog) overlap(ctx context.Context, sp store.Span, from, to time.Time) (archive.SeqRange, bool, error) {
	first := max(sp.Joined, l.start)
	if l.head < first || (sp.Left != 0 && sp.Left < l.start) {
		return archive.SeqRange{}, false, nil
	}
	joined, err := l.timeOf(ctx, first)
	if err != nil {
		return archive.SeqRange{}, false, err
	}
	if !joined.Before(to) {
		return archive.SeqRange{}, false, nil
	}
	r := archive.SeqRange{First: max(sp.Joined, 1)}
	if sp.Left != 0 {
		left, err := l.timeOf(ctx, sp.Left)
		if err != nil {
			return archive.SeqRange{}, false, err
		}
		if left.Before(from) {
			return archive.SeqRange{}, false, nil
		}
		if left.Before(to) {
			r.Last = sp.Left
		}
	}
	return r, true, nil
}

// timeOf returns the server time of entry seq.
func (l *spanLog) timeOf(ctx context.Context, seq uint64) (time.Time, error) {
	es, err := l.s.Log(ctx, l.group, seq-1, 1)
	if err != nil {
		return time.Time{}, err
	}
	if len(es) != 1 || es[0].Seq != seq {
		return time.Time{}, fmt.Errorf("the store names entry %d as a change of membership, but its log does not hold it: %w", seq, candor.ErrNotFound)
	}
	return es[0].Time, nil
}
