package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"candor"
	"candor/api"
	"candor/internal/mlsx"
	"candor/internal/store"
)

// senderIndex is the server's index in every group's external_senders
// extension.
const senderIndex = 0

// errRevoked closes the live streams of a revoked device.
var errRevoked = fmt.Errorf("server: device revoked: %w", candor.ErrPermission)

// Revoke marks a device revoked, so that its next request is refused,
// closes its live streams, and appends to the log of each of its groups a
// Remove proposal for its leaf, signed as the groups' external sender; the
// next member to commit must include it (a commit whose member list keeps
// a revoked device is refused). Revoking a revoked device again proposes
// only the removals that are not pending yet. Unknown devices wrap
// candor.ErrNotFound.
func (s *Server) Revoke(ctx context.Context, device candor.DeviceID) error {
	d, err := s.store.Device(ctx, device)
	if err != nil {
		return fmt.Errorf("server: revoking %s: %w", device, err)
	}
	if d.User == archiveUser {
		return fmt.Errorf("server: %s is the organisation's archive, which no group may lose; a new archive key replaces it: %w", device, candor.ErrPermission)
	}
	if err := s.store.RevokeDevice(ctx, device, s.now()); err != nil {
		return fmt.Errorf("server: revoking %s: %w", device, err)
	}
	s.hub.kick(device, errRevoked)
	ms, err := s.store.GroupsOf(ctx, device)
	if err != nil {
		return fmt.Errorf("server: groups of revoked device %s: %w", device, err)
	}
	var errs []error
	for _, m := range ms {
		if err := s.proposeRemoval(ctx, m.Group.ID, d); err != nil {
			errs = append(errs, fmt.Errorf("server: proposing the removal of %s from %s: %w", device, m.Group.ID, err))
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "device revoked",
		slog.String(keyDevice, string(device)), slog.String(keyUser, string(d.User)), slog.Int("groups", len(ms)))
	return errors.Join(errs...)
}

// handleRevokeDevice revokes one of the caller's own user's devices (the
// caller itself included).
func (s *Server) handleRevokeDevice(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	id := candor.DeviceID(r.PathValue("id"))
	target, err := s.store.Device(r.Context(), id)
	switch {
	case errors.Is(err, candor.ErrNotFound):
		return fail(api.CodeNotFound, "no such device of yours", err)
	case err != nil:
		return internal(fmt.Errorf("loading device %s: %w", id, err))
	case target.User != dev.User:
		return fail(api.CodeNotFound, "no such device of yours", nil)
	}
	if err := s.Revoke(r.Context(), id); err != nil {
		return internal(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeProposal is the encoding of a Remove proposal of leaf (RFC 9420
// §12.1.3: proposal_type remove = 3, then the uint32 leaf index), as a
// Roster keeps its pending proposals.
func removeProposal(leaf uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0, 3}, leaf)
}

// proposeRemoval appends, as the external sender, a Remove proposal for
// each leaf of d in group id that has none pending.
func (s *Server) proposeRemoval(ctx context.Context, id candor.GroupID, d store.Device) error {
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	for attempt := 1; ; attempt++ {
		err := s.appendRemovals(ctx, id, d)
		if errors.Is(err, errHeadMoved) && attempt < maxAppendAttempts {
			continue
		}
		return err
	}
}

func (s *Server) appendRemovals(ctx context.Context, id candor.GroupID, d store.Device) error {
	g, err := s.store.Group(ctx, id)
	if err != nil {
		return err
	}
	roster, err := mlsx.UnmarshalRoster(g.Roster)
	if err != nil {
		return err
	}
	var leaves []uint32
	for _, m := range roster.Members() {
		if len(m.Credential.Chain) == 0 || !bytes.Equal(fingerprint(m.Credential.Chain[0]), d.Fingerprint) {
			continue
		}
		pending := false
		for _, p := range roster.Proposals {
			pending = pending || bytes.Equal(p.Proposal, removeProposal(m.Leaf))
		}
		if !pending {
			leaves = append(leaves, m.Leaf)
		}
	}
	if len(leaves) == 0 {
		return nil
	}
	members, err := s.store.Members(ctx, id)
	if err != nil {
		return err
	}
	head := g.Head
	for _, leaf := range leaves {
		msg, err := mlsx.ProposeRemoval(s.sender, senderIndex, id, roster.Epoch, leaf)
		if err != nil {
			return err
		}
		next, _, err := roster.Apply(msg)
		if err != nil {
			return fmt.Errorf("following the server's own proposal: %w", err)
		}
		raw, err := json.Marshal(next)
		if err != nil {
			return err
		}
		now := s.now()
		seq, err := s.store.Append(ctx, store.AppendRequest{
			Group:    id,
			PrevHead: head,
			// Sender "" marks the server's own entries.
			Entry:  store.Entry{Epoch: roster.Epoch, Time: now, Message: msg},
			Roster: raw,
			Epoch:  next.Epoch,
		})
		if errors.Is(err, candor.ErrConflict) {
			return fmt.Errorf("%w: %w", errHeadMoved, err)
		}
		if err != nil {
			return err
		}
		s.journal.mark(id)
		s.log.LogAttrs(ctx, slog.LevelInfo, "removal proposed", slog.String(keyGroup, id.String()),
			slog.String(keyDevice, string(d.ID)), slog.Uint64(keyLeaf, uint64(leaf)), slog.Uint64(keySeq, seq))
		frame := entryFrame(id, api.Entry{Seq: seq, Epoch: uint64(roster.Epoch), Time: now.UTC(), Message: msg})
		for _, m := range members {
			s.hub.publish(m, notice{group: id, seq: seq, frame: frame, member: true})
		}
		head, roster = seq, next
	}
	return nil
}
