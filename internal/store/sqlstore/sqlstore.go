// Package sqlstore is the database/sql implementation of [store.Store]: one
// set of queries for SQLite now and PostgreSQL later, whose differences are
// the few entries of a dialect table (see dialect.go). Its schema is in
// migrations/, forward-only and applied in a transaction when the store
// opens.
//
// # SQLite
//
// [Open] takes the path of a SQLite file (modernc.org/sqlite: pure Go, no
// cgo), creating it mode 0600. The file is in WAL mode with
// synchronous=FULL: a write returns only once its transaction is fsynced in
// the write-ahead log, so a sequence number the server has answered with
// survives a power loss too. The log is the archive's journal and devices
// remember what they were sent: losing an acknowledged entry would let
// another message take its sequence number. BenchmarkAppend shows what that
// fsync costs against synchronous=NORMAL.
//
// # Concurrency
//
// A Store is safe for concurrent use. Writes go through one connection, so
// they are serialised in the process, and through one goroutine, the
// writer, which runs the writes that queued up meanwhile in one transaction
// with one fsync (group commit, see write); every write transaction takes
// SQLite's write lock at BEGIN (BEGIN IMMEDIATE), so two processes sharing
// the file (candord serve and candord revoke) never deadlock upgrading a
// read lock, and either waits up to sqldb.BusyTimeout for the other. Reads use a
// small pool of read-only connections and see the last committed state.
//
// # Retention
//
// DeleteBefore deletes a log's prefix through the same writer, a few
// hundred entries per transaction (see defaultDeleteChunk), so that the
// appends of other groups wait for one chunk rather than for the whole
// prefix; each chunk moves the log's start (groups.start_seq, start_prev),
// so no reader or crash ever sees a log with a hole.
//
// # Prepared statements
//
// Each query is prepared once per connection and kept (see stmtCache)
// rather than parsed by SQLite on every call, which was a quarter of the
// server's CPU under load. A query is prepared the first time it is run
// outside a transaction, or just after the first transaction that runs it
// ends; BenchmarkAppend and BenchmarkLog show the gain.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"candor"
	"candor/internal/sqldb"
	"candor/internal/store"
)

// Store is the server's state in a SQL database. See the package comment
// for its durability and concurrency.
type Store struct {
	d *dialect
	w *sql.DB // every write; one connection for SQLite
	r *sql.DB // reads; read-only connections for SQLite
	// ws and rs are the statements prepared on w and r.
	ws, rs *stmtCache

	// The writer (see write): jobs hands it writes, quit stops it, and
	// stopped is closed once it has.
	jobs    chan *job
	quit    chan struct{}
	stopped chan struct{}
	stats   batchStats

	// deleteChunk bounds the entries one transaction of DeleteBefore
	// deletes: defaultDeleteChunk, or what a test or benchmark compares
	// it with.
	deleteChunk uint64

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens the store at dsn and brings its schema up to date. dsn is the
// path of a SQLite file, created (mode 0600, with its schema) if it does not
// exist; its directory must. Several Stores, in one process or several, may
// open the same file. PostgreSQL URLs (postgres://…) are refused with
// candor.ErrInvalid until PostgreSQL support lands. Close the Store when
// done.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return nil, fmt.Errorf("sqlstore: PostgreSQL is not supported yet: %w", candor.ErrInvalid)
	}
	return openSQLite(ctx, dsn, sqldb.Full)
}

func openSQLite(ctx context.Context, path string, sync sqldb.Sync) (*Store, error) {
	db, err := sqldb.OpenSQLite(ctx, path, sync)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	d := sqliteDialect
	rewrite := func(q string) string { return d.rebind(d.schema.Replace(q)) }
	if err := sqldb.Migrate(ctx, db.W, migrationFiles, "migrations", rewrite); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: %s: %w", path, err), db.Close())
	}
	s := &Store{
		d: d, w: db.W, r: db.R, ws: newStmtCache(db.W), rs: newStmtCache(db.R),
		jobs: make(chan *job), quit: make(chan struct{}), stopped: make(chan struct{}),
		deleteChunk: defaultDeleteChunk,
	}
	// The writer outlives Open's ctx: Close stops it.
	go s.writeLoop(context.WithoutCancel(ctx))
	return s, nil
}

