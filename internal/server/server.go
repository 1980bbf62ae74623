// Package server is candor's delivery service: enrolment of devices under
// the organisation's CA, the key directory of their KeyPackages, one
// ordered, append-only log of MLS messages (RFC 9420 §6) per group, live
// delivery of those logs to member devices, and candor's membership policy,
// which it enforces by following every group's member list from its
// PublicMessage handshakes (mlsx.Roster).
//
// The wire protocol is package api, described for implementers in
// docs/protocol.md; the decisions are in docs/design/server.md. The server
// never sees message content: application messages reach it encrypted, and
// nothing it stores or logs decrypts one. It never imports the archive's or
// the custodians' code.
package server

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"candor"
	"candor/api"
	"candor/internal/pki"
	"candor/internal/store"
)

// CA is the organisation's device certificate authority as the server uses
// it: to issue enrolled devices their certificates, and as the root of every
// client certificate it accepts. *pki.CA implements it; so does the CA that
// Open loads from a data folder. Implementations must be safe for
// concurrent use.
type CA interface {
	// Certificate returns the CA's own certificate.
	Certificate() *x509.Certificate
	// Issue certifies pub as device of user: subject CN = user, OU =
	// device, extended key usage client authentication.
	Issue(user candor.UserID, device candor.DeviceID, pub *ecdsa.PublicKey, now time.Time) ([]byte, error)
	// VerifyArchive checks that der is the CA's certificate of an
	// organisation archive, valid at now.
	VerifyArchive(der []byte, now time.Time) (pki.Archive, error)
}

// Config configures a Server.
type Config struct {
	// Store is the server's durable state. Required.
	Store store.Store
	// CA issues device certificates at enrolment and is the only root the
	// server accepts client certificates from. Required: it must hold the
	// CA's private key.
	CA CA
	// Sender is the private key (ECDSA P-256) of the server's MLS external
	// sender, named at index 0 of every group's external_senders extension;
	// Revoke signs Remove proposals with it. Required.
	Sender *ecdsa.PrivateKey
	// SenderCert is the DER certificate, issued by CA, that certifies
	// Sender: the credential devices put in external_senders. Required.
	SenderCert []byte
	// Logger receives the server's logs. Nil discards them.
	Logger *slog.Logger
	// Now tells the time. Nil means time.Now.
	Now func() time.Time
	// Rand is the source of device, invitation and Welcome ids and of
	// invitation secrets. Nil means crypto/rand.Reader.
	Rand io.Reader
	// Archive is the organisation's archive, made by the custody
	// ceremony. Without one the server runs, but refuses invitations and
	// every commit: no group may exist without the archive.
	Archive *Archive
	// Policy is checked, after the built-in check, against the member list
	// every commit leads to. Nil means the built-in check alone.
	Policy Policy
	// StreamBuffer is how many notifications a live stream may fall behind
	// before the server closes it (the device reconnects and catches up
	// from its cursor). Zero means 256.
	StreamBuffer int
	// Access is the access transparency log the server publishes (GET
	// /v1/access/...). Nil means none: those endpoints answer not_found.
	Access *AccessLog
	// Journal is the journal-heads log the server appends every group's
	// head to and publishes (GET /v1/journal/...). Nil means none: those
	// endpoints answer not_found. A log serves one server, which appends
	// until its context is done or the log is closed.
	Journal *JournalLog
	// JournalInterval is how often the heads of the groups whose head
	// moved are appended to Journal, in one batch: an entry is covered by
	// a signed checkpoint within this long of its append. Zero means
	// DefaultJournalInterval.
	JournalInterval time.Duration
	// AnchorInterval is how long a group in use may go without giving
	// the archive a fresh Welcome, a replay anchor (anchor.go). Zero
	// means DefaultAnchorInterval; negative, never.
	AnchorInterval time.Duration
	// Retention is the organisation's retention period: Retain deletes a
	// group's history once an anchor older than the period follows it,
	// unless a legal hold covers the group. Zero keeps everything. A
	// period needs Access, where every deletion is logged first.
	Retention time.Duration
}

