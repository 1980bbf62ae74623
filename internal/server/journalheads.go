package server

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"candor"
	"candor/api"
	"candor/internal/journal"
	"candor/internal/sqldb"
	"candor/internal/store"
	"candor/internal/translog"
)

// The journal-heads log's files in a data folder (docs/design/journal.md).
const (
	FileJournalKey = "journal.key" // the note signing key, mode 0600
	FileJournalPub = "journal.pub" // its verifier key, which devices and the opening tool pin
	FileJournalDB  = "journal.db"  // the log (internal/translog/sqllog) and its index by group
)

// journalOriginSuffix follows the server's first host name in the
// journal-heads log's origin.
const journalOriginSuffix = "/candor/journal"

// DefaultJournalInterval is how often the server appends the heads of the
// groups whose head moved, when its Config says nothing: an entry is
// covered by a signed checkpoint at most this long after it was appended
// (plus the time the batch takes).
const DefaultJournalInterval = 2 * time.Second

// journalFlushTimeout bounds the last batch, appended when the server
// stops.
const journalFlushTimeout = 10 * time.Second

// The index of the heads log by group, kept in journal.db beside the log.
// It is updated after each batch is appended, in its own transaction;
// journal_indexed records how much of the log it covers, so that a crash
// between the two is repaired when the log is next opened, from the
// records themselves.
const journalIndexSchema = `
CREATE TABLE IF NOT EXISTS journal_heads (
	grp BLOB    PRIMARY KEY,
	idx INTEGER NOT NULL CHECK (idx >= 0)
) STRICT;
CREATE TABLE IF NOT EXISTS journal_indexed (
	one  INTEGER PRIMARY KEY CHECK (one = 1),
	size INTEGER NOT NULL CHECK (size >= 0)
) STRICT;
INSERT INTO journal_indexed (one, size) VALUES (1, 0) ON CONFLICT (one) DO NOTHING;`

// A JournalLog is the journal-heads transparency log: records of
// journal.Head, each a group's chain head at some moment, in a Merkle log
// whose checkpoints the log's key signs. It commits the server to every
// group's chain: a log rewritten afterwards, even with its chain
// recomputed, no longer passes through a signed head.
//
// A Server that is given one marks each group whose head moved after each
// append, and a goroutine appends the marked groups' heads in one batch
// every interval, so the Merkle log's cost stays off the append path. It
// is safe for concurrent use.
type JournalLog struct {
	*signedLog
	index *sqldb.SQLite

	mu    sync.Mutex
	dirty map[candor.GroupID]bool

	// batchMu makes "append a batch, then index it" one step.
	batchMu sync.Mutex

	started  atomic.Bool
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// OpenJournalLog opens the journal-heads log of the data folder dir,
// creating its database if need be, and brings its index up to date. Its
// signing key must exist (Init makes it, and Open makes it for folders
// made before the log existed) and be readable by its owner only. A log
// shorter than its index has been rolled back, and fails with
// candor.ErrInvalid.
func OpenJournalLog(ctx context.Context, dir string) (*JournalLog, error) {
	sl, err := openSignedLog(ctx, dir, journalLogFiles)
	if err != nil {
		return nil, err
	}
	idx, err := sqldb.OpenSQLite(ctx, filepath.Join(dir, FileJournalDB), sqldb.Full)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("server: the journal-heads index: %w", err), sl.db.Close())
	}
	j := &JournalLog{signedLog: sl, index: idx, dirty: map[candor.GroupID]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	if _, err := idx.W.ExecContext(ctx, journalIndexSchema); err != nil {
		return nil, errors.Join(fmt.Errorf("server: the journal-heads index: %w", err), j.closeDBs())
	}
	if err := j.catchUp(ctx); err != nil {
		return nil, errors.Join(err, j.closeDBs())
	}
	return j, nil
}

// VerifierKey returns the log's public key in signed-note form.
func (j *JournalLog) VerifierKey() string { return j.verifier }

