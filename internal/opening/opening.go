// Package opening carries out one opening of the organisation's archive
// for a case (docs/design/archive.md, "Opening a case"): it checks that the
// request and k custodians' approvals of it are in the access
// transparency log, rebuilds the archive's seed in memory from the
// approvals, derives the archive's keys after checking them against the
// archive statement, replays the groups in scope into a review store
// (internal/archive), and logs the completed opening.
//
// cmd/candor-archive is its command line, and the demonstration uses it
// too; the server never links it.
package opening

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"candor"
	"candor/internal/access"
	"candor/internal/archive"
	"candor/internal/ceremony"
	"candor/internal/custody"
	"candor/internal/mlsx"
	"candor/internal/server"
	"candor/internal/store"
)

// An Approval is one custodian's approval as the opener was handed it.
type Approval struct {
	Name string // where it came from, for errors: a file name
	Data []byte // internal/custody's encoding
}

// Config is one opening. Every field is required.
type Config struct {
	Access    *server.AccessLog
	Statement *ceremony.Statement
	Request   access.RequestID
	// OpeningKey is the one-time key whose public half the request names.
	OpeningKey *custody.OpeningKey
	Approvals  []Approval
}

// An Opening is a checked request with the archive's keys, in memory
// only, ready to replay. Close clears the keys.
type Opening struct {
	log     *server.AccessLog
	st      *ceremony.Statement
	id      access.RequestID
	request *access.Request
	secrets mlsx.KeyPackageSecrets
}

// Prepare checks, before anything is written: the request is in the
// access log; the opening key is the one it names; every approval is a
// custodian's approval of this request, signed under the statement's
// policy, and logged byte for byte; there are at least k distinct
// custodians. Then it rebuilds the seed, checks it against the statement
// and derives the archive's keys, destroying the seed. A request not in
// the log fails with candor.ErrNotFound; too few approvals with
// custody.ErrNotEnoughShares.
func Prepare(ctx context.Context, cfg Config) (*Opening, error) {
	if cfg.Access == nil || cfg.Statement == nil || cfg.OpeningKey == nil {
		return nil, fmt.Errorf("opening: the access log, the statement and the opening key are required: %w", candor.ErrInvalid)
	}
	if err := cfg.Statement.Consistent(); err != nil {
		return nil, err
	}
	c, err := loggedCase(ctx, cfg.Access, cfg.Request)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(c.Request.OpeningKey, cfg.OpeningKey.PublicKey().Bytes()) {
		return nil, fmt.Errorf("opening: the opening key given is not the one request %s names (fingerprint %s)", cfg.Request, requestKeyFingerprint(c.Request.OpeningKey))
	}
	approvals, err := matchApprovals(cfg.Statement.Policy(), cfg.Request, c, cfg.Approvals)
	if err != nil {
		return nil, err
	}
	seed, err := custody.Reconstruct(cfg.Statement.Policy(), cfg.Statement.Commitments(), custody.RequestID(cfg.Request), cfg.OpeningKey, approvals)
	if err != nil {
		return nil, fmt.Errorf("opening: rebuilding the archive's key: %w", err)
	}
	secrets, err := cfg.Statement.KeyPackageSecrets(seed)
	seed.Destroy()
	if err != nil {
		return nil, fmt.Errorf("opening: the rebuilt key is not the statement's archive key: %w", err)
	}
	return &Opening{log: cfg.Access, st: cfg.Statement, id: cfg.Request, request: c.Request, secrets: secrets}, nil
}

// Request returns the request being opened.
func (o *Opening) Request() *access.Request { return o.request }

