package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"candor"
	"candor/internal/devstore"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

// Log attribute keys.
const (
	keyGroup   = "group"
	keySeq     = "seq"
	keyErr     = "err"
	keyKind    = "kind"
	keyDelay   = "delay"
	keyCount   = "count"
	keyDevice  = "device"
	keyWelcome = "welcome"
)

// KeyPackage stock: the device keeps keyPackageBatch one-time KeyPackages
// in the server's directory and tops it up when fewer than keyPackageLow
// are left.
const (
	keyPackageBatch = 20
	keyPackageLow   = 10
)

// maxAttempts bounds how often a send or a commit is retried after losing a
// race with another member.
const maxAttempts = 5

// Config configures a Client. The zero value is ready to use.
type Config struct {
	// Logger receives diagnostics (never message content or keys); nil
	// discards them.
	Logger *slog.Logger
	// Now tells the time; nil means time.Now.
	Now func() time.Time
	// MinBackoff and MaxBackoff bound Run's delay between reconnections,
	// which doubles from MinBackoff up to MaxBackoff, with jitter. Zero
	// means 250ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how often Run checks that the live stream is alive;
	// zero means 30s.
	PingInterval time.Duration
	// Passphrase protects the device's storage key, under which its local
	// state is encrypted; empty means the CANDOR_PASSPHRASE environment
	// variable. Enrolling with a passphrase keeps the key wrapped under
	// it; without one, the key goes to the OS keyring where one answers,
	// else to a key file in the profile folder. Open uses whatever
	// enrolment chose, and needs the same passphrase.
	Passphrase Passphrase
}

func (cfg Config) withDefaults() Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	return cfg
}

// Client is one enrolled device. It is safe for concurrent use; Close it
// when done, after the context of Run is cancelled and Run has returned.
type Client struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	home  string
	id    *identity
	me    pki.Device
	roots *x509.CertPool
	store *devstore.Store
	dev   *mlsx.Device
	tr    *transport

	events chan Event

	mu     sync.Mutex
	locks  map[candor.GroupID]chan struct{} // one per group: processing, sending, committing
	groups map[candor.GroupID]*mlsx.Group   // loaded MLS groups
	stream *streamConn                      // Run's live stream, for acks; nil when down

	welcomes welcomes
	arch     archiveCache
	topUpMu  sync.Mutex
	running  atomic.Bool
	closed   atomic.Bool
}

// Open opens the device enrolled in the profile folder home. It does no
// network I/O: history can be read offline. A wrong passphrase is
// ErrWrongKey, a missing one ErrPassphraseNeeded.
func Open(ctx context.Context, home string, cfg Config) (*Client, error) {
	id, err := loadIdentity(ctx, home, cfg.withDefaults())
	if err != nil {
		return nil, err
	}
	return open(ctx, home, id, cfg)
}

func open(ctx context.Context, home string, id *identity, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	me, err := pki.DeviceOf(id.cert)
	if err != nil {
		return nil, err
	}
	if me.User != id.User || me.Device != id.Device {
		return nil, fmt.Errorf("profile names %s/%s, certificate %s: %w", id.User, id.Device, me, candor.ErrInvalid)
	}
	tr, err := newTransport(id.Server, deviceTLS(id, ""))
	if err != nil {
		return nil, err
	}
	store, err := devstore.Open(ctx, filepath.Join(home, fileDatabase), id.storage)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(id.ca)
	c := &Client{
		cfg:    cfg,
		log:    cfg.Logger.With(keyDevice, me.String()),
		now:    cfg.Now,
		home:   home,
		id:     id,
		me:     me,
		roots:  roots,
		store:  store,
		tr:     tr,
		events: make(chan Event, eventBuffer),
		locks:  make(map[candor.GroupID]chan struct{}),
		groups: make(map[candor.GroupID]*mlsx.Group),
	}
	c.welcomes.done = make(map[string]bool)
	c.dev, err = mlsx.NewDevice(ctx, mlsx.Config{
		Identity:  mlsx.Identity{Key: id.key, Chain: [][]byte{id.cert.Raw}},
		Store:     store,
		Validator: mlsx.ValidatorFunc(c.validateMember),
		Now:       cfg.Now,
	})
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	return c, nil
}

// Close releases the client's database and connections.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.tr.close()
	return c.store.Close()
}

// User returns the person this device belongs to.
func (c *Client) User() candor.UserID { return c.me.User }

// Device returns this device's id.
func (c *Client) Device() candor.DeviceID { return c.me.Device }

