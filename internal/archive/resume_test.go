package archive_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor/internal/archive"
)

// A replay cancelled in the middle, its review store closed and opened
// again, resumes where it stopped (it processes only what was left) and
// ends with the records of an uninterrupted replay, each once. The MLS
// state it resumed from was sealed in the file.
func TestResumeAfterCancel(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 4, 400, 25)

	whole, _ := openReview(t)
	cfg := o.config(t, whole)
	cfg.Batch = 16
	full, err := archive.Replay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	path := t.TempDir() + "/review.db"
	review, err := archive.OpenReview(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var batches atomic.Int32
	cfg = o.config(t, review)
	cfg.Batch, cfg.Workers = 16, 2
	cfg.Progress = func(archive.Update) {
		if batches.Add(1) == 7 {
			cancel()
		}
	}
	first, err := archive.Replay(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled replay: %v", err)
	}
	if err := review.Close(); err != nil {
		t.Fatal(err)
	}
	progress := func(r *archive.Review) (mid int) {
		ps, err := r.Progress(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if !p.Done && p.Seq > 1 {
				mid++
			}
		}
		return mid
	}

	review, err = archive.OpenReview(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer review.Close()
	if progress(review) == 0 {
		t.Fatal("the cancellation left no group in the middle of its replay")
	}
	cfg.Review, cfg.Progress = review, nil
	second, err := archive.Replay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if second.Entries >= full.Entries || first.Entries == 0 {
		t.Errorf("the resumed replay processed %d entries of %d (the first %d): it started over", second.Entries, full.Entries, first.Entries)
	}
	if second.Records != full.Records {
		t.Errorf("%d records after resuming, %d uninterrupted", second.Records, full.Records)
	}
	for _, g := range o.gen.Groups {
		if diff := cmp.Diff(allRecords(t, whole, g), allRecords(t, review, g)); diff != "" {
			t.Errorf("group %s (-uninterrupted +resumed):\n%s", g, diff)
		}
	}
	var a, b bytes.Buffer
	if err := whole.Export(context.Background(), &a); err != nil {
		t.Fatal(err)
	}
	if err := review.Export(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if a.Len() == 0 || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("exports differ (%d and %d bytes)", a.Len(), b.Len())
	}
}

// What the review store keeps of the MLS state is sealed, and is deleted
// once a group is done.
func TestStateSealedAndDeleted(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, 60, 100)
	review, path := openReview(t)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := o.config(t, review)
	cfg.Batch, cfg.Workers = 8, 1
	cfg.Progress = func(archive.Update) { cancel() }
	if _, err := archive.Replay(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled replay: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func() (n int) {
		var states [][]byte
		rows, err := db.Query(`SELECT state FROM mls_groups UNION ALL SELECT record FROM mls_ratchets`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			states = append(states, b)
		}
		for _, s := range states {
			// The adapter's snapshots are JSON; sealed, no trace is left.
			if bytes.Contains(s, []byte(`"state"`)) || bytes.Contains(s, []byte(`"psks"`)) {
				t.Fatal("the review store holds MLS state in the clear")
			}
		}
		return len(states)
	}
	if count() == 0 {
		t.Fatal("the interrupted replay left no state to resume from")
	}
	cfg.Progress = nil
	if _, err := archive.Replay(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d rows of MLS state left after the replay was done", n)
	}
}

func TestExportIsJSONLines(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, 30, 100)
	review, _ := openReview(t)
	if _, err := archive.Replay(context.Background(), o.config(t, review)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := review.Export(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != len(o.sent)+o.gen.Commits {
		t.Fatalf("%d lines, want %d", len(lines), len(o.sent)+o.gen.Commits)
	}
	var msgs []archive.Record
	for i, l := range lines {
		var rec archive.Record
		if err := json.Unmarshal(l, &rec); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		if rec.Kind == archive.KindMessage {
			msgs = append(msgs, rec)
		}
	}
	if diff := cmp.Diff(messages(t, review, o.gen.Groups), msgs); diff != "" {
		t.Errorf("exported messages (-store +export):\n%s", diff)
	}
}
