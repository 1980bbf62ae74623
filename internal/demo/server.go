package demo

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"candor"
	"candor/api"
	"candor/internal/server"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// Server is an organisation's candor server running in this process, on
// 127.0.0.1 with a port the system picks, over real TLS and a SQLite store
// in a folder of its own: what the demonstration talks to, and what the
// candor command's tests start for each script.
type Server struct {
	// Addr is where it listens, 127.0.0.1:port.
	Addr string

	srv    *server.Server
	data   *server.DataDir
	hs     *http.Server
	cancel context.CancelFunc
	served chan error
	once   sync.Once
	closed error
}

func openStore(ctx context.Context, path string) (store.Store, error) {
	return sqlstore.Open(ctx, path)
}

// StartServer creates an organisation named org in dir (which must not hold
// one: its CA, TLS and external-sender keys, its database) and serves it.
// Close stops it.
func StartServer(ctx context.Context, dir, org string) (*Server, error) {
	if err := server.Init(ctx, dir, server.InitOptions{Org: org, Hosts: []string{"127.0.0.1"}, OpenStore: openStore}); err != nil {
		return nil, err
	}
	data, err := server.Open(ctx, dir, openStore)
	if err != nil {
		return nil, err
	}
	// The server's life is its own, not the caller's: Close ends it.
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	srv, err := server.New(life, data.Config())
	if err != nil {
		cancel()
		return nil, errors.Join(err, data.Close())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return nil, errors.Join(err, data.Close())
	}
	s := &Server{
		Addr:   ln.Addr().String(),
		srv:    srv,
		data:   data,
		hs:     server.NewHTTPServer(srv.Handler(), srv.TLSConfig(data.TLSCert), nil),
		cancel: cancel,
		served: make(chan error, 1),
	}
	go func() { s.served <- s.hs.ServeTLS(ln, "", "") }()
	return s, nil
}

// Invite makes a one-time invitation code for user, valid for lifetime
// (zero: the protocol's default of a week).
func (s *Server) Invite(ctx context.Context, user candor.UserID, lifetime time.Duration) (string, error) {
	code, err := s.srv.Invite(ctx, user, lifetime, s.Addr)
	if err != nil {
		return "", err
	}
	return api.EncodeInvitation(code), nil
}

// Close stops serving, ends the live streams and closes the database.
// Closing again does nothing and returns the first Close's error.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		err := s.hs.Close()
		if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		s.closed = errors.Join(err, s.data.Close())
	})
	return s.closed
}
