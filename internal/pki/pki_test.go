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

func TestIssueAndVerify(t *testing.T) {
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
	der, err := bank.Issue("alice", "laptop", &key.PublicKey, now)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Issue("alice", "laptop", &key.PublicKey, now)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		der  []byte
		at   time.Time
		want error // nil: accepted
	}{
		{"issued here, now", der, now, nil},
		{"issued by another CA", foreign, now, candor.ErrPermission},
		{"expired", der, now.Add(DeviceCertLifetime + time.Hour), candor.ErrPermission},
		{"not yet valid", der, now.Add(-2 * time.Hour), candor.ErrPermission},
		{"not a certificate", []byte("garbage"), now, candor.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev, err := bank.Verify(tc.der, tc.at)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Verify: %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if dev != (Device{User: "alice", Device: "laptop"}) || dev.String() != "alice/laptop" {
				t.Fatalf("Verify named %v", dev)
			}
		})
	}
}

func TestIssueRefusesBadRequests(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ca, err := NewCA("Example Bank", now)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name         string
		user, device string
		key          *ecdsa.PublicKey
	}{
		{"no user", "", "laptop", &p256.PublicKey},
		{"no device", "alice", "", &p256.PublicKey},
		{"no key", "alice", "laptop", nil},
		{"P-384 key", "alice", "laptop", &p384.PublicKey},
	} {
		if _, err := ca.Issue(candor.UserID(tc.user), candor.DeviceID(tc.device), tc.key, now); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
}

func TestLoadAndServerCertificates(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ca, err := NewCA("Example Bank", now)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(ca.Certificate().Raw, ca.PrivateKey())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := Load(ca.Certificate().Raw, other); !errors.Is(err, candor.ErrInvalid) {
		t.Fatalf("Load with another key: %v, want ErrInvalid", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := loaded.IssueServer([]string{"chat.example", "127.0.0.1"}, &key.PublicKey, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	for _, host := range []string{"chat.example", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	// A server certificate is no device certificate.
	if _, err := ca.Verify(der, now); !errors.Is(err, candor.ErrPermission) {
		t.Errorf("server certificate accepted as a device: %v", err)
	}
}
