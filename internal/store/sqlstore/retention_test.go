package sqlstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/journal"
	"candor/internal/sqldb"
	"candor/internal/store"
)

// logOf appends n application entries to group g of the batch fixture's
// store, after its head, and returns the whole log.
func logOf(t *testing.T, s *Store, g candor.GroupID, n int) []store.Entry {
	t.Helper()
	ctx := context.Background()
	grp, err := s.Group(ctx, g)
	must(t, err)
	head := grp.Head
	for i := range n {
		if head, err = s.Append(ctx, appendReq(g, head, fmt.Sprintf("%s entry %d", g, i))); err != nil {
			t.Fatal(err)
		}
	}
	log, err := s.Log(ctx, g, 0, 1<<20)
	must(t, err)
	return log
}

// failAfter is a context that is live for its first calls calls of Err
// and cancelled from then on, and whose Done never closes. The writer asks
// Err once of each write it takes, so with calls n the first n chunks of a
// DeleteBefore run and the next is skipped: the failure comes at a point
// the test chooses, not at a timer's whim.
type failAfter struct {
	context.Context
	calls int32
	n     atomic.Int32
}

func (c *failAfter) Err() error {
	if c.n.Add(1) > c.calls {
		return context.Canceled
	}
	return nil
}

// TestDeleteBeforeChunks cuts a log in transactions of a few entries: the
// count is the same as in one, and a call that fails between two chunks
// leaves the log cut where the last chunk ended, with its start's hash, and
// says how many entries it deleted; calling again finishes.
func TestDeleteBeforeChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := batchFixture(t)
	s.deleteChunk = 3
	log := logOf(t, s, "a", 19) // 20 entries

	jobs := s.stats.jobs.Load()
	n, err := s.DeleteBefore(&failAfter{Context: ctx, calls: 2}, "a", 15)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("DeleteBefore with a context cancelled after two chunks: %v", err)
	}
	if n != 6 {
		t.Errorf("the interrupted DeleteBefore deleted %d entries, want 6", n)
	}
	start, err := s.LogStart(ctx, "a")
	must(t, err)
	if diff := cmp.Diff(store.LogStart{Seq: 7, Prev: log[5].Hash}, start); diff != "" {
		t.Errorf("LogStart after the interrupted cut (-want +got):\n%s", diff)
	}
	got, err := s.Log(ctx, "a", 0, 100)
	must(t, err)
	if diff := cmp.Diff(log[6:], got); diff != "" {
		t.Errorf("Log after the interrupted cut (-want +got):\n%s", diff)
	}

	// Two chunks ran; the writer took the third and skipped it.
	if got := s.stats.jobs.Load() - jobs; got != 3 {
		t.Errorf("the interrupted DeleteBefore made %d writes, want 3", got)
	}

	jobs = s.stats.jobs.Load()
	n, err = s.DeleteBefore(ctx, "a", 15)
	must(t, err)
	if n != 8 {
		t.Errorf("the second DeleteBefore deleted %d entries, want 8", n)
	}
	start, err = s.LogStart(ctx, "a")
	must(t, err)
	if diff := cmp.Diff(store.LogStart{Seq: 15, Prev: log[13].Hash}, start); diff != "" {
		t.Errorf("LogStart after the cut (-want +got):\n%s", diff)
	}
	// Each chunk is a write of its own: 8 entries, 3 at a time.
	if got := s.stats.jobs.Load() - jobs; got != 3 {
		t.Errorf("the DeleteBefore of 8 entries made %d writes, want 3", got)
	}
}

