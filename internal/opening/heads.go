package opening

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"candor"
	"candor/internal/archive"
	"candor/internal/journal"
	"candor/internal/server"
	"candor/internal/store"
	"candor/internal/translog"
)

// ErrHeadMismatch reports a group whose replayed journal does not pass
// through the head the server signed for it: the store's log was changed
// after the head was signed, even if its chain was recomputed to match.
var ErrHeadMismatch = errors.New("the replayed journal does not match the head the server signed")

// A HeadError names a group whose replayed journal failed the check
// against the journal-heads log.
type HeadError struct {
	Group    candor.GroupID
	Replayed uint64 // the seq the replay reached
	Signed   uint64 // the seq of the latest signed head; 0 if none
	Err      error
}

func (e *HeadError) Error() string {
	return fmt.Sprintf("group %s (replayed to entry %d, signed head at entry %d): %v", e.Group, e.Replayed, e.Signed, e.Err)
}

func (e *HeadError) Unwrap() error { return e.Err }

// CheckHeads checks, for every group sum replayed, that the chain the
// replay computed passes through the latest head the journal-heads log j
// holds for the group, under a checkpoint signed by key (journal.pub): the
// signed head is the replayed one, or an earlier entry of the store's
// chain, or a later one that the store's entries after the replayed head
// chain to. Every group is checked; the error names each one that fails,
// as *HeadError wrapping ErrHeadMismatch or the reason it could not be
// checked.
func (o *Opening) CheckHeads(ctx context.Context, j *server.JournalLog, key note.Verifier, s store.Store, sum archive.Summary) error {
	var errs []error
	for _, g := range sum.Groups {
		if g.Seq == 0 {
			// A group with no entries has no chain; a head the
			// server signed for it all the same is a log the store lost.
			g.Head = journal.Genesis
		}
		signed, err := signedHead(ctx, j, key, g.Group)
		if g.Seq == 0 && errors.Is(err, candor.ErrNotFound) {
			continue
		}
		if err == nil {
			err = chainPasses(ctx, s, g, signed)
		}
		if err != nil {
			errs = append(errs, &HeadError{Group: g.Group, Replayed: g.Seq, Signed: signed.Seq, Err: err})
		}
	}
	return errors.Join(errs...)
}

// signedHead returns the latest head of group in j, after checking its
// inclusion under a checkpoint key signed.
func signedHead(ctx context.Context, j *server.JournalLog, key note.Verifier, group candor.GroupID) (journal.Head, error) {
	b, err := j.HeadBundle(ctx, group, 0)
	if errors.Is(err, candor.ErrNotFound) {
		return journal.Head{}, fmt.Errorf("the server has signed no head of this group yet (it signs heads every few seconds; run again with the same -out): %w", err)
	}
	if err != nil {
		return journal.Head{}, err
	}
	c, err := translog.Open(b.Checkpoint, key)
	if err != nil {
		return journal.Head{}, fmt.Errorf("the journal-heads checkpoint: %w", err)
	}
	var p translog.InclusionProof
	if err := p.UnmarshalText(b.Proof); err != nil {
		return journal.Head{}, fmt.Errorf("the journal-heads proof: %w", err)
	}
	if p.Index != b.Index {
		return journal.Head{}, fmt.Errorf("the journal-heads proof is of record %d, not %d: %w", p.Index, b.Index, translog.ErrNotIncluded)
	}
	if err := translog.VerifyInclusion(c, b.Record, p); err != nil {
		return journal.Head{}, err
	}
	h, err := journal.ParseHead(b.Record)
	if err != nil {
		return journal.Head{}, err
	}
	if h.Group != group {
		return journal.Head{}, fmt.Errorf("the journal-heads log returned the head of group %s: %w", h.Group, translog.ErrCorrupt)
	}
	return h, nil
}

// chainPasses checks that the chain the replay of g computed passes
// through signed. The replay computed it from g.Prev, the hash of the
// entry before g.Start (its first), so a signed head from before the
// replay's start must lead to g.Prev through the store's entries in
// between: the signed head then vouches for the hash the replay started
// from, as it does for the rest.
func chainPasses(ctx context.Context, s store.Store, g archive.GroupProgress, signed journal.Head) error {
	first := max(g.Start, 1)
	switch {
	case signed.Seq > g.Seq:
		// The server signed a head past the replay (messages arrived
		// after it): the store's entries from there must chain to it.
		return follow(ctx, s, g.Group, g.Seq, g.Head, signed.Seq, signed.Hash, "the server signed")
	case signed.Seq+1 < first:
		// Signed before the replay's start (no head signed since): the
		// entries between must chain from it to the replay's start.
		return follow(ctx, s, g.Group, signed.Seq, signed.Hash, first-1, g.Prev, "the replay started from")
	}
	// The replay checked every stored hash from g.Start to g.Seq against
	// the chain it computed, so the stored hash at signed.Seq is the
	// replayed chain's.
	at := g.Head
	switch {
	case signed.Seq+1 == first:
		at = g.Prev
	case signed.Seq < g.Seq:
		e, err := entryAt(ctx, s, g.Group, signed.Seq)
		if err != nil {
			return err
		}
		at = e.Hash
	}
	if !at.Equal(signed.Hash) {
		return fmt.Errorf("entry %d: the chain hash is %v, the server signed %v: %w", signed.Seq, at, signed.Hash, ErrHeadMismatch)
	}
	return nil
}

// follow chains the store's entries of group after entry from, whose hash
// is fromHash, up to entry to, and checks that the chain reaches toHash
// there (what names toHash's origin, for the error).
func follow(ctx context.Context, s store.Store, group candor.GroupID, from uint64, fromHash journal.Hash, to uint64, toHash journal.Hash, what string) error {
	v := journal.ResumeVerifier(group, from, fromHash)
	for seq := from + 1; seq <= to; seq++ {
		e, err := entryAt(ctx, s, group, seq)
		if err != nil {
			return err
		}
		if _, err := v.Follow(journal.Entry{Seq: e.Seq, Epoch: e.Epoch, Commit: e.Commit, Sender: e.Sender, Time: e.Time, Message: e.Message}); err != nil {
			return err
		}
	}
	if _, at := v.Head(); !at.Equal(toHash) {
		return fmt.Errorf("entry %d: the chain from entry %d leads to %v, %s %v: %w", to, from, at, what, toHash, ErrHeadMismatch)
	}
	return nil
}

// entryAt reads entry seq of group from the store.
func entryAt(ctx context.Context, s store.Store, group candor.GroupID, seq uint64) (store.Entry, error) {
	es, err := s.Log(ctx, group, seq-1, 1)
	if err != nil {
		return store.Entry{}, err
	}
	if len(es) != 1 || es[0].Seq != seq {
		return store.Entry{}, fmt.Errorf("entry %d, which links the replayed chain to the head the server signed, is not in the store: %w", seq, ErrHeadMismatch)
	}
	return es[0], nil
}