// Close appends the last batch of heads, if a server was appending, and
// closes the log's database.
func (j *JournalLog) Close() error {
	j.stopOnce.Do(func() { close(j.stop) })
	if j.started.Load() {
		<-j.done
	}
	return j.closeDBs()
}

func (j *JournalLog) closeDBs() error { return errors.Join(j.index.Close(), j.db.Close()) }

// mark notes that group's head moved. A server without a journal-heads
// log (j nil) keeps no heads.
func (j *JournalLog) mark(group candor.GroupID) {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.dirty[group] = true
	j.mu.Unlock()
}

// start runs the appender until ctx is done or the log is closed, then
// appends the last batch. A log serves one server.
func (j *JournalLog) start(ctx context.Context, st store.Store, interval time.Duration, log *slog.Logger) error {
	if !j.started.CompareAndSwap(false, true) {
		return fmt.Errorf("server: the journal-heads log already serves a server: %w", candor.ErrConflict)
	}
	go func() {
		defer close(j.done)
		if err := j.markAll(ctx, st); err != nil {
			log.Error("journal heads: listing groups", "err", err)
		} else if err := j.flush(ctx, st); err != nil {
			log.Error("journal heads", "err", err)
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := j.flush(ctx, st); err != nil {
					log.Error("journal heads", "err", err)
				}
			case <-ctx.Done():
				j.last(ctx, st, log)
				return
			case <-j.stop:
				j.last(ctx, st, log)
				return
			}
		}
	}()
	return nil
}

// markAll marks every group, so that the next batch logs the heads that
// were marked but not logged when the server last stopped (a crash); flush
// skips the heads already logged.
func (j *JournalLog) markAll(ctx context.Context, st store.Store) error {
	ids, err := st.GroupIDs(ctx)
	if err != nil {
		return err
	}
	for _, g := range ids {
		j.mark(g)
	}
	return nil
}

// last appends the heads that moved since the last batch, when the server
// stops.
func (j *JournalLog) last(ctx context.Context, st store.Store, log *slog.Logger) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), journalFlushTimeout)
	defer cancel()
	if err := j.flush(fctx, st); err != nil {
		log.Error("journal heads, last batch", "err", err)
	}
}

// flush appends the current head of every marked group, in one batch. The
// groups of a batch that fails are marked again, for the next one.
func (j *JournalLog) flush(ctx context.Context, st store.Store) (err error) {
	j.mu.Lock()
	groups := make([]candor.GroupID, 0, len(j.dirty))
	for g := range j.dirty {
		groups = append(groups, g)
	}
	clear(j.dirty)
	j.mu.Unlock()
	if len(groups) == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			for _, g := range groups {
				j.mark(g)
			}
		}
	}()
	slices.Sort(groups)
	j.batchMu.Lock()
	defer j.batchMu.Unlock()
	records := make([][]byte, 0, len(groups))
	for _, g := range groups {
		h, err := storeHead(ctx, st, g)
		if err != nil {
			return err
		}
		if h.Seq == 0 {
			continue
		}
		if prev, _, err := j.latest(ctx, g); err == nil && prev.Seq == h.Seq && prev.Hash.Equal(h.Hash) {
			continue // logged already
		} else if err != nil && !errors.Is(err, candor.ErrNotFound) {
			return err
		}
		rec, err := h.MarshalBinary()
		if err != nil {
			return err
		}
		records = append(records, rec)
	}
	if len(records) == 0 {
		return nil
	}
	if _, err := j.log.Append(ctx, records...); err != nil {
		return fmt.Errorf("server: appending %d heads: %w", len(records), err)
	}
	return j.catchUp(ctx)
}

