package opening

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"candor"
	"candor/internal/access"
	"candor/internal/archive"
)

// ErrUnexplainedCut reports a group whose log starts after entry 1 without
// Deletion records in the access log that account for every entry
// missing: a prefix deleted outside retention, or a store rewritten to
// hide one.
var ErrUnexplainedCut = errors.New("the access log does not explain the deleted start of this group's log")

// explainedSource is the server's journal with the start of every cut log
// checked against the access log's Deletion records before a replay
// begins: a cut that they do not explain stops that group's replay.
type explainedSource struct {
	archive.Source
	deletions []*access.DeletionEntry
}

func (e explainedSource) LogStart(ctx context.Context, group candor.GroupID) (archive.LogStart, error) {
	ls, err := e.Source.LogStart(ctx, group)
	if err != nil || !ls.Cut() {
		return ls, err
	}
	return ls, explainCut(group, ls, e.deletions)
}

// explainCut checks that the Deletion records of group account for the
// entries 1..ls.Seq-1 the log no longer holds: together they cover the
// prefix with no hole, and one of them ends at entry ls.Seq-1 with the
// chain hash the log starts from. A deletion the server logged but has
// not finished (the log starts inside its range) is named as such.
func explainCut(group candor.GroupID, ls archive.LogStart, all []*access.DeletionEntry) error {
	last := ls.Seq - 1
	var mine []*access.DeletionEntry
	for _, d := range all {
		if d.Deletion.Group == group {
			mine = append(mine, d)
		}
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: entries 1..%d are deleted, but %s", ErrUnexplainedCut, last, fmt.Sprintf(format, args...))
	}
	if len(mine) == 0 {
		return fail("no Deletion record in the access log names this group")
	}
	// A retried deletion is logged again with the same range, so ranges
	// may repeat; they must still leave no hole.
	byFirst := slices.Clone(mine)
	slices.SortStableFunc(byFirst, func(a, b *access.DeletionEntry) int { return cmp.Compare(a.Deletion.First, b.Deletion.First) })
	covered := uint64(0)
	for _, d := range byFirst {
		if covered >= last {
			break
		}
		if d.Deletion.First > covered+1 {
			return fail("no Deletion record in the access log covers entries %d..%d", covered+1, min(d.Deletion.First-1, last))
		}
		covered = max(covered, d.Deletion.Last)
	}
	if covered < last {
		return fail("the Deletion records in the access log cover entries 1..%d only", covered)
	}
	for _, d := range mine {
		if d.Deletion.Last == last {
			if !d.Deletion.LastHash.Equal(ls.Prev) {
				return fail("the log starts from chain hash %v and the Deletion record at index %d names %v for entry %d", ls.Prev, d.Index, d.Deletion.LastHash, last)
			}
			return nil
		}
	}
	for _, d := range mine {
		if d.Deletion.First <= last && last < d.Deletion.Last {
			return fail("the deletion of entries %d..%d logged at index %d is not finished; let the server finish it and open again", d.Deletion.First, d.Deletion.Last, d.Index)
		}
	}
	return fail("no Deletion record in the access log ends at entry %d", last)
}