// Replay replays the request's scope from s, the server's store, into
// review, checking the journal's hash chain, and returns what it did; its
// groups are the groups replayed. The groups the request names are
// replayed within its time range; for each person it names, every group
// one of the person's devices was a member of within the range, and only
// the entries the person's devices were members for (replayScope). A
// scope that selects no group replays nothing.
//
// A group whose log was cut under retention is replayed from its first
// kept entry only if the access log's Deletion records explain the cut
// (explainCut); otherwise its replay stops with an error wrapping
// ErrUnexplainedCut, naming the group.
//
// progress, when not nil, is called after each batch, possibly from
// several goroutines at once. A replay that stops can be resumed with the
// same review.
func (o *Opening) Replay(ctx context.Context, s store.Store, ca *x509.Certificate, review *archive.Review, progress func(archive.Update)) (archive.Summary, error) {
	scope, err := replayScope(ctx, s, o.request.Scope)
	if err != nil {
		return archive.Summary{}, err
	}
	if len(scope.Groups) == 0 {
		// An empty list would mean every group to the replay.
		return archive.Summary{}, nil
	}
	// The deletions are read now, not at Prepare: the server may have cut
	// a log since, and logs each Deletion before it deletes.
	l, err := o.log.Read(ctx)
	if err != nil {
		return archive.Summary{}, fmt.Errorf("opening: reading the access log: %w", err)
	}
	return archive.Replay(ctx, archive.Config{
		Keys:     []archive.Key{{KeyPackage: o.st.KeyPackage(), Secrets: o.secrets}},
		CA:       ca,
		Source:   explainedSource{Source: archive.NewStoreSource(s, server.ArchiveDevice(o.st.Certificate())), deletions: l.Deletions},
		Review:   review,
		Scope:    scope,
		Chain:    archive.ChainRequired,
		Progress: progress,
	})
}

// Log appends the completed opening to the access log, as of completed
// (truncated to a whole second), with what sum replayed, and returns the
// record and its index.
func (o *Opening) Log(ctx context.Context, sum archive.Summary, completed time.Time) (*access.Opening, int64, error) {
	rec := &access.Opening{Request: o.id, Completed: completed.UTC().Truncate(time.Second)}
	for _, g := range sum.Groups {
		rec.Groups = append(rec.Groups, access.Replayed{Group: g.Group, Records: uint64(g.Records)})
	}
	index, err := o.log.LogOpening(ctx, rec)
	if err != nil {
		return nil, 0, err
	}
	return rec, index, nil
}

// Close clears the archive's keys.
func (o *Opening) Close() {
	clear(o.secrets.Init)
	clear(o.secrets.Encryption)
}

// loggedCase finds request id in the access log, with its approvals.
func loggedCase(ctx context.Context, l *server.AccessLog, id access.RequestID) (*access.Case, error) {
	log, err := l.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening: reading the access log: %w", err)
	}
	if c := log.Case(id); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("opening: request %s is not in the access log: log it with candord access request first: %w", id, candor.ErrNotFound)
}

// matchApprovals checks each approval and refuses fewer than the policy's
// k distinct custodians.
func matchApprovals(p *custody.Policy, id access.RequestID, c *access.Case, given []Approval) ([]*custody.Approval, error) {
	var out []*custody.Approval
	seen := map[int]string{}
	for _, g := range given {
		a, err := custody.ParseApproval(g.Data)
		if err != nil {
			return nil, fmt.Errorf("opening: %s: %w", g.Name, err)
		}
		if a.RequestID() != custody.RequestID(id) {
			return nil, fmt.Errorf("opening: %s approves request %s, not %s", g.Name, a.RequestID(), id)
		}
		if err := a.Verify(p); err != nil {
			return nil, fmt.Errorf("opening: %s: %w", g.Name, err)
		}
		logged := false
		for _, la := range c.Approvals {
			logged = logged || bytes.Equal(la.Custody, g.Data)
		}
		if !logged {
			return nil, fmt.Errorf("opening: %s (custodian %d) is not in the access log: log it with candord access approve first", g.Name, a.Index())
		}
		if prev, ok := seen[a.Index()]; ok {
			return nil, fmt.Errorf("opening: %s and %s are both custodian %d's approval", prev, g.Name, a.Index())
		}
		seen[a.Index()] = g.Name
		out = append(out, a)
	}
	if len(out) < p.K() {
		return nil, fmt.Errorf("opening: %d logged approvals of request %s given, %d custodians must approve: %w", len(out), id, p.K(), custody.ErrNotEnoughShares)
	}
	return out, nil
}

// requestKeyFingerprint is the fingerprint of the opening key a request
// names, which access.Request.Validate has checked is a P-256 point.
func requestKeyFingerprint(key []byte) string {
	pub, err := custody.ParseOpeningPublicKey(key)
	if err != nil {
		return "(not a key)"
	}
	return pub.Fingerprint()
}
