package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"candor"
)

// An archive certificate verifies as the archive and never as a device,
// and a device certificate never as the archive.
func TestArchiveCertificates(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	bank, err := NewCA("Example Bank", now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("Somebody Else", now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	until := now.Add(5 * 365 * 24 * time.Hour)
	der, err := bank.IssueArchive("2026-11", &key.PublicKey, now, until)
	if err != nil {
		t.Fatal(err)
	}
	a, err := bank.VerifyArchive(der, now)
	if err != nil || a.Key != "2026-11" {
		t.Fatalf("VerifyArchive = %+v, %v", a, err)
	}
	if _, err := bank.VerifyArchive(der, until.Add(time.Hour)); !errors.Is(err, candor.ErrPermission) {
		t.Errorf("expired archive certificate: %v, want ErrPermission", err)
	}
	foreign, err := other.IssueArchive("2026-11", &key.PublicKey, now, until)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bank.VerifyArchive(foreign, now); !errors.Is(err, candor.ErrPermission) {
		t.Errorf("another organisation's archive: %v, want ErrPermission", err)
	}
	if _, err := bank.Verify(der, now); err == nil {
		t.Error("the archive's certificate verified as a device")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DeviceOf(cert); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("DeviceOf(archive) = %v, want ErrInvalid", err)
	}

	dev, err := bank.Issue("archive", "laptop", &key.PublicKey, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bank.VerifyArchive(dev, now); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("a device named archive verified as the archive: %v", err)
	}

	if _, err := bank.IssueArchive("", &key.PublicKey, now, until); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("unnamed archive key: %v, want ErrInvalid", err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bank.IssueArchive("k", &p384.PublicKey, now, until); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("P-384 archive key: %v, want ErrInvalid", err)
	}
}
