// Package archive opens the archive's journal (issue 5, item 5): with the
// archive's keys, rebuilt in memory from its custodians' shares, it replays
// each group in scope from the archive's Welcome through every commit and
// message of the group's log, as a passive MLS member (mlsx.JoinPassive,
// RFC 9420 §12.4.3.1, then §12.4.2 and §6.3 for each entry), checks the
// journal's hash chain (internal/journal), and writes what it read to a
// review store of its own: one Record per entry, with the sender its
// verified certificate names and whether the entry verified.
//
// Only the tool that opens cases links this package; the delivery server
// must never (TestDependencyBoundaries reads the dependency graph).
//
// See docs/design/archive-replay.md.
package archive

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"candor"
	"candor/internal/journal"
	"candor/internal/mlsx"
)

// Key is one archive key: the archive's KeyPackage, which every group
// adds, and its private keys as the custodians' shares rebuilt them. An
// organisation that re-keyed its archive has several; a replay is given
// every one its groups may have used.
type Key struct {
	KeyPackage []byte // MLSMessage-wrapped, as mlsx.ArchiveKeyPackage made it
	Secrets    mlsx.KeyPackageSecrets
}

// LogValue prints nothing of the key.
func (k Key) LogValue() slog.Value { return slog.StringValue("archive key (redacted)") }

// ChainPolicy says what the replay does with the journal's hash chain.
type ChainPolicy int

const (
	// ChainRequired: every entry must carry the hash the server stored,
	// and it must be the one the chain gives. The zero value.
	ChainRequired ChainPolicy = iota
	// ChainUnavailable: the source keeps no hashes. Gaps, repeats and
	// order are still checked, and each record says its chain was not; a
	// changed entry is caught only if MLS refuses it.
	ChainUnavailable
)

// Scope is what an opening may read.
type Scope struct {
	// Groups to replay; empty means every group the source lists.
	Groups []candor.GroupID `json:"groups"`
	// From and To bound the server time of the records written:
	// From <= time < To; a zero bound is open. A group's replay starts at
	// the archive's latest Welcome at or before From (see Replay), and every
	// entry from there on is still processed, since later ones depend on
	// the MLS state earlier ones lead to.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Seqs, for the groups it names, further limits the records written
	// to entries within these ranges of seqs: for an opening scoped to
	// people, the entries a person's devices were members for. A group
	// it does not name is limited by time alone.
	Seqs map[candor.GroupID][]SeqRange `json:"-"` // see scopeMeta
}

// scopeMeta is the scope as the review store keeps it, to refuse resuming
// with another. Seqs is a list in group order, its ids in hex: encoding/json
// would write a map's string keys as they are, bytes that are not UTF-8
// replaced, and two groups could then read as one. A scope without Seqs
// encodes as it did before Seqs existed, so older files still resume.
func scopeMeta(s Scope) any {
	type groupSeqs struct {
		Group  candor.GroupID `json:"group"`
		Ranges []SeqRange     `json:"ranges"`
	}
	meta := struct {
		Scope
		Seqs []groupSeqs `json:"seqs,omitempty"`
	}{Scope: s}
	for g, rs := range s.Seqs {
		meta.Seqs = append(meta.Seqs, groupSeqs{Group: g, Ranges: rs})
	}
	slices.SortFunc(meta.Seqs, func(a, b groupSeqs) int { return strings.Compare(string(a.Group), string(b.Group)) })
	return meta
}

// SeqRange is the entries First..Last of a group's log; Last 0 is open.
type SeqRange struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last,omitempty"`
}

func (r SeqRange) holds(seq uint64) bool {
	return seq >= r.First && (r.Last == 0 || seq <= r.Last)
}

func (s Scope) covers(t time.Time) bool {
	return (s.From.IsZero() || !t.Before(s.From)) && (s.To.IsZero() || t.Before(s.To))
}

// writes says whether the entry seq of group, sent at t, is written.
func (s Scope) writes(group candor.GroupID, seq uint64, t time.Time) bool {
	if !s.covers(t) {
		return false
	}
	ranges, limited := s.Seqs[group]
	return !limited || slices.ContainsFunc(ranges, func(r SeqRange) bool { return r.holds(seq) })
}

