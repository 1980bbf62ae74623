package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"golang.org/x/mod/sumdb/note"

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
// request to open the archive, every custodian's approval and every
// completed opening, as records of package access in a Merkle log whose
// checkpoints the log's key signs. The server only reads it; the
// administrators' commands (candord access) append to it, from another
// process if need be: every read asks SQLite for the log's current size.
// It is safe for concurrent use.
type AccessLog struct {
	db       *sqllog.DB
	log      *translog.Log
	verifier string // the note verifier key, as devices pin it

	// appendMu makes "check that the request is logged, then append" one
	// step within a process.
	appendMu sync.Mutex
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
	return &AccessLog{db: sl.db, log: sl.log, verifier: sl.verifier}, nil
}

// Close closes the log's database.
func (a *AccessLog) Close() error { return a.db.Close() }

// VerifierKey returns the log's public key in signed-note form.
func (a *AccessLog) VerifierKey() string { return a.verifier }

// Origin returns the log's name.
func (a *AccessLog) Origin() string { return a.log.Origin() }

// Cases reads the whole log and returns its requests with their approvals
// and openings. A record that does not parse, or one that does not fit
// the log before it, fails: the log is then not what candor writes.
func (a *AccessLog) Cases(ctx context.Context) ([]*access.Case, error) {
	n, err := a.log.Size(ctx)
	if err != nil {
		return nil, err
	}
	records := make([]access.Record, 0, n)
	for i := range n {
		raw, err := a.log.Record(ctx, i)
		if err != nil {
			return nil, err
		}
		r, err := access.ParseRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("server: access log record %d: %w", i, err)
		}
		records = append(records, r)
	}
	return access.Collect(0, records)
}

// LogRequest appends an opening request and returns its id and index. A
// request already logged fails with candor.ErrConflict.
func (a *AccessLog) LogRequest(ctx context.Context, q *access.Request) (access.RequestID, int64, error) {
	id, err := q.ID()
	if err != nil {
		return access.RequestID{}, 0, err
	}
	index, err := a.appendAfter(ctx, access.Record{Request: q}, func(cases []*access.Case) error {
		if findCase(cases, id) != nil {
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
	return a.appendAfter(ctx, access.Record{Approval: ap}, func(cases []*access.Case) error {
		c := findCase(cases, ap.Request)
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
	return a.appendAfter(ctx, access.Record{Opening: o}, func(cases []*access.Case) error {
		if findCase(cases, o.Request) == nil {
			return fmt.Errorf("server: request %v is not in the access log: %w", o.Request, candor.ErrNotFound)
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

func findCase(cases []*access.Case, id access.RequestID) *access.Case {
	for _, c := range cases {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// appendAfter appends r if check, given the log's cases, allows it.
// Another process appending meanwhile is not excluded by appendMu; the
// checks it could defeat (a repeated request or approval) are also caught
// by readers, which drop repeated approvals and refuse repeated requests.
func (a *AccessLog) appendAfter(ctx context.Context, r access.Record, check func([]*access.Case) error) (int64, error) {
	enc, err := r.MarshalBinary()
	if err != nil {
		return 0, err
	}
	a.appendMu.Lock()
	defer a.appendMu.Unlock()
	cases, err := a.Cases(ctx)
	if err != nil {
		return 0, err
	}
	if err := check(cases); err != nil {
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
