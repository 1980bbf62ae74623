package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"candor"
	"candor/api"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
	"candor/internal/pki"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// openSQL opens the real store.
func openSQL(ctx context.Context, path string) (store.Store, error) {
	st, err := sqlstore.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// syncBuffer collects the server's logs, to check what they hold.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a real server on a real TLS listener on 127.0.0.1, over a data
// folder made by Init and the real SQLite store.
type env struct {
	t      testing.TB
	ctx    context.Context
	srv    *Server
	data   *DataDir
	addr   string // host:port
	roots  *x509.CertPool
	logs   *syncBuffer
	sender mlsx.ExternalSender
	// archive is the organisation's archive, which commit adds to every
	// group's first commit.
	archive ceremonytest.Archive
}

type envOption func(*Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	if err := Init(ctx, dir, InitOptions{Org: "Example Bank", OpenStore: openSQL}); err != nil {
		t.Fatal(err)
	}
	data, err := Open(ctx, dir, openSQL)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := data.Config()
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, o := range opts {
		o(&cfg)
	}
	now := time.Now()
	if cfg.Now != nil {
		now = cfg.Now()
	}
	archive := ceremonytest.Hold(t, data.CA.(*pki.CA), now)
	if err := PublishArchive(dir, archive.Statement.KeyID(), archive.Statement.Bytes(), archive.Statement.KeyPackage(), archive.Endorsements); err != nil {
		t.Fatal(err)
	}
	if cfg.Archive, err = LoadArchive(dir); err != nil {
		t.Fatal(err)
	}
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: srv.TLSConfig(data.TLSCert), ErrorLog: nil}
	hs.SetKeepAlivesEnabled(true)
	go func() { _ = hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		cancel()
		_ = hs.Close()
		_ = data.Close()
	})
	roots := x509.NewCertPool()
	roots.AddCert(data.CA.Certificate())
	senderCert, _ := x509.ParseCertificate(data.SenderCert)
	return &env{
		t: t, ctx: ctx, srv: srv, data: data, addr: ln.Addr().String(), roots: roots, logs: logs, archive: archive,
		sender: mlsx.ExternalSender{Key: senderCert.PublicKey.(*ecdsa.PublicKey), Chain: [][]byte{data.SenderCert}},
	}
}

