package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
	"candor/api"
	"candor/internal/access"
	"candor/internal/store"
	"candor/internal/translog"
	"candor/internal/translog/sqllog"
)

// The access transparency log's files in a data folder
// (docs/design/access-log.md).
const (
	FileAccessKey = "access.key" // the note signing key, mode 0600
	FileAccessPub = "access.pub" // its verifier key, which devices pin
	FileAccessDB  = "access.db"  // the log (internal/translog/sqllog)
)

// accessOriginSuffix follows the server's first host name in the log's
// origin, which names the log and its key.
const accessOriginSuffix = "/candor/access"

// An AccessLog is the organisation's access transparency log: every
// request to open the archive, every custodian's approval, every
// completed opening, every legal hold set or lifted and every deletion of
// history under the retention period, as records of package access in a
// Merkle log whose checkpoints the log's key signs. The administrators'
// commands (candord access, candord hold) append to it, from another
// process if need be, and so does the server's retention (LogDeletion):
// every read asks SQLite for the log's current size. It is safe for
// concurrent use.
type AccessLog struct {
	db       *sqllog.DB
	log      *translog.Log
	verifier string // the note verifier key, as devices pin it

	// appendMu makes "check the log, then append" one step within a
	// process: that a request or hold is logged before its approval,
	// opening or release.
	appendMu sync.Mutex

	// readMu guards the records read so far (see Read).
	readMu  sync.Mutex
	storage *sqllog.Storage
	read    [][]byte  // records 0..len(read)-1, checked against their stored hashes
	readTH  tlog.Hash // the tree hash of those records
}

// OpenAccessLog opens the access log of the data folder dir, creating its
// database if need be. Its signing key must exist (Init makes it, and Open
// makes it for folders made before the access log existed) and be
// readable by its owner only.
func OpenAccessLog(ctx context.Context, dir string) (*AccessLog, error) {
	sl, err := openSignedLog(ctx, dir, accessLogFiles)
	if err != nil {
		return nil, err
	}
	st, err := sl.db.Storage(ctx, sl.log.Origin())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("server: %s: %w", FileAccessDB, err), sl.db.Close())
	}
	return &AccessLog{db: sl.db, log: sl.log, verifier: sl.verifier, storage: st}, nil
}

// Close closes the log's database.
func (a *AccessLog) Close() error { return a.db.Close() }

// VerifierKey returns the log's public key in signed-note form.
func (a *AccessLog) VerifierKey() string { return a.verifier }

// Origin returns the log's name.
func (a *AccessLog) Origin() string { return a.log.Origin() }

// Read reads the whole log: its requests with their approvals and
// openings, its holds with their releases, its deletions. A record that
// does not parse, or one that does not fit the log before it, fails: the
// log is then not what candor writes.
//
// Every append reads the log first, and the server's retention appends
// one record per group it deletes from, so the records already read are
// kept and only those appended since are fetched: the log only grows.
// What is kept is checked on each Read against the tree hash of the
// stored hashes (a few hashes read), so a file rolled back or replaced
// under the server is read afresh rather than trusted from memory.
func (a *AccessLog) Read(ctx context.Context) (*access.Log, error) {
	a.readMu.Lock()
	defer a.readMu.Unlock()
	n, err := a.log.Size(ctx)
	if err != nil {
		return nil, err
	}
	hashes := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) { return a.storage.ReadHashes(ctx, indexes) })
	if kept := int64(len(a.read)); kept > n {
		a.read = nil
	} else if kept > 0 {
		th, err := tlog.TreeHash(kept, hashes)
		if err != nil {
			return nil, fmt.Errorf("server: access log: %w", err)
		}
		if th != a.readTH {
			a.read = nil
		}
	}
	for i := int64(len(a.read)); i < n; i++ {
		raw, err := a.log.Record(ctx, i)
		if err != nil {
			return nil, err
		}
		a.read = append(a.read, raw)
	}
	if a.readTH, err = tlog.TreeHash(n, hashes); err != nil {
		a.read = nil
		return nil, fmt.Errorf("server: access log: %w", err)
	}
	records := make([]access.Record, 0, n)
	for i, raw := range a.read {
		r, err := access.ParseRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("server: access log record %d: %w", i, err)
		}
		records = append(records, r)
	}
	return access.Read(0, records)
}

// LogRequest appends an opening request and returns its id and index. A
// request already logged fails with candor.ErrConflict.
func (a *AccessLog) LogRequest(ctx context.Context, q *access.Request) (access.RequestID, int64, error) {
	id, err := q.ID()
	if err != nil {
		return access.RequestID{}, 0, err
	}
	index, err := a.appendAfter(ctx, access.Record{Request: q}, func(l *access.Log) error {
		if l.Case(id) != nil {
			return fmt.Errorf("server: request %v is already in the access log: %w", id, candor.ErrConflict)
		}
		return nil
	})
	return id, index, err
}

