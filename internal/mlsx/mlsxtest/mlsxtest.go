// Package mlsxtest provides what tests of candor's MLS layer need: an
// in-memory [mlsx.Store] that can be copied to simulate a crash or told to
// fail, and a throwaway certificate authority that issues device identities.
// It is for tests only.
package mlsxtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

// Store is an in-memory mlsx.Store.
type Store struct {
	mu     sync.Mutex
	groups map[candor.GroupID]*storedGroup
	kps    map[string][]byte
	// FailWrites, when set, makes every write return it.
	FailWrites error
	writes     int
}

type storedGroup struct {
	epoch    candor.Epoch
	state    []byte
	ratchets map[uint32]mlsx.RatchetRecord
	pending  *mlsx.PendingState
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{groups: make(map[candor.GroupID]*storedGroup), kps: make(map[string][]byte)}
}

// Writes counts the writes the Store has taken.
func (s *Store) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Clone returns a deep copy: what a process restarted right now would find.
func (s *Store) Clone() *Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := NewStore()
	for id, g := range s.groups {
		cg := &storedGroup{epoch: g.epoch, state: bytes.Clone(g.state), ratchets: make(map[uint32]mlsx.RatchetRecord)}
		for l, r := range g.ratchets {
			cg.ratchets[l] = mlsx.RatchetRecord{Epoch: r.Epoch, Record: bytes.Clone(r.Record)}
		}
		if g.pending != nil {
			cg.pending = &mlsx.PendingState{Commit: bytes.Clone(g.pending.Commit), State: bytes.Clone(g.pending.State)}
		}
		c.groups[id] = cg
	}
	for k, v := range s.kps {
		c.kps[k] = bytes.Clone(v)
	}
	return c
}

func (s *Store) write() error {
	if s.FailWrites != nil {
		return s.FailWrites
	}
	s.writes++
	return nil
}

func (s *Store) SaveGroup(ctx context.Context, id candor.GroupID, epoch candor.Epoch, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(); err != nil {
		return err
	}
	s.groups[id] = &storedGroup{epoch: epoch, state: bytes.Clone(state), ratchets: make(map[uint32]mlsx.RatchetRecord)}
	return nil
}

func (s *Store) LoadGroup(ctx context.Context, id candor.GroupID) (mlsx.StoredGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[id]
	if !ok {
		return mlsx.StoredGroup{}, fmt.Errorf("group %s: %w", id, candor.ErrNotFound)
	}
	out := mlsx.StoredGroup{Epoch: g.epoch, State: bytes.Clone(g.state), Ratchets: make(map[uint32]mlsx.RatchetRecord)}
	for l, r := range g.ratchets {
		out.Ratchets[l] = mlsx.RatchetRecord{Epoch: r.Epoch, Record: bytes.Clone(r.Record)}
	}
	if g.pending != nil {
		out.Pending = &mlsx.PendingState{Commit: bytes.Clone(g.pending.Commit), State: bytes.Clone(g.pending.State)}
	}
	return out, nil
}

func (s *Store) SaveRatchet(ctx context.Context, id candor.GroupID, epoch candor.Epoch, leaf uint32, record []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[id]
	if !ok {
		return fmt.Errorf("group %s: %w", id, candor.ErrNotFound)
	}
	if err := s.write(); err != nil {
		return err
	}
	g.ratchets[leaf] = mlsx.RatchetRecord{Epoch: epoch, Record: bytes.Clone(record)}
	return nil
}

func (s *Store) SavePending(ctx context.Context, id candor.GroupID, commit, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[id]
	if !ok {
		return fmt.Errorf("group %s: %w", id, candor.ErrNotFound)
	}
	if err := s.write(); err != nil {
		return err
	}
	g.pending = &mlsx.PendingState{Commit: bytes.Clone(commit), State: bytes.Clone(state)}
	return nil
}

func (s *Store) DeleteGroup(ctx context.Context, id candor.GroupID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(); err != nil {
		return err
	}
	delete(s.groups, id)
	return nil
}

func (s *Store) SaveKeyPackage(ctx context.Context, ref, secrets []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(); err != nil {
		return err
	}
	s.kps[string(ref)] = bytes.Clone(secrets)
	return nil
}

func (s *Store) LoadKeyPackage(ctx context.Context, ref []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kps[string(ref)]
	if !ok {
		return nil, fmt.Errorf("key package: %w", candor.ErrNotFound)
	}
	return bytes.Clone(v), nil
}

func (s *Store) DeleteKeyPackage(ctx context.Context, ref []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(); err != nil {
		return err
	}
	delete(s.kps, string(ref))
	return nil
}

// CA is a throwaway organisation CA (candor's real one, internal/pki) with
// helpers for tests.
type CA struct {
	*pki.CA
}

// NewCA makes a CA named org.
func NewCA(tb testing.TB, org string) *CA {
	tb.Helper()
	ca, err := MakeCA(org)
	if err != nil {
		tb.Fatal(err)
	}
	return ca
}

// MakeCA makes a CA named org, for callers without a testing.TB.
func MakeCA(org string) (*CA, error) {
	ca, err := pki.NewCA(org, time.Now())
	if err != nil {
		return nil, err
	}
	return &CA{ca}, nil
}

// Issue makes a device identity for user/device, certified by the CA.
func (ca *CA) Issue(user, device string) (mlsx.Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return mlsx.Identity{}, err
	}
	der, err := ca.CA.Issue(candor.UserID(user), candor.DeviceID(device), &key.PublicKey, time.Now())
	if err != nil {
		return mlsx.Identity{}, err
	}
	return mlsx.Identity{Key: key, Chain: [][]byte{der}}, nil
}

// Validator admits exactly the X.509 credentials this CA issued and that
// are not in revoked ("user/device").
func (ca *CA) Validator(revoked ...string) mlsx.Validator {
	deny := make(map[string]bool)
	for _, r := range revoked {
		deny[r] = true
	}
	return mlsx.ValidatorFunc(func(ctx context.Context, _ candor.GroupID, m mlsx.Member) error {
		if m.Credential.Kind != mlsx.CredentialX509 {
			return errors.New("not an X.509 credential")
		}
		dev, err := ca.Verify(m.Credential.Chain[0], time.Now())
		if err != nil {
			return err
		}
		if deny[dev.String()] {
			return errors.New("device is revoked")
		}
		return nil
	})
}

// AcceptAll admits every member: for conformance vectors, whose credentials
// are basic ones no candor policy would accept.
var AcceptAll = mlsx.ValidatorFunc(func(context.Context, candor.GroupID, mlsx.Member) error { return nil })
