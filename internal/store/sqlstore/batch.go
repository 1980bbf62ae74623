package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
)

// maxBatch bounds how many writes share one transaction. A batch holds the
// writer for the sum of its writes' SQL (tens of microseconds each) plus
// one fsync, and every write in it waits for the whole batch: the bound
// keeps that wait to a few milliseconds while still sharing the fsync,
// which costs more than a hundred appends' worth of SQL.
const maxBatch = 128

// errClosed is returned by writes to a closed Store.
var errClosed = errors.New("sqlstore: the store is closed")

// A job is one write waiting for the writer: f runs in the batch's
// transaction, under a savepoint of its own when the batch has others.
type job struct {
	ctx context.Context // the caller's: a job whose ctx has ended by its turn is skipped
	f   func(ctx context.Context, c conn) error
	res chan error // buffered: the writer never waits for the caller
}

// batchStats counts the writer's work: jobs per batch is the sharing that
// group commit achieves.
type batchStats struct {
	batches atomic.Int64 // transactions committed or rolled back
	jobs    atomic.Int64 // jobs run in them
}

// write runs f in a write transaction and reports f's error, or the
// transaction's. The transaction is shared with other writes that were
// waiting at the same time (group commit): they run one after the other,
// each seeing the ones before, and are made durable by one COMMIT, one
// fsync. Each write is still atomic on its own: a write whose f fails is
// rolled back to its savepoint and leaves the others of its batch alone.
// write returns only once the batch is durably committed, so nil means
// durable.
//
// f must run every query with the ctx it is given, not the caller's: a
// statement interrupted by a cancelled context may roll back the whole
// transaction, which would fail every write of the batch. The caller's
// ctx bounds the wait for the writer; once the writer has taken the job,
// write waits for its outcome, so that an error always means "not
// written" (except a failed COMMIT, which SQLite reports when it cannot
// tell).
func (s *Store) write(ctx context.Context, f func(ctx context.Context, c conn) error) error {
	j := &job{ctx: ctx, f: f, res: make(chan error, 1)}
	select {
	case s.jobs <- j:
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-s.quit:
		return errClosed
	}
	return <-j.res
}

// writeLoop is the writer: it takes a job, adds every other job already
// waiting (up to maxBatch), and runs them as one transaction, until Close.
// The jobs channel is unbuffered, so a job is either still the caller's or
// in a batch; a batch never waits for more jobs to arrive, it takes what
// queued up while the previous one was being committed.
func (s *Store) writeLoop(ctx context.Context) {
	defer close(s.stopped)
	batch := make([]*job, 0, maxBatch)
	for {
		select {
		case j := <-s.jobs:
			batch = append(batch[:0], j)
		case <-s.quit:
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
			default:
				break more
			}
		}
		s.runBatch(ctx, batch)
		clear(batch) // drop the references to finished jobs
	}
}

// runBatch runs jobs in one transaction and answers each.
func (s *Store) runBatch(ctx context.Context, jobs []*job) {
	errs := make([]error, len(jobs))
	var p pending
	// The statements the batch met unprepared are prepared once it has
	// ended, when the writer connection is free again.
	defer p.flush(ctx, s.ws)
	defer func() {
		for i, j := range jobs {
			j.res <- errs[i]
		}
	}()
	s.stats.batches.Add(1)
	s.stats.jobs.Add(int64(len(jobs)))

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return
	}
	c := s.inTx(tx, s.ws, &p)
	// A lone job needs no savepoint: its failure rolls back the
	// transaction, which holds nothing else.
	shared := len(jobs) > 1
	done := 0 // jobs whose changes the transaction holds
	for i, j := range jobs {
		if err := j.ctx.Err(); err != nil {
			errs[i] = context.Cause(j.ctx)
			continue
		}
		if !shared {
			errs[i] = j.f(ctx, c)
			if errs[i] == nil {
				done++
			}
			continue
		}
		if _, err := c.exec(ctx, `SAVEPOINT job`); err != nil {
			abort(tx, errs, i, fmt.Errorf("opening a savepoint: %w", err))
			return
		}
		errs[i] = j.f(ctx, c)
		if errs[i] != nil {
			// ROLLBACK TO keeps the savepoint open; RELEASE ends it.
			if _, err := c.exec(ctx, `ROLLBACK TO job`); err != nil {
				abort(tx, errs, i+1, fmt.Errorf("rolling back a failed write (%w): %w", errs[i], err))
				return
			}
		} else {
			done++
		}
		if _, err := c.exec(ctx, `RELEASE job`); err != nil {
			abort(tx, errs, i+1, fmt.Errorf("releasing a savepoint: %w", err))
			return
		}
	}
	if done == 0 {
		// Nothing to keep: rolling back ends the transaction without
		// an fsync.
		if err := tx.Rollback(); err != nil {
			for i := range errs {
				errs[i] = errors.Join(errs[i], err)
			}
		}
		return
	}
	if err := tx.Commit(); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("committing: %w", err)
			}
		}
	}
}

// abort rolls back a batch whose transaction can no longer be trusted
// (SQLite may have rolled it back itself, on an I/O error or a full disk):
// every job that had not failed fails with err, from (and including) job
// from on, and the earlier ones that had succeeded too, since their changes
// are gone with the transaction.
func abort(tx *sql.Tx, errs []error, from int, err error) {
	err = errors.Join(err, tx.Rollback())
	for i := range errs {
		if errs[i] == nil || i >= from {
			errs[i] = err
		}
	}
}
