package client

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"candor"
	"candor/api"
	"candor/internal/ceremony"
	"candor/internal/mlsx"
)

// Archive is the organisation's archive as this device pinned it: the
// member that keeps the record of every conversation, which only K of its
// N custodians together can open, each opening written to a public log
// first. The pin starts as the statement named at enrolment and moves only
// along the organisation's chain of archive keys (docs/design/archive.md,
// "Rotation"): each step endorsed by all of its own custodians and, as
// the successor of the key before, by K of that key's.
type Archive struct {
	Organisation string
	Key          string   // the archive key's name (its generation)
	K, N         int      // how many custodians must approve an opening, of how many
	Custodians   []string // their names, in their order
	Statement    string   // the SHA-256 of the ceremony's statement, in hex: what is pinned
	NotAfter     time.Time
	// Previous are the statements (SHA-256, hex) of the archive keys this
	// device moved from to this one, oldest first; empty until the
	// organisation moves to a new archive key. A front end shows the
	// change: conversations are recorded under new custodians from then on.
	Previous []string
}

// pinnedArchive is the archive once fetched and verified.
type pinnedArchive struct {
	info       Archive
	cert       []byte   // DER: the archive's credential
	keyPackage []byte   // MLSMessage: what a group's first commit adds
	previous   [][]byte // DER: the credentials of info.Previous that the server still lists
}

// archiveCache fetches and verifies the archive once per Client, and
// again before each commit (freshArchive), which is where a move to a new
// key takes effect.
type archiveCache struct {
	mu     sync.Mutex
	pinned *pinnedArchive
}

// Archive returns the organisation's archive, after checking that the
// server presents the one this device pinned, or a successor it can reach
// from there, and that every custodian has endorsed it (ceremony.Verify).
func (c *Client) Archive(ctx context.Context) (Archive, error) {
	p, err := c.archive(ctx)
	if err != nil {
		return Archive{}, err
	}
	return p.info, nil
}

// archive returns the archive, fetched once per Client.
func (c *Client) archive(ctx context.Context) (*pinnedArchive, error) {
	return c.loadArchive(ctx, false)
}

// freshArchive fetches the archive again: a commit adds the current key,
// and the server may have moved to a new one since the last fetch.
func (c *Client) freshArchive(ctx context.Context) (*pinnedArchive, error) {
	return c.loadArchive(ctx, true)
}

// archiveKey is one statement of the server's chain, parsed.
type archiveKey struct {
	st           *ceremony.Statement
	endorsements []*ceremony.Endorsement
	successions  []*ceremony.Succession
}

func parseArchiveKey(statement []byte, endorsements, successions [][]byte) (archiveKey, error) {
	st, err := ceremony.ParseStatement(statement)
	if err != nil {
		return archiveKey{}, fmt.Errorf("the server's archive: %w: %v", ErrArchive, err)
	}
	k := archiveKey{st: st}
	for _, raw := range endorsements {
		e, err := ceremony.ParseEndorsement(raw)
		if err != nil {
			return archiveKey{}, fmt.Errorf("an endorsement of archive key %q: %w: %v", st.KeyID(), ErrArchive, err)
		}
		k.endorsements = append(k.endorsements, e)
	}
	for _, raw := range successions {
		e, err := ceremony.ParseSuccession(raw)
		if err != nil {
			return archiveKey{}, fmt.Errorf("a succession of archive key %q: %w: %v", st.KeyID(), ErrArchive, err)
		}
		k.successions = append(k.successions, e)
	}
	return k, nil
}

func (c *Client) loadArchive(ctx context.Context, refresh bool) (*pinnedArchive, error) {
	c.arch.mu.Lock()
	defer c.arch.mu.Unlock()
	if c.arch.pinned != nil && !refresh {
		return c.arch.pinned, nil
	}
	var pub api.Archive
	if err := c.tr.call(ctx, "GET", api.PathArchive, nil, &pub); err != nil {
		return nil, fmt.Errorf("fetching the organisation's archive: %w", err)
	}
	// chain[0] is the current key, then the keys before it, newest first.
	cur, err := parseArchiveKey(pub.Statement, pub.Endorsements, pub.Successions)
	if err != nil {
		return nil, err
	}
	chain := []archiveKey{cur}
	for _, p := range pub.Previous {
		k, err := parseArchiveKey(p.Statement, p.Endorsements, p.Successions)
		if err != nil {
			return nil, err
		}
		chain = append(chain, k)
	}
	pin := slices.IndexFunc(chain, func(k archiveKey) bool {
		h := k.st.Hash()
		return subtle.ConstantTimeCompare(h[:], c.id.Archive) == 1
	})
	if pin < 0 {
		return nil, fmt.Errorf("the server presents archive %s, and no chain of successions from %x, the one this device pinned: %w",
			cur.st.Hash(), c.id.Archive, ErrArchive)
	}
	now := c.now()
	if err := ceremony.Verify(cur.st, cur.endorsements, c.id.ca, now); err != nil {
		return nil, fmt.Errorf("the organisation's archive: %w: %v", ErrArchive, err)
	}
	// Walk forward from the pin. A step before the last is checked as of
	// when its successor was made: its certificate may have expired since,
	// and what matters is that it was sound when the hand-over happened.
	for i := pin - 1; i >= 0; i-- {
		prev, next := chain[i+1], chain[i]
		at := next.st.Created()
		if i == 0 {
			at = now
		}
		if err := ceremony.Verify(next.st, next.endorsements, c.id.ca, at); err != nil {
			return nil, fmt.Errorf("archive key %q, which the server says succeeds %q: %w: %v", next.st.KeyID(), prev.st.KeyID(), ErrArchive, err)
		}
		if err := ceremony.VerifySuccession(prev.st, next.st, next.successions, c.id.ca, at); err != nil {
			return nil, fmt.Errorf("archive key %q as the successor of %q, which this device pinned: %w: %v",
				next.st.KeyID(), prev.st.KeyID(), ErrArchive, err)
		}
	}
	if pin > 0 {
		if err := c.repin(ctx, chain[:pin+1]); err != nil {
			return nil, err
		}
	}
	st := cur.st
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
	pinned := &pinnedArchive{cert: st.Certificate(), keyPackage: st.KeyPackage()}
	for _, h := range c.id.ArchivePrevious {
		info.Previous = append(info.Previous, hex.EncodeToString(h))
		for _, k := range chain[1:] {
			if kh := k.st.Hash(); bytes.Equal(kh[:], h) {
				pinned.previous = append(pinned.previous, k.st.Certificate())
			}
		}
	}
	pinned.info = info
	c.arch.pinned = pinned
	return pinned, nil
}

