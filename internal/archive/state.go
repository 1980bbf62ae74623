package archive

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"candor"
	"candor/internal/mlsx"
)

// stateStore is the passive member's mlsx.Store, kept in the review store.
//
// The mlsx.Store contract asks every write to be durable when it returns:
// a device must never reuse a generation, nor accept a message twice,
// after a crash. The archive neither sends nor acknowledges anything, and
// its replay is deterministic, so it relaxes that on purpose: writes go to
// memory, and the replay writes a group's state to the file in the same
// transaction as the records and the progress of the entries that led to
// it (flush). After a crash the file holds the state, records and progress
// of one moment, and the replay resumes from there; this turns one write
// per message into one per batch.
//
// Everything written to the file is sealed (AES-256-GCM, a key derived
// from the archive's keys) because an epoch's secrets read every message
// of that epoch, inside the opening's time range or not. The archive's
// private keys themselves are never stored: key packages are refused.
type stateStore struct {
	// db is the review store's read pool: the file's state of a group is
	// read only when memory has none, and is then the last flushed one.
	// (The writer's one connection is held by flush, which then takes mu:
	// reading through it with mu held would deadlock.)
	db   *sql.DB
	seal cipher.AEAD

	mu     sync.Mutex
	groups map[candor.GroupID]*memGroup
}

// memGroup is one group's state as the replay has it now; dirty marks what
// the file does not have yet.
type memGroup struct {
	epoch    candor.Epoch
	state    []byte
	ratchets map[uint32]mlsx.RatchetRecord
	exists   bool // false once deleted, or before the first SaveGroup

	stateDirty bool            // state and epoch, and the ratchet records cleared
	leaves     map[uint32]bool // ratchet records written since the last flush
	deleted    bool            // DeleteGroup since the last flush
}

var _ mlsx.Store = (*stateStore)(nil)

const sealInfo = "candor/archive/review-state/v1"

// newStateStore seals with a key derived from the archive's keys.
func newStateStore(db *sql.DB, keys []Key) (*stateStore, error) {
	k, err := deriveKey(keys, sealInfo)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &stateStore{db: db, seal: gcm, groups: make(map[candor.GroupID]*memGroup)}, nil
}

// deriveKey derives a 32-byte key for purpose from every archive key's
// private scalars, in order.
func deriveKey(keys []Key, purpose string) ([]byte, error) {
	var ikm []byte
	for _, k := range keys {
		ikm = binary.BigEndian.AppendUint32(ikm, uint32(len(k.Secrets.Init)))
		ikm = append(ikm, k.Secrets.Init...)
		ikm = binary.BigEndian.AppendUint32(ikm, uint32(len(k.Secrets.Encryption)))
		ikm = append(ikm, k.Secrets.Encryption...)
	}
	return hkdf.Key(sha256.New, ikm, nil, purpose, 32)
}

// aad binds a sealed value to its row, so no value can be moved to another
// group, leaf or column.
func aad(group candor.GroupID, what string, leaf uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(group)))
	b = append(b, group...)
	b = append(b, what...)
	return binary.BigEndian.AppendUint32(b, leaf)
}

