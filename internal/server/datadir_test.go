package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/pki"
	"candor/internal/store"
)

func TestInitAndOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "org")
	opts := InitOptions{Org: "Example Bank", Hosts: []string{"chat.example.com", "10.0.0.7"}, OpenStore: openSQL}
	if err := Init(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{
		FileCAKey: 0o600, FileServerKey: 0o600, FileSenderKey: 0o600, FileDB: 0o600,
		FileCACert: 0o644, FileServerCert: 0o644, FileSenderCert: 0o644,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	if err := Init(ctx, dir, opts); !errors.Is(err, candor.ErrConflict) {
		t.Fatalf("a second Init: %v, want ErrConflict", err)
	}

	d, err := Open(ctx, dir, openSQL)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if diff := cmp.Diff([]string{"chat.example.com", "10.0.0.7"}, d.Hosts); diff != "" {
		t.Fatalf("hosts (-want +got):\n%s", diff)
	}
	roots := x509.NewCertPool()
	roots.AddCert(d.CA.Certificate())
	if _, err := d.TLSCert.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "chat.example.com"}); err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	sender := mustParse(t, d.SenderCert)
	if who, err := pki.DeviceOf(sender); err != nil || who.User != "candord" || who.Device != "external-sender" {
		t.Fatalf("external sender certificate names %v, %v", who, err)
	}
	if _, err := sender.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("external sender certificate: %v", err)
	}

	// Device certificates have pki's profile.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := d.CA.Issue("alice", "0011223344556677", &key.PublicKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParse(t, der)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("device certificate: %v", err)
	}
	if who, err := pki.DeviceOf(cert); err != nil || who.String() != "alice/0011223344556677" {
		t.Fatalf("device certificate names %v, %v", who, err)
	}
	if _, err := New(ctx, d.Config()); err != nil {
		t.Fatalf("New with the folder's config: %v", err)
	}
}

func TestOpenRefusesReadableKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if err := Init(ctx, dir, InitOptions{Org: "Example Bank", OpenStore: openSQL}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, FileCAKey), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, openSQL); !errors.Is(err, candor.ErrPermission) {
		t.Fatalf("Open with a readable CA key: %v, want ErrPermission", err)
	}
}

func TestInitCleansUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	failing := func(context.Context, string) (store.Store, error) { return nil, errors.New("disk full") }
	err := Init(context.Background(), dir, InitOptions{Org: "Example Bank", OpenStore: failing})
	if err == nil {
		t.Fatal("Init with a failing store succeeded")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("Init left %d files behind", len(left))
	}
}