// LogApproval appends a custodian's approval of a logged request. A
// request not in the log fails with candor.ErrNotFound; a second approval
// by the same custodian, with candor.ErrConflict. The approval's signature
// is not checked here (the server does not link the custody code): the
// record carries it for every reader who holds the custody policy.
func (a *AccessLog) LogApproval(ctx context.Context, ap *access.Approval) (int64, error) {
	return a.appendAfter(ctx, access.Record{Approval: ap}, func(l *access.Log) error {
		c := l.Case(ap.Request)
		if c == nil {
			return fmt.Errorf("server: request %v is not in the access log: %w", ap.Request, candor.ErrNotFound)
		}
		for _, prev := range c.Approvals {
			if prev.Custodian == ap.Custodian {
				return fmt.Errorf("server: custodian %d (%s) has already approved request %v: %w", ap.Custodian, prev.CustodianName, ap.Request, candor.ErrConflict)
			}
		}
		return nil
	})
}

// LogOpening appends a completed opening of a logged request (else
// candor.ErrNotFound).
func (a *AccessLog) LogOpening(ctx context.Context, o *access.Opening) (int64, error) {
	return a.appendAfter(ctx, access.Record{Opening: o}, func(l *access.Log) error {
		if l.Case(o.Request) == nil {
			return fmt.Errorf("server: request %v is not in the access log: %w", o.Request, candor.ErrNotFound)
		}
		return nil
	})
}

// LogHold appends a legal hold and returns its id and index. A hold
// already logged (the same record, to the second) fails with
// candor.ErrConflict.
func (a *AccessLog) LogHold(ctx context.Context, h *access.Hold) (access.HoldID, int64, error) {
	id, err := h.ID()
	if err != nil {
		return access.HoldID{}, 0, err
	}
	index, err := a.appendAfter(ctx, access.Record{Hold: h}, func(l *access.Log) error {
		if l.Hold(id) != nil {
			return fmt.Errorf("server: hold %v is already in the access log: %w", id, candor.ErrConflict)
		}
		return nil
	})
	return id, index, err
}

// LogRelease appends the lifting of a logged hold. A hold not in the log
// fails with candor.ErrNotFound; one already lifted, with
// candor.ErrConflict.
func (a *AccessLog) LogRelease(ctx context.Context, r *access.Release) (int64, error) {
	return a.appendAfter(ctx, access.Record{Release: r}, func(l *access.Log) error {
		h := l.Hold(r.Hold)
		if h == nil {
			return fmt.Errorf("server: hold %v is not in the access log: %w", r.Hold, candor.ErrNotFound)
		}
		if !h.Active() {
			return fmt.Errorf("server: hold %v (case %s) was lifted already, by %s on %s (record %d): %w", r.Hold, h.Hold.Case, h.Release.By, h.Release.At.Format(time.RFC3339), h.ReleaseIndex, candor.ErrConflict)
		}
		return nil
	})
}

// LogDeletion appends the deletion of a prefix of a group's log; the
// caller deletes the entries only once this has returned, so that no
// deletion happens without its record. The deletion must continue the
// group's earlier ones: its First is at most one past the highest Last
// logged for the group (1 for the group's first deletion), since a gap
// would be entries gone without a record; it fails with
// candor.ErrConflict otherwise. A deletion logged again after an
// interruption (the same First) is allowed. Whether a hold covers the
// group is the caller's to check (it needs the group's members over time,
// which the store keeps); the log shows the order of holds and deletions.
func (a *AccessLog) LogDeletion(ctx context.Context, d *access.Deletion) (int64, error) {
	return a.appendAfter(ctx, access.Record{Deletion: d}, func(l *access.Log) error {
		var deleted uint64 // the highest seq of the group logged as deleted
		for _, e := range l.Deletions {
			if e.Deletion.Group == d.Group {
				deleted = max(deleted, e.Deletion.Last)
			}
		}
		if d.First > deleted+1 {
			return fmt.Errorf("server: deletion of entries %d to %d of group %v: the access log records the deletion of entries up to %d only, so entries %d to %d would have gone without a record: %w",
				d.First, d.Last, d.Group, deleted, deleted+1, d.First-1, candor.ErrConflict)
		}
		return nil
	})
}