// firstSeq is the first seq Seqs lets group's records have; 0 if Seqs
// does not limit it.
func (s Scope) firstSeq(group candor.GroupID) uint64 {
	ranges, limited := s.Seqs[group]
	if !limited {
		return 0
	}
	first := uint64(0)
	for i, r := range ranges {
		if i == 0 || r.First < first {
			first = r.First
		}
	}
	return max(first, 1)
}

// Config configures a replay.
type Config struct {
	// Keys are the archive's keys. Required.
	Keys []Key
	// CA is the organisation's CA certificate: every member of every group
	// must hold a certificate it issued, valid when the member was added.
	// Required.
	CA *x509.Certificate
	// Source is the journal. Required.
	Source Source
	// Review is where records and progress go. Required. A replay with the
	// same Review, Scope and Keys resumes where the last one stopped.
	Review *Review
	// Scope limits what is written; the zero Scope is everything.
	Scope Scope
	// Chain says whether the source keeps the chain's hashes.
	Chain ChainPolicy
	// Workers is how many groups are replayed at once; zero means
	// GOMAXPROCS.
	Workers int
	// Batch is how many entries go into one transaction of the review
	// store, and so how much a crash makes the replay redo; zero means
	// DefaultBatch.
	Batch int
	// Progress, when not nil, is called after each batch of each group,
	// from that group's goroutine: several calls may run at once.
	Progress func(Update)
	// Log receives one line per group started, finished or stopped; nil
	// means none. It never sees plaintext or keys.
	Log *slog.Logger
}

// DefaultBatch is Config.Batch's default.
const DefaultBatch = 512

// Update is what Config.Progress is told.
type Update struct {
	GroupProgress
	// Head is the last seq of the group's log when its replay started.
	Head uint64
}

// Summary is what a replay did, per group in scope.
type Summary struct {
	Groups  []GroupProgress
	Entries uint64 // entries processed by this call
	Records int    // records in the review store for these groups
	Failed  int    // of which failed
}

// GroupError reports why a group's replay stopped: at Seq, the entry it
// could not get past.
type GroupError struct {
	Group candor.GroupID
	Seq   uint64
	Err   error
}

func (e *GroupError) Error() string {
	return fmt.Sprintf("archive: group %s at seq %d: %v", e.Group, e.Seq, e.Err)
}

func (e *GroupError) Unwrap() error { return e.Err }

// ErrNoWelcome: the archive was never welcomed to a group in scope.
var ErrNoWelcome = fmt.Errorf("archive: the archive holds no welcome to this group: %w", candor.ErrNotFound)

// Keys, hashed: what a review store remembers of the keys that wrote it.
const keyCheckInfo = "candor/archive/review-keys/v1"

