// Package devstore is the device's local database: its MLS state now, its
// message history later. It is one SQLite file, reached through
// database/sql and modernc.org/sqlite (pure Go, no cgo).
//
// [Store] implements [mlsx.Store]: group snapshots, per-message ratchet
// records and the private halves of unused KeyPackages.
//
// NOT ENCRYPTED YET. Everything the Store holds is secret — epoch secrets,
// private HPKE keys, KeyPackage private keys — and [mlsx.Store] requires
// encryption at rest. Encrypting the file is a later issue, and the file
// must be encrypted before candor ships. Until then devstore only creates it
// readable by its owner alone (mode 0600; SQLite gives the -wal and -shm
// files the same mode).
//
// # Durability
//
// The file is in WAL mode with synchronous=NORMAL: a commit appends to the
// write-ahead log with write(2) but does not fsync it; the log is synced at
// checkpoints. So:
//
//   - A process crash (panic, kill -9, OOM) loses nothing: a transaction is
//     in the operating system's page cache when the method returns, and the
//     next open finds it. The adapter's guarantee that a sender never reuses
//     a (generation, key) pair — it reserves the generation with SaveRatchet
//     before it encrypts — holds across process crashes.
//   - A power loss or kernel crash can lose the last transactions committed
//     before it (never corrupt the file). A lost SaveRatchet reservation
//     whose ciphertext had already left the device would let the device,
//     after the reboot, encrypt another message under the same generation
//     and key: AES-GCM nonce reuse. Across power loss that guarantee needs
//     synchronous=FULL, which fsyncs the log on every commit. See the
//     benchmarks in devstore_test.go for what each costs on a message.
//
// # Concurrency
//
// A Store is safe for concurrent use. Writes go through a single connection,
// so they are serialised in the process; reads use a small pool of read-only
// connections and see the last committed state (WAL readers do not block the
// writer). Other processes opening the same file wait up to busyTimeout for
// the write lock.
package devstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"candor"
	"candor/internal/mlsx"
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

// Store is a device's MLS state in a SQLite file. See the package comment
// for its durability and concurrency.
type Store struct {
	w *sql.DB // one connection: every write
	r *sql.DB // read-only connections
}

var _ mlsx.Store = (*Store)(nil)

// Open opens the database at path, creating it (mode 0600) and its schema
// if need be, and brings its schema up to date. The directory must exist.
// Close the Store when done.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, syncNormal)
}

