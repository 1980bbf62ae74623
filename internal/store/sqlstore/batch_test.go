package sqlstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"candor"
	"candor/internal/store"
)

// batchFixture is a store with one device, in groups a, b and c, each with
// one entry.
func batchFixture(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, _ := openTemp(t)
	hash := sha256.Sum256([]byte("secret"))
	must(t, s.CreateInvitation(ctx, store.Invitation{ID: "inv", User: "alice", SecretHash: hash[:], Created: t0, Expires: t0.Add(time.Hour)}))
	fp := sha256.Sum256([]byte("cert"))
	must(t, s.Enrol(ctx, "inv", hash[:], t0, store.Device{ID: "dev", User: "alice", Certificate: []byte("cert"), Fingerprint: fp[:], EnrolledAt: t0}))
	for _, g := range []candor.GroupID{"a", "b", "c"} {
		must(t, s.CreateGroup(ctx, store.Group{ID: g, Roster: []byte("roster 0"), Created: t0}, "dev"))
		if _, err := s.Append(ctx, appendReq(g, 0, "first in "+string(g))); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func appendReq(g candor.GroupID, prev uint64, msg string) store.AppendRequest {
	return store.AppendRequest{Group: g, PrevHead: prev, Entry: store.Entry{Sender: "dev", Time: t0, Message: []byte(msg)}}
}

func appendJob(t *testing.T, ctx context.Context, req store.AppendRequest) *job {
	t.Helper()
	_, f, err := appendTx(req)
	must(t, err)
	return &job{ctx: ctx, f: f, res: make(chan error, 1)}
}

// TestBatchIsolatesFailures runs one batch by hand: writes that fail,
// whether before writing anything or after, and a write whose caller gave
// up, leave the others of the batch committed and themselves no trace.
func TestBatchIsolatesFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := batchFixture(t)
	gone, cancel := context.WithCancel(ctx)
	cancel()

	// A commit whose Welcome names a device that is not a member fails
	// after moving b's head and inserting its entry.
	misaddressed := appendReq("b", 1, "misaddressed commit")
	misaddressed.Entry.Commit = true
	misaddressed.Roster, misaddressed.Epoch = []byte("roster 1"), 1
	misaddressed.Welcomes = []store.Welcome{{ID: "w", Device: "nobody", Data: []byte("Welcome")}}

	jobs := []*job{
		appendJob(t, ctx, appendReq("a", 1, "second in a")),
		appendJob(t, ctx, misaddressed),
		appendJob(t, ctx, appendReq("b", 1, "second in b")), // after the failure, on the head it left
		appendJob(t, ctx, appendReq("c", 0, "stale in c")),
		appendJob(t, ctx, appendReq("a", 2, "first in b")), // not a replay: another group's bytes
		appendJob(t, ctx, appendReq("a", 3, "second in a")),
		appendJob(t, gone, appendReq("c", 1, "given up")),
	}
	s.runBatch(context.Background(), jobs)
	var replay *store.ReplayError
	for i, want := range []func(error) bool{
		func(err error) bool { return err == nil },
		func(err error) bool { return errors.Is(err, candor.ErrPermission) },
		func(err error) bool { return err == nil },
		func(err error) bool { return errors.Is(err, candor.ErrConflict) && !errors.As(err, &replay) },
		func(err error) bool { return err == nil },
		func(err error) bool { return errors.As(err, &replay) && replay.Seq == 2 },
		func(err error) bool { return errors.Is(err, context.Canceled) },
	} {
		if err := <-jobs[i].res; !want(err) {
			t.Errorf("job %d: %v", i, err)
		}
	}
	for _, tc := range []struct {
		group candor.GroupID
		want  []string
		epoch candor.Epoch
	}{
		{"a", []string{"first in a", "second in a", "first in b"}, 0},
		{"b", []string{"first in b", "second in b"}, 0},
		{"c", []string{"first in c"}, 0},
	} {
		g, err := s.Group(ctx, tc.group)
		must(t, err)
		if g.Head != uint64(len(tc.want)) || g.Epoch != tc.epoch || string(g.Roster) != "roster 0" {
			t.Errorf("group %s: head %d epoch %d roster %q, want %d, %d, roster 0", tc.group, g.Head, g.Epoch, g.Roster, len(tc.want), tc.epoch)
		}
		log, err := s.Log(ctx, tc.group, 0, 10)
		must(t, err)
		var got []string
		for _, e := range log {
			got = append(got, string(e.Message))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("log of %s: %q, want %q", tc.group, got, tc.want)
		}
	}
	if _, err := s.CommitSeq(ctx, "b", 0); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("the failed commit left an entry: %v", err)
	}
}

// TestGroupCommit checks that appends to different groups made at the same
// time share transactions, and that each was committed.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := batchFixture(t)
	batches, jobs := s.stats.batches.Load(), s.stats.jobs.Load()
	const writers, each = 24, 20
	groups := make([]candor.GroupID, writers)
	for i := range groups {
		groups[i] = candor.GroupID(fmt.Sprintf("group %d", i))
		must(t, s.CreateGroup(ctx, store.Group{ID: groups[i], Roster: []byte("roster 0"), Created: t0}, "dev"))
	}
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() {
			for n := range uint64(each) {
				if _, err := s.Append(ctx, appendReq(g, n, fmt.Sprintf("%d-%d", i, n))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, g := range groups {
		got, err := s.Group(ctx, g)
		must(t, err)
		if got.Head != each {
			t.Errorf("group %s: head %d, want %d", g, got.Head, each)
		}
	}
	batches = s.stats.batches.Load() - batches - writers // CreateGroup ran alone
	jobs = s.stats.jobs.Load() - jobs - writers
	if jobs != writers*each {
		t.Fatalf("the writer ran %d jobs, want %d", jobs, writers*each)
	}
	// With 24 writers waiting on each fsync, batches average several
	// appends; one append per batch would be the old behaviour.
	if batches*2 > jobs {
		t.Errorf("%d appends took %d transactions: little group commit", jobs, batches)
	}
	t.Logf("%d appends in %d transactions", jobs, batches)
}

// TestWriteAfterClose: closing twice is no error, and a write to a closed
// store fails at once rather than waiting for a writer that is gone.
func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "candor.db"))
	must(t, err)
	must(t, s.Close())
	must(t, s.Close())
	if err := s.CreateInvitation(context.Background(), store.Invitation{ID: "x", User: "u", SecretHash: []byte{1}, Created: t0, Expires: t0}); !errors.Is(err, errClosed) {
		t.Errorf("write after Close: %v, want errClosed", err)
	}
}
