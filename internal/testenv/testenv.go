// Package testenv runs a real candor server and real clients in one
// process, for end-to-end tests: the server's data folder made by
// server.Init (CA, TLS and external-sender certificates, a SQLite store) in
// a temporary folder, with an archive from a real custody ceremony (three
// custodians, two of whom open it), real TLS on 127.0.0.1 with a port the
// system picks, and clients enrolled from real invitation codes into
// temporary profile folders. Nothing is mocked between them.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"candor"
	"candor/api"
	"candor/client"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/pki"
	"candor/internal/server"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// Env is one organisation's server, running.
type Env struct {
	// Dir is the server's data folder (certificates, keys, candor.db).
	Dir string
	// Addr is the server's address, 127.0.0.1:port.
	Addr string
	// Server is the running server.
	Server *server.Server
	// SenderCert is the server's external-sender certificate (DER).
	SenderCert []byte
	// Logger is given to the server and to the clients Enrol makes: it
	// discards unless CANDOR_TEST_LOG is set, then writes to stderr.
	Logger *slog.Logger
	// Archive is the organisation's archive: what its ceremony published
	// and the custodians' keys (ceremonytest.Threshold of them open it).
	Archive ceremonytest.Archive

	data      *server.DataDir
	ln        *trackingListener
	hs        *http.Server
	serverLog *lockedBuffer
	// configure and logger make the server's configuration from the data
	// folder, again at each Restart.
	configure []func(*server.Config)
	logger    *slog.Logger
	handler   *swapHandler
	stop      context.CancelFunc // ends the running server's background work
}

// swapHandler serves with the running server's handler, which Restart
// replaces while the listener stays.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func openStore(ctx context.Context, path string) (store.Store, error) {
	return sqlstore.Open(ctx, path)
}

// New starts a server for the test; it stops when the test ends. Each
// configure function may change the server's configuration before it
// starts.
func New(t *testing.T, configure ...func(*server.Config)) *Env {
	t.Helper()
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("CANDOR_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	dir := filepath.Join(t.TempDir(), "candord")
	if err := server.Init(ctx, dir, server.InitOptions{Org: "Example Bank", Hosts: []string{"127.0.0.1"}, OpenStore: openStore}); err != nil {
		t.Fatalf("testenv: init: %v", err)
	}
	data, err := server.Open(ctx, dir, openStore)
	if err != nil {
		t.Fatalf("testenv: open: %v", err)
	}
	archive := holdCeremony(t, dir, data)
	// The server logs at debug level into a buffer the test can search, as
	// well as wherever the test's logger goes.
	serverLog := &lockedBuffer{}
	serverLogger := slog.New(teeHandler{
		slog.NewJSONHandler(serverLog, &slog.HandlerOptions{Level: slog.LevelDebug}),
		logger.Handler(),
	}).With("side", "server")
	srv, stop, err := startServer(ctx, data, serverLogger, configure)
	if err != nil {
		t.Fatalf("testenv: server: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: listen: %v", err)
	}
	ln := &trackingListener{Listener: l, conns: map[net.Conn]bool{}}
	// net/http's own messages are discarded: tests make clients refuse
	// handshakes on purpose.
	handler := &swapHandler{}
	handler.set(srv.Handler())
	hs := server.NewHTTPServer(handler, srv.TLSConfig(data.TLSCert), nil)
	e := &Env{
		Dir:        dir,
		Addr:       l.Addr().String(),
		Server:     srv,
		SenderCert: data.SenderCert,
		Logger:     logger,
		Archive:    archive,
		serverLog:  serverLog,
		data:       data,
		ln:         ln,
		hs:         hs,
		configure:  configure,
		logger:     serverLogger,
		handler:    handler,
		stop:       stop,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("testenv: serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		// t.Context is done by now, which ends the live streams.
		_ = hs.Close()
		ln.dropAll()
		<-done
		e.stop()
		if err := e.data.Close(); err != nil {
			t.Errorf("testenv: closing the store: %v", err)
		}
	})
	return e
}

// holdCeremony makes the organisation's archive in the data folder dir,
// opened as data, as the custodians and cmd/candor-custody do.
func holdCeremony(t *testing.T, dir string, data *server.DataDir) ceremonytest.Archive {
	t.Helper()
	ca, ok := data.CA.(*pki.CA)
	if !ok {
		t.Fatalf("testenv: the data folder's CA is a %T", data.CA)
	}
	a := ceremonytest.Hold(t, ca, time.Now())
	if err := server.PublishArchive(dir, a.Statement.KeyID(), a.Statement.Bytes(), a.Statement.KeyPackage(), a.Endorsements); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var err error
	if data.Archive, err = server.LoadArchive(dir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return a
}

// startServer makes a server from the data folder's configuration, with
// logger and the test's configure functions applied; stop ends its
// background work.
func startServer(ctx context.Context, data *server.DataDir, logger *slog.Logger, configure []func(*server.Config)) (*server.Server, context.CancelFunc, error) {
	cfg := data.Config()
	cfg.Logger = logger
	for _, f := range configure {
		f(&cfg)
	}
	ctx, stop := context.WithCancel(ctx)
	srv, err := server.New(ctx, cfg)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return srv, stop, nil
}

// Restart stops the server, closes its data folder, and starts it again
// on the same folder and address, as an operator restarting candord does
// (after a custody ceremony, say: the archive is read from the folder
// again). Every connection is dropped; clients reconnect, and meanwhile
// are told the server is unavailable.
func (e *Env) Restart(t *testing.T) {
	t.Helper()
	e.handler.set(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "restarting", http.StatusServiceUnavailable)
	}))
	e.ln.dropAll()
	e.stop()
	if err := e.data.Close(); err != nil {
		t.Fatalf("testenv: restart: closing the data folder: %v", err)
	}
	data, err := server.Open(t.Context(), e.Dir, openStore)
	if err != nil {
		t.Fatalf("testenv: restart: %v", err)
	}
	e.data = data
	srv, stop, err := startServer(t.Context(), data, e.logger, e.configure)
	if err != nil {
		t.Fatalf("testenv: restart: %v", err)
	}
	e.Server, e.stop = srv, stop
	e.handler.set(srv.Handler())
}

