// Package sqllog is the SQLite [translog.Storage]: one file holding one or
// more transparency logs, each named by its origin.
//
// The file is in WAL mode with synchronous=FULL: an append returns only
// once it is on disk. A checkpoint signed over records a power loss then
// took back would show every client that kept it a rollback of the log,
// which is the alarm the log exists to raise, raised falsely.
//
// Writes go through sqldb's one writer connection and take the write lock
// at BEGIN, so appends are serialised across processes too; an append
// that finds the log longer than its caller read it fails with
// candor.ErrConflict. Reads use the read-only pool and run alongside.
//
// The queries are written in the SQL SQLite and PostgreSQL share, with ?
// placeholders, except ReadHashes' json_each, whose PostgreSQL form is
// = ANY(?); the schema's STRICT and WITHOUT ROWID are SQLite's, and a
// PostgreSQL dialect would drop them as internal/store/sqlstore's does.
package sqllog

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"candor"
	"candor/internal/sqldb"
	"candor/internal/translog"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open SQLite file of logs. It is safe for concurrent use.
type DB struct {
	db *sqldb.SQLite
	// The reads, prepared once: SQLite parsing them on every call was
	// most of the cost of a proof. database/sql prepares each again on
	// every connection of the read pool it runs on.
	size, hashes, record *sql.Stmt
}

// The queries the DB prepares.
const (
	sizeQuery = `SELECT size FROM logs WHERE id = ?`
	// The indexes travel as one JSON array, so that any number of them
	// is one prepared query; SQLite searches the primary key for each.
	hashesQuery = `SELECT idx, hash FROM hashes WHERE log = ? AND idx IN (SELECT value FROM json_each(?))`
	recordQuery = `SELECT data FROM records WHERE log = ? AND idx = ?`
)

// Open opens the log file at path, creating it (mode 0600, with its
// schema) if it does not exist; its directory must. Close it when done.
func Open(ctx context.Context, path string) (*DB, error) {
	db, err := sqldb.OpenSQLite(ctx, path, sqldb.Full)
	if err != nil {
		return nil, fmt.Errorf("sqllog: %w", err)
	}
	if err := sqldb.Migrate(ctx, db.W, migrations, "migrations", nil); err != nil {
		return nil, errors.Join(fmt.Errorf("sqllog: %s: %w", path, err), db.Close())
	}
	d := &DB{db: db}
	for _, p := range []struct {
		st    **sql.Stmt
		query string
	}{{&d.size, sizeQuery}, {&d.hashes, hashesQuery}, {&d.record, recordQuery}} {
		if *p.st, err = db.R.PrepareContext(ctx, p.query); err != nil {
			return nil, errors.Join(fmt.Errorf("sqllog: %s: %w", path, err), d.Close())
		}
	}
	return d, nil
}

// Close closes the file. Its Storages must not be used afterwards.
func (d *DB) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{d.size, d.hashes, d.record} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(append(errs, d.db.Close())...)
}

// Storage returns the storage of the log named origin, creating the log,
// empty, if the file has none of that name.
func (d *DB) Storage(ctx context.Context, origin string) (*Storage, error) {
	if origin == "" {
		return nil, fmt.Errorf("sqllog: a log needs an origin: %w", candor.ErrInvalid)
	}
	if _, err := d.db.W.ExecContext(ctx, `INSERT INTO logs (origin) VALUES (?) ON CONFLICT (origin) DO NOTHING`, origin); err != nil {
		return nil, fmt.Errorf("sqllog: creating log %q: %w", origin, err)
	}
	var id int64
	if err := d.db.R.QueryRowContext(ctx, `SELECT id FROM logs WHERE origin = ?`, origin).Scan(&id); err != nil {
		return nil, fmt.Errorf("sqllog: log %q: %w", origin, err)
	}
	return &Storage{d: d, id: id, origin: origin}, nil
}

// Storage is one log of a DB.
type Storage struct {
	d      *DB
	id     int64
	origin string
}

