// Package sqldb holds what candor's database/sql stores share: opening an
// embedded SQLite file the one way they all need, and forward-only schema
// migrations.
//
// A SQLite file is opened in WAL mode with two pools: one writer connection,
// whose transactions take the write lock at BEGIN (so two processes sharing
// the file never deadlock upgrading a read lock), and a few read-only
// connections, which WAL lets read while the writer writes. Writes are
// therefore serialised within a process; other processes wait up to
// BusyTimeout for the lock.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"candor"
)

// BusyTimeout is how long, in milliseconds, a connection waits for a lock
// another connection or process holds before it reports SQLITE_BUSY.
const BusyTimeout = 5000

// Readers is the size of the read-only connection pool.
const Readers = 4

// Sync is SQLite's synchronous setting in WAL mode.
type Sync string

const (
	// Normal syncs the log only at checkpoints: a process crash loses
	// nothing, a power loss may lose the last transactions.
	Normal Sync = "NORMAL"
	// Full syncs the log at every commit: nothing committed is lost.
	Full Sync = "FULL"
)

// SQLite is an opened SQLite file.
type SQLite struct {
	W *sql.DB // the one writer connection
	R *sql.DB // read-only connections
}

// OpenSQLite opens the SQLite file at path, creating it with mode 0600, and
// checks that the settings durability rests on took effect (a file system
// without shared memory, for one, silently keeps the rollback journal).
func OpenSQLite(ctx context.Context, path string, sync Sync) (*SQLite, error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return nil, fmt.Errorf("sqldb: path %q: %w", path, candor.ErrInvalid)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqldb: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqldb: %w", err)
	}
	// journal_mode=WAL is a property of the file, set once here; synchronous
	// and foreign_keys belong to each connection, and the writer is the one
	// that needs them.
	w, err := sql.Open("sqlite", dsn(path, url.Values{
		"_txlock":       {"immediate"},
		"_busy_timeout": {strconv.Itoa(BusyTimeout)},
		"_journal_mode": {"WAL"},
		"_synchronous":  {string(sync)},
		"_foreign_keys": {"1"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqldb: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := checkWriter(ctx, w, sync); err != nil {
		return nil, errors.Join(fmt.Errorf("sqldb: opening %s: %w", path, err), w.Close())
	}
	r, err := sql.Open("sqlite", dsn(path, url.Values{
		"_busy_timeout": {strconv.Itoa(BusyTimeout)},
		"_query_only":   {"1"},
	}))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqldb: %w", err), w.Close())
	}
	r.SetMaxOpenConns(Readers)
	r.SetMaxIdleConns(Readers)
	if err := r.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqldb: opening %s: %w", path, err), r.Close(), w.Close())
	}
	return &SQLite{W: w, R: r}, nil
}

// Close closes both pools.
func (db *SQLite) Close() error { return errors.Join(db.R.Close(), db.W.Close()) }

// dsn makes a SQLite URI filename for path: escaped, so a path holding '?',
// '#' or '%' names the file it says. SQLite ignores the driver's
// underscore parameters; the driver reads them.
func dsn(path string, params url.Values) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	u := url.URL{Path: filepath.ToSlash(path)}
	return "file:" + u.EscapedPath() + "?" + params.Encode()
}

func checkWriter(ctx context.Context, w *sql.DB, sync Sync) error {
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, not WAL", mode)
	}
	var fk, got int
	if err := w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return err
	}
	if err := w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil {
		return err
	}
	want := map[Sync]int{Normal: 1, Full: 2}[sync]
	if fk != 1 || got != want {
		return fmt.Errorf("foreign_keys=%d synchronous=%d, want 1 and %d", fk, got, want)
	}
	return nil
}

// Migrate brings a schema up to date: it applies, in order and in one
// transaction, every migration in dir of fsys newer than the database's
// schema_version. Migrations are files named NNNN_what.sql, numbered from 1
// without gaps. They only go forward; a database newer than the program is
// refused. Every statement Migrate runs passes through rewrite first, so a
// store can write its migrations for one engine and run them on another; nil
// runs them as written.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, dir string, rewrite func(string) string) (err error) {
	if rewrite == nil {
		rewrite = func(q string) string { return q }
	}
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return err
	}
	slices.Sort(names)
	for i, name := range names {
		num, _, ok := strings.Cut(path.Base(name), "_")
		if v, err := strconv.Atoi(num); !ok || err != nil || v != i+1 {
			return fmt.Errorf("migration %s: want version %d", name, i+1)
		}
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
	// schema_version lists the migrations applied, one row each. It is the
	// one table created outside the migrations, because it says which of
	// them to run.
	if _, err := tx.ExecContext(ctx, rewrite(`CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER NOT NULL PRIMARY KEY
	) STRICT`)); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, rewrite(`SELECT COALESCE(MAX(version), 0) FROM schema_version`)).Scan(&current); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if current > len(names) {
		return fmt.Errorf("schema version %d is newer than this program's %d: %w", current, len(names), candor.ErrInvalid)
	}
	for i, name := range names[current:] {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, rewrite(string(body))); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, rewrite(`INSERT INTO schema_version (version) VALUES (?)`), current+i+1); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}