// Succeed holds a second custody ceremony, for a new archive key of
// generation gen with custodians of its own, has the first successions
// custodians of prev (ceremonytest.Threshold make it valid) endorse it as
// prev's successor, and writes it into the data folder as
// cmd/candor-custody does. The running server does not see it until
// Restart.
func (e *Env) Succeed(t *testing.T, prev ceremonytest.Archive, gen, successions int) ceremonytest.Archive {
	t.Helper()
	ca, ok := e.data.CA.(*pki.CA)
	if !ok {
		t.Fatalf("testenv: the data folder's CA is a %T", e.data.CA)
	}
	next := ceremonytest.Succeed(t, ca, time.Now(), fmt.Sprintf("%s-%d", ceremonytest.KeyID, gen), prev, successions)
	st := next.Statement
	if err := server.PublishSuccessor(e.Dir, st.KeyID(), st.Bytes(), st.KeyPackage(), next.Endorsements, prev.Statement.Bytes(), next.Successions); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return next
}

// Invite makes an invitation code for user, valid for an hour.
func (e *Env) Invite(t *testing.T, user candor.UserID) string {
	t.Helper()
	code, err := e.Server.Invite(t.Context(), user, time.Hour, e.Addr)
	if err != nil {
		t.Fatalf("testenv: invite %s: %v", user, err)
	}
	return api.EncodeInvitation(code)
}

// ClientConfig is the client configuration Enrol uses: the Env's logger
// and short reconnection delays.
func (e *Env) ClientConfig(user candor.UserID, name string) client.Config {
	return client.Config{
		Logger:       e.Logger.With("side", string(user)+"/"+name),
		MinBackoff:   20 * time.Millisecond,
		MaxBackoff:   500 * time.Millisecond,
		PingInterval: 5 * time.Second,
	}
}

// Enrol invites user and enrols a device named name into a new profile
// folder; the client is closed when the test ends.
func (e *Env) Enrol(t *testing.T, user candor.UserID, name string) *client.Client {
	t.Helper()
	home := filepath.Join(t.TempDir(), string(user)+"-"+name)
	c, err := client.EnrolWith(t.Context(), home, e.Invite(t, user), name, e.ClientConfig(user, name))
	if err != nil {
		t.Fatalf("testenv: enrolling %s/%s: %v", user, name, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("testenv: closing %s/%s: %v", user, name, err)
		}
	})
	return c
}

// Revoke revokes a device, as `candord revoke` does: its requests are
// refused from now on, and the server proposes its removal from each of
// its groups.
func (e *Env) Revoke(t *testing.T, device candor.DeviceID) {
	t.Helper()
	if err := e.Server.Revoke(t.Context(), device); err != nil {
		t.Fatalf("testenv: revoking %s: %v", device, err)
	}
}

// DropConnections closes every connection the server holds, live streams
// included, as a network failure would; the server keeps listening.
func (e *Env) DropConnections() { e.ln.dropAll() }

// trackingListener remembers its connections so that they can be dropped.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = true
	l.mu.Unlock()
	return tc, nil
}

func (l *trackingListener) dropAll() {
	l.mu.Lock()
	conns := l.conns
	l.conns = map[net.Conn]bool{}
	l.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// Store is the server's store, for tests that look at what it keeps.
func (e *Env) Store() store.Store { return e.data.Store }

// ServerLog returns everything the server has logged so far, at every
// level, as JSON lines.
func (e *Env) ServerLog() []byte { return e.serverLog.bytes() }

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// teeHandler sends each record to two handlers.
type teeHandler [2]slog.Handler

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h[0].Enabled(ctx, l) || h[1].Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, x := range h {
		if x.Enabled(ctx, r.Level) {
			errs = append(errs, x.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h[0].WithAttrs(as), h[1].WithAttrs(as)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h[0].WithGroup(name), h[1].WithGroup(name)}
}
