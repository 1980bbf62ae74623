package archive_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"

	"candor"
	"candor/internal/archive"
	"candor/internal/journal"
)

// hashedSource is the journal as the server will keep it once its store
// computes the chain at append time: the generated log, read back from the
// real store, with each entry's hash beside it. Tests then change the
// entries (not the hashes) as someone with access to the database would.
type hashedSource struct {
	archive.Source
	entries map[candor.GroupID][]archive.Entry
}

func newHashedSource(t *testing.T, o *org) *hashedSource {
	t.Helper()
	ctx := context.Background()
	src := archive.NewStoreSource(o.store, "archive")
	h := &hashedSource{Source: src, entries: make(map[candor.GroupID][]archive.Entry)}
	for _, g := range o.gen.Groups {
		es, err := src.Entries(ctx, g, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		// The store's hashes are the journal's chain.
		prev := journal.Genesis
		for i := range es {
			prev = journal.EntryHash(g, es[i].Entry, prev)
			if !es[i].Hashed || es[i].Hash != prev {
				t.Fatalf("group %s entry %d: the store's hash %x is not the chain's %x", g, es[i].Seq, es[i].Hash, prev)
			}
		}
		h.entries[g] = es
	}
	return h
}

func (h *hashedSource) Entries(ctx context.Context, g candor.GroupID, after uint64, limit int) ([]archive.Entry, error) {
	es := h.entries[g]
	// Like a store, return what follows the last seq read, in stored
	// order; a source must not repair the order, so neither does this.
	i := slices.IndexFunc(es, func(e archive.Entry) bool { return e.Seq == after })
	if after == 0 {
		i = -1
	} else if i < 0 {
		return nil, fmt.Errorf("no entry %d", after)
	}
	rest := es[i+1:]
	return slices.Clone(rest[:min(limit, len(rest))]), nil
}

func TestChainBreaks(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 3, 90, 10)
	target := o.gen.Groups[1]
	tests := []struct {
		name   string
		change func(es []archive.Entry) []archive.Entry
		want   error
	}{
		{
			name: "tampered message",
			change: func(es []archive.Entry) []archive.Entry {
				m := slices.Clone(es[9].Message)
				m[len(m)-1] ^= 1
				es[9].Message = m
				return es
			},
			want: &journal.TamperError{Group: target, Seq: 10},
		},
		{
			name: "sender rewritten",
			change: func(es []archive.Entry) []archive.Entry {
				es[4].Sender = "person0000.a"
				return es
			},
			want: &journal.TamperError{Group: target, Seq: 5},
		},
		{
			name: "missing entry",
			change: func(es []archive.Entry) []archive.Entry {
				return slices.Delete(es, 11, 12)
			},
			want: &journal.GapError{Group: target, Want: 12, Got: 13},
		},
		{
			name: "reordered entries",
			change: func(es []archive.Entry) []archive.Entry {
				es[6], es[7] = es[7], es[6]
				return es
			},
			want: &journal.GapError{Group: target, Want: 7, Got: 8},
		},
		{
			name: "contents moved, seqs kept",
			change: func(es []archive.Entry) []archive.Entry {
				es[6].Message, es[7].Message = es[7].Message, es[6].Message
				return es
			},
			want: &journal.TamperError{Group: target, Seq: 7},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := newHashedSource(t, o)
			src.entries[target] = tt.change(src.entries[target])
			review, _ := openReview(t)
			cfg := o.config(t, review)
			cfg.Source, cfg.Chain, cfg.Batch = src, archive.ChainRequired, 8
			sum, err := archive.Replay(context.Background(), cfg)
			var ge *archive.GroupError
			if !errors.As(err, &ge) || ge.Group != target {
				t.Fatalf("Replay error %v, want a GroupError for %s", err, target)
			}
			if !errors.Is(err, journal.ErrBroken) || err.Error() != (&archive.GroupError{Group: target, Seq: ge.Seq, Err: tt.want}).Error() {
				t.Fatalf("Replay error:\n %v\nwant the break %v", err, tt.want)
			}
			// The other groups were replayed in full, with the chain
			// checked; the broken one up to the entry before the break.
			for _, p := range sum.Groups {
				if p.Group != target && !p.Done {
					t.Errorf("group %s not done: %+v", p.Group, p)
				}
				if p.Group == target && (p.Done || p.Seq != ge.Seq-1 || p.Error == "") {
					t.Errorf("broken group's progress: %+v, stopped at %d", p, ge.Seq)
				}
			}
			for _, rec := range allRecords(t, review, o.gen.Groups[0]) {
				if rec.Chain != archive.ChainVerified {
					t.Fatalf("record %d: chain %s", rec.Seq, rec.Chain)
				}
			}
		})
	}
}

