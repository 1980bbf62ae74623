package archive_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/archive"
	"candor/internal/journal"
	"candor/internal/sqldb"
)

// anchors returns the seqs of the archive's Welcomes in group g, as the
// store queued them, oldest first.
func (o *org) anchors(t *testing.T, g candor.GroupID) []uint64 {
	t.Helper()
	ws, err := o.store.WelcomeSeqs(context.Background(), "archive", g)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, w := range ws {
		out = append(out, w.Seq)
	}
	return out
}

// entryTime returns the server time of entry seq of g, from the store.
func (o *org) entryTime(t *testing.T, g candor.GroupID, seq uint64) time.Time {
	t.Helper()
	es, err := o.store.Log(context.Background(), g, seq-1, 1)
	if err != nil || len(es) != 1 || es[0].Seq != seq {
		t.Fatalf("entry %d of %s: %v %v", seq, g, es, err)
	}
	return es[0].Time
}

// anchored is an organisation whose groups are re-anchored every few
// messages, and the group with the most anchors.
func anchored(t *testing.T) (*org, candor.GroupID, []uint64) {
	t.Helper()
	o := newOrgWith(t, orgConfig{groups: 3, messages: 240, commitEvery: 15, anchorEvery: 20})
	if o.gen.Anchors == 0 {
		t.Fatal("the generator made no anchors")
	}
	var best candor.GroupID
	var most []uint64
	for _, g := range o.gen.Groups {
		if a := o.anchors(t, g); len(a) > len(most) {
			best, most = g, a
		}
	}
	if len(most) < 3 {
		t.Fatalf("the best group has %d archive Welcomes, want 3 or more", len(most))
	}
	return o, best, most
}

// replay replays scope from src into a new review store, and returns the
// summary and the records of group g.
func (o *org) replay(t *testing.T, src archive.Source, scope archive.Scope, g candor.GroupID) (archive.Summary, []archive.Record, error) {
	t.Helper()
	review, _ := openReview(t)
	cfg := o.config(t, review)
	cfg.Source, cfg.Scope, cfg.Batch = src, scope, 16
	sum, err := archive.Replay(context.Background(), cfg)
	return sum, allRecords(t, review, g), err
}

func progressOf(t *testing.T, sum archive.Summary, g candor.GroupID) archive.GroupProgress {
	t.Helper()
	for _, p := range sum.Groups {
		if p.Group == g {
			return p
		}
	}
	t.Fatalf("the summary has no group %s: %+v", g, sum.Groups)
	return archive.GroupProgress{}
}

// A replay of a log whose prefix retention deleted starts at the first
// entry kept, checks the chain from the hash the store kept for the entry
// before it, says so, and reads what a replay of the whole log read from
// there on.
func TestReplayCutLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o, g, anchors := anchored(t)
	src := archive.NewStoreSource(o.store, "archive")
	scope := archive.Scope{Groups: []candor.GroupID{g}}
	_, whole, err := o.replay(t, src, scope, g)
	if err != nil {
		t.Fatal(err)
	}
	cut := anchors[1]
	es, err := o.store.Log(ctx, g, cut-2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := o.store.DeleteBefore(ctx, g, cut); err != nil || n != cut-1 {
		t.Fatalf("DeleteBefore(%d) = %d, %v", cut, n, err)
	}

	sum, recs, err := o.replay(t, src, scope, g)
	if err != nil {
		t.Fatal(err)
	}
	p := progressOf(t, sum, g)
	if p.Start != cut || p.Kept != cut || !p.Prev.Equal(es[0].Hash) || !p.Done {
		t.Errorf("progress %+v, want a done replay started at the cut, entry %d, from entry %d's hash", p, cut, cut-1)
	}
	if want := fmt.Sprintf("entries 1..%d were deleted under retention", cut-1); !strings.Contains(p.Why, want) {
		t.Errorf("the progress says %q, not %q", p.Why, want)
	}
	if sum.Entries != p.Seq-cut+1 {
		t.Errorf("processed %d entries, the log kept %d", sum.Entries, p.Seq-cut+1)
	}
	var kept []archive.Record
	for _, r := range whole {
		if r.Seq >= cut {
			kept = append(kept, r)
		}
	}
	if len(kept) == 0 || recs[0].Status != archive.Joined {
		t.Fatalf("the cut replay's first record is %+v, want the archive joining", recs[0])
	}
	if diff := cmp.Diff(kept, recs); diff != "" {
		t.Errorf("records from the cut (-whole log +cut log):\n%s", diff)
	}
}

// A cut whose kept predecessor hash was changed in the server's database
// stops the group at the cut, naming it.
func TestReplayCutLogTampered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o, g, anchors := anchored(t)
	cut := anchors[1]
	if _, err := o.store.DeleteBefore(ctx, g, cut); err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.OpenSQLite(ctx, o.db, sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var prev []byte
	if err := db.W.QueryRowContext(ctx, `SELECT start_prev FROM groups WHERE id = ?`, []byte(g)).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	prev[0] ^= 1
	if _, err := db.W.ExecContext(ctx, `UPDATE groups SET start_prev = ? WHERE id = ?`, prev, []byte(g)); err != nil {
		t.Fatal(err)
	}
	sum, recs, err := o.replay(t, archive.NewStoreSource(o.store, "archive"), archive.Scope{Groups: []candor.GroupID{g}}, g)
	var ge *archive.GroupError
	if !errors.As(err, &ge) || ge.Group != g || ge.Seq != cut {
		t.Fatalf("replay of a cut with a changed hash: %v, want a GroupError for %s at %d", err, g, cut)
	}
	var te *journal.TamperError
	if !errors.As(err, &te) || te.Seq != cut {
		t.Errorf("replay error %v, want a TamperError at %d", err, cut)
	}
	if len(recs) != 0 || progressOf(t, sum, g).Done {
		t.Errorf("the tampered group wrote %d records: %+v", len(recs), sum)
	}
	if !strings.Contains(err.Error(), g.String()) {
		t.Errorf("the error %q does not name the group", err)
	}
}

