package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"candor"
	"candor/api"
	"candor/internal/pki"
	"candor/internal/store"
)

// Limits on names.
const (
	maxUserID     = 64
	maxDeviceName = 64
	maxInviteID   = 64
)

// ValidUserID reports whether s may name a user: 1 to 64 ASCII letters,
// digits and the characters . _ @ -. User ids appear in certificate
// subjects and URL paths, so the set is kept small.
func ValidUserID(s candor.UserID) bool {
	if len(s) == 0 || len(s) > maxUserID {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// validDeviceName reports whether s may be a device's display name: 1 to
// 64 characters of UTF-8, none of them control characters.
func validDeviceName(s string) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxDeviceName {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Invite stores a one-time invitation for user to enrol a device, valid
// for lifetime (zero means api.InvitationLifetime), and returns its code.
// serverAddr is the host:port devices reach the server at. Only the
// secret's hash is stored: the code cannot be printed again.
func (s *Server) Invite(ctx context.Context, user candor.UserID, lifetime time.Duration, serverAddr string) (api.InvitationCode, error) {
	if !ValidUserID(user) {
		return api.InvitationCode{}, fmt.Errorf("server: user id %q: must be 1 to %d letters, digits, '.', '_', '@' or '-': %w", user, maxUserID, candor.ErrInvalid)
	}
	if strings.EqualFold(string(user), pki.ArchiveName) {
		// Member lists show the archive by this name: no person may look
		// like it.
		return api.InvitationCode{}, fmt.Errorf("server: user id %q is reserved for the organisation's archive: %w", user, candor.ErrInvalid)
	}
	if s.archive == nil {
		// A device pins the archive at enrolment: there must be one.
		return api.InvitationCode{}, fmt.Errorf("server: the organisation has no archive yet; hold the custody ceremony first (candor-custody ceremony): %w", ErrNoArchive)
	}
	if serverAddr == "" {
		return api.InvitationCode{}, fmt.Errorf("server: an invitation needs the server's address: %w", candor.ErrInvalid)
	}
	if lifetime < 0 {
		return api.InvitationCode{}, fmt.Errorf("server: negative invitation lifetime: %w", candor.ErrInvalid)
	}
	if lifetime == 0 {
		lifetime = api.InvitationLifetime
	}
	id, err := s.randomID(8)
	if err != nil {
		return api.InvitationCode{}, err
	}
	secret := make([]byte, api.InvitationSecretBytes)
	if _, err := io.ReadFull(s.rand, secret); err != nil {
		return api.InvitationCode{}, fmt.Errorf("server: randomness: %w", err)
	}
	hash := sha256.Sum256(secret)
	now := s.now()
	inv := store.Invitation{ID: id, User: user, SecretHash: hash[:], Created: now, Expires: now.Add(lifetime)}
	if err := s.store.CreateInvitation(ctx, inv); err != nil {
		return api.InvitationCode{}, fmt.Errorf("server: storing invitation: %w", err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "invitation created",
		slog.String(keyInvite, id), slog.String(keyUser, string(user)))
	return api.InvitationCode{Server: serverAddr, CAFingerprint: s.CAFingerprint(), ID: id, Secret: secret, Archive: s.archive.hash[:]}, nil
}

// validateEnrol checks an EnrolRequest's fields and parses its CSR,
// returning the device's public key.
func validateEnrol(req *api.EnrolRequest) (*ecdsa.PublicKey, error) {
	if req.Invitation == "" || len(req.Invitation) > maxInviteID {
		return nil, fail(api.CodeBadRequest, "invitation: an invitation id is required", nil)
	}
	if !validDeviceName(req.Name) {
		return nil, fail(api.CodeBadRequest, fmt.Sprintf("name: 1 to %d characters, no control characters", maxDeviceName), nil)
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, fail(api.CodeBadRequest, "csr: not a DER PKCS #10 certificate request", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fail(api.CodeBadRequest, "csr: its signature does not verify", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fail(api.CodeBadRequest, "csr: the key must be ECDSA P-256", nil)
	}
	return pub, nil
}

// handleEnrol turns an invitation into a device certificate. The device is
// recorded, and the invitation used, in one transaction (Store.Enrol).
func (s *Server) handleEnrol(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.EnrolRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	pub, err := validateEnrol(&req)
	if err != nil {
		return err
	}
	badInvitation := func(cause error) error {
		return fail(api.CodeBadInvitation, "the invitation is unknown, used, expired, or the secret is wrong", cause)
	}
	now := s.now()
	inv, err := s.store.Invitation(ctx, req.Invitation)
	switch {
	case errors.Is(err, candor.ErrNotFound):
		return badInvitation(err)
	case err != nil:
		return internal(fmt.Errorf("loading invitation: %w", err))
	}
	hash := sha256.Sum256(req.Secret)
	// Store.Enrol checks all of this again, atomically; checking first
	// spares issuing a certificate for a request that must fail.
	if subtle.ConstantTimeCompare(hash[:], inv.SecretHash) != 1 {
		return badInvitation(errors.New("wrong secret"))
	}
	if inv.Used || !now.Before(inv.Expires) {
		return badInvitation(errors.New("invitation used or expired"))
	}
	id, err := s.newDeviceID()
	if err != nil {
		return internal(err)
	}
	cert, err := s.ca.Issue(inv.User, id, pub, now)
	if err != nil {
		return internal(fmt.Errorf("issuing a device certificate: %w", err))
	}
	d := store.Device{ID: id, User: inv.User, Name: req.Name, Certificate: cert, Fingerprint: fingerprint(cert), EnrolledAt: now}
	err = s.store.Enrol(ctx, inv.ID, hash[:], now, d)
	switch {
	case errors.Is(err, candor.ErrPermission):
		return badInvitation(err)
	case err != nil:
		return internal(fmt.Errorf("enrolling: %w", err))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "device enrolled",
		slog.String(keyInvite, inv.ID), slog.String(keyUser, string(inv.User)), slog.String(keyDevice, string(id)))
	writeJSON(w, http.StatusCreated, api.EnrolResponse{
		User: string(inv.User), Device: string(id), Certificate: cert, CA: s.ca.Certificate().Raw,
		ExternalSender: s.senderCert,
	})
	return nil
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	writeJSON(w, http.StatusOK, api.Me{User: string(dev.User), Device: string(dev.ID), Name: dev.Name})
	return nil
}
