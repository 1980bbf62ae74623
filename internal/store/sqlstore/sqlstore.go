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
// they are serialised in the process; every write transaction takes
// SQLite's write lock at BEGIN (BEGIN IMMEDIATE), so two processes sharing
// the file (candord serve and candord revoke) never deadlock upgrading a
// read lock, and either waits up to busyTimeout for the other. Reads use a
// small pool of read-only connections and see the last committed state.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"candor"
	"candor/internal/store"
)

// busyTimeout is how long, in milliseconds, a connection waits for a lock
// another connection or process holds before it reports SQLITE_BUSY.
const busyTimeout = 5000

// readers is the size of the read-only connection pool.
const readers = 4

// Synchronous modes (PRAGMA synchronous); see the package comment.
const (
	syncNormal = "NORMAL"
	syncFull   = "FULL"
)

// Store is the server's state in a SQL database. See the package comment
// for its durability and concurrency.
type Store struct {
	d *dialect
	w *sql.DB // every write; one connection for SQLite
	r *sql.DB // reads; read-only connections for SQLite
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
	return openSQLite(ctx, dsn, syncFull)
}

func openSQLite(ctx context.Context, path, synchronous string) (*Store, error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return nil, fmt.Errorf("sqlstore: path %q: %w", path, candor.ErrInvalid)
	}
	// Create the file before SQLite does, so that it is never readable by
	// others (SQLite gives the -wal and -shm files the same mode).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}

	// _txlock=immediate makes every transaction of the writer take the
	// write lock at BEGIN. journal_mode=WAL is a property of the file, set
	// once here; synchronous and foreign_keys belong to each connection,
	// and the writer is the one that needs them.
	w, err := sql.Open(sqliteDialect.driver, sqliteDSN(path, url.Values{
		"_txlock":       {"immediate"},
		"_busy_timeout": {strconv.Itoa(busyTimeout)},
		"_journal_mode": {"WAL"},
		"_synchronous":  {synchronous},
		"_foreign_keys": {"1"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := checkWriter(ctx, w, synchronous); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: opening %s: %w", path, err), w.Close())
	}
	if err := migrate(ctx, sqliteDialect, w); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: %s: %w", path, err), w.Close())
	}

	r, err := sql.Open(sqliteDialect.driver, sqliteDSN(path, url.Values{
		"_busy_timeout": {strconv.Itoa(busyTimeout)},
		"_query_only":   {"1"},
	}))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: %w", err), w.Close())
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: opening %s: %w", path, err), r.Close(), w.Close())
	}
	return &Store{d: sqliteDialect, w: w, r: r}, nil
}

// sqliteDSN makes a SQLite URI filename for path: escaped, so that a path
// holding '?', '#' or '%' names the file it says. SQLite ignores the
// driver's underscore parameters; the driver reads them.
func sqliteDSN(path string, params url.Values) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	u := url.URL{Path: filepath.ToSlash(path)}
	return "file:" + u.EscapedPath() + "?" + params.Encode()
}

// checkWriter opens the writer's connection and checks that the settings
// the durability argument rests on took effect: a file system without
// shared memory, for one, silently keeps the rollback journal.
func checkWriter(ctx context.Context, w *sql.DB, synchronous string) error {
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, not WAL", mode)
	}
	var fk, sync int
	if err := w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return err
	}
	if err := w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return err
	}
	want := map[string]int{syncNormal: 1, syncFull: 2}[synchronous]
	if fk != 1 || sync != want {
		return fmt.Errorf("foreign_keys=%d synchronous=%d, want 1 and %d", fk, sync, want)
	}
	return nil
}

// Close closes the database. The Store must not be used afterwards.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one file of migrations/, named NNNN_what.sql; its version is
// NNNN.
type migration struct {
	version int
	name    string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []migration
	for i, name := range names {
		base := filepath.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", base, i+1)
		}
		out = append(out, migration{version: v, name: name})
	}
	return out, nil
}

// migrate brings the schema up to date: it applies, in order and in one
// transaction, every migration newer than the database's schema_version,
// rewritten for the dialect. Migrations only go forward; a database newer
// than this program is refused.
func migrate(ctx context.Context, d *dialect, db *sql.DB) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	c := conn{tx, d}
	// schema_version lists the migrations applied, one row each. It is the
	// one table created outside migrations/, because it says which of them
	// to run.
	if _, err := c.exec(ctx, d.schema.Replace(`CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER NOT NULL PRIMARY KEY
	) STRICT`)); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	var current int
	if err := c.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("schema version %d is newer than this program's %d: %w", current, len(ms), candor.ErrInvalid)
	}
	for _, m := range ms[current:] {
		body, err := migrationFiles.ReadFile(m.name)
		if err != nil {
			return err
		}
		if _, err := c.exec(ctx, d.schema.Replace(string(body))); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := c.exec(ctx, `INSERT INTO schema_version (version) VALUES (?)`, m.version); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// querier runs SQL: a pool or a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn runs queries written with ? placeholders in its dialect.
type conn struct {
	q querier
	d *dialect
}

func (c conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.q.ExecContext(ctx, c.d.rebind(query), args...)
}

func (c conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.q.QueryContext(ctx, c.d.rebind(query), args...)
}

func (c conn) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return c.q.QueryRowContext(ctx, c.d.rebind(query), args...)
}

// write runs f in a write transaction and commits it if f returns nil.
func (s *Store) write(ctx context.Context, f func(c conn) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(conn{tx, s.d}); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// read runs f in a read transaction, so that its queries see one state.
func (s *Store) read(ctx context.Context, f func(c conn) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	// Nothing was written: rolling back only ends the read.
	return errors.Join(f(conn{tx, s.d}), tx.Rollback())
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