// storeHead returns group's chain head as the store holds it; Seq 0 for
// an empty log.
func storeHead(ctx context.Context, st store.Store, g candor.GroupID) (journal.Head, error) {
	grp, err := st.Group(ctx, g)
	if err != nil {
		return journal.Head{}, fmt.Errorf("server: the head of %s: %w", g, err)
	}
	if grp.Head == 0 {
		return journal.Head{Group: g}, nil
	}
	es, err := st.Log(ctx, g, grp.Head-1, 1)
	if err != nil {
		return journal.Head{}, fmt.Errorf("server: the head of %s: %w", g, err)
	}
	if len(es) != 1 || es[0].Seq != grp.Head {
		return journal.Head{}, fmt.Errorf("server: the head of %s: entry %d is missing from the store", g, grp.Head)
	}
	return journal.Head{Group: g, Seq: grp.Head, Hash: es[0].Hash}, nil
}

// catchUp indexes the records appended since the index was last updated.
// The transaction takes the file's write lock at BEGIN, so the log's size,
// read after it, cannot grow meanwhile, even from another process.
func (j *JournalLog) catchUp(ctx context.Context) (err error) {
	tx, err := j.index.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("server: the journal-heads index: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	size, err := j.log.Size(ctx)
	if err != nil {
		return fmt.Errorf("server: the journal-heads log: %w", err)
	}
	var indexed int64
	if err := tx.QueryRowContext(ctx, `SELECT size FROM journal_indexed WHERE one = 1`).Scan(&indexed); err != nil {
		return fmt.Errorf("server: the journal-heads index: %w", err)
	}
	if indexed > size {
		return fmt.Errorf("server: the journal-heads log holds %d records but %d were indexed: it was rolled back: %w", size, indexed, candor.ErrInvalid)
	}
	for i := indexed; i < size; i++ {
		rec, err := j.log.Record(ctx, i)
		if err != nil {
			return fmt.Errorf("server: journal-heads record %d: %w", i, err)
		}
		h, err := journal.ParseHead(rec)
		if err != nil {
			return fmt.Errorf("server: journal-heads record %d: %w", i, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO journal_heads (grp, idx) VALUES (?, ?) ON CONFLICT (grp) DO UPDATE SET idx = excluded.idx`, []byte(h.Group), i); err != nil {
			return fmt.Errorf("server: the journal-heads index: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE journal_indexed SET size = ? WHERE one = 1`, size); err != nil {
		return fmt.Errorf("server: the journal-heads index: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("server: the journal-heads index: %w", err)
	}
	return nil
}

// latest returns the latest head of group in the log and its index, or
// candor.ErrNotFound.
func (j *JournalLog) latest(ctx context.Context, group candor.GroupID) (journal.Head, int64, error) {
	var i int64
	err := j.index.R.QueryRowContext(ctx, `SELECT idx FROM journal_heads WHERE grp = ?`, []byte(group)).Scan(&i)
	if errors.Is(err, sql.ErrNoRows) {
		return journal.Head{}, 0, fmt.Errorf("server: no head of group %s is in the journal-heads log: %w", group, candor.ErrNotFound)
	}
	if err != nil {
		return journal.Head{}, 0, fmt.Errorf("server: the journal-heads index: %w", err)
	}
	rec, err := j.log.Record(ctx, i)
	if errors.Is(err, candor.ErrNotFound) {
		// The index is only written after the log: the log lost records.
		return journal.Head{}, 0, fmt.Errorf("server: the journal-heads index names record %d, which the log no longer holds: %w", i, translog.ErrCorrupt)
	}
	if err != nil {
		return journal.Head{}, 0, fmt.Errorf("server: journal-heads record %d: %w", i, err)
	}
	h, err := journal.ParseHead(rec)
	if err != nil {
		return journal.Head{}, 0, fmt.Errorf("server: journal-heads record %d: %w", i, err)
	}
	if h.Group != group {
		return journal.Head{}, 0, fmt.Errorf("server: the journal-heads index names record %d for %s, which holds %s: %w", i, group, h.Group, translog.ErrCorrupt)
	}
	return h, i, nil
}

// journalLog returns the server's journal-heads log, or the error a device
// gets from a server that keeps none.
func (s *Server) journalLog() (*JournalLog, error) {
	if s.journal == nil {
		return nil, fail(api.CodeNotFound, "this server keeps no journal-heads log", nil)
	}
	return s.journal, nil
}

// handleJournalKey returns the journal-heads log's verifier key.
func (s *Server) handleJournalKey(w http.ResponseWriter, r *http.Request, _ store.Device) error {
	j, err := s.journalLog()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AccessKey{Key: j.VerifierKey()})
	return nil
}

// handleJournalCheckpoint returns the signed checkpoint and the proof that
// it extends the tree of ?since= records.
func (s *Server) handleJournalCheckpoint(w http.ResponseWriter, r *http.Request, _ store.Device) error {
	j, err := s.journalLog()
	if err != nil {
		return err
	}
	since, err := queryIndex(r, "since", 0)
	if err != nil {
		return err
	}
	signed, proof, err := j.log.CheckpointSince(r.Context(), since)
	if err != nil {
		return internal(fmt.Errorf("journal-heads checkpoint: %w", err))
	}
	text, err := proof.MarshalText()
	if err != nil {
		return internal(fmt.Errorf("journal-heads proof: %w", err))
	}
	writeJSON(w, http.StatusOK, api.AccessCheckpoint{Checkpoint: signed, Proof: text})
	return nil
}

// handleJournalHead returns the latest head of ?group= in the log, with
// its inclusion proof under a checkpoint of the whole log signed now, and
// the proof that this checkpoint extends the tree of ?since= records.
func (s *Server) handleJournalHead(w http.ResponseWriter, r *http.Request, _ store.Device) error {
	j, err := s.journalLog()
	if err != nil {
		return err
	}
	group, err := hex.DecodeString(r.URL.Query().Get("group"))
	if err != nil || len(group) == 0 {
		return fail(api.CodeBadRequest, "group: a group id in hex", nil)
	}
	since, err := queryIndex(r, "since", 0)
	if err != nil {
		return err
	}
	out, err := j.HeadBundle(r.Context(), candor.GroupID(group), since)
	if errors.Is(err, candor.ErrNotFound) {
		return fail(api.CodeNotFound, "no head of this group is in the journal-heads log yet", err)
	}
	if err != nil {
		return internal(err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// HeadBundle returns the latest head of group in the log with its
// inclusion proof under a checkpoint of the whole log, signed now, and the
// proof that the checkpoint extends the tree of since records. A group
// with no head in the log fails with candor.ErrNotFound.
func (j *JournalLog) HeadBundle(ctx context.Context, group candor.GroupID, since int64) (api.JournalHead, error) {
	_, i, err := j.latest(ctx, group)
	if err != nil {
		return api.JournalHead{}, err
	}
	signed, consistency, err := j.log.CheckpointSince(ctx, since)
	if err != nil {
		return api.JournalHead{}, err
	}
	// The inclusion proof must be for the tree the checkpoint signs,
	// which may be larger than the log was when the index was read.
	v, err := note.NewVerifier(j.verifier)
	if err != nil {
		return api.JournalHead{}, err
	}
	c, err := translog.Open(signed, v)
	if err != nil {
		return api.JournalHead{}, err
	}
	rec, err := j.log.Record(ctx, i)
	if err != nil {
		return api.JournalHead{}, err
	}
	inclusion, err := j.log.ProveInclusion(ctx, i, c.Size)
	if err != nil {
		return api.JournalHead{}, err
	}
	itext, err := inclusion.MarshalText()
	if err != nil {
		return api.JournalHead{}, err
	}
	ctext, err := consistency.MarshalText()
	if err != nil {
		return api.JournalHead{}, err
	}
	return api.JournalHead{Index: i, Record: rec, Proof: itext, Checkpoint: signed, Consistency: ctext}, nil
}
