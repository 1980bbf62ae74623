package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"candor"
	"candor/api"
	"candor/internal/mlsx"
	"candor/internal/pki"
	"candor/internal/store"
)

// Archive is the organisation's archive as its server knows it: public
// material made by the custody ceremony (cmd/candor-custody), which the
// server serves and enforces and cannot read. The statement and the
// endorsements are opaque to the server, which must not link the code that
// parses them (custody's); the ceremony writes the KeyPackage, which the
// statement also holds, beside it for the server.
//
// In the directory the archive is a device of the reserved user "archive"
// (pki.ArchiveName), whose one last-resort KeyPackage is the archive's:
// devices claim it like anyone's, Welcomes to it are routed and kept like
// anyone's (the archive never acknowledges them: they are where a replay
// starts), and the member-list policy finds its leaf by its certificate's
// fingerprint. It can never authenticate a request.
type Archive struct {
	Statement    []byte   // the ceremony's statement; its SHA-256 is what invitations pin
	Endorsements [][]byte // every custodian's endorsement of it
	KeyPackage   []byte   // the archive's KeyPackage, MLSMessage-wrapped
}

// ErrNoArchive reports that the organisation has no archive installed.
var ErrNoArchive = fmt.Errorf("no archive: %w", candor.ErrNotFound)

// archiveUser is the reserved user id the archive's device belongs to.
const archiveUser = candor.UserID(pki.ArchiveName)

// ArchiveDevice is the directory's device id for the archive whose
// certificate is der: one per archive key. The Welcomes queued for it in
// the store are where a replay of each group starts.
func ArchiveDevice(der []byte) candor.DeviceID {
	return candor.DeviceID("archive-" + hex.EncodeToString(fingerprint(der)[:8]))
}

// archiveState is the installed archive.
type archiveState struct {
	published   api.Archive
	hash        [sha256.Size]byte // of the statement
	device      candor.DeviceID
	fingerprint []byte // of the archive's certificate, as leaves carry it
	key         string // the archive key's name, from its certificate
}

// installArchive checks a and records its device and KeyPackage in the
// store, once: installing the same archive again changes nothing.
func (s *Server) installArchive(ctx context.Context, a *Archive) (*archiveState, error) {
	now := s.now()
	info, err := mlsx.ParseKeyPackage(a.KeyPackage, now)
	if err != nil {
		return nil, fmt.Errorf("server: the archive's KeyPackage: %w", err)
	}
	if !info.LastResort || !bytes.Contains(a.Statement, a.KeyPackage) {
		return nil, fmt.Errorf("server: the archive's KeyPackage is not its statement's last-resort one: %w", candor.ErrInvalid)
	}
	cert, err := info.Credential.Certificate()
	if err != nil {
		return nil, fmt.Errorf("server: the archive's certificate: %w", err)
	}
	arch, err := s.ca.VerifyArchive(cert.Raw, now)
	if err != nil {
		return nil, fmt.Errorf("server: the archive's certificate: %w", err)
	}
	fp := fingerprint(cert.Raw)
	st := &archiveState{
		published:   api.Archive{Statement: a.Statement, Endorsements: a.Endorsements},
		hash:        sha256.Sum256(a.Statement),
		device:      ArchiveDevice(cert.Raw),
		fingerprint: fp,
		key:         arch.Key,
	}
	if st.published.Endorsements == nil {
		st.published.Endorsements = [][]byte{}
	}
	switch d, err := s.store.Device(ctx, st.device); {
	case err == nil:
		if !bytes.Equal(d.Fingerprint, fp) || d.User != archiveUser {
			return nil, fmt.Errorf("server: device %s is not this archive: %w", st.device, candor.ErrConflict)
		}
		return st, nil
	case !errors.Is(err, candor.ErrNotFound):
		return nil, fmt.Errorf("server: looking up the archive: %w", err)
	}
	// The store enrols devices only with an invitation: the server makes
	// one for the archive and uses it at once.
	secret := make([]byte, api.InvitationSecretBytes)
	if _, err := io.ReadFull(s.rand, secret); err != nil {
		return nil, fmt.Errorf("server: randomness: %w", err)
	}
	id, err := s.randomID(8)
	if err != nil {
		return nil, err
	}
	hash := sha256.Sum256(secret)
	inv := store.Invitation{ID: id, User: archiveUser, SecretHash: hash[:], Created: now, Expires: now.Add(api.InvitationLifetime)}
	if err := s.store.CreateInvitation(ctx, inv); err != nil {
		return nil, fmt.Errorf("server: installing the archive: %w", err)
	}
	dev := store.Device{ID: st.device, User: archiveUser, Name: "archive " + arch.Key, Certificate: cert.Raw, Fingerprint: fp, EnrolledAt: now}
	if err := s.store.Enrol(ctx, id, hash[:], now, dev); err != nil {
		return nil, fmt.Errorf("server: installing the archive: %w", err)
	}
	kp := store.KeyPackage{Ref: info.Ref, Device: st.device, Data: a.KeyPackage, LastResort: true, Added: now}
	if err := s.store.AddKeyPackages(ctx, st.device, nil, &kp); err != nil {
		return nil, fmt.Errorf("server: installing the archive's KeyPackage: %w", err)
	}
	s.log.Info("archive installed", keyDevice, string(st.device), keyArchiveKey, arch.Key)
	return st, nil
}

// handleArchive serves the archive's statement and endorsements.
func (s *Server) handleArchive(w http.ResponseWriter, r *http.Request, _ store.Device) error {
	if err := readEmpty(w, r); err != nil {
		return err
	}
	if s.archive == nil {
		return fail(api.CodeNotFound, "the organisation has no archive yet", nil)
	}
	writeJSON(w, http.StatusOK, s.archive.published)
	return nil
}

// requireArchive is the archive's part of the built-in policy: every
// member list after a commit holds the organisation's archive, so no group
// ever has a member the record does not see, and none can drop it.
func (s *Server) requireArchive(devices []candor.DeviceID) error {
	if s.archive == nil {
		return fmt.Errorf("the organisation has no archive yet: %w", errPolicy)
	}
	if !slices.Contains(devices, s.archive.device) {
		return fmt.Errorf("the organisation's archive is not a member: %w", errPolicy)
	}
	return nil
}
