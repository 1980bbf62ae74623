package journalgen

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"candor"
	"candor/internal/mlsx"
)

// MemStore is an mlsx.Store in memory: for the generator's devices, which
// live only as long as the generation, and for the replay benchmark's
// baseline, a passive member that writes nothing. It is safe for
// concurrent use. Nothing in it survives the process, which is its point:
// it holds the generated devices' private keys.
type MemStore struct {
	mu     sync.Mutex
	groups map[candor.GroupID]*memGroup
	kps    map[string][]byte
}

type memGroup struct {
	epoch    candor.Epoch
	state    []byte
	ratchets map[uint32]mlsx.RatchetRecord
	pending  *mlsx.PendingState
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{groups: make(map[candor.GroupID]*memGroup), kps: make(map[string][]byte)}
}

var _ mlsx.Store = (*MemStore)(nil)

func (s *MemStore) SaveGroup(ctx context.Context, id candor.GroupID, epoch candor.Epoch, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = &memGroup{epoch: epoch, state: bytes.Clone(state), ratchets: make(map[uint32]mlsx.RatchetRecord)}
	return nil
}

func (s *MemStore) LoadGroup(ctx context.Context, id candor.GroupID) (mlsx.StoredGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[id]
	if !ok {
		return mlsx.StoredGroup{}, fmt.Errorf("journalgen: group %s: %w", id, candor.ErrNotFound)
	}
	out := mlsx.StoredGroup{Epoch: g.epoch, State: g.state, Ratchets: make(map[uint32]mlsx.RatchetRecord, len(g.ratchets)), Pending: g.pending}
	for l, r := range g.ratchets {
		out.Ratchets[l] = r
	}
	return out, nil
}

func (s *MemStore) SaveRatchet(ctx context.Context, id candor.GroupID, epoch candor.Epoch, leaf uint32, record []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[id]
	if !ok {
		return fmt.Errorf("journalgen: group %s: %w", id, candor.ErrNotFound)
	}
	g.ratchets[leaf] = mlsx.RatchetRecord{Epoch: epoch, Record: bytes.Clone(record)}
	return nil
}

func (s *MemStore) SavePending(ctx context.Context, id candor.GroupID, commit, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[id]
	if !ok {
		return fmt.Errorf("journalgen: group %s: %w", id, candor.ErrNotFound)
	}
	g.pending = &mlsx.PendingState{Commit: bytes.Clone(commit), State: bytes.Clone(state)}
	return nil
}

func (s *MemStore) DeleteGroup(ctx context.Context, id candor.GroupID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, id)
	return nil
}

func (s *MemStore) SaveKeyPackage(ctx context.Context, ref, secrets []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kps[string(ref)] = bytes.Clone(secrets)
	return nil
}

func (s *MemStore) LoadKeyPackage(ctx context.Context, ref []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kp, ok := s.kps[string(ref)]
	if !ok {
		return nil, fmt.Errorf("journalgen: key package: %w", candor.ErrNotFound)
	}
	return kp, nil
}

func (s *MemStore) DeleteKeyPackage(ctx context.Context, ref []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kps, string(ref))
	return nil
}
