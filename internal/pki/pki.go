// Package pki is the organisation's certificate authority for devices: it
// issues each enrolled device an X.509 certificate (ECDSA P-256) whose
// subject names the person and the device, and verifies such certificates.
// The certificate is the device's MLS credential (RFC 9420 §5.3.1).
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
	"time"

	"candor"
)

// DeviceCertLifetime is how long a device certificate is valid.
const DeviceCertLifetime = 365 * 24 * time.Hour

// CA is an organisation's device certificate authority.
type CA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// NewCA makes a new CA for the organisation org, valid for ten years from now.
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
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
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

// Certificate returns the CA's own certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Issue certifies pub as device of user.
func (ca *CA) Issue(user candor.UserID, device candor.DeviceID, pub *ecdsa.PublicKey, now time.Time) ([]byte, error) {
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
		NotAfter:     now.Add(DeviceCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
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
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Device{}, fmt.Errorf("pki: certificate: %w", candor.ErrInvalid)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return Device{}, fmt.Errorf("pki: not a device of this organisation: %w", errors.Join(candor.ErrPermission, err))
	}
	return DeviceOf(cert)
}

// DeviceOf reads whom a device certificate names, without verifying it.
func DeviceOf(cert *x509.Certificate) (Device, error) {
	if cert.Subject.CommonName == "" || len(cert.Subject.OrganizationalUnit) != 1 {
		return Device{}, fmt.Errorf("pki: certificate names no device: %w", candor.ErrInvalid)
	}
	return Device{User: candor.UserID(cert.Subject.CommonName), Device: candor.DeviceID(cert.Subject.OrganizationalUnit[0])}, nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
