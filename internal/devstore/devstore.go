// Package devstore is the device's local database: its MLS state and its
// message history. It is one SQLite file, reached through
// database/sql and modernc.org/sqlite (pure Go, no cgo).
//
// [Store] implements [mlsx.Store]: group snapshots, per-message ratchet
// records and the private halves of unused KeyPackages.
//
// # Encryption at rest
//
// Everything the Store holds that is secret or private is sealed with
// AES-256-GCM under a key derived from the device's storage key
// ([devkey.Key]): snapshots, pending commits and the states they lead to,
// ratchet records, KeyPackage private keys, conversation names, and each
// message's sender and text. Each sealed value's additional data names its
// table, its column and its row's key, so a value copied to another row or
// column does not open. What stays in the clear is what queries need (group
// ids, epochs, leaf indexes, log positions, times, delivery states, the hash
// of an outgoing message's ciphertext); docs/design/client-storage.md lists
// it and says why. The file is also created readable by its owner alone
// (mode 0600; SQLite gives the -wal and -shm files the same mode).
//
// The database carries a key check, a value sealed when it was created:
// Open verifies it before it changes anything, so a wrong key is
// [devkey.ErrWrongKey] and the file is left as it was. A database written
// by a candor that did not encrypt is refused with [ErrUnencrypted].
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
	"encoding/binary"
	"errors"
	"fmt"

	"candor"
	"candor/internal/devkey"
	"candor/internal/mlsx"
	"candor/internal/sqldb"
)

// ErrUnencrypted: the database was written by a candor that kept it in the
// clear. There are no such deployments to migrate; the device must be
// enrolled again.
var ErrUnencrypted = fmt.Errorf("the device database was written unencrypted by an earlier candor and cannot be opened; enrol this device again in a new profile folder: %w", candor.ErrInvalid)

// sealedSince is the schema version from which the database is encrypted
// (migrations/0004_sealed.sql).
const sealedSince = 4

// purpose is the devkey purpose of the database's key: the storage key's
// other uses cannot open its records.
const purpose = "device database"

// Store is a device's MLS state and history in a SQLite file. See the
// package comment for its encryption, durability and concurrency.
type Store struct {
	w   *sql.DB // one connection: every write
	r   *sql.DB // read-only connections
	box sealer
}

// sealer seals the Store's secret columns: a *devkey.Sealer. (The
// benchmarks measure the Store with a sealer that does nothing too, to
// show what encryption costs.)
type sealer interface {
	Seal(ad, plaintext []byte) []byte
	Open(ad, sealed []byte) ([]byte, error)
}

var _ mlsx.Store = (*Store)(nil)

// Open opens the database at path with the device's storage key, creating
// it (mode 0600) and its schema if need be, and brings its schema up to
// date. The directory must exist. A key that is not the one the database
// was created with is devkey.ErrWrongKey, and the database is not changed;
// a database from before encryption is ErrUnencrypted. Close the Store
// when done.
func Open(ctx context.Context, path string, key devkey.Key) (*Store, error) {
	box, err := devkey.NewSealer(key, purpose)
	if err != nil {
		return nil, err
	}
	return open(ctx, path, sqldb.Full, box)
}

func open(ctx context.Context, path string, sync sqldb.Sync, box sealer) (*Store, error) {
	db, err := sqldb.OpenSQLite(ctx, path, sync)
	if err != nil {
		return nil, fmt.Errorf("devstore: %w", err)
	}
	s := &Store{w: db.W, r: db.R, box: box}
	if err := s.prepare(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("devstore: %s: %w", path, err), db.Close())
	}
	return s, nil
}

// prepare checks the key against the database, before anything is written,
// then migrates the schema and, in a new database, writes the key check.
func (s *Store) prepare(ctx context.Context) error {
	version, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if version > 0 && version < sealedSince {
		return ErrUnencrypted
	}
	checked := false
	if version >= sealedSince {
		if checked, err = s.checkKey(ctx); err != nil {
			return err
		}
	}
	if err := sqldb.Migrate(ctx, s.w, migrationFiles, "migrations", nil); err != nil {
		return err
	}
	if !checked {
		return s.writeKeyCheck(ctx)
	}
	return nil
}

// schemaVersion is the last migration applied, 0 for a new database.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var n int
	if err := s.w.QueryRowContext(ctx, `
		SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'`).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	var v int
	err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	return v, err
}

// The key check is an empty plaintext sealed under the database's key: it
// opens only under the same key.
var keyCheckAD = ad("key_check", "sealed")

