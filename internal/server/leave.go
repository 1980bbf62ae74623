package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"

	"candor/internal/mlsx"
	"candor/internal/store"
)

// handleLeave takes the calling device's person out of a group. In MLS a
// member cannot commit its own removal (RFC 9420 §12.2: a commit must not
// remove its sender), and a Remove proposal from a member is only a
// request to the others. So the server, as the group's external sender
// (§12.1.8.1), appends a Remove proposal for the leaf of every device of
// the caller's person in the group, exactly as revocation does: the next
// member to commit includes them, and members commit pending proposals
// before they send. The person's devices stay enrolled; only this group
// loses them.
//
// Until that commit the devices are still members on the server, so they
// could still read the group's log; the client forgets its keys of the
// group as soon as the server answers, which is what makes leaving take
// effect on the leaving side at once. The person's other devices may not
// commit meanwhile (see removalPending).
func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	ctx := r.Context()
	id, err := pathGroup(r)
	if err != nil {
		return err
	}
	if err := readEmpty(w, r); err != nil {
		return err
	}
	if _, err := s.membership(r, dev, id); err != nil {
		return err
	}
	devs, err := s.store.Devices(ctx, dev.User)
	if err != nil {
		return internal(fmt.Errorf("listing devices of %s: %w", dev.User, err))
	}
	for _, d := range devs {
		// A device not in the group has no leaf to remove, and one whose
		// removal is pending (revoked, or a second leave) gets no second
		// proposal: appendRemovals looks for both.
		if err := s.proposeRemoval(ctx, id, d); err != nil {
			return internal(fmt.Errorf("proposing the removal of %s from %s: %w", d.ID, id, err))
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "left group", slog.String(keyGroup, id.String()),
		slog.String(keyUser, string(dev.User)), slog.String(keyDevice, string(dev.ID)))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removalPending reports whether the roster holds a Remove proposal, not
// yet committed, for a leaf of device d: its person left the group from
// another device. Such a device cannot commit: its own removal is not
// its to commit (RFC 9420 §12.2), and leaving it out would leave the
// proposal behind. deliver refuses it as no longer a member, which its
// client takes as having left.
func removalPending(roster *mlsx.Roster, d store.Device) bool {
	for _, m := range roster.Members() {
		if len(m.Credential.Chain) == 0 || !bytes.Equal(fingerprint(m.Credential.Chain[0]), d.Fingerprint) {
			continue
		}
		for _, p := range roster.Proposals {
			if bytes.Equal(p.Proposal, removeProposal(m.Leaf)) {
				return true
			}
		}
	}
	return false
}