// Server returns the server's address (host:port).
func (c *Client) Server() string { return c.id.Server }

// Home returns the profile folder.
func (c *Client) Home() string { return c.home }

// validateMember is the device's rule for who may be a member of its
// groups: a device certificate under the organisation's CA, valid now, or
// the archive this device pinned (or one it moved from, which a group
// keeps until its next commit replaces it). Any other archive is refused:
// there is one record, and the custodians' endorsements say which. An
// archive key this device does not know yet sends it to the server once,
// in case the organisation has just moved to it.
func (c *Client) validateMember(ctx context.Context, _ candor.GroupID, m mlsx.Member) error {
	if cert, err := m.Credential.Certificate(); err == nil {
		if _, err := pki.ArchiveOf(cert); err == nil {
			known := func(p *pinnedArchive) bool { return p.isArchive(m.Credential) || p.isPrevious(m.Credential) }
			p, err := c.archive(ctx)
			if err == nil && !known(p) {
				p, err = c.freshArchive(ctx)
			}
			if err != nil {
				return err
			}
			if !known(p) {
				return fmt.Errorf("an archive other than the organisation's: %w", ErrArchive)
			}
			return nil
		}
	}
	_, err := c.verifyCredential(m.Credential)
	return err
}

func (c *Client) verifyCredential(cred mlsx.Credential) (pki.Device, error) {
	if cred.Kind != mlsx.CredentialX509 || len(cred.Chain) == 0 {
		return pki.Device{}, errors.New("not a device certificate")
	}
	cert, err := x509.ParseCertificate(cred.Chain[0])
	if err != nil {
		return pki.Device{}, fmt.Errorf("certificate does not parse: %v", err)
	}
	inter := x509.NewCertPool()
	for _, der := range cred.Chain[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(ic)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:         c.roots,
		Intermediates: inter,
		CurrentTime:   c.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return pki.Device{}, fmt.Errorf("not a device of this organisation: %v", err)
	}
	return pki.DeviceOf(cert)
}

// memberOf names the device at an MLS leaf, or marks the archive (which
// validateMember has checked is the pinned one).
func memberOf(m mlsx.Member) Member {
	out := Member{Leaf: m.Leaf}
	if cert, err := m.Credential.Certificate(); err == nil {
		if d, err := pki.DeviceOf(cert); err == nil {
			out.User, out.Device = d.User, d.Device
		} else if a, err := pki.ArchiveOf(cert); err == nil {
			out.User, out.Archive, out.ArchiveKey = pki.ArchiveName, true, a.Key
		}
	}
	return out
}

func membersOf(ms []mlsx.Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, memberOf(m))
	}
	return out
}

// lockGroup takes the group's lock, which serialises everything that reads
// or moves the group's MLS state or cursor: processing its log, sending,
// committing.
func (c *Client) lockGroup(ctx context.Context, g candor.GroupID) (unlock func(), err error) {
	c.mu.Lock()
	l, ok := c.locks[g]
	if !ok {
		l = make(chan struct{}, 1)
		c.locks[g] = l
	}
	c.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// group returns the group's MLS state; the caller holds the group's lock.
// A group this device does not hold is ErrRemoved.
func (c *Client) group(ctx context.Context, gid candor.GroupID) (*mlsx.Group, error) {
	c.mu.Lock()
	g := c.groups[gid]
	c.mu.Unlock()
	if g != nil {
		return g, nil
	}
	g, err := c.dev.Group(ctx, gid)
	if errors.Is(err, mlsx.ErrGroupNotFound) {
		return nil, fmt.Errorf("conversation %s: %w", gid, ErrRemoved)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.groups[gid] = g
	c.mu.Unlock()
	return g, nil
}

func (c *Client) cacheGroup(g *mlsx.Group) {
	c.mu.Lock()
	c.groups[g.ID()] = g
	c.mu.Unlock()
}

func (c *Client) forgetGroup(gid candor.GroupID) {
	c.mu.Lock()
	delete(c.groups, gid)
	c.mu.Unlock()
}

// externalSenders are the parties outside a group allowed to propose
// changes to it: the server, which proposes the removal of revoked devices
// (RFC 9420 §12.1.8.1), at index 0 of every group's external_senders. Its
// certificate comes with enrolment and was checked against the CA.
func (c *Client) externalSenders() []mlsx.ExternalSender {
	return []mlsx.ExternalSender{{Key: c.id.sender.PublicKey.(*ecdsa.PublicKey), Chain: [][]byte{c.id.sender.Raw}}}
}