// A source without hashes is refused unless the replay is told the chain
// is unavailable.
func TestChainRequired(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 1, 5, 100)
	src := newHashedSource(t, o)
	for _, es := range src.entries {
		for i := range es {
			es[i].Hashed = false
		}
	}
	review, _ := openReview(t)
	cfg := o.config(t, review)
	cfg.Source, cfg.Chain = src, archive.ChainRequired
	_, err := archive.Replay(context.Background(), cfg)
	var ge *archive.GroupError
	if !errors.Is(err, archive.ErrNoHash) || !errors.As(err, &ge) || ge.Seq != 1 {
		t.Fatalf("Replay of an unhashed source with the chain required: %v", err)
	}
}

// A log that stops short of its head reports what is missing.
func TestTruncatedLog(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 1, 30, 100)
	src := newHashedSource(t, o)
	g := o.gen.Groups[0]
	src.entries[g] = src.entries[g][:20]
	review, _ := openReview(t)
	cfg := o.config(t, review)
	cfg.Source, cfg.Chain = src, archive.ChainRequired
	_, err := archive.Replay(context.Background(), cfg)
	var ge *archive.GroupError
	if !errors.Is(err, journal.ErrBroken) || !errors.As(err, &ge) || ge.Seq != 21 {
		t.Fatalf("Replay of a truncated log: %v", err)
	}
}

// Without stored hashes, a missing entry still stops its group, named.
func TestGapWithoutHashes(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, 40, 100)
	src := newHashedSource(t, o)
	g := o.gen.Groups[0]
	for _, es := range src.entries {
		for i := range es {
			es[i].Hashed = false
		}
	}
	src.entries[g] = slices.Delete(src.entries[g], 5, 6)
	review, _ := openReview(t)
	cfg := o.config(t, review)
	cfg.Source, cfg.Chain = src, archive.ChainUnavailable
	sum, err := archive.Replay(context.Background(), cfg)
	var gap *journal.GapError
	var ge *archive.GroupError
	if !errors.As(err, &gap) || !errors.As(err, &ge) || ge.Group != g || ge.Seq != 6 || gap.Want != 6 || gap.Got != 7 {
		t.Fatalf("Replay with entry 6 missing: %v", err)
	}
	if n := len(allRecords(t, review, g)); n != 5 {
		t.Errorf("%d records before the gap, want 5", n)
	}
	for _, p := range sum.Groups {
		if p.Group != g && !p.Done {
			t.Errorf("group %s stopped too: %+v", p.Group, p)
		}
	}
}

// An entry changed in the server's database itself, where MLS cannot see
// it (its server time), is caught by the chain the store kept, and named.
func TestTamperedStore(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 1, 10, 100)
	g := o.gen.Groups[0]
	db, err := sql.Open("sqlite", o.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE entries SET sent_at = sent_at + 1000000000 WHERE group_id = ? AND seq = 4`, []byte(g))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("changed %d rows, %v", n, err)
	}
	review, _ := openReview(t)
	_, err = archive.Replay(context.Background(), o.config(t, review))
	var te *journal.TamperError
	if !errors.As(err, &te) || te.Seq != 4 {
		t.Fatalf("Replay of a store with a changed entry: %v, want a TamperError at 4", err)
	}
}