// client returns an HTTP client that trusts the organisation's CA and
// presents cert, if any.
func (e *env) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// validator admits members whose certificate chains to the CA, as a
// device of this organisation does.
func (e *env) validator() mlsx.Validator {
	return mlsx.ValidatorFunc(func(ctx context.Context, _ candor.GroupID, m mlsx.Member) error {
		cert, err := m.Credential.Certificate()
		if err != nil {
			return err
		}
		_, err = cert.Verify(x509.VerifyOptions{Roots: e.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err
	})
}

// device is a real device: a P-256 key, a certificate from enrolment, an
// HTTP client presenting it, and its MLS side.
type device struct {
	e      *env
	name   string
	user   candor.UserID
	id     candor.DeviceID
	key    *ecdsa.PrivateKey
	cert   []byte
	tlsc   tls.Certificate
	http   *http.Client
	mls    *mlsx.Device
	groups map[candor.GroupID]*mlsx.Group
}

// archiveMember is the archive as a group's member list shows it, at leaf.
func (e *env) archiveMember(leaf uint32) api.Member {
	return api.Member{Leaf: leaf, User: "archive", Device: string(ArchiveDevice(e.archive.Statement.Certificate())), Archive: true}
}

// csr makes a certificate request for key.
func csr(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// enrol invites user and enrols a new device named name.
func (e *env) enrol(user candor.UserID, name string) *device {
	e.t.Helper()
	code, err := e.srv.Invite(e.ctx, user, 0, e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	var resp api.EnrolResponse
	st, apiErr := e.do(e.client(nil), "POST", api.PathEnrol, api.EnrolRequest{
		Invitation: code.ID, Secret: code.Secret, Name: name, CSR: csr(e.t, key),
	}, &resp)
	if apiErr != nil || st != http.StatusCreated {
		e.t.Fatalf("enrol %s: %d %v", user, st, apiErr)
	}
	d := &device{
		e: e, name: string(user) + "/" + name, user: user, id: candor.DeviceID(resp.Device), key: key, cert: resp.Certificate,
		tlsc:   tls.Certificate{Certificate: [][]byte{resp.Certificate}, PrivateKey: key},
		groups: make(map[candor.GroupID]*mlsx.Group),
	}
	d.http = e.client(&d.tlsc)
	d.mls, err = mlsx.NewDevice(e.ctx, mlsx.Config{
		Identity: mlsx.Identity{Key: key, Chain: [][]byte{resp.Certificate}}, Store: mlsxtest.NewStore(), Validator: e.validator(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// do sends a request with a JSON body (nil: none; []byte: sent as is) and
// decodes a 2xx answer into out, or returns the api.Error.
func (e *env) do(c *http.Client, method, path string, body, out any) (int, *api.Error) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, "https://"+e.addr+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode >= 300 {
		var ae api.Error
		if err := json.Unmarshal(raw, &ae); err != nil {
			e.t.Fatalf("%s %s: %d with a body that is no api.Error: %q", method, path, resp.StatusCode, raw)
		}
		if want := api.Status[ae.Code]; want != resp.StatusCode {
			e.t.Fatalf("%s %s: code %s with status %d, want %d", method, path, ae.Code, resp.StatusCode, want)
		}
		return resp.StatusCode, &ae
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v in %q", method, path, err, raw)
		}
	}
	return resp.StatusCode, nil
}

// call is do as d, failing the test on any error.
func (d *device) call(method, path string, body, out any) {
	d.e.t.Helper()
	if st, ae := d.e.do(d.http, method, path, body, out); ae != nil {
		d.e.t.Fatalf("%s: %s %s: %d %+v", d.name, method, path, st, ae)
	}
}

// try is do as d.
func (d *device) try(method, path string, body, out any) (int, *api.Error) {
	d.e.t.Helper()
	return d.e.do(d.http, method, path, body, out)
}

func groupPath(pattern string, id candor.GroupID) string {
	return strings.Replace(pattern, "{group}", id.String(), 1)
}

func userPath(pattern string, user candor.UserID) string {
	return strings.Replace(pattern, "{user}", string(user), 1)
}

// uploadKeyPackages uploads n one-time KeyPackages and a last-resort one.
func (d *device) uploadKeyPackages(n int, lastResort bool) api.KeyPackageCount {
	d.e.t.Helper()
	kps, err := d.mls.KeyPackages(d.e.ctx, n)
	if err != nil {
		d.e.t.Fatal(err)
	}
	req := api.UploadKeyPackages{KeyPackages: kps}
	if lastResort {
		if req.LastResort, err = d.mls.LastResortKeyPackage(d.e.ctx); err != nil {
			d.e.t.Fatal(err)
		}
	}
	var count api.KeyPackageCount
	d.call("POST", api.PathKeyPackages, req, &count)
	return count
}

// createGroup creates a group on the device and registers it.
func (d *device) createGroup(id candor.GroupID) *mlsx.Group {
	d.e.t.Helper()
	g, err := d.mls.CreateGroup(d.e.ctx, id, mlsx.GroupOptions{ExternalSenders: []mlsx.ExternalSender{d.e.sender}})
	if err != nil {
		d.e.t.Fatal(err)
	}
	var head api.GroupHead
	d.call("POST", api.PathGroups, api.CreateGroup{GroupID: []byte(id)}, &head)
	d.groups[id] = g
	return g
}

// claim claims the KeyPackages of user's devices.
func (d *device) claim(user candor.UserID) [][]byte {
	d.e.t.Helper()
	var out api.ClaimedKeyPackages
	d.call("POST", userPath(api.PathClaim, user), nil, &out)
	var kps [][]byte
	for _, kp := range out.KeyPackages {
		kps = append(kps, kp.KeyPackage)
	}
	return kps
}

// commit makes a commit in group id, sends it and confirms it. A group's
// first commit also adds the archive, as the policy requires.
func (d *device) commit(id candor.GroupID, opts mlsx.CommitOptions) (*mlsx.Commit, api.SendResponse) {
	d.e.t.Helper()
	if d.groups[id].Epoch() == 0 {
		opts.Add = append(opts.Add, d.e.archive.Statement.KeyPackage())
	}
	c, err := d.groups[id].Commit(d.e.ctx, opts)
	if err != nil {
		d.e.t.Fatalf("%s commit: %v", d.name, err)
	}
	var resp api.SendResponse
	d.call("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: c.Message, Welcome: c.Welcome}, &resp)
	if _, err := d.groups[id].Confirm(d.e.ctx); err != nil {
		d.e.t.Fatal(err)
	}
	return c, resp
}

// send encrypts text in group id and sends it.
func (d *device) send(id candor.GroupID, text string) ([]byte, api.SendResponse) {
	d.e.t.Helper()
	ct, err := d.groups[id].Encrypt(d.e.ctx, []byte(text))
	if err != nil {
		d.e.t.Fatalf("%s encrypt: %v", d.name, err)
	}
	var resp api.SendResponse
	d.call("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: ct}, &resp)
	return ct, resp
}

// joinWelcomes joins every group the device has a Welcome for, and
// acknowledges the Welcomes.
func (d *device) joinWelcomes() []*mlsx.Group {
	d.e.t.Helper()
	var list api.WelcomeList
	d.call("GET", api.PathWelcomes, nil, &list)
	var out []*mlsx.Group
	for _, w := range list.Welcomes {
		g, err := d.mls.Join(d.e.ctx, w.Welcome)
		if err != nil {
			d.e.t.Fatalf("%s join: %v", d.name, err)
		}
		d.groups[g.ID()] = g
		out = append(out, g)
		d.call("DELETE", strings.Replace(api.PathWelcome, "{id}", w.ID, 1), nil, nil)
	}
	return out
}

// catchUp reads group id's log after the device's cursor, processes every
// entry of an epoch it has reached, acknowledges them, and returns the
// plaintexts of the application messages.
func (d *device) catchUp(id candor.GroupID) []string {
	d.e.t.Helper()
	var head api.GroupHead
	d.call("GET", groupPath(api.PathGroup, id), nil, &head)
	var page api.Log
	d.call("GET", groupPath(api.PathMessages, id)+fmt.Sprintf("?after=%d", head.Cursor), nil, &page)
	var texts []string
	var last uint64
	for _, e := range page.Entries {
		last = e.Seq
		g := d.groups[id]
		if e.Sender == string(d.id) || candor.Epoch(e.Epoch) < g.Epoch() {
			continue // our own, or from before we joined
		}
		ev, err := g.Process(d.e.ctx, e.Message)
		if err != nil {
			d.e.t.Fatalf("%s processing seq %d: %v", d.name, e.Seq, err)
		}
		if ev.Kind == mlsx.EventApplication {
			texts = append(texts, string(ev.Plaintext))
		}
	}
	if last > 0 {
		d.call("PUT", groupPath(api.PathCursor, id), api.Cursor{Seq: last}, nil)
	}
	return texts
}

// wantCode checks that an answer is the api.Error with code.
func wantCode(t testing.TB, st int, ae *api.Error, code api.Code) {
	t.Helper()
	if ae == nil {
		t.Fatalf("status %d with no error, want %s", st, code)
	}
	if ae.Code != code {
		t.Fatalf("error %s (%q), want %s", ae.Code, ae.Message, code)
	}
}

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
