package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"

	"candor"
	"candor/internal/mlsx"
)

// Policy decides whether a group may have a member list. The server calls
// it, after its built-in check, for the member list each commit leads to,
// while it holds the group's lock, and refuses the commit with
// api.CodePolicy when it returns an error (which should wrap
// candor.ErrPermission and say why; it is logged, not sent). It is not
// called when a group is created, since its creator is then alone.
// Implementations must be safe for concurrent use.
type Policy interface {
	CheckMembers(ctx context.Context, group candor.GroupID, members []mlsx.Member) error
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(ctx context.Context, group candor.GroupID, members []mlsx.Member) error

func (f PolicyFunc) CheckMembers(ctx context.Context, group candor.GroupID, members []mlsx.Member) error {
	return f(ctx, group, members)
}

// errPolicy marks refusals by the built-in check.
var errPolicy = fmt.Errorf("server: member list refused: %w", candor.ErrPermission)

// memberDevices is the built-in policy, which is always on: every member's
// credential must be an X.509 chain whose leaf certificate is an enrolled,
// unrevoked device's (found by its SHA-256 fingerprint) and certifies the
// leaf's signature key, no device may hold two leaves, and the
// organisation's archive, which the directory holds as a device, must be
// one of them (requireArchive, which before, the member devices before
// the commit, lets keep a previous archive key) unless archiveOut, the
// first half of a replay anchor (anchor.go). An archive key the server
// does not hold (no longer in the data folder, or expired) is never a
// member. It returns the member devices in leaf order. Store failures are
// returned as they are; refusals wrap errPolicy.
func (s *Server) memberDevices(ctx context.Context, members []mlsx.Member, before []candor.DeviceID, archiveOut bool) ([]candor.DeviceID, error) {
	out := make([]candor.DeviceID, 0, len(members))
	seen := make(map[candor.DeviceID]bool, len(members))
	for _, m := range members {
		if m.Credential.Kind != mlsx.CredentialX509 || len(m.Credential.Chain) == 0 {
			return nil, fmt.Errorf("leaf %d: not an X.509 credential: %w", m.Leaf, errPolicy)
		}
		cert, err := m.Credential.Certificate()
		if err != nil {
			return nil, fmt.Errorf("leaf %d: certificate does not parse: %w", m.Leaf, errPolicy)
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("leaf %d: certificate key is not ECDSA: %w", m.Leaf, errPolicy)
		}
		if key, err := signatureKey(pub); err != nil || !bytes.Equal(key, m.SignatureKey) {
			return nil, fmt.Errorf("leaf %d: certificate does not certify the leaf's key: %w", m.Leaf, errPolicy)
		}
		d, err := s.store.DeviceByFingerprint(ctx, fingerprint(m.Credential.Chain[0]))
		switch {
		case errors.Is(err, candor.ErrNotFound):
			return nil, fmt.Errorf("leaf %d: not an enrolled device: %w", m.Leaf, errPolicy)
		case err != nil:
			return nil, fmt.Errorf("leaf %d: looking up its device: %w", m.Leaf, err)
		case d.Revoked():
			return nil, fmt.Errorf("leaf %d: device %s is revoked: %w", m.Leaf, d.ID, errPolicy)
		case seen[d.ID]:
			return nil, fmt.Errorf("leaf %d: device %s holds another leaf: %w", m.Leaf, d.ID, errPolicy)
		case d.User == archiveUser && (s.archive == nil || s.archive.keyOf(d.ID) == nil):
			return nil, fmt.Errorf("leaf %d: archive device %s is not a key this server holds: %w", m.Leaf, d.ID, errPolicy)
		}
		seen[d.ID] = true
		out = append(out, d.ID)
	}
	if archiveOut {
		return out, nil
	}
	if err := s.requireArchive(out, before); err != nil {
		return nil, err
	}
	return out, nil
}