// Bundle returns record index with its inclusion proof under a checkpoint
// of the whole log, signed now: what a custodian, who cannot ask the
// server, checks an opening request with (access.Bundle). A record beyond
// the log fails with candor.ErrNotFound.
func (a *AccessLog) Bundle(ctx context.Context, index int64) (*access.Bundle, error) {
	signed, err := a.log.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	// The checkpoint's own size, read back from it, is the tree the
	// proof must be for: the log may grow meanwhile.
	v, err := note.NewVerifier(a.verifier)
	if err != nil {
		return nil, err
	}
	c, err := translog.Open(signed, v)
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= c.Size {
		return nil, fmt.Errorf("server: the access log holds %d records, none at index %d: %w", c.Size, index, candor.ErrNotFound)
	}
	rec, err := a.log.Record(ctx, index)
	if err != nil {
		return nil, err
	}
	proof, err := a.log.ProveInclusion(ctx, index, c.Size)
	if err != nil {
		return nil, err
	}
	return &access.Bundle{Record: rec, Proof: proof, Checkpoint: signed}, nil
}

// appendAfter appends r if check, given the log as it is, allows it.
// Another process appending meanwhile is not excluded by appendMu; the
// checks it could defeat (a repeated request, approval, hold or release)
// are also caught by readers, which drop repeated approvals and refuse
// the rest.
func (a *AccessLog) appendAfter(ctx context.Context, r access.Record, check func(*access.Log) error) (int64, error) {
	enc, err := r.MarshalBinary()
	if err != nil {
		return 0, err
	}
	a.appendMu.Lock()
	defer a.appendMu.Unlock()
	l, err := a.Read(ctx)
	if err != nil {
		return 0, err
	}
	if err := check(l); err != nil {
		return 0, err
	}
	return a.log.Append(ctx, enc)
}

// accessLog returns the server's access log, or the error a device gets
// from a server that keeps none.
func (s *Server) accessLog() (*AccessLog, error) {
	if s.access == nil {
		return nil, fail(api.CodeNotFound, "this server keeps no access log", nil)
	}
	return s.access, nil
}

// handleAccessKey returns the access log's verifier key.
func (s *Server) handleAccessKey(w http.ResponseWriter, r *http.Request, _ store.Device) error {
	a, err := s.accessLog()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AccessKey{Key: a.VerifierKey()})
	return nil
}

// handleAccessCheckpoint returns the signed checkpoint and the proof that
// it extends the tree of ?since= records.
func (s *Server) handleAccessCheckpoint(w http.ResponseWriter, r *http.Request, _ store.Device) error {
	a, err := s.accessLog()
	if err != nil {
		return err
	}
	since, err := queryIndex(r, "since", 0)
	if err != nil {
		return err
	}
	signed, proof, err := a.log.CheckpointSince(r.Context(), since)
	if err != nil {
		return internal(fmt.Errorf("access log checkpoint: %w", err))
	}
	text, err := proof.MarshalText()
	if err != nil {
		return internal(fmt.Errorf("access log proof: %w", err))
	}
	writeJSON(w, http.StatusOK, api.AccessCheckpoint{Checkpoint: signed, Proof: text})
	return nil
}

// handleAccessRecords returns records with their inclusion proofs in the
// tree of ?size= records (default: the whole log).
func (s *Server) handleAccessRecords(w http.ResponseWriter, r *http.Request, _ store.Device) error {
	a, err := s.accessLog()
	if err != nil {
		return err
	}
	ctx := r.Context()
	n, err := a.log.Size(ctx)
	if err != nil {
		return internal(err)
	}
	from, err := queryIndex(r, "from", 0)
	if err != nil {
		return err
	}
	size, err := queryIndex(r, "size", n)
	if err != nil {
		return err
	}
	limit, err := queryIndex(r, "limit", api.MaxAccessPage)
	if err != nil {
		return err
	}
	if limit == 0 {
		return fail(api.CodeBadRequest, "limit: a positive number", nil)
	}
	if size > n {
		return fail(api.CodeBeyondLog, fmt.Sprintf("the access log holds %d records, not %d", n, size), nil)
	}
	out := api.AccessRecords{Size: size, Records: []api.AccessRecord{}}
	for i := from; i < size && i-from < min(limit, api.MaxAccessPage); i++ {
		rec, err := a.log.Record(ctx, i)
		if err != nil {
			return internal(fmt.Errorf("access log record %d: %w", i, err))
		}
		p, err := a.log.ProveInclusion(ctx, i, size)
		if err != nil {
			return internal(fmt.Errorf("access log proof of record %d: %w", i, err))
		}
		text, err := p.MarshalText()
		if err != nil {
			return internal(fmt.Errorf("access log proof of record %d: %w", i, err))
		}
		out.Records = append(out.Records, api.AccessRecord{Index: i, Record: rec, Proof: text})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// queryIndex reads a non-negative decimal query parameter, def when it is
// absent.
func queryIndex(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fail(api.CodeBadRequest, name+": a non-negative number", nil)
	}
	return n, nil
}