var _ translog.Storage = (*Storage)(nil)

// Size implements translog.Storage.
func (s *Storage) Size(ctx context.Context) (int64, error) {
	var n int64
	if err := s.d.size.QueryRowContext(ctx, s.id).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqllog: %s: size: %w", s.origin, err)
	}
	return n, nil
}

// Append implements translog.Storage.
func (s *Storage) Append(ctx context.Context, start int64, records [][]byte, hashes []tlog.Hash) (err error) {
	end := start + int64(len(records))
	first := tlog.StoredHashCount(start)
	if start < 0 || len(records) == 0 || int64(len(hashes)) != tlog.StoredHashCount(end)-first {
		return fmt.Errorf("sqllog: %s: %d records at %d with %d hashes: %w", s.origin, len(records), start, len(hashes), candor.ErrInvalid)
	}
	tx, err := s.d.db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqllog: %s: %w", s.origin, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	// The size moves first, and only from the size the caller read: a
	// writer in another process that appended meanwhile makes this touch
	// no row.
	res, err := tx.ExecContext(ctx, `UPDATE logs SET size = ? WHERE id = ? AND size = ?`, end, s.id, start)
	if err != nil {
		return fmt.Errorf("sqllog: %s: %w", s.origin, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqllog: %s: %w", s.origin, err)
	} else if n != 1 {
		return fmt.Errorf("sqllog: %s: the log no longer has %d records: %w", s.origin, start, candor.ErrConflict)
	}
	rec, err := tx.PrepareContext(ctx, `INSERT INTO records (log, idx, data) VALUES (?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqllog: %s: %w", s.origin, err)
	}
	defer rec.Close()
	for i, r := range records {
		if _, err := rec.ExecContext(ctx, s.id, start+int64(i), r); err != nil {
			return fmt.Errorf("sqllog: %s: record %d: %w", s.origin, start+int64(i), err)
		}
	}
	hash, err := tx.PrepareContext(ctx, `INSERT INTO hashes (log, idx, hash) VALUES (?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqllog: %s: %w", s.origin, err)
	}
	defer hash.Close()
	for i, h := range hashes {
		if _, err := hash.ExecContext(ctx, s.id, first+int64(i), h[:]); err != nil {
			return fmt.Errorf("sqllog: %s: hash %d: %w", s.origin, first+int64(i), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqllog: %s: %w", s.origin, err)
	}
	return nil
}

// ReadHashes implements translog.Storage.
func (s *Storage) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(indexes)
	if err != nil {
		return nil, fmt.Errorf("sqllog: %s: %w", s.origin, err)
	}
	rows, err := s.d.hashes.QueryContext(ctx, s.id, list)
	if err != nil {
		return nil, fmt.Errorf("sqllog: %s: reading hashes: %w", s.origin, err)
	}
	defer rows.Close()
	found := make(map[int64]tlog.Hash, len(indexes))
	for rows.Next() {
		var idx int64
		var raw []byte
		if err := rows.Scan(&idx, &raw); err != nil {
			return nil, fmt.Errorf("sqllog: %s: reading hashes: %w", s.origin, err)
		}
		var h tlog.Hash
		if len(raw) != len(h) {
			return nil, fmt.Errorf("sqllog: %s: stored hash %d has %d bytes: %w", s.origin, idx, len(raw), translog.ErrCorrupt)
		}
		copy(h[:], raw)
		found[idx] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqllog: %s: reading hashes: %w", s.origin, err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := found[x]
		if !ok {
			return nil, fmt.Errorf("sqllog: %s: stored hash %d: %w", s.origin, x, candor.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// Record implements translog.Storage.
func (s *Storage) Record(ctx context.Context, index int64) ([]byte, error) {
	var data []byte
	err := s.d.record.QueryRowContext(ctx, s.id, index).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqllog: %s: record %d: %w", s.origin, index, candor.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqllog: %s: record %d: %w", s.origin, index, err)
	}
	return data, nil
}