func open(ctx context.Context, path, synchronous string) (*Store, error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return nil, fmt.Errorf("devstore: path %q: %w", path, candor.ErrInvalid)
	}
	// Create the file before SQLite does, so it is never readable by others.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("devstore: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("devstore: %w", err)
	}

	// _txlock=immediate makes every transaction of the writer take the
	// write lock at BEGIN, so two processes never both read under a
	// deferred lock and then fail to upgrade it. journal_mode=WAL is a
	// property of the file, set once here; synchronous and foreign_keys
	// belong to each connection, and the writer is the one that needs them.
	w, err := sql.Open("sqlite", dsn(path, url.Values{
		"_txlock":       {"immediate"},
		"_busy_timeout": {strconv.Itoa(busyTimeout)},
		"_journal_mode": {"WAL"},
		"_synchronous":  {synchronous},
		"_foreign_keys": {"1"},
	}))
	if err != nil {
		return nil, fmt.Errorf("devstore: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := checkWriter(ctx, w, synchronous); err != nil {
		return nil, errors.Join(fmt.Errorf("devstore: opening %s: %w", path, err), w.Close())
	}
	if err := migrate(ctx, w); err != nil {
		return nil, errors.Join(fmt.Errorf("devstore: %s: %w", path, err), w.Close())
	}

	r, err := sql.Open("sqlite", dsn(path, url.Values{
		"_busy_timeout": {strconv.Itoa(busyTimeout)},
		"_query_only":   {"1"},
	}))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("devstore: %w", err), w.Close())
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("devstore: opening %s: %w", path, err), r.Close(), w.Close())
	}
	return &Store{w: w, r: r}, nil
}

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
// transaction, every migration newer than the database's schema_version.
// Migrations only go forward; a database newer than this program is refused.
func migrate(ctx context.Context, w *sql.DB) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	// schema_version lists the migrations applied, one row each. It is the
	// one table created outside migrations/, because it says which of them
	// to run.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER NOT NULL PRIMARY KEY
	) STRICT`); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
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
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, m.version); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// blob returns b, or an empty slice for nil: the driver binds a nil slice
// as NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// epochValue is the INTEGER an epoch is stored as: the int64 with the same
// bits, since database/sql refuses uint64 values of 2^63 and more.
func epochValue(e candor.Epoch) int64 { return int64(e) }

// inTx runs f in a write transaction and commits it.
func (s *Store) inTx(ctx context.Context, f func(tx *sql.Tx) error) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// SaveGroup replaces the group's snapshot, deletes its ratchet records and
// clears its pending commit, in one transaction.
func (s *Store) SaveGroup(ctx context.Context, group candor.GroupID, epoch candor.Epoch, state []byte) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO groups (group_id, epoch, state, pending_commit, pending_state)
			VALUES (?, ?, ?, NULL, NULL)
			ON CONFLICT (group_id) DO UPDATE SET
				epoch = excluded.epoch,
				state = excluded.state,
				pending_commit = NULL,
				pending_state = NULL`,
			[]byte(group), epochValue(epoch), blob(state)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM ratchets WHERE group_id = ?`, []byte(group))
		return err
	})
	if err != nil {
		return fmt.Errorf("devstore: saving group %s: %w", group, err)
	}
	return nil
}

// LoadGroup returns the group's snapshot, its ratchet records and its
// pending commit, all as of one moment. A missing group is reported
// wrapping candor.ErrNotFound.
func (s *Store) LoadGroup(ctx context.Context, group candor.GroupID) (sg mlsx.StoredGroup, err error) {
	// One read transaction, so the snapshot and the records agree.
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s: %w", group, err)
	}
	defer func() {
		// Nothing was written: rolling back only ends the read.
		err = errors.Join(err, tx.Rollback())
	}()
	var (
		epoch           int64
		hasPending      bool
		commit, pending []byte
	)
	err = tx.QueryRowContext(ctx, `
		SELECT epoch, state, pending_commit IS NOT NULL, pending_commit, pending_state
		FROM groups WHERE group_id = ?`, []byte(group)).
		Scan(&epoch, &sg.State, &hasPending, &commit, &pending)
	if errors.Is(err, sql.ErrNoRows) {
		return mlsx.StoredGroup{}, fmt.Errorf("devstore: group %s: %w", group, candor.ErrNotFound)
	}
	if err != nil {
		return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s: %w", group, err)
	}
	sg.Epoch = candor.Epoch(epoch)
	sg.State = blob(sg.State)
	if hasPending {
		sg.Pending = &mlsx.PendingState{Commit: blob(commit), State: blob(pending)}
	}
	sg.Ratchets = make(map[uint32]mlsx.RatchetRecord)
	rows, err := tx.QueryContext(ctx, `SELECT leaf, epoch, record FROM ratchets WHERE group_id = ?`, []byte(group))
	if err != nil {
		return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s ratchets: %w", group, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			leaf   int64
			epoch  int64
			record []byte
		)
		if err := rows.Scan(&leaf, &epoch, &record); err != nil {
			return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s ratchets: %w", group, err)
		}
		if leaf < 0 || leaf > int64(^uint32(0)) {
			return mlsx.StoredGroup{}, fmt.Errorf("devstore: group %s: leaf %d: %w", group, leaf, candor.ErrInvalid)
		}
		sg.Ratchets[uint32(leaf)] = mlsx.RatchetRecord{Epoch: candor.Epoch(epoch), Record: blob(record)}
	}
	if err := rows.Err(); err != nil {
		return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s ratchets: %w", group, err)
	}
	return sg, nil
}

// SaveRatchet stores one leaf's ratchet record, replacing the leaf's
// previous one. It is one statement, so one transaction; when it returns
// the record is in the write-ahead log (see Durability in the package
// comment). A missing group is reported wrapping candor.ErrNotFound.
func (s *Store) SaveRatchet(ctx context.Context, group candor.GroupID, epoch candor.Epoch, leaf uint32, record []byte) error {
	// Inserting from the groups row makes the group's absence visible as
	// zero rows affected, in the same statement. (The WHERE clause also
	// keeps SQLite's parser from reading ON CONFLICT as a join constraint.)
	res, err := s.w.ExecContext(ctx, `
		INSERT INTO ratchets (group_id, leaf, epoch, record)
		SELECT group_id, ?, ?, ? FROM groups WHERE group_id = ?
		ON CONFLICT (group_id, leaf) DO UPDATE SET
			epoch = excluded.epoch,
			record = excluded.record`,
		int64(leaf), epochValue(epoch), blob(record), []byte(group))
	if err != nil {
		return fmt.Errorf("devstore: saving group %s leaf %d ratchet: %w", group, leaf, err)
	}
	return mustAffect(res, fmt.Sprintf("group %s", group))
}

// SavePending stores this device's commit and the state it leads to beside
// the group's snapshot. A missing group is reported wrapping
// candor.ErrNotFound.
func (s *Store) SavePending(ctx context.Context, group candor.GroupID, commit []byte, state []byte) error {
	res, err := s.w.ExecContext(ctx, `
		UPDATE groups SET pending_commit = ?, pending_state = ? WHERE group_id = ?`,
		blob(commit), blob(state), []byte(group))
	if err != nil {
		return fmt.Errorf("devstore: saving group %s pending commit: %w", group, err)
	}
	return mustAffect(res, fmt.Sprintf("group %s", group))
}

func mustAffect(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("devstore: %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("devstore: %s: %w", what, candor.ErrNotFound)
	}
	return nil
}

// DeleteGroup forgets the group, its ratchet records (through the foreign
// key) and its pending commit. Deleting a missing group is no error.
func (s *Store) DeleteGroup(ctx context.Context, group candor.GroupID) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM groups WHERE group_id = ?`, []byte(group)); err != nil {
		return fmt.Errorf("devstore: deleting group %s: %w", group, err)
	}
	return nil
}