func (s *stateStore) sealValue(plain, ad []byte) ([]byte, error) {
	nonce := make([]byte, s.seal.NonceSize(), s.seal.NonceSize()+len(plain)+s.seal.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.seal.Seal(nonce, nonce, plain, ad), nil
}

// ErrSealed: the review store's MLS state does not open with the archive
// keys given. Either the keys are not those of the replay that wrote it,
// or the file was changed.
var ErrSealed = fmt.Errorf("archive: the review store's state does not open with these archive keys: %w", candor.ErrPermission)

func (s *stateStore) openValue(sealed, ad []byte) ([]byte, error) {
	n := s.seal.NonceSize()
	if len(sealed) < n+s.seal.Overhead() {
		return nil, ErrSealed
	}
	plain, err := s.seal.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}

// get returns the group's memory copy, reading it from the file the first
// time. The caller holds s.mu.
func (s *stateStore) get(ctx context.Context, group candor.GroupID) (*memGroup, error) {
	if g, ok := s.groups[group]; ok {
		return g, nil
	}
	g := &memGroup{ratchets: make(map[uint32]mlsx.RatchetRecord), leaves: make(map[uint32]bool)}
	var epoch int64
	var sealed []byte
	err := s.db.QueryRowContext(ctx, `SELECT epoch, state FROM mls_groups WHERE group_id = ?`, []byte(group)).Scan(&epoch, &sealed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		s.groups[group] = g
		return g, nil
	case err != nil:
		return nil, err
	}
	if g.state, err = s.openValue(sealed, aad(group, "state", 0)); err != nil {
		return nil, err
	}
	g.epoch, g.exists = candor.Epoch(epoch), true
	rows, err := s.db.QueryContext(ctx, `SELECT leaf, epoch, record FROM mls_ratchets WHERE group_id = ?`, []byte(group))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var leaf, ep int64
		var rec []byte
		if err := rows.Scan(&leaf, &ep, &rec); err != nil {
			return nil, err
		}
		plain, err := s.openValue(rec, aad(group, "ratchet", uint32(leaf)))
		if err != nil {
			return nil, err
		}
		g.ratchets[uint32(leaf)] = mlsx.RatchetRecord{Epoch: candor.Epoch(ep), Record: plain}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	s.groups[group] = g
	return g, nil
}

func (s *stateStore) SaveGroup(ctx context.Context, group candor.GroupID, epoch candor.Epoch, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.get(ctx, group)
	if err != nil {
		return err
	}
	g.epoch, g.state, g.exists = epoch, bytes.Clone(state), true
	g.ratchets = make(map[uint32]mlsx.RatchetRecord)
	g.leaves = make(map[uint32]bool)
	g.stateDirty = true
	return nil
}

func (s *stateStore) LoadGroup(ctx context.Context, group candor.GroupID) (mlsx.StoredGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.get(ctx, group)
	if err != nil {
		return mlsx.StoredGroup{}, err
	}
	if !g.exists {
		return mlsx.StoredGroup{}, fmt.Errorf("archive: MLS state of group %s: %w", group, candor.ErrNotFound)
	}
	out := mlsx.StoredGroup{Epoch: g.epoch, State: g.state, Ratchets: make(map[uint32]mlsx.RatchetRecord, len(g.ratchets))}
	for leaf, r := range g.ratchets {
		out.Ratchets[leaf] = r
	}
	return out, nil
}

func (s *stateStore) SaveRatchet(ctx context.Context, group candor.GroupID, epoch candor.Epoch, leaf uint32, record []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.get(ctx, group)
	if err != nil {
		return err
	}
	if !g.exists {
		return fmt.Errorf("archive: ratchet of group %s, which has no state: %w", group, candor.ErrNotFound)
	}
	g.ratchets[leaf] = mlsx.RatchetRecord{Epoch: epoch, Record: bytes.Clone(record)}
	g.leaves[leaf] = true
	return nil
}

// ErrNoSecrets: something asked the review store to keep what the archive
// never stores: key packages' private keys or commits of its own.
var ErrNoSecrets = fmt.Errorf("archive: the archive stores no private keys and makes no commits: %w", candor.ErrInvalid)

func (s *stateStore) SavePending(ctx context.Context, group candor.GroupID, commit, state []byte) error {
	return ErrNoSecrets
}

func (s *stateStore) DeleteGroup(ctx context.Context, group candor.GroupID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.get(ctx, group)
	if err != nil {
		return err
	}
	g.exists, g.state, g.deleted = false, nil, true
	g.ratchets = make(map[uint32]mlsx.RatchetRecord)
	g.leaves = make(map[uint32]bool)
	g.stateDirty = false
	return nil
}

// The archive's keys come from its custodians at each opening and are
// never written anywhere, so its Store keeps no key packages.
func (s *stateStore) SaveKeyPackage(ctx context.Context, ref, secrets []byte) error {
	return ErrNoSecrets
}

func (s *stateStore) LoadKeyPackage(ctx context.Context, ref []byte) ([]byte, error) {
	return nil, fmt.Errorf("archive: key package: %w", candor.ErrNotFound)
}

func (s *stateStore) DeleteKeyPackage(ctx context.Context, ref []byte) error { return nil }

// flush writes what changed in group's state since the last flush, in tx.
// The memory copy is marked clean only by flushed, once tx has committed.
func (s *stateStore) flush(ctx context.Context, tx *sql.Tx, group candor.GroupID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[group]
	if !ok {
		return nil
	}
	id := []byte(group)
	if g.deleted || g.stateDirty {
		if _, err := tx.ExecContext(ctx, `DELETE FROM mls_ratchets WHERE group_id = ?`, id); err != nil {
			return err
		}
	}
	if g.deleted && !g.exists {
		if _, err := tx.ExecContext(ctx, `DELETE FROM mls_groups WHERE group_id = ?`, id); err != nil {
			return err
		}
	}
	if g.stateDirty {
		sealed, err := s.sealValue(g.state, aad(group, "state", 0))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO mls_groups (group_id, epoch, state) VALUES (?, ?, ?)
			ON CONFLICT (group_id) DO UPDATE SET epoch = excluded.epoch, state = excluded.state`,
			id, int64(g.epoch), sealed); err != nil {
			return err
		}
	}
	for leaf := range g.leaves {
		r := g.ratchets[leaf]
		sealed, err := s.sealValue(r.Record, aad(group, "ratchet", leaf))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO mls_ratchets (group_id, leaf, epoch, record) VALUES (?, ?, ?, ?)
			ON CONFLICT (group_id, leaf) DO UPDATE SET epoch = excluded.epoch, record = excluded.record`,
			id, int64(leaf), int64(r.Epoch), sealed); err != nil {
			return err
		}
	}
	return nil
}

// flushed marks group's memory copy as written.
func (s *stateStore) flushed(group candor.GroupID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.groups[group]; ok {
		g.stateDirty, g.deleted = false, false
		clear(g.leaves)
	}
}

// forget drops group's memory copy: after a failed flush or an
// interruption, so that the next use reads what the file holds; and when
// its replay is done.
func (s *stateStore) forget(group candor.GroupID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, group)
}
