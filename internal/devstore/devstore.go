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
// The file is in WAL mode with synchronous=FULL: every transaction is
// fsynced before the method returns, so nothing a method wrote is lost to a
// process crash or a power loss. The adapter's promise that a sender never
// uses a (generation, key) pair twice rests on this: it reserves generations
// with SaveRatchet before it encrypts, and a reservation lost to a power cut
// after its ciphertext left the device would mean AES-GCM nonce reuse. With
// synchronous=NORMAL only process crashes would be covered. The adapter
// reserves generations in blocks, so a sender pays one fsync per block of
// messages; receivers pay one per message (their replay window). The
// benchmarks in devstore_test.go measure both modes.
//
// # Concurrency
//
// A Store is safe for concurrent use. Writes go through a single connection,
// so they are serialised in the process; reads use a small pool of read-only
// connections and see the last committed state (WAL readers do not block the
// writer). Other processes opening the same file wait up to sqldb.BusyTimeout for
// the write lock.
package devstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/sqldb"
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
	return open(ctx, path, sqldb.Full)
}

func open(ctx context.Context, path string, sync sqldb.Sync) (*Store, error) {
	db, err := sqldb.OpenSQLite(ctx, path, sync)
	if err != nil {
		return nil, fmt.Errorf("devstore: %w", err)
	}
	if err := sqldb.Migrate(ctx, db.W, migrationFiles, "migrations", nil); err != nil {
		return nil, errors.Join(fmt.Errorf("devstore: %s: %w", path, err), db.Close())
	}
	return &Store{w: db.W, r: db.R}, nil
}

// Close closes the database. The Store must not be used afterwards.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

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