// Server is candor's delivery server. It is safe for concurrent use.
type Server struct {
	life       context.Context // bounds live streams
	store      store.Store
	ca         CA
	caPool     *x509.CertPool
	caFP       [sha256.Size]byte
	sender     *ecdsa.PrivateKey
	senderCert []byte
	log        *slog.Logger
	now        func() time.Time
	rand       io.Reader
	policy     Policy
	locks      groupLocks
	hub        *hub
	archive    *archiveState // nil: none installed
	mux        *http.ServeMux
	access     *AccessLog
	journal    *JournalLog

	anchorInterval time.Duration
	retention      time.Duration
}

// New checks cfg and returns a server. ctx bounds the server's life: when
// it is done, live streams are closed. New does no I/O.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.CA == nil || cfg.CA.Certificate() == nil {
		return nil, fmt.Errorf("server: a Store and a CA are required: %w", candor.ErrInvalid)
	}
	if cfg.Sender == nil || cfg.Sender.Curve != elliptic.P256() {
		return nil, fmt.Errorf("server: the external sender key must be ECDSA P-256: %w", candor.ErrInvalid)
	}
	senderCert, err := x509.ParseCertificate(cfg.SenderCert)
	if err != nil {
		return nil, fmt.Errorf("server: external sender certificate: %w: %v", candor.ErrInvalid, err)
	}
	if pub, ok := senderCert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&cfg.Sender.PublicKey) {
		return nil, fmt.Errorf("server: the external sender certificate does not certify its key: %w", candor.ErrInvalid)
	}
	if err := senderCert.CheckSignatureFrom(cfg.CA.Certificate()); err != nil {
		return nil, fmt.Errorf("server: the external sender certificate is not from the CA: %w", candor.ErrInvalid)
	}
	s := &Server{
		life:       ctx,
		store:      cfg.Store,
		ca:         cfg.CA,
		caPool:     x509.NewCertPool(),
		caFP:       sha256.Sum256(cfg.CA.Certificate().Raw),
		sender:     cfg.Sender,
		senderCert: cfg.SenderCert,
		log:        cfg.Logger,
		now:        cfg.Now,
		rand:       cfg.Rand,
		policy:     cfg.Policy,
		access:     cfg.Access,
		journal:    cfg.Journal,

		anchorInterval: cfg.AnchorInterval,
		retention:      cfg.Retention,
	}
	if s.retention > 0 && s.access == nil {
		return nil, fmt.Errorf("server: a retention period needs the access log, where deletions are logged: %w", candor.ErrInvalid)
	}
	if s.retention < 0 || s.retention%time.Second != 0 {
		return nil, fmt.Errorf("server: the retention period must be a positive whole number of seconds, or zero: %w", candor.ErrInvalid)
	}
	if s.anchorInterval == 0 {
		s.anchorInterval = DefaultAnchorInterval
	}
	s.caPool.AddCert(cfg.CA.Certificate())
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	buf := cfg.StreamBuffer
	if buf <= 0 {
		buf = 256
	}
	s.hub = newHub(buf)
	if cfg.Archive != nil {
		if s.archive, err = s.installArchive(ctx, cfg.Archive); err != nil {
			return nil, err
		}
	}
	s.routes()
	if s.journal != nil {
		interval := cfg.JournalInterval
		if interval <= 0 {
			interval = DefaultJournalInterval
		}
		if err := s.journal.start(ctx, s.store, interval, s.log); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Handler returns the HTTP handler of every endpoint in package api.
func (s *Server) Handler() http.Handler { return s.mux }

// TLSConfig returns the configuration for serving with cert, the server's
// certificate (issued by the CA): TLS 1.3 only, HTTP/1.1 (the live stream
// is a WebSocket), and client certificates verified against the CA when
// given. Enrolment needs none; every other endpoint refuses a request
// without one.
func (s *Server) TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.caPool,
		NextProtos:   []string{"http/1.1"},
	}
}

// CAFingerprint returns the SHA-256 of the CA certificate's DER, as
// invitation codes carry it.
func (s *Server) CAFingerprint() []byte { return s.caFP[:] }