// Close waits for the write in progress, if any, and closes the database.
// Writes that had not reached the writer fail. Closing again returns the
// first Close's error; the Store must not be used afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.stopped
		s.closeErr = errors.Join(s.rs.close(), s.ws.close(), s.r.Close(), s.w.Close())
	})
	return s.closeErr
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn runs queries written with ? placeholders in its dialect, through
// the statements its cache has prepared when it has them.
type conn struct {
	q querier
	d *dialect
	// cache holds the statements prepared on the pool q is, or q's
	// transaction is of; nil runs every query unprepared.
	cache *stmtCache
	// tx is q when q is a transaction; the queries its cache has not
	// prepared are noted in pending, and prepared when it ends.
	tx      *sql.Tx
	pending *pending
}

// db returns a conn that runs queries on the pool of cache.
func (s *Store) db(cache *stmtCache) conn {
	return conn{q: cache.db, d: s.d, cache: cache}
}

// inTx returns a conn that runs queries in tx, a transaction on the pool
// of cache.
func (s *Store) inTx(tx *sql.Tx, cache *stmtCache, p *pending) conn {
	return conn{q: tx, d: s.d, cache: cache, tx: tx, pending: p}
}

// stmt returns the prepared statement for query (rebound), or nil for
// running it unprepared.
func (c conn) stmt(ctx context.Context, query string) *sql.Stmt {
	if c.cache == nil {
		return nil
	}
	if c.tx == nil {
		st := c.cache.prepare(ctx, query)
		if st == nil {
			c.cache.unprepared.Add(1)
		}
		return st
	}
	st := c.cache.get(query)
	if st == nil {
		c.cache.unprepared.Add(1)
		c.pending.add(query)
		return nil
	}
	return c.tx.StmtContext(ctx, st)
}

func (c conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query = c.d.rebind(query)
	if st := c.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.q.ExecContext(ctx, query, args...)
}

func (c conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = c.d.rebind(query)
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.q.QueryContext(ctx, query, args...)
}

func (c conn) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query = c.d.rebind(query)
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.q.QueryRowContext(ctx, query, args...)
}

// read runs f in a read transaction, so that its queries see one state.
func (s *Store) read(ctx context.Context, f func(c conn) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	var p pending
	defer p.flush(ctx, s.rs)
	// Nothing was written: rolling back only ends the read.
	return errors.Join(f(s.inTx(tx, s.rs, &p)), tx.Rollback())
}

// affected returns how many rows a statement changed (or, for an INSERT …
// ON CONFLICT DO NOTHING, inserted).
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// scanList runs a query and scans each row with scan.
func scanList[T any](ctx context.Context, c conn, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]T, 0)
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// blob returns b, or an empty slice for nil: drivers bind a nil slice as
// NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// u64 is the INTEGER a uint64 (epoch, sequence number, cursor) is stored
// as: the int64 with the same bits, since database/sql refuses uint64
// values of 2^63 and more. Only epochs get anywhere near.
func u64(v uint64) int64 { return int64(v) }

// flag is the INTEGER a boolean is stored as.
func flag(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Times are stored as Unix nanoseconds, which reach from 1677 to 2262.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos is the INTEGER a time is stored as. The zero time, or one out of
// range, is refused: it would not come back as it went in.
func nanos(what string, t time.Time) (int64, error) {
	if t.IsZero() || t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("%s %v is not a time the store can hold: %w", what, t, candor.ErrInvalid)
	}
	return t.UnixNano(), nil
}

// timeOf is the inverse of nanos, in UTC.
func timeOf(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// nullTimeOf reads a nullable time column: NULL is the zero time.
func nullTimeOf(ns sql.NullInt64) time.Time {
	if !ns.Valid {
		return time.Time{}
	}
	return timeOf(ns.Int64)
}

// noRow turns database/sql's "no rows" into candor.ErrNotFound and passes
// any other error on; the caller adds what was not found.
func noRow(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return candor.ErrNotFound
	}
	return err
}