// TestRetentionReopen: a cut log stays cut, from the same hash, when the
// store is opened again, and appending to it still chains to the head.
func TestRetentionReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "candor.db")
	s, err := Open(ctx, path)
	must(t, err)
	fill(t, s, 1)
	g := candor.GroupID("group-1")
	var head uint64 = 1
	for i := range 5 {
		head, err = s.Append(ctx, appendReq(g, head, fmt.Sprint("entry ", i)))
		must(t, err)
	}
	before, err := s.Log(ctx, g, 0, 100)
	must(t, err)
	_, err = s.DeleteBefore(ctx, g, 4)
	must(t, err)
	wantStart, err := s.LogStart(ctx, g)
	must(t, err)
	wantLog, err := s.Log(ctx, g, 0, 100)
	must(t, err)
	spans, err := s.Spans(ctx, "dev-1")
	must(t, err)
	must(t, s.Close())

	s, err = Open(ctx, path)
	must(t, err)
	defer s.Close()
	start, err := s.LogStart(ctx, g)
	must(t, err)
	log, err := s.Log(ctx, g, 0, 100)
	must(t, err)
	if diff := cmp.Diff(wantStart, start); diff != "" {
		t.Errorf("LogStart after reopening (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(wantLog, log); diff != "" {
		t.Errorf("Log after reopening (-before +after):\n%s", diff)
	}
	gotSpans, err := s.Spans(ctx, "dev-1")
	must(t, err)
	if diff := cmp.Diff(spans, gotSpans); diff != "" {
		t.Errorf("Spans after reopening (-before +after):\n%s", diff)
	}
	if want := (store.LogStart{Seq: 4, Prev: before[2].Hash}); start != want {
		t.Errorf("LogStart after reopening: %+v, want %+v", start, want)
	}

	seq, err := s.Append(ctx, appendReq(g, head, "after reopening"))
	must(t, err)
	last, err := s.Log(ctx, g, head, 1)
	must(t, err)
	want := journal.EntryHash(g, journal.Entry{
		Seq: seq, Sender: "dev", Time: t0, Message: []byte("after reopening"),
	}, log[len(log)-1].Hash)
	if len(last) != 1 || last[0].Hash != want {
		t.Errorf("the entry appended after reopening does not chain to the head: %+v", last)
	}
}

// TestMigrateSpans opens a database written by the previous version (schema
// 2) with members in groups: 0003 gives each current member a span from 0,
// and each log its start at 1.
func TestMigrateSpans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "candor.db")
	old := fstest.MapFS{}
	for _, name := range []string{"0001_init.sql", "0002_journal_chain.sql"} {
		body, err := fs.ReadFile(migrationFiles, "migrations/"+name)
		must(t, err)
		old["m/"+name] = &fstest.MapFile{Data: body}
	}
	db, err := sqldb.OpenSQLite(ctx, path, sqldb.Normal)
	must(t, err)
	must(t, sqldb.Migrate(ctx, db.W, old, "m", nil))
	for _, q := range []string{
		`INSERT INTO devices (id, user_id, name, certificate, fingerprint, enrolled_at) VALUES ('dev-1', 'alice', 'x', x'01', x'01', 1)`,
		`INSERT INTO devices (id, user_id, name, certificate, fingerprint, enrolled_at) VALUES ('dev-2', 'bob', 'x', x'02', x'02', 1)`,
		`INSERT INTO groups (id, epoch, head, roster, created) VALUES (x'0a', 0, 0, x'', 1)`,
		`INSERT INTO groups (id, epoch, head, roster, created) VALUES (x'0b', 0, 0, x'', 1)`,
		`INSERT INTO members (group_id, device_id, cursor) VALUES (x'0a', 'dev-1', 0)`,
		`INSERT INTO members (group_id, device_id, cursor) VALUES (x'0a', 'dev-2', 0)`,
		`INSERT INTO members (group_id, device_id, cursor) VALUES (x'0b', 'dev-2', 0)`,
	} {
		if _, err := db.W.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	must(t, db.Close())

	s, err := Open(ctx, path)
	must(t, err)
	defer s.Close()
	for dev, want := range map[candor.DeviceID][]store.Span{
		"dev-1": {{Group: "\x0a", Device: "dev-1"}},
		"dev-2": {{Group: "\x0a", Device: "dev-2"}, {Group: "\x0b", Device: "dev-2"}},
	} {
		got, err := s.Spans(ctx, dev)
		must(t, err)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Spans of %s after migrating (-want +got):\n%s", dev, diff)
		}
	}
	start, err := s.LogStart(ctx, "\x0a")
	must(t, err)
	if start != (store.LogStart{Seq: 1}) {
		t.Errorf("LogStart after migrating: %+v, want Seq 1", start)
	}
}

// TestRetentionPrepared: once warm, the cut and the reads of retention run
// on prepared statements, like the hot paths.
func TestRetentionPrepared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := batchFixture(t)
	s.deleteChunk = 2
	logOf(t, s, "a", 40)
	unprepared := func() int64 { return s.ws.unprepared.Load() + s.rs.unprepared.Load() }
	round := func(seq uint64) {
		t.Helper()
		if _, err := s.DeleteBefore(ctx, "a", seq); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LogStart(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WelcomeSeqs(ctx, "dev", "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Spans(ctx, "dev"); err != nil {
			t.Fatal(err)
		}
	}
	round(5)
	warm := unprepared()
	for seq := uint64(10); seq <= 40; seq += 5 {
		round(seq)
	}
	if got := unprepared() - warm; got != 0 {
		t.Errorf("%d queries ran unprepared once warm", got)
	}
}