// randomID returns n random bytes in hex.
func (s *Server) randomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("server: randomness: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newDeviceID returns a new device id: 16 hex characters.
func (s *Server) newDeviceID() (candor.DeviceID, error) {
	id, err := s.randomID(8)
	return candor.DeviceID(id), err
}

// fingerprint is the SHA-256 of a certificate's DER, by which devices are
// found.
func fingerprint(der []byte) []byte {
	sum := sha256.Sum256(der)
	return sum[:]
}

// signatureKey returns the MLS encoding of an ECDSA P-256 public key (the
// uncompressed point), as leaves carry it.
func signatureKey(pub *ecdsa.PublicKey) ([]byte, error) {
	k, err := pub.ECDH()
	if err != nil {
		return nil, err
	}
	if k.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("key is not P-256: %w", candor.ErrInvalid)
	}
	return k.Bytes(), nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	route := func(method, path string, h http.Handler) {
		m.Handle(method+" "+path, h)
	}
	route("POST", api.PathEnrol, s.public(s.handleEnrol))
	route("GET", api.PathMe, s.device(s.handleMe))
	route("GET", api.PathDevices, s.device(s.handleDevices))
	route("DELETE", api.PathDevice, s.device(s.handleRevokeDevice))
	route("POST", api.PathKeyPackages, s.device(s.handleUploadKeyPackages))
	route("GET", api.PathKeyPackages, s.device(s.handleCountKeyPackages))
	route("POST", api.PathClaim, s.device(s.handleClaim))
	route("POST", api.PathGroups, s.device(s.handleCreateGroup))
	route("GET", api.PathGroups, s.device(s.handleListGroups))
	route("GET", api.PathGroup, s.device(s.handleGroup))
	route("POST", api.PathMessages, s.device(s.handleSend))
	route("GET", api.PathMessages, s.device(s.handleLog))
	route("PUT", api.PathCursor, s.device(s.handleCursor))
	route("POST", api.PathLeave, s.device(s.handleLeave))
	route("GET", api.PathWelcomes, s.device(s.handleWelcomes))
	route("DELETE", api.PathWelcome, s.device(s.handleDeleteWelcome))
	route("GET", api.PathStream, s.device(s.handleStream))
	route("GET", api.PathArchive, s.device(s.handleArchive))
	route("GET", api.PathAccessKey, s.device(s.handleAccessKey))
	route("GET", api.PathAccessCheckpoint, s.device(s.handleAccessCheckpoint))
	route("GET", api.PathAccessRecords, s.device(s.handleAccessRecords))
	route("GET", api.PathJournalKey, s.device(s.handleJournalKey))
	route("GET", api.PathJournalCheckpoint, s.device(s.handleJournalCheckpoint))
	route("GET", api.PathJournalHeads, s.device(s.handleJournalHead))

	// Every known path with another method, and every unknown path, gets
	// an error body from the catalogue rather than the mux's plain text.
	allowed := map[string][]string{}
	for _, p := range []struct{ method, path string }{
		{"POST", api.PathEnrol}, {"GET", api.PathMe}, {"GET", api.PathDevices}, {"DELETE", api.PathDevice},
		{"POST", api.PathKeyPackages}, {"GET", api.PathKeyPackages}, {"POST", api.PathClaim},
		{"POST", api.PathGroups}, {"GET", api.PathGroups}, {"GET", api.PathGroup},
		{"POST", api.PathMessages}, {"GET", api.PathMessages}, {"PUT", api.PathCursor}, {"POST", api.PathLeave},
		{"GET", api.PathWelcomes}, {"DELETE", api.PathWelcome}, {"GET", api.PathStream}, {"GET", api.PathArchive},
		{"GET", api.PathAccessKey}, {"GET", api.PathAccessCheckpoint}, {"GET", api.PathAccessRecords},
		{"GET", api.PathJournalKey}, {"GET", api.PathJournalCheckpoint}, {"GET", api.PathJournalHeads},
	} {
		allowed[p.path] = append(allowed[p.path], p.method)
	}
	for path, methods := range allowed {
		m.Handle(path, s.public(func(w http.ResponseWriter, r *http.Request) error {
			for _, method := range methods {
				w.Header().Add("Allow", method)
			}
			return fail(api.CodeMethodNotAllowed, "method not allowed here", nil)
		}))
	}
	m.Handle("/", s.public(func(w http.ResponseWriter, r *http.Request) error {
		return fail(api.CodeNotFound, "no such endpoint", nil)
	}))
	s.mux = m
}
