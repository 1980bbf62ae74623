package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"candor"
	"candor/api"
	"candor/internal/ceremony"
	"candor/internal/custody"
	"candor/internal/pki"
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
	// Archive is the organisation's archive as its rehearsed ceremony
	// made it, and Custodians the custodians' keys, which in a real
	// organisation no single person ever holds.
	Archive    *ceremony.Statement
	Custodians []*custody.CustodianKey

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

// Custodians of the archive of the organisations StartServer makes, and
// how many of them open it.
var (
	CustodianNames = []string{"Dana Reyes, Compliance", "Eli Okafor, Legal", "Fay Lindqvist, Internal Audit"}
	CustodyK       = 2
)

// StartServer creates an organisation named org in dir (which must not hold
// one: its CA, TLS and external-sender keys, its database), holds its
// archive's custody ceremony with CustodianNames in this process, and
// serves it. Close stops it.
func StartServer(ctx context.Context, dir, org string) (*Server, error) {
	if err := server.Init(ctx, dir, server.InitOptions{Org: org, Hosts: []string{"127.0.0.1"}, OpenStore: openStore}); err != nil {
		return nil, err
	}
	data, err := server.Open(ctx, dir, openStore)
	if err != nil {
		return nil, err
	}
	st, keys, err := rehearseCeremony(dir, data)
	if err != nil {
		return nil, errors.Join(err, data.Close())
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
		Addr:       ln.Addr().String(),
		Archive:    st,
		Custodians: keys,
		srv:        srv,
		data:       data,
		hs:         server.NewHTTPServer(srv.Handler(), srv.TLSConfig(data.TLSCert), nil),
		cancel:     cancel,
		served:     make(chan error, 1),
	}
	go func() { s.served <- s.hs.ServeTLS(ln, "", "") }()
	return s, nil
}

// rehearseCeremony makes the archive of the organisation in dir, opened as
// data, and installs it as cmd/candor-custody would.
func rehearseCeremony(dir string, data *server.DataDir) (*ceremony.Statement, []*custody.CustodianKey, error) {
	ca, ok := data.CA.(*pki.CA)
	if !ok {
		return nil, nil, fmt.Errorf("demo: the data folder's CA is a %T", data.CA)
	}
	st, keys, es, err := ceremony.Rehearse(ceremony.Config{CA: ca, KeyID: "1", K: CustodyK}, CustodianNames)
	if err != nil {
		return nil, nil, err
	}
	endorsements := map[string][]byte{}
	for i, e := range es {
		endorsements[fmt.Sprint(i+1)] = e.Bytes()
	}
	if err := server.PublishArchive(dir, st.KeyID(), st.Bytes(), st.KeyPackage(), endorsements); err != nil {
		return nil, nil, err
	}
	if data.Archive, err = server.LoadArchive(dir); err != nil {
		return nil, nil, err
	}
	return st, keys, nil
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
