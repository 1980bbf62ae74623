// Package pki is the organisation's certificate authority: it issues each
// enrolled device an X.509 certificate (ECDSA P-256) whose subject names
// the person and the device, and the organisation's archive one that marks
// it as the archive, and verifies both kinds. The certificate is the MLS
// credential (RFC 9420 §5.3.1) of the device or archive.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"candor"
)

// Lifetimes of the certificates the CA issues.
const (
	CALifetime         = 10 * 365 * 24 * time.Hour
	DeviceCertLifetime = 365 * 24 * time.Hour
)

// CA is an organisation's device certificate authority.
type CA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// NewCA makes a new CA for the organisation org, valid for CALifetime.
func NewCA(org string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{org}, CommonName: org + " device CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{key: key, cert: cert}, nil
}

// Load returns the CA stored as its certificate (DER) and private key.
func Load(certDER []byte, key *ecdsa.PrivateKey) (*CA, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w: %v", candor.ErrInvalid, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !cert.IsCA || key == nil || !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("pki: not a CA certificate for this key: %w", candor.ErrInvalid)
	}
	return &CA{key: key, cert: cert}, nil
}

// Certificate returns the CA's own certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// PrivateKey returns the CA's signing key, for storing it.
func (ca *CA) PrivateKey() *ecdsa.PrivateKey { return ca.key }

// Issue certifies pub as device of user for DeviceCertLifetime.
func (ca *CA) Issue(user candor.UserID, device candor.DeviceID, pub *ecdsa.PublicKey, now time.Time) ([]byte, error) {
	return ca.IssueUntil(user, device, pub, now, now.Add(DeviceCertLifetime))
}

// IssueUntil certifies pub as device of user, valid until notAfter. The
// server's external-sender key is certified this way too, as device
// "external-sender" of user "candord".
func (ca *CA) IssueUntil(user candor.UserID, device candor.DeviceID, pub *ecdsa.PublicKey, now, notAfter time.Time) ([]byte, error) {
	if user == "" || device == "" {
		return nil, fmt.Errorf("pki: user and device must be named: %w", candor.ErrInvalid)
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("pki: device key must be ECDSA P-256: %w", candor.ErrInvalid)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: ca.cert.Subject.Organization, CommonName: string(user), OrganizationalUnit: []string{string(device)}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
}

// IssueServer certifies pub as the TLS server for hosts (DNS names or IP
// addresses), valid until notAfter.
func (ca *CA) IssueServer(hosts []string, pub *ecdsa.PublicKey, now, notAfter time.Time) ([]byte, error) {
	if len(hosts) == 0 || hosts[0] == "" {
		return nil, fmt.Errorf("pki: a server certificate needs a host name: %w", candor.ErrInvalid)
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("pki: server key must be ECDSA P-256: %w", candor.ErrInvalid)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: ca.cert.Subject.Organization, CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
}

// Device names the person and device a certificate was issued to.
type Device struct {
	User   candor.UserID
	Device candor.DeviceID
}

func (d Device) String() string { return string(d.User) + "/" + string(d.Device) }

// Verify checks that der is a device certificate this CA issued, valid at
// now, and returns whom it names.
func (ca *CA) Verify(der []byte, now time.Time) (Device, error) {
	cert, err := ca.verify(der, now, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return Device{}, err
	}
	return DeviceOf(cert)
}

// verify parses der and checks that this CA issued it, that it is valid
// at now and that it allows usage.
func (ca *CA) verify(der []byte, now time.Time, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: certificate: %w", candor.ErrInvalid)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, fmt.Errorf("pki: not this organisation's certificate: %w", errors.Join(candor.ErrPermission, err))
	}
	return cert, nil
}

// DeviceOf reads whom a device certificate names, without verifying it.
func DeviceOf(cert *x509.Certificate) (Device, error) {
	if isArchive(cert) {
		return Device{}, fmt.Errorf("pki: the archive's certificate names no device: %w", candor.ErrInvalid)
	}
	if cert.Subject.CommonName == "" || len(cert.Subject.OrganizationalUnit) != 1 {
		return Device{}, fmt.Errorf("pki: certificate names no device: %w", candor.ErrInvalid)
	}
	return Device{User: candor.UserID(cert.Subject.CommonName), Device: candor.DeviceID(cert.Subject.OrganizationalUnit[0])}, nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