// prefill gives group g of s a log of n application entries of 300 bytes,
// with a Welcome for dev every 1,000 (the archive's anchors), written
// straight into one transaction: the benchmark measures deleting, not
// appending.
func prefill(b *testing.B, s *Store, g candor.GroupID, n int) {
	ctx := context.Background()
	if err := s.CreateGroup(ctx, store.Group{ID: g, Roster: make([]byte, 2048), Created: t0}, "dev"); err != nil {
		b.Fatal(err)
	}
	err := s.write(ctx, func(ctx context.Context, c conn) error {
		prev := journal.Genesis
		msg := make([]byte, 300)
		for seq := uint64(1); seq <= uint64(n); seq++ {
			copy(msg, strconv.FormatUint(seq, 10))
			mh := sha256.Sum256(msg)
			prev = journal.EntryHash(g, journal.Entry{Seq: seq, Sender: "dev", Time: t0, Message: msg}, prev)
			if _, err := c.exec(ctx, `
				INSERT INTO entries (group_id, seq, epoch, is_commit, sender, sent_at, message, message_hash, hash)
				VALUES (?, ?, 0, 0, 'dev', ?, ?, ?, ?)`,
				[]byte(g), u64(seq), t0.UnixNano(), msg, mh[:], prev[:]); err != nil {
				return err
			}
			if seq%1000 == 0 {
				if _, err := c.exec(ctx, `
					INSERT INTO welcomes (id, device_id, group_id, seq, queued_at, data)
					VALUES (?, 'dev', ?, ?, ?, ?)`,
					fmt.Sprintf("%s welcome %d", g, seq), []byte(g), u64(seq), t0.UnixNano(), make([]byte, 1500)); err != nil {
					return err
				}
			}
		}
		_, err := c.exec(ctx, `UPDATE groups SET head = ?, head_hash = ? WHERE id = ?`, u64(uint64(n)), prev[:], []byte(g))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDeleteBefore deletes the first 100,000 entries of a log (300-byte
// messages, a Welcome every 1,000) in one call, while another goroutine
// appends to a second group one append after the other, as a live server
// does, in the synchronous mode Open uses (FULL). It reports the deletion's
// throughput (entries/s) and how long the appends waited: the longest one
// and the 99th percentile (stall-ms, p99-ms), for the chunk size DeleteBefore
// uses and for larger ones, up to the whole prefix in one transaction.
func BenchmarkDeleteBefore(b *testing.B) {
	const entries = 100_000
	for _, chunk := range []uint64{defaultDeleteChunk, 5_000, entries} {
		b.Run("chunk="+strconv.FormatUint(chunk, 10), func(b *testing.B) {
			ctx := context.Background()
			s, err := openSQLite(ctx, filepath.Join(b.TempDir(), "candor.db"), sqldb.Full)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.deleteChunk = chunk
			hash := sha256.Sum256([]byte("secret"))
			if err := s.CreateInvitation(ctx, store.Invitation{ID: "inv", User: "alice", SecretHash: hash[:], Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
				b.Fatal(err)
			}
			fp := sha256.Sum256([]byte("cert"))
			if err := s.Enrol(ctx, "inv", hash[:], t0, store.Device{ID: "dev", User: "alice", Certificate: []byte("cert"), Fingerprint: fp[:], EnrolledAt: t0}); err != nil {
				b.Fatal(err)
			}
			live := candor.GroupID("live")
			if err := s.CreateGroup(ctx, store.Group{ID: live, Roster: make([]byte, 2048), Created: t0}, "dev"); err != nil {
				b.Fatal(err)
			}
			var (
				liveHead uint64
				waits    []time.Duration
				deleting time.Duration
			)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				g := candor.GroupID(fmt.Sprint("cut ", i))
				prefill(b, s, g, entries+1)
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() {
					msg := make([]byte, 300)
					for {
						select {
						case <-stop:
							return
						default:
						}
						copy(msg, fmt.Sprint(liveHead))
						began := time.Now()
						seq, err := s.Append(ctx, appendReq(live, liveHead, string(msg)))
						if err != nil {
							b.Error(err)
							return
						}
						waits = append(waits, time.Since(began))
						liveHead = seq
					}
				})
				b.StartTimer()
				start := time.Now()
				n, err := s.DeleteBefore(ctx, g, entries+1)
				deleting += time.Since(start)
				b.StopTimer()
				close(stop)
				wg.Wait()
				if err != nil || n != entries {
					b.Fatalf("DeleteBefore: %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(entries*b.N)/deleting.Seconds(), "entries/s")
			slices.Sort(waits)
			if len(waits) > 0 {
				b.ReportMetric(float64(slices.Max(waits))/1e6, "stall-ms")
				b.ReportMetric(float64(waits[len(waits)*99/100])/1e6, "p99-ms")
			}
		})
	}
}
