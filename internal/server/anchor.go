package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/store"
)

// Replay anchors (docs/design/journal.md, "Retention and replay anchors").
//
// A replay of a group starts where the archive received a Welcome, so a
// group's log can lose a prefix to retention only up to such a point, an
// anchor. When a group in use has not given the archive a Welcome for
// AnchorInterval, the server, as the group's external sender, proposes
// removing the archive's leaf; the member who commits that proposal then
// commits an Add of the archive's KeyPackage at once, which sends the
// archive a fresh Welcome (client.commitLocked). It takes two commits
// because the MLS library refuses to add a signature key the tree still
// holds, even one the same commit removes (mlsx TestArchiveAnchor).
// Between them the group has no archive, and the server refuses every
// message but a commit, and every commit that does not add the archive
// back: nothing is ever written that the record does not see.

// DefaultAnchorInterval is Config.AnchorInterval's default: a month, so
// that retention deletes an entry at most a month after its period ends.
const DefaultAnchorInterval = 30 * 24 * time.Hour

// ProposeAnchors proposes an anchor in every group that is due one: its
// archive's latest Welcome is older than the anchor interval and its log
// has moved on since. After a move to a new archive key (archive.go) it
// also proposes, at once, removing the previous key's leaf from every
// group that still holds one: the member who commits that proposal adds
// the current key in the same commit, which the MLS library allows for
// two different keys. A group whose proposal is still pending, or whose
// archive is out for the anchor in progress, gets none. It returns how
// many it proposed; a group that fails does not stop the others.
func (s *Server) ProposeAnchors(ctx context.Context) (int, error) {
	if s.archive == nil || s.anchorInterval < 0 && len(s.archive.previous) == 0 {
		return 0, nil
	}
	ids, err := s.store.GroupIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("server: anchors: listing groups: %w", err)
	}
	cutoff := s.now().Add(-s.anchorInterval)
	n := 0
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := s.anchorDue(ctx, id, cutoff)
		if err == nil && k != nil {
			var arch store.Device
			if arch, err = s.store.Device(ctx, k.device); err == nil {
				err = s.proposeRemoval(ctx, id, arch)
			}
			if err == nil {
				n++
				msg := "anchor proposed"
				if k != &s.archive.archiveKey {
					msg = "previous archive key's removal proposed"
				}
				s.log.LogAttrs(ctx, slog.LevelInfo, msg, slog.String(keyGroup, id.String()), slog.String(keyArchiveKey, k.key))
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("server: anchor in %s: %w", id, err))
		}
	}
	return n, errors.Join(errs...)
}

// anchorDue returns the archive key whose leaf the server should propose
// removing from group id, or nil: a previous key, at once; the current
// key, when the archive's latest Welcome to the group (from any of its
// keys) came before cutoff and entries followed it. Nothing is due while
// such a proposal is pending or the archive is out. A group the archive
// never joined is at epoch 0, and its first commit adds the archive.
func (s *Server) anchorDue(ctx context.Context, id candor.GroupID, cutoff time.Time) (*archiveKey, error) {
	var last *store.WelcomeRef
	if len(s.archive.previous) == 0 {
		// The common case reads no roster for a group not due.
		ws, err := s.archiveWelcomes(ctx, id)
		if err != nil || len(ws) == 0 || !ws[len(ws)-1].Time.Before(cutoff) {
			return nil, err
		}
		last = &ws[len(ws)-1]
	}
	g, err := s.store.Group(ctx, id)
	if err != nil || g.Epoch == 0 {
		return nil, err
	}
	roster, err := mlsx.UnmarshalRoster(g.Roster)
	if err != nil {
		return nil, err
	}
	leaf, k := s.archiveLeaf(roster)
	switch {
	case leaf < 0 || proposed(roster, removeProposal(uint32(leaf))):
		return nil, nil
	case k != &s.archive.archiveKey:
		return k, nil
	case s.anchorInterval < 0:
		return nil, nil
	}
	if last == nil {
		ws, err := s.archiveWelcomes(ctx, id)
		if err != nil || len(ws) == 0 || !ws[len(ws)-1].Time.Before(cutoff) {
			return nil, err
		}
		last = &ws[len(ws)-1]
	}
	if g.Head == last.Seq {
		return nil, nil
	}
	return k, nil
}

// proposed reports whether the server's proposal p is pending in roster.
func proposed(roster *mlsx.Roster, p []byte) bool {
	for _, q := range roster.Proposals {
		if q.External && bytes.Equal(q.Proposal, p) {
			return true
		}
	}
	return false
}

// anchorRemoval reports whether a commit that led from roster to next is
// the first half of an anchor: the archive had a leaf in roster, the
// server had proposed removing it in that epoch, and next has no archive.
// Only the server's own proposal counts: a member's cannot take the
// archive out.
func (s *Server) anchorRemoval(roster, next *mlsx.Roster) bool {
	if s.archive == nil {
		return false
	}
	if leaf, _ := s.archiveLeaf(next); leaf >= 0 {
		return false
	}
	leaf, _ := s.archiveLeaf(roster)
	return leaf >= 0 && proposed(roster, removeProposal(uint32(leaf)))
}

// archiveLeaf returns the leaf in roster of an archive key the server
// holds, and that key; -1 and nil if there is none.
func (s *Server) archiveLeaf(roster *mlsx.Roster) (int, *archiveKey) {
	keys := s.archive.keys()
	for _, m := range roster.Members() {
		if len(m.Credential.Chain) == 0 {
			continue
		}
		fp := fingerprint(m.Credential.Chain[0])
		for _, k := range keys {
			if bytes.Equal(fp, k.fingerprint) {
				return int(m.Leaf), k
			}
		}
	}
	return -1, nil
}