// A time range that starts late starts the replay at the archive's latest
// Welcome at or before its start, and the records it writes are those a
// replay of the whole log wrote for the range.
func TestReplayStartsAtAnchor(t *testing.T) {
	t.Parallel()
	o, g, anchors := anchored(t)
	src := archive.NewStoreSource(o.store, "archive")
	_, whole, err := o.replay(t, src, archive.Scope{Groups: []candor.GroupID{g}}, g)
	if err != nil {
		t.Fatal(err)
	}
	a1, a2 := anchors[1], anchors[2]
	tests := []struct {
		name  string
		from  time.Time
		start uint64
	}{
		{"at an anchor", o.entryTime(t, g, a1), a1},
		{"just after an anchor", o.entryTime(t, g, a1).Add(time.Second), a1},
		{"just before an anchor", o.entryTime(t, g, a2).Add(-time.Second), a1},
		{"at the later anchor", o.entryTime(t, g, a2), a2},
		{"before the first Welcome", o.entryTime(t, g, 1).Add(-time.Hour), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sum, recs, err := o.replay(t, src, archive.Scope{Groups: []candor.GroupID{g}, From: tt.from}, g)
			if err != nil {
				t.Fatal(err)
			}
			p := progressOf(t, sum, g)
			if p.Start != tt.start || p.Kept != 1 || !p.Done {
				t.Errorf("started at %d (kept from %d, done %v), want %d: %s", p.Start, p.Kept, p.Done, tt.start, p.Why)
			}
			if tt.start > 1 && !strings.Contains(p.Why, fmt.Sprintf("Welcome at or before the first entry in scope (entry %d", tt.start)) {
				t.Errorf("the progress says %q", p.Why)
			}
			if sum.Entries != p.Seq-tt.start+1 {
				t.Errorf("processed %d entries, want %d (from %d to %d)", sum.Entries, p.Seq-tt.start+1, tt.start, p.Seq)
			}
			var want []archive.Record
			for _, r := range whole {
				if !r.Time.Before(tt.from) {
					want = append(want, r)
				}
			}
			if len(want) == 0 {
				t.Fatal("nothing in range")
			}
			if diff := cmp.Diff(want, recs); diff != "" {
				t.Errorf("records (-whole log in range +anchored replay):\n%s", diff)
			}
		})
	}
}

// Seqs limits a group's records to its ranges, and the replay starts at
// the latest Welcome at or before the first of them.
func TestReplaySeqRanges(t *testing.T) {
	t.Parallel()
	o, g, anchors := anchored(t)
	src := archive.NewStoreSource(o.store, "archive")
	_, whole, err := o.replay(t, src, archive.Scope{Groups: []candor.GroupID{g}}, g)
	if err != nil {
		t.Fatal(err)
	}
	ranges := []archive.SeqRange{{First: anchors[2] + 3}, {First: anchors[1] + 2, Last: anchors[1] + 5}}
	sum, recs, err := o.replay(t, src, archive.Scope{Groups: []candor.GroupID{g}, Seqs: map[candor.GroupID][]archive.SeqRange{g: ranges}}, g)
	if err != nil {
		t.Fatal(err)
	}
	if p := progressOf(t, sum, g); p.Start != anchors[1] {
		t.Errorf("started at %d, want the Welcome at %d: %s", p.Start, anchors[1], p.Why)
	}
	var want []archive.Record
	for _, r := range whole {
		if (r.Seq >= ranges[1].First && r.Seq <= ranges[1].Last) || r.Seq >= ranges[0].First {
			want = append(want, r)
		}
	}
	if diff := cmp.Diff(want, recs); diff != "" {
		t.Errorf("records (-whole log in the ranges +limited replay):\n%s", diff)
	}
}

// A review store begun with some ranges of seqs resumes with the same
// ranges, in any order, and refuses others, even of group ids that differ
// only in bytes that are not UTF-8.
func TestReviewScopeSeqs(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 1, 10, 100)
	g := o.gen.Groups[0]
	review, _ := openReview(t)
	cfg := o.config(t, review)
	with := func(seqs map[candor.GroupID][]archive.SeqRange) error {
		cfg.Scope = archive.Scope{Groups: []candor.GroupID{g}, Seqs: seqs}
		_, err := archive.Replay(context.Background(), cfg)
		return err
	}
	a, b := candor.GroupID("\xff"), candor.GroupID("\xfe")
	if err := with(map[candor.GroupID][]archive.SeqRange{g: {{First: 2, Last: 4}, {First: 7}}, a: {{First: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := with(map[candor.GroupID][]archive.SeqRange{g: {{First: 7}, {First: 2, Last: 4}}, a: {{First: 1}}}); err != nil {
		t.Errorf("resuming with the same ranges in another order: %v", err)
	}
	for name, seqs := range map[string]map[candor.GroupID][]archive.SeqRange{
		"other ranges":      {g: {{First: 2, Last: 5}, {First: 7}}, a: {{First: 1}}},
		"no ranges":         nil,
		"another binary id": {g: {{First: 2, Last: 4}, {First: 7}}, b: {{First: 1}}},
	} {
		if err := with(seqs); !errors.Is(err, candor.ErrConflict) {
			t.Errorf("%s: %v, want ErrConflict", name, err)
		}
	}
}
