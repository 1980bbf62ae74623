package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"candor"
	"candor/api"
	"candor/internal/pki"
)

// Enrol turns an invitation code into an enrolled device in the profile
// folder home (created, mode 0700), with the zero Config. See EnrolWith.
func Enrol(ctx context.Context, home, code, name string) (*Client, error) {
	return EnrolWith(ctx, home, code, name, Config{})
}

// EnrolWith decodes the invitation code, makes the device's P-256 key and
// asks the server for a certificate, over TLS that accepts only a server
// whose certificate chains to the CA the code names. It stores the key,
// the certificate, the CA certificate and the server's address in home and
// publishes the device's first KeyPackages.
//
// A home that already holds a device is refused (ErrAlreadyEnrolled). A
// code that is wrong, used or expired gives ErrBadInvitation; a server that
// is not the organisation's, ErrServerIdentity. If the device is enrolled
// but its KeyPackages cannot be published, the profile is kept and the
// error says so; Sync and Run publish them later.
func EnrolWith(ctx context.Context, home, code, name string, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	inv, err := decodeInvitation(code)
	if err != nil {
		return nil, err
	}
	if ok, err := enrolled(home); err != nil {
		return nil, err
	} else if ok {
		return nil, ErrAlreadyEnrolled
	}
	// The storage key first: a passphrase that is refused must not cost
	// the invitation, which works once.
	storage, err := createStorageKey(ctx, home, cfg)
	if err != nil {
		return nil, err
	}
	saved := false
	defer func() {
		if !saved {
			storage.discard(ctx, home, cfg)
		}
	}()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("making certificate request: %w", err)
	}
	tr, err := newTransport(inv.Server, pinnedTLS(inv.CAFingerprint, ""))
	if err != nil {
		return nil, err
	}
	defer tr.close()
	var resp api.EnrolResponse
	if err := tr.call(ctx, "POST", api.PathEnrol, api.EnrolRequest{
		Invitation: inv.ID,
		Secret:     inv.Secret,
		Name:       name,
		CSR:        csr,
	}, &resp); err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	id, err := checkEnrolment(inv, key, resp, cfg)
	if err != nil {
		return nil, err
	}
	id.Name = name
	id.Storage, id.storage = storage.rec, storage.key
	if err := id.save(home); err != nil {
		return nil, err
	}
	saved = true
	c, err := open(ctx, home, id, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.topUp(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("the device is enrolled, but publishing its keys failed (they are published when it next syncs): %w", err), c.Close())
	}
	return c, nil
}

// checkEnrolment checks the server's answer: the CA is the invitation's,
// and the certificate is a device certificate under it for this device's
// key, naming the user and device the server says.
func checkEnrolment(inv api.InvitationCode, key *ecdsa.PrivateKey, resp api.EnrolResponse, cfg Config) (*identity, error) {
	bad := func(what string, err error) error {
		return fmt.Errorf("enrolling: the server's answer %s: %w", what, errors.Join(ErrServerIdentity, err))
	}
	sum := sha256.Sum256(resp.CA)
	if subtle.ConstantTimeCompare(sum[:], inv.CAFingerprint) != 1 {
		return nil, bad("names another CA than the invitation", nil)
	}
	ca, err := x509.ParseCertificate(resp.CA)
	if err != nil {
		return nil, bad("holds a CA certificate that does not parse", err)
	}
	cert, err := x509.ParseCertificate(resp.Certificate)
	if err != nil {
		return nil, bad("holds a certificate that does not parse", err)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, bad("certifies another key", nil)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: cfg.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, bad("holds a certificate the CA did not issue", err)
	}
	d, err := pki.DeviceOf(cert)
	if err != nil || d.User != candor.UserID(resp.User) || d.Device != candor.DeviceID(resp.Device) {
		return nil, bad("names another device than its certificate", err)
	}
	sender, err := x509.ParseCertificate(resp.ExternalSender)
	if err != nil {
		return nil, bad("holds an external-sender certificate that does not parse", err)
	}
	if err := sender.CheckSignatureFrom(ca); err != nil {
		return nil, bad("holds an external-sender certificate the CA did not issue", err)
	}
	if _, ok := sender.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, bad("holds an external-sender certificate without an ECDSA key", nil)
	}
	return &identity{
		profile: profile{Server: inv.Server, User: d.User, Device: d.Device, Archive: inv.Archive},
		key:     key,
		cert:    cert,
		ca:      ca,
		sender:  sender,
	}, nil
}

// decodeInvitation reads an invitation code, forgiving the blanks a person
// may paste around it.
func decodeInvitation(code string) (api.InvitationCode, error) {
	inv, err := api.DecodeInvitation(strings.TrimSpace(code))
	if err != nil {
		return api.InvitationCode{}, fmt.Errorf("%w (%v)", ErrBadInvitation, err)
	}
	if inv.Server == "" || len(inv.CAFingerprint) != sha256.Size || inv.ID == "" || len(inv.Secret) == 0 {
		return api.InvitationCode{}, fmt.Errorf("%w (incomplete code)", ErrBadInvitation)
	}
	inv.CAFingerprint = bytes.Clone(inv.CAFingerprint)
	return inv, nil
}
