package archive

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"candor"
	"candor/internal/journal"
	"candor/internal/store"
)

// Source is the journal an opening replays: the archive's Welcomes and
// each group's log. Implementations must be safe for concurrent use (the
// replay reads several groups at once); a group the source does not know
// is reported by wrapping candor.ErrNotFound.
type Source interface {
	// Groups lists the groups the archive was welcomed to, each once.
	Groups(ctx context.Context) ([]candor.GroupID, error)
	// Welcomes returns the Welcomes addressed to the archive in group,
	// oldest first: the replay's starting points.
	Welcomes(ctx context.Context, group candor.GroupID) ([]Welcome, error)
	// Entries returns up to limit entries of group's log with Seq > after,
	// in the order the source keeps them. The replay checks that order; a
	// source must not repair it.
	Entries(ctx context.Context, group candor.GroupID, after uint64, limit int) ([]Entry, error)
	// Head returns the seq of the last entry of group's log.
	Head(ctx context.Context, group candor.GroupID) (uint64, error)
	// LogStart says where group's log begins. Retention deletes whole
	// prefixes of a log; Entries then starts at the first entry kept.
	LogStart(ctx context.Context, group candor.GroupID) (LogStart, error)
}

// LogStart is where a group's log begins: Seq is the first entry kept, and
// Prev the chain hash of the entry before it, from which the chain is
// checked. A log never cut starts at 1 with journal.Genesis.
type LogStart struct {
	Seq  uint64
	Prev journal.Hash
}

// Cut reports whether entries were deleted from the log's beginning.
func (s LogStart) Cut() bool { return s.Seq > 1 }

// Welcome is a Welcome the archive received: Seq is the entry of the
// commit that added it.
type Welcome struct {
	Seq  uint64
	Data []byte // MLSMessage-wrapped Welcome
}

// Entry is one entry of a group's log with the chain hash its source
// stored beside it. Hashed is false when the source keeps no hashes.
type Entry struct {
	journal.Entry
	Hash   journal.Hash
	Hashed bool
}

// StoreSource reads the journal from the server's store, where the archive
// is the device Device whose Welcomes are kept, never acknowledged.
//
// The store keeps the chain hash it computed when it appended each entry
// (store.Entry.Hash), so a replay from it checks the whole chain
// (ChainRequired). Entries written before the store kept hashes (none in
// any deployment) come with Hashed false. A log whose prefix retention
// deleted starts where store.Store.LogStart says, on the hash it kept.
type StoreSource struct {
	store  store.Store
	device candor.DeviceID

	once     sync.Once
	err      error
	groups   []candor.GroupID
	welcomes map[candor.GroupID][]Welcome
}

// NewStoreSource reads the journal from s, with archive the device id
// under which the archive's Welcomes are queued.
func NewStoreSource(s store.Store, archive candor.DeviceID) *StoreSource {
	return &StoreSource{store: s, device: archive}
}

var _ Source = (*StoreSource)(nil)

// load reads the archive's Welcomes once: the store lists them per
// device, for every group at once.
func (s *StoreSource) load(ctx context.Context) error {
	s.once.Do(func() {
		ws, err := s.store.Welcomes(ctx, s.device)
		if err != nil {
			s.err = fmt.Errorf("archive: the archive's welcomes: %w", err)
			return
		}
		s.welcomes = make(map[candor.GroupID][]Welcome)
		for _, w := range ws {
			if _, ok := s.welcomes[w.Group]; !ok {
				s.groups = append(s.groups, w.Group)
			}
			s.welcomes[w.Group] = append(s.welcomes[w.Group], Welcome{Seq: w.Seq, Data: w.Data})
		}
		for _, list := range s.welcomes {
			slices.SortStableFunc(list, func(a, b Welcome) int { return cmpSeq(a.Seq, b.Seq) })
		}
	})
	return s.err
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *StoreSource) Groups(ctx context.Context) ([]candor.GroupID, error) {
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return slices.Clone(s.groups), nil
}

func (s *StoreSource) Welcomes(ctx context.Context, group candor.GroupID) ([]Welcome, error) {
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	ws, ok := s.welcomes[group]
	if !ok {
		return nil, fmt.Errorf("archive: no welcome for the archive in group %s: %w", group, candor.ErrNotFound)
	}
	return slices.Clone(ws), nil
}

func (s *StoreSource) Entries(ctx context.Context, group candor.GroupID, after uint64, limit int) ([]Entry, error) {
	log, err := s.store.Log(ctx, group, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(log))
	for i, e := range log {
		out[i] = Entry{Entry: journal.Entry{
			Seq: e.Seq, Epoch: e.Epoch, Commit: e.Commit, Sender: e.Sender, Time: e.Time, Message: e.Message,
		}, Hash: e.Hash, Hashed: e.Hash != journal.Hash{}}
	}
	return out, nil
}

func (s *StoreSource) Head(ctx context.Context, group candor.GroupID) (uint64, error) {
	g, err := s.store.Group(ctx, group)
	if err != nil {
		return 0, err
	}
	return g.Head, nil
}

func (s *StoreSource) LogStart(ctx context.Context, group candor.GroupID) (LogStart, error) {
	ls, err := s.store.LogStart(ctx, group)
	if err != nil {
		return LogStart{}, err
	}
	if ls.Seq <= 1 {
		// The store keeps a zero hash for a log never cut: its chain
		// starts at genesis.
		return LogStart{Seq: 1, Prev: journal.Genesis}, nil
	}
	return LogStart{Seq: ls.Seq, Prev: ls.Prev}, nil
}