// repin moves this device's pin along walked, the chain from the current
// key (first) back to the one pinned (last), and records it in the
// profile: from now on the device trusts the new key, and remembers the
// ones it moved from, which groups may still hold until replaced.
func (c *Client) repin(ctx context.Context, walked []archiveKey) error {
	from, to := walked[len(walked)-1].st, walked[0].st
	id := *c.id
	id.ArchivePrevious = slices.Clone(c.id.ArchivePrevious)
	for i := len(walked) - 1; i > 0; i-- {
		h := walked[i].st.Hash()
		id.ArchivePrevious = append(id.ArchivePrevious, h[:])
	}
	h := to.Hash()
	id.Archive = h[:]
	if err := id.saveProfile(c.home); err != nil {
		return fmt.Errorf("recording the organisation's new archive key: %w", err)
	}
	c.id.Archive, c.id.ArchivePrevious = id.Archive, id.ArchivePrevious
	c.log.InfoContext(ctx, "the organisation's archive moved to a new key, endorsed by its custodians and the previous ones",
		keyFrom, from.KeyID(), keyTo, to.KeyID(), keyStatement, to.Hash().String())
	return nil
}

// Log attribute keys of a move to a new archive key.
const (
	keyFrom      = "from"
	keyTo        = "to"
	keyStatement = "statement"
)

// isArchive reports whether cred is the current archive's credential.
func (p *pinnedArchive) isArchive(cred mlsx.Credential) bool {
	return cred.Kind == mlsx.CredentialX509 && len(cred.Chain) > 0 && bytes.Equal(cred.Chain[0], p.cert)
}

// isPrevious reports whether cred is the credential of an archive key
// this device moved from.
func (p *pinnedArchive) isPrevious(cred mlsx.Credential) bool {
	return cred.Kind == mlsx.CredentialX509 && len(cred.Chain) > 0 &&
		slices.ContainsFunc(p.previous, func(der []byte) bool { return bytes.Equal(cred.Chain[0], der) })
}

// hasArchive reports whether a group holds the current archive.
func (p *pinnedArchive) hasArchive(g *mlsx.Group) bool {
	for _, m := range g.Members() {
		if p.isArchive(m.Credential) {
			return true
		}
	}
	return false
}

// replaced returns the leaves of g that hold an archive key other than the
// current one: a commit removes them as it adds the current key.
func (p *pinnedArchive) replaced(g *mlsx.Group) []uint32 {
	var out []uint32
	for _, m := range g.Members() {
		if memberOf(m).Archive && !p.isArchive(m.Credential) {
			out = append(out, m.Leaf)
		}
	}
	return out
}

// archivedGroup returns a group that holds the current archive: candor
// sends nothing the record does not see. A group left without it by the
// first half of a replay anchor (its committer stopped before the second),
// or that still holds a previous archive key, gets it in a commit of this
// device first; the caller holds the group's lock.
func (c *Client) archivedGroup(ctx context.Context, gid candor.GroupID) (*mlsx.Group, error) {
	p, err := c.archive(ctx)
	if err != nil {
		return nil, err
	}
	g, err := c.group(ctx, gid)
	if err != nil || p.hasArchive(g) && len(p.replaced(g)) == 0 {
		return g, err
	}
	if err := c.commitLocked(ctx, gid, nothingElse); err != nil {
		return nil, fmt.Errorf("conversation %s: adding the archive back: %w", gid, errors.Join(ErrNotArchived, err))
	}
	if g, err = c.group(ctx, gid); err != nil {
		return nil, err
	}
	if p, err = c.archive(ctx); err != nil {
		return nil, err
	}
	if !p.hasArchive(g) || len(p.replaced(g)) > 0 {
		return nil, fmt.Errorf("conversation %s: %w", gid, ErrNotArchived)
	}
	return g, nil
}
