package client

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"candor"
	"candor/api"
	"candor/internal/ceremony"
	"candor/internal/mlsx"
)

// Archive is the organisation's archive as this device pinned it at
// enrolment: the member that keeps the record of every conversation, which
// only K of its N custodians together can open, each opening written to a
// public log first.
type Archive struct {
	Organisation string
	Key          string   // the archive key's name (its generation)
	K, N         int      // how many custodians must approve an opening, of how many
	Custodians   []string // their names, in their order
	Statement    string   // the SHA-256 of the ceremony's statement, in hex: what was pinned
	NotAfter     time.Time
}

// pinnedArchive is the archive once fetched and verified.
type pinnedArchive struct {
	info       Archive
	cert       []byte // DER: the archive's credential
	keyPackage []byte // MLSMessage: what a group's first commit adds
}

// archiveCache fetches and verifies the archive once per Client.
type archiveCache struct {
	mu     sync.Mutex
	pinned *pinnedArchive
}

// Archive returns the organisation's archive, after checking that the
// server presents the one this device pinned and that every custodian has
// endorsed it (ceremony.Verify).
func (c *Client) Archive(ctx context.Context) (Archive, error) {
	p, err := c.archive(ctx)
	if err != nil {
		return Archive{}, err
	}
	return p.info, nil
}

func (c *Client) archive(ctx context.Context) (*pinnedArchive, error) {
	c.arch.mu.Lock()
	defer c.arch.mu.Unlock()
	if c.arch.pinned != nil {
		return c.arch.pinned, nil
	}
	var pub api.Archive
	if err := c.tr.call(ctx, "GET", api.PathArchive, nil, &pub); err != nil {
		return nil, fmt.Errorf("fetching the organisation's archive: %w", err)
	}
	st, err := ceremony.ParseStatement(pub.Statement)
	if err != nil {
		return nil, fmt.Errorf("the server's archive: %w: %v", ErrArchive, err)
	}
	if h := st.Hash(); subtle.ConstantTimeCompare(h[:], c.id.Archive) != 1 {
		return nil, fmt.Errorf("the server presents archive %s, not the one this device pinned at enrolment: %w", st.Hash(), ErrArchive)
	}
	var es []*ceremony.Endorsement
	for _, raw := range pub.Endorsements {
		e, err := ceremony.ParseEndorsement(raw)
		if err != nil {
			return nil, fmt.Errorf("an endorsement of the archive: %w: %v", ErrArchive, err)
		}
		es = append(es, e)
	}
	if err := ceremony.Verify(st, es, c.id.ca, c.now()); err != nil {
		return nil, fmt.Errorf("the organisation's archive: %w: %v", ErrArchive, err)
	}
	p := st.Policy()
	info := Archive{
		Organisation: st.Organisation(),
		Key:          st.KeyID(),
		K:            p.K(),
		N:            p.N(),
		Statement:    st.Hash().String(),
		NotAfter:     st.NotAfter(),
	}
	for _, cu := range p.Custodians() {
		info.Custodians = append(info.Custodians, cu.Name)
	}
	c.arch.pinned = &pinnedArchive{info: info, cert: st.Certificate(), keyPackage: st.KeyPackage()}
	return c.arch.pinned, nil
}

// isArchive reports whether cred is the pinned archive's credential.
func (p *pinnedArchive) isArchive(cred mlsx.Credential) bool {
	return cred.Kind == mlsx.CredentialX509 && len(cred.Chain) > 0 && bytes.Equal(cred.Chain[0], p.cert)
}

// hasArchive reports whether a group holds the pinned archive.
func (p *pinnedArchive) hasArchive(g *mlsx.Group) bool {
	for _, m := range g.Members() {
		if p.isArchive(m.Credential) {
			return true
		}
	}
	return false
}

// archivedGroup returns a group that holds the pinned archive: candor
// sends nothing the record does not see. A group left without it by the
// first half of a replay anchor (its committer stopped before the second)
// gets it back in a commit of this device first; the caller holds the
// group's lock.
func (c *Client) archivedGroup(ctx context.Context, gid candor.GroupID) (*mlsx.Group, error) {
	p, err := c.archive(ctx)
	if err != nil {
		return nil, err
	}
	g, err := c.group(ctx, gid)
	if err != nil || p.hasArchive(g) {
		return g, err
	}
	if err := c.commitLocked(ctx, gid, nothingElse); err != nil {
		return nil, fmt.Errorf("conversation %s: adding the archive back: %w", gid, errors.Join(ErrNotArchived, err))
	}
	if g, err = c.group(ctx, gid); err != nil {
		return nil, err
	}
	if !p.hasArchive(g) {
		return nil, fmt.Errorf("conversation %s: %w", gid, ErrNotArchived)
	}
	return g, nil
}
