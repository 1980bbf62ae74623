package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"candor"
	"candor/api"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/pki"
	"candor/internal/server"
)

func candord(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut, nil)
	return out.String(), err
}

// holdCeremony makes the archive of the organisation in the data folder
// dir, as its custodians would with cmd/candor-custody, which candord does
// not link.
func holdCeremony(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	data, err := server.Open(ctx, dir, openSQL)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	a := ceremonytest.Hold(t, data.CA.(*pki.CA), time.Now())
	if err := server.PublishArchive(dir, a.Statement.KeyID(), a.Statement.Bytes(), a.Statement.KeyPackage(), a.Endorsements); err != nil {
		t.Fatal(err)
	}
}

// initOrg makes an organisation in dir with candord init and its args,
// then its archive.
func initOrg(t *testing.T, dir string, args ...string) {
	t.Helper()
	if out, err := candord(t, append([]string{"init", "--data", dir, "--org", "Example Bank"}, args...)...); err != nil {
		t.Fatalf("candord init: %v\n%s", err, out)
	}
	holdCeremony(t, dir)
}

func TestInitInviteRevoke(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := candord(t, "init", "--data", dir, "--org", "Example Bank"); err != nil {
		t.Fatal(err)
	}
	if _, err := candord(t, "init", "--data", dir, "--org", "Example Bank"); !errors.Is(err, candor.ErrConflict) {
		t.Fatalf("a second init: %v, want ErrConflict", err)
	}
	// Nobody is invited before the archive exists: a device pins it.
	if _, err := candord(t, "invite", "--data", dir, "alice"); !errors.Is(err, server.ErrNoArchive) {
		t.Fatalf("inviting before the ceremony: %v, want ErrNoArchive", err)
	}
	if err := serve(context.Background(), slog.New(slog.DiscardHandler), dir, serveOptions{listen: "127.0.0.1:0"}, nil); !errors.Is(err, server.ErrNoArchive) {
		t.Fatalf("serving before the ceremony: %v, want ErrNoArchive", err)
	}
	holdCeremony(t, dir)
	out, err := candord(t, "invite", "--data", dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	code, err := api.DecodeInvitation(out)
	if err != nil {
		t.Fatalf("invite printed %q: %v", out, err)
	}
	if code.Server != "localhost:8443" {
		t.Fatalf("invitation names server %q", code.Server)
	}
	if _, err := candord(t, "invite", "--data", dir, "not a user"); !errors.Is(err, candor.ErrInvalid) {
		t.Fatalf("inviting a bad user id: %v", err)
	}
	if _, err := candord(t, "revoke", "--data", dir, "0000000000000000"); !errors.Is(err, candor.ErrNotFound) {
		t.Fatalf("revoking an unknown device: %v", err)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"init", "--org", "x"},
		{"init", "--data", "d"},
		{"invite", "--data", "d"},
		{"revoke", "--data", "d", "a", "b"},
		{"serve", "--nope"},
		{"serve", "--data", "d", "--anchor-interval", "0"},
		{"serve", "--data", "d", "--retention", "-1"},
		{"serve", "--data", "d", "--retention", "99999999"},
	} {
		if _, err := candord(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("candord %q: %v, want a usage error", args, err)
		}
	}
}

// TestServe runs the server, enrols a device with an invitation code the
// way a client in any language would (verifying the server against the
// CA fingerprint the code carries), and stops the server.
func TestServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	initOrg(t, dir, "--host", "127.0.0.1")
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, &bytes.Buffer{}, &logs, func(a net.Addr) { addrc <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	out, err := candord(t, "invite", "--data", dir, "--server", addr.String(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	code, err := api.DecodeInvitation(out)
	if err != nil {
		t.Fatal(err)
	}

	// Trust exactly the CA the code names.
	pinned := func(cs tls.ConnectionState) error {
		chain := cs.PeerCertificates
		root := chain[len(chain)-1]
		if sum := sha256.Sum256(root.Raw); !bytes.Equal(sum[:], code.CAFingerprint) {
			return errors.New("server is not under the invitation's CA")
		}
		pool := x509.NewCertPool()
		pool.AddCert(root)
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"})
		return err
	}
	client := func(cert *tls.Certificate) *http.Client {
		cfg := &tls.Config{InsecureSkipVerify: true, VerifyConnection: pinned, MinVersion: tls.VersionTLS13}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(api.EnrolRequest{Invitation: code.ID, Secret: code.Secret, Name: "laptop", CSR: csr})
	resp, err := client(nil).Post("https://"+code.Server+api.PathEnrol, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var enrolled api.EnrolResponse
	err = json.NewDecoder(resp.Body).Decode(&enrolled)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("enrol: %d %v", resp.StatusCode, err)
	}
	dev := client(&tls.Certificate{Certificate: [][]byte{enrolled.Certificate}, PrivateKey: key})
	resp, err = dev.Get("https://" + code.Server + api.PathMe)
	if err != nil {
		t.Fatal(err)
	}
	var me api.Me
	err = json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if err != nil || me.User != "alice" || me.Device != enrolled.Device {
		t.Fatalf("me: %+v, %v", me, err)
	}
	if resp.ProtoMajor != 1 {
		t.Fatalf("served over HTTP/%d, want HTTP/1.1", resp.ProtoMajor)
	}

	if _, err := candord(t, "revoke", "--data", dir, enrolled.Device); err != nil {
		t.Fatal(err)
	}
	resp, err = dev.Get("https://" + code.Server + api.PathMe)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a device revoked by candord revoke: status %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), `"msg":"listening"`) {
		t.Fatalf("no listening record in the logs:\n%s", logs.String())
	}
}
