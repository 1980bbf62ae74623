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
// has moved on since. A group whose proposal is still pending, or whose
// archive is out for the anchor in progress, gets none. It returns how
// many it proposed; a group that fails does not stop the others.
func (s *Server) ProposeAnchors(ctx context.Context) (int, error) {
	if s.archive == nil || s.anchorInterval < 0 {
		return 0, nil
	}
	arch, err := s.store.Device(ctx, s.archive.device)
	if err != nil {
		return 0, fmt.Errorf("server: anchors: the archive's device: %w", err)
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
		due, err := s.anchorDue(ctx, id, cutoff)
		if err == nil && due {
			if err = s.proposeRemoval(ctx, id, arch); err == nil {
				n++
				s.log.LogAttrs(ctx, slog.LevelInfo, "anchor proposed", slog.String(keyGroup, id.String()))
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("server: anchor in %s: %w", id, err))
		}
	}
	return n, errors.Join(errs...)
}

// anchorDue reports whether group id needs an anchor: the archive's
// latest Welcome to it came before cutoff, entries followed it, and no
// anchor is under way (the archive's removal proposed, or the archive
// out). A group the archive never joined is at epoch 0, and its first
// commit adds the archive.
func (s *Server) anchorDue(ctx context.Context, id candor.GroupID, cutoff time.Time) (bool, error) {
	ws, err := s.store.WelcomeSeqs(ctx, s.archive.device, id)
	if err != nil || len(ws) == 0 {
		return false, err
	}
	last := ws[len(ws)-1]
	if !last.Time.Before(cutoff) {
		return false, nil
	}
	g, err := s.store.Group(ctx, id)
	if err != nil || g.Head == last.Seq {
		return false, err
	}
	roster, err := mlsx.UnmarshalRoster(g.Roster)
	if err != nil {
		return false, err
	}
	leaf := s.archiveLeaf(roster)
	return leaf >= 0 && !proposed(roster, removeProposal(uint32(leaf))), nil
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
	if s.archive == nil || s.archiveLeaf(next) >= 0 {
		return false
	}
	leaf := s.archiveLeaf(roster)
	return leaf >= 0 && proposed(roster, removeProposal(uint32(leaf)))
}

// archiveLeaf returns the archive's leaf in roster, or -1.
func (s *Server) archiveLeaf(roster *mlsx.Roster) int {
	for _, m := range roster.Members() {
		if len(m.Credential.Chain) > 0 && bytes.Equal(fingerprint(m.Credential.Chain[0]), s.archive.fingerprint) {
			return int(m.Leaf)
		}
	}
	return -1
}