// checkKey opens the key check. It reports false, and no error, when there
// is none in a database that holds nothing yet: one whose creation was
// cut short between the schema and the check.
func (s *Store) checkKey(ctx context.Context) (bool, error) {
	var sealed []byte
	err := s.w.QueryRowContext(ctx, `SELECT sealed FROM key_check`).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		var rows int
		if err := s.w.QueryRowContext(ctx, `
			SELECT (SELECT count(*) FROM groups) + (SELECT count(*) FROM key_packages) +
				(SELECT count(*) FROM conversations)`).Scan(&rows); err != nil {
			return false, err
		}
		if rows != 0 {
			return false, fmt.Errorf("the key check is missing: %w", devkey.ErrUnreadable)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := s.box.Open(keyCheckAD, sealed); err != nil {
		return false, devkey.ErrWrongKey
	}
	return true, nil
}

func (s *Store) writeKeyCheck(ctx context.Context) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO key_check (id, sealed) VALUES (1, ?)`, s.box.Seal(keyCheckAD, nil))
	return err
}

// ad is the additional data of a sealed value: the table, the column and
// the row's key, each prefixed by its length, so that no two places in
// the database share one and a value moved elsewhere does not open.
func ad(table, column string, key ...[]byte) []byte {
	out := []byte("candor devstore")
	for _, part := range append([][]byte{[]byte(table), []byte(column)}, key...) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(part)))
		out = append(out, part...)
	}
	return out
}

// u64 is an integer part of a row key.
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// unseal opens a sealed value, naming what it was in the error.
func (s *Store) unseal(what string, ad, sealed []byte) ([]byte, error) {
	plain, err := s.box.Open(ad, sealed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return blob(plain), nil
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

// Where each sealed MLS value belongs. A snapshot is bound to its epoch
// too, so the epoch column cannot be changed under it; a ratchet record to
// its leaf and epoch.
func stateAD(g candor.GroupID, e candor.Epoch) []byte {
	return ad("groups", "state", []byte(g), u64(uint64(e)))
}
func pendingCommitAD(g candor.GroupID) []byte { return ad("groups", "pending_commit", []byte(g)) }
func pendingStateAD(g candor.GroupID) []byte  { return ad("groups", "pending_state", []byte(g)) }
func ratchetAD(g candor.GroupID, leaf uint32, e candor.Epoch) []byte {
	return ad("ratchets", "record", []byte(g), u64(uint64(leaf)), u64(uint64(e)))
}
func keyPackageAD(ref []byte) []byte { return ad("key_packages", "secrets", ref) }

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
			[]byte(group), epochValue(epoch), s.box.Seal(stateAD(group, epoch), state)); err != nil {
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
		epoch                  int64
		hasPending             bool
		state, commit, pending []byte
	)
	err = tx.QueryRowContext(ctx, `
		SELECT epoch, state, pending_commit IS NOT NULL, pending_commit, pending_state
		FROM groups WHERE group_id = ?`, []byte(group)).
		Scan(&epoch, &state, &hasPending, &commit, &pending)
	if errors.Is(err, sql.ErrNoRows) {
		return mlsx.StoredGroup{}, fmt.Errorf("devstore: group %s: %w", group, candor.ErrNotFound)
	}
	if err != nil {
		return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s: %w", group, err)
	}
	sg.Epoch = candor.Epoch(epoch)
	if sg.State, err = s.unseal("state", stateAD(group, sg.Epoch), state); err != nil {
		return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s: %w", group, err)
	}
	if hasPending {
		sg.Pending = &mlsx.PendingState{}
		if sg.Pending.Commit, err = s.unseal("pending commit", pendingCommitAD(group), commit); err != nil {
			return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s: %w", group, err)
		}
		if sg.Pending.State, err = s.unseal("pending state", pendingStateAD(group), pending); err != nil {
			return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s: %w", group, err)
		}
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
		plain, err := s.unseal(fmt.Sprintf("leaf %d ratchet", leaf), ratchetAD(group, uint32(leaf), candor.Epoch(epoch)), record)
		if err != nil {
			return mlsx.StoredGroup{}, fmt.Errorf("devstore: loading group %s: %w", group, err)
		}
		sg.Ratchets[uint32(leaf)] = mlsx.RatchetRecord{Epoch: candor.Epoch(epoch), Record: plain}
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
		int64(leaf), epochValue(epoch), s.box.Seal(ratchetAD(group, leaf, epoch), record), []byte(group))
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
		s.box.Seal(pendingCommitAD(group), commit), s.box.Seal(pendingStateAD(group), state), []byte(group))
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
		blob(ref), s.box.Seal(keyPackageAD(ref), secrets)); err != nil {
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
	plain, err := s.unseal("key package", keyPackageAD(ref), secrets)
	if err != nil {
		return nil, fmt.Errorf("devstore: loading key package %x: %w", ref, err)
	}
	return plain, nil
}

// DeleteKeyPackage forgets a KeyPackage's private keys. Deleting a missing
// one is no error.
func (s *Store) DeleteKeyPackage(ctx context.Context, ref []byte) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM key_packages WHERE ref = ?`, blob(ref)); err != nil {
		return fmt.Errorf("devstore: deleting key package: %w", err)
	}
	return nil
}