// SaveKeyPackage stores a KeyPackage's private keys under its
// KeyPackageRef, replacing what was there.
func (s *Store) SaveKeyPackage(ctx context.Context, ref []byte, secrets []byte) error {
	if _, err := s.w.ExecContext(ctx, `
		INSERT INTO key_packages (ref, secrets) VALUES (?, ?)
		ON CONFLICT (ref) DO UPDATE SET secrets = excluded.secrets`,
		blob(ref), blob(secrets)); err != nil {
		return fmt.Errorf("devstore: saving key package: %w", err)
	}
	return nil
}

// LoadKeyPackage returns what SaveKeyPackage stored under ref. A missing
// one is reported wrapping candor.ErrNotFound.
func (s *Store) LoadKeyPackage(ctx context.Context, ref []byte) ([]byte, error) {
	var secrets []byte
	err := s.r.QueryRowContext(ctx, `SELECT secrets FROM key_packages WHERE ref = ?`, blob(ref)).Scan(&secrets)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("devstore: key package %x: %w", ref, candor.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("devstore: loading key package: %w", err)
	}
	return blob(secrets), nil
}

// DeleteKeyPackage forgets a KeyPackage's private keys. Deleting a missing
// one is no error.
func (s *Store) DeleteKeyPackage(ctx context.Context, ref []byte) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM key_packages WHERE ref = ?`, blob(ref)); err != nil {
		return fmt.Errorf("devstore: deleting key package: %w", err)
	}
	return nil
}
