package archive

import (
	"context"
	"fmt"
	"time"

	"candor/internal/journal"
)

// start is where a group's replay begins: the entry seq, the chain hash
// prev of the entry before it, and why there.
type start struct {
	seq  uint64
	prev journal.Hash
	why  string
	kept uint64 // the log's first kept entry
}

// The reasons a replay starts where it does, as the review store keeps
// them.
const (
	whyBeginning = "the log's first entry"
	whyCut       = "entries 1..%d were deleted under retention"
	whyKept      = "the log's first kept entry: " + whyCut
	whyAnchor    = "the archive's latest Welcome at or before the first entry in scope (entry %d, %s): entries %d..%d, outside the scope, were not read"
)

// start finds where the replay of a group not begun yet starts, given
// where its log starts. A log whose prefix was deleted starts at its
// first kept entry, with the chain
// checked from the hash the source keeps for the entry before it. Past
// that, when the scope starts later than the log does, it starts at the
// latest of the archive's Welcomes that is at or before the first entry
// the scope can write: the entries before that Welcome are out of scope,
// and the archive, not yet a member from that Welcome, need not decrypt
// them. A Welcome qualifies when its entry's server time is at or before
// Scope.From, or when its seq is at or before the first seq Scope.Seqs
// allows the group. Without one, the replay starts at the log's start, as
// a replay of the whole log does, and lists the entries before the first
// Welcome as unreadable.
//
// The hashes it starts from are the source's word; the chain check that
// follows trusts them. The opening checks the replayed chain against the
// heads the server signed, which covers every entry before them, and
// checks a cut against the access log's Deletion records.
func (r *groupReplay) start(ctx context.Context, ls LogStart) (start, error) {
	if ls.Seq == 0 {
		return start{}, fmt.Errorf("the source says the log starts at entry 0: %w", journal.ErrBroken)
	}
	st := start{seq: ls.Seq, prev: ls.Prev, kept: ls.Seq, why: whyBeginning}
	if ls.Cut() {
		st.why = fmt.Sprintf(whyKept, ls.Seq-1)
	}
	from, first := r.cfg.Scope.From, r.cfg.Scope.firstSeq(r.id)
	if from.IsZero() && first <= ls.Seq {
		return st, nil
	}
	// The latest qualifying Welcome, searched from the last: a group has
	// one per anchor interval, so few.
	for i := len(r.welcomes) - 1; i >= 0; i-- {
		w := r.welcomes[i]
		if w.Seq <= ls.Seq {
			break
		}
		before, at, err := r.anchorEntries(ctx, w.Seq)
		if err != nil {
			return start{}, err
		}
		if !before.Hashed {
			// No stored hash to start the chain from: read the whole log.
			return st, nil
		}
		if (!from.IsZero() && !at.Time.After(from)) || (first != 0 && w.Seq <= first) {
			why := fmt.Sprintf(whyAnchor, w.Seq, at.Time.UTC().Format(time.RFC3339), ls.Seq, w.Seq-1)
			if ls.Cut() {
				why += "; " + fmt.Sprintf(whyCut, ls.Seq-1)
			}
			return start{seq: w.Seq, prev: before.Hash, kept: ls.Seq, why: why}, nil
		}
	}
	return st, nil
}

// anchorEntries reads the entries seq-1 and seq of the group's log: the
// hash the replay starts from and the Welcome's commit.
func (r *groupReplay) anchorEntries(ctx context.Context, seq uint64) (before, at Entry, err error) {
	es, err := r.cfg.Source.Entries(ctx, r.id, seq-2, 2)
	if err != nil {
		return Entry{}, Entry{}, fmt.Errorf("reading the entries around the archive's Welcome at entry %d: %w", seq, err)
	}
	if len(es) != 2 || es[0].Seq != seq-1 || es[1].Seq != seq {
		return Entry{}, Entry{}, fmt.Errorf("%w: the archive's Welcome is at entry %d, but the log does not hold entries %d and %d",
			journal.ErrBroken, seq, seq-1, seq)
	}
	return es[0], es[1], nil
}