// Replay replays every group in scope, several at once, and returns what
// it did. Groups already done in cfg.Review are skipped; groups begun
// resume. A group not begun starts where its log starts (after a prefix
// deleted under retention, on the hash the source kept), or, when the
// scope starts later, at the archive's latest Welcome at or before the
// scope's first entry; its progress says where and why. A group that cannot go on (a gap in its journal, a broken chain,
// a Welcome the keys do not open) stops with a *GroupError while the others
// go on; the error returned joins them all. Entries that do not verify
// are recorded as Failed and do not stop anything.
func Replay(ctx context.Context, cfg Config) (Summary, error) {
	if len(cfg.Keys) == 0 || cfg.CA == nil || cfg.Source == nil || cfg.Review == nil {
		return Summary{}, fmt.Errorf("archive: a replay needs the archive's keys, the CA, a source and a review store: %w", candor.ErrInvalid)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// Times in UTC, so that one instant written in two zones is one scope.
	if !cfg.Scope.From.IsZero() {
		cfg.Scope.From = cfg.Scope.From.UTC()
	}
	if !cfg.Scope.To.IsZero() {
		cfg.Scope.To = cfg.Scope.To.UTC()
	}
	// Ranges in order, so that one scope has one encoding; the caller's
	// map is not changed.
	if cfg.Scope.Seqs != nil {
		seqs := make(map[candor.GroupID][]SeqRange, len(cfg.Scope.Seqs))
		for g, rs := range cfg.Scope.Seqs {
			rs = slices.Clone(rs)
			slices.SortFunc(rs, func(a, b SeqRange) int {
				if c := cmpSeq(a.First, b.First); c != 0 {
					return c
				}
				return cmpSeq(a.Last, b.Last)
			})
			seqs[g] = rs
		}
		cfg.Scope.Seqs = seqs
	}
	scope, err := json.Marshal(scopeMeta(cfg.Scope))
	if err != nil {
		return Summary{}, err
	}
	keyCheck, err := deriveKey(cfg.Keys, keyCheckInfo)
	if err != nil {
		return Summary{}, err
	}
	if err := cfg.Review.checkMeta(ctx, scope, keyCheck); err != nil {
		return Summary{}, err
	}
	groups := cfg.Scope.Groups
	if len(groups) == 0 {
		if groups, err = cfg.Source.Groups(ctx); err != nil {
			return Summary{}, fmt.Errorf("archive: listing groups: %w", err)
		}
	}
	st, err := newStateStore(cfg.Review.db.R, cfg.Keys)
	if err != nil {
		return Summary{}, err
	}

	results := make([]GroupProgress, len(groups))
	for i, g := range groups {
		results[i].Group = g
	}
	errs := make([]error, len(groups))
	counts := make([]uint64, len(groups))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(cfg.Workers, len(groups)) {
		wg.Go(func() {
			for i := range next {
				r := &groupReplay{cfg: &cfg, st: st, id: groups[i]}
				results[i], errs[i] = r.run(ctx)
				counts[i] = r.entries
			}
		})
	}
feed:
	for i := range groups {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	sum := Summary{Groups: results}
	for i, r := range results {
		sum.Entries += counts[i]
		sum.Records += r.Records
		sum.Failed += r.Failed
	}
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("archive: replay interrupted: %w", err)
	}
	return sum, errors.Join(errs...)
}

// groupReplay is the replay of one group, run by one goroutine.
type groupReplay struct {
	cfg *Config
	st  *stateStore
	id  candor.GroupID

	v        *validator
	member   *mlsx.Group    // nil while the archive is not a member
	names    map[uint32]who // the member's leaves, by certificate
	welcomes []Welcome
	entries  uint64 // processed by this call
}

func (r *groupReplay) run(ctx context.Context) (GroupProgress, error) {
	log := r.cfg.Log.With(slog.String(logGroup, r.id.String()))
	p, err := r.cfg.Review.progress(ctx, r.id)
	if err != nil {
		return GroupProgress{Group: r.id}, &GroupError{Group: r.id, Err: fmt.Errorf("reading progress: %w", err)}
	}
	if p.Done {
		return p.GroupProgress, nil
	}
	// written is the progress the review store holds: what a stop
	// reports, since what was processed after it is not kept.
	written := p.GroupProgress
	stop := func(seq uint64, err error) (GroupProgress, error) {
		r.st.forget(r.id)
		log.LogAttrs(ctx, slog.LevelWarn, "group stopped", slog.Uint64(logSeq, seq), slog.String(logError, err.Error()))
		return written, &GroupError{Group: r.id, Seq: seq, Err: err}
	}
	// Where the log starts comes first: a log cut without a trace is
	// the graver finding, and it may have taken every Welcome with it.
	var ls LogStart
	if !p.stored {
		if ls, err = r.cfg.Source.LogStart(ctx, r.id); err != nil {
			return stop(p.Seq+1, fmt.Errorf("where the log starts: %w", err))
		}
	}
	if r.welcomes, err = r.cfg.Source.Welcomes(ctx, r.id); errors.Is(err, candor.ErrNotFound) {
		return stop(p.Seq+1, ErrNoWelcome)
	} else if err != nil {
		return stop(p.Seq+1, err)
	}
	head, err := r.cfg.Source.Head(ctx, r.id)
	if err != nil {
		return stop(p.Seq+1, err)
	}
	if !p.stored {
		st, err := r.start(ctx, ls)
		if err != nil {
			return stop(p.Seq+1, err)
		}
		p.Start, p.Prev, p.Why, p.Kept = st.seq, st.prev, st.why, st.kept
		p.Seq, p.Head = st.seq-1, st.prev
	}
	r.v = newValidator(r.cfg.CA)
	if p.member {
		r.member, err = mlsx.LoadPassive(ctx, mlsx.PassiveConfig{Store: r.st, Validator: r.v}, r.id)
		if err != nil {
			return stop(p.Seq+1, fmt.Errorf("resuming the passive member: %w", err))
		}
		if r.names, err = roster(r.member.Members()); err != nil {
			return stop(p.Seq+1, err)
		}
	}
	log.LogAttrs(ctx, slog.LevelInfo, "group started", slog.Uint64(logSeq, p.Seq), slog.Uint64(logHead, head),
		slog.Uint64(logStart, p.Start), slog.String(logWhy, p.Why))
	chain := journal.ResumeVerifier(r.id, p.Seq, p.Head)
	recs := make([]Record, 0, r.cfg.Batch)
	for {
		entries, err := r.cfg.Source.Entries(ctx, r.id, p.Seq, r.cfg.Batch)
		if err != nil {
			return stop(p.Seq+1, fmt.Errorf("reading the log: %w", err))
		}
		if len(entries) == 0 {
			break
		}
		recs = recs[:0]
		// A break in the chain stops the group at the first entry it
		// cannot pass, after writing what came before it.
		var broken error
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return stop(e.Seq, err)
			}
			h, cs, err := r.link(chain, e)
			if err != nil {
				broken = err
				break
			}
			rec, err := r.read(ctx, e)
			if err != nil {
				return stop(e.Seq, err)
			}
			rec.Chain = cs
			r.entries++
			p.Seq, p.Head = e.Seq, h
			if r.cfg.Scope.writes(r.id, e.Seq, e.Time) {
				recs = append(recs, rec)
				p.Records++
				if rec.Status == Failed {
					p.Failed++
				}
			}
		}
		p.member = r.member != nil
		if broken != nil {
			p.Error = fmt.Sprintf("seq %d: %v", p.Seq+1, broken)
		}
		if err := r.cfg.Review.writeBatch(ctx, r.st, p, recs); err != nil {
			return stop(p.Seq+1, fmt.Errorf("writing the review store: %w", err))
		}
		written = p.GroupProgress
		if broken != nil {
			return stop(p.Seq+1, broken)
		}
		if r.cfg.Progress != nil {
			r.cfg.Progress(Update{GroupProgress: p.GroupProgress, Head: head})
		}
	}
	if p.Seq < head {
		return stop(p.Seq+1, fmt.Errorf("%w: the log stops at seq %d but its head is %d", journal.ErrBroken, p.Seq, head))
	}
	// Done: the epoch secrets are of no further use, and are deleted.
	if r.member != nil {
		if err := r.st.DeleteGroup(ctx, r.id); err != nil {
			return stop(p.Seq+1, err)
		}
	}
	p.Done, p.member, p.Error = true, false, ""
	if err := r.cfg.Review.writeBatch(ctx, r.st, p, nil); err != nil {
		return stop(p.Seq+1, fmt.Errorf("writing the review store: %w", err))
	}
	r.st.forget(r.id)
	if r.cfg.Progress != nil {
		r.cfg.Progress(Update{GroupProgress: p.GroupProgress, Head: head})
	}
	log.LogAttrs(ctx, slog.LevelInfo, "group done", slog.Uint64(logSeq, p.Seq),
		slog.Int(logRecords, p.Records), slog.Int(logFailed, p.Failed))
	return p.GroupProgress, nil
}

// Log attribute keys.
const (
	logGroup   = "group"
	logSeq     = "seq"
	logHead    = "head"
	logError   = "error"
	logRecords = "records"
	logFailed  = "failed"
	logStart   = "start"
	logWhy     = "why"
)

// ErrNoHash: the source gave an entry without its chain hash while the
// replay requires the chain.
var ErrNoHash = fmt.Errorf("archive: the source keeps no chain hash for this entry (Config.Chain is ChainRequired): %w", candor.ErrInvalid)

// link checks e's place in the chain.
func (r *groupReplay) link(chain *journal.Verifier, e Entry) (journal.Hash, ChainStatus, error) {
	switch {
	case e.Hashed:
		h, err := chain.Check(e.Entry, e.Hash)
		return h, ChainVerified, err
	case r.cfg.Chain == ChainUnavailable:
		h, err := chain.Follow(e.Entry)
		return h, ChainUnverified, err
	}
	return journal.Hash{}, "", ErrNoHash
}
