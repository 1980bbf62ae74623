package server

import (
	"bytes"
	"cmp"
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
// server serves and enforces and cannot read. The statement, endorsements
// and successions are opaque to the server, which must not link the code
// that parses them (custody's); the ceremony writes the KeyPackage, which
// the statement also holds, beside it for the server.
//
// In the directory each archive key is a device of the reserved user
// "archive" (pki.ArchiveName), whose one last-resort KeyPackage is the
// archive's: devices claim it like anyone's, Welcomes to it are routed and
// kept like anyone's (the archive never acknowledges them: they are where a
// replay starts), and the member-list policy finds its leaf by its
// certificate's fingerprint. It can never authenticate a request.
//
// An organisation that moved to a new archive key (docs/design/archive.md,
// "Rotation") has a chain: the current key, whose Previous is the key it
// succeeded, and so on back to the first. Groups may keep a previous key
// until their next commit replaces it with the current one.
type Archive struct {
	Statement    []byte   // the ceremony's statement; its SHA-256 is what invitations pin
	Endorsements [][]byte // every custodian's endorsement of it
	KeyPackage   []byte   // the archive's KeyPackage, MLSMessage-wrapped
	// Successions are the previous key's custodians' endorsements of
	// Statement as its successor; none for the organisation's first key.
	Successions [][]byte
	// Previous is the key this one succeeds; nil for the first.
	Previous *Archive
	// Pending names the keys in the data folder that succeed this one but
	// that no previous custodian has yet endorsed as its successor, so
	// this one is still current (LoadArchive).
	Pending []string
}

// ErrNoArchive reports that the organisation has no archive installed.
var ErrNoArchive = fmt.Errorf("no archive: %w", candor.ErrNotFound)

// archiveUser is the reserved user id the archive's devices belong to.
const archiveUser = candor.UserID(pki.ArchiveName)

// ArchiveDevice is the directory's device id for the archive whose
// certificate is der: one per archive key. The Welcomes queued for it in
// the store are where a replay of each group starts.
func ArchiveDevice(der []byte) candor.DeviceID {
	return candor.DeviceID("archive-" + hex.EncodeToString(fingerprint(der)[:8]))
}

// archiveKey is one installed archive key.
type archiveKey struct {
	hash        [sha256.Size]byte // of the statement
	device      candor.DeviceID
	fingerprint []byte // of the archive's certificate, as leaves carry it
	key         string // the archive key's name, from its certificate
}

// archiveState is the installed archive: the current key, and the keys
// it succeeded, which groups may hold until they replace them.
type archiveState struct {
	archiveKey              // the current key: what invitations pin and new groups add
	previous   []archiveKey // newest first
	published  api.Archive
}

// keys returns every installed key, the current one first.
func (a *archiveState) keys() []*archiveKey {
	out := []*archiveKey{&a.archiveKey}
	for i := range a.previous {
		out = append(out, &a.previous[i])
	}
	return out
}

// keyOf returns the installed key whose device is d, or nil.
func (a *archiveState) keyOf(d candor.DeviceID) *archiveKey {
	for _, k := range a.keys() {
		if k.device == d {
			return k
		}
	}
	return nil
}

// installArchive installs every key of a's chain and publishes the chain.
func (s *Server) installArchive(ctx context.Context, a *Archive) (*archiveState, error) {
	cur, err := s.installKey(ctx, a)
	if err != nil {
		return nil, err
	}
	st := &archiveState{archiveKey: *cur, published: publishedChain(a)}
	seen := map[[sha256.Size]byte]bool{cur.hash: true}
	for p := a.Previous; p != nil; p = p.Previous {
		if h := sha256.Sum256(p.Statement); seen[h] {
			return nil, fmt.Errorf("server: archive statement %x appears twice in the chain: %w", h, candor.ErrInvalid)
		} else {
			seen[h] = true
		}
		// A previous key that no longer verifies (its certificate has
		// expired) is still published, since devices walk the chain
		// through it, but no group may keep it: the policy no longer
		// knows it, so the only commit it allows is one that replaces it.
		switch k, err := s.installKey(ctx, p); {
		case err == nil:
			st.previous = append(st.previous, *k)
		case errors.Is(err, candor.ErrInvalid) || errors.Is(err, candor.ErrPermission):
			s.log.Warn("a previous archive key no longer verifies; groups that hold it must replace it", keyErr, err.Error())
		default:
			return nil, err
		}
	}
	for _, name := range a.Pending {
		s.log.Warn("archive key not yet endorsed as the successor of the current one; not using it", keyArchiveKey, name)
	}
	return st, nil
}

// publishedChain is what GET /v1/archive serves for a: the current key
// with its endorsements and successions, and every key before it, newest
// first, each with its own.
func publishedChain(a *Archive) api.Archive {
	pub := api.Archive{Statement: a.Statement, Endorsements: nonNil(a.Endorsements), Successions: a.Successions}
	for p := a.Previous; p != nil; p = p.Previous {
		pub.Previous = append(pub.Previous, api.ArchiveKey{
			Statement: p.Statement, Endorsements: nonNil(p.Endorsements), Successions: p.Successions,
		})
	}
	return pub
}

func nonNil(b [][]byte) [][]byte {
	if b == nil {
		return [][]byte{}
	}
	return b
}

// installKey checks one archive key, valid now, and records its device
// and KeyPackage in the store, once: installing the same key again changes
// nothing.
func (s *Server) installKey(ctx context.Context, a *Archive) (*archiveKey, error) {
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
	k := &archiveKey{hash: sha256.Sum256(a.Statement), device: ArchiveDevice(cert.Raw), fingerprint: fp, key: arch.Key}
	switch d, err := s.store.Device(ctx, k.device); {
	case err == nil:
		if !bytes.Equal(d.Fingerprint, fp) || d.User != archiveUser {
			return nil, fmt.Errorf("server: device %s is not this archive: %w", k.device, candor.ErrConflict)
		}
		return k, nil
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
	dev := store.Device{ID: k.device, User: archiveUser, Name: "archive " + arch.Key, Certificate: cert.Raw, Fingerprint: fp, EnrolledAt: now}
	if err := s.store.Enrol(ctx, id, hash[:], now, dev); err != nil {
		return nil, fmt.Errorf("server: installing the archive: %w", err)
	}
	kp := store.KeyPackage{Ref: info.Ref, Device: k.device, Data: a.KeyPackage, LastResort: true, Added: now}
	if err := s.store.AddKeyPackages(ctx, k.device, nil, &kp); err != nil {
		return nil, fmt.Errorf("server: installing the archive's KeyPackage: %w", err)
	}
	s.log.Info("archive installed", keyDevice, string(k.device), keyArchiveKey, arch.Key)
	return k, nil
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
// member list after a commit holds exactly one archive key, so no group
// ever has a member the record does not see, and none can drop it. That
// key is the current one, or a previous one the group held before the
// commit (before): a previous key may stay until a commit replaces it,
// never join. So a commit may remove a previous key's leaf only when it
// adds the current key's.
func (s *Server) requireArchive(devices, before []candor.DeviceID) error {
	if s.archive == nil {
		return fmt.Errorf("the organisation has no archive yet: %w", errPolicy)
	}
	var held []candor.DeviceID
	for _, d := range devices {
		if s.archive.keyOf(d) != nil {
			held = append(held, d)
		}
	}
	switch {
	case len(held) == 0:
		return fmt.Errorf("the organisation's archive is not a member: %w", errPolicy)
	case len(held) > 1:
		return fmt.Errorf("%d archive keys are members, not one: %w", len(held), errPolicy)
	case held[0] != s.archive.device && !slices.Contains(before, held[0]):
		return fmt.Errorf("archive key %s is no longer current; only archive key %s may join: %w",
			s.archive.keyOf(held[0]).key, s.archive.key, errPolicy)
	}
	return nil
}

// hasArchive reports whether the member devices include an installed
// archive key, current or previous.
func (s *Server) hasArchive(devices []candor.DeviceID) bool {
	if s.archive == nil {
		return false
	}
	for _, d := range devices {
		if s.archive.keyOf(d) != nil {
			return true
		}
	}
	return false
}

// archiveWelcomes returns the Welcomes every installed archive key got in
// group id, in log order: each is a point a replay can start from, with
// that key's custodians.
func (s *Server) archiveWelcomes(ctx context.Context, id candor.GroupID) ([]store.WelcomeRef, error) {
	var out []store.WelcomeRef
	for _, k := range s.archive.keys() {
		ws, err := s.store.WelcomeSeqs(ctx, k.device, id)
		if err != nil {
			return nil, err
		}
		out = append(out, ws...)
	}
	slices.SortFunc(out, func(a, b store.WelcomeRef) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}
