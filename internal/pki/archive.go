package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"slices"
	"time"

	"candor"
)

// ArchivePolicy is the certificate policy (RFC 5280 §4.2.1.4) that marks
// the certificate of an organisation's archive: the MLS member every group
// must contain, whose key only the archive's custodians together can
// recover. It is an OID under 2.25, made from a random UUID (ITU-T X.667),
// so it needs no registration and means nothing else.
var ArchivePolicy = mustOID("2.25.127284701892138040509193687856474839510")

// ArchiveName is the common name of every archive certificate: what member
// lists show.
const ArchiveName = "archive"

func mustOID(s string) x509.OID {
	oid, err := x509.ParseOID(s)
	if err != nil {
		panic(err)
	}
	return oid
}

// Archive is what an archive certificate says.
type Archive struct {
	// Key names the archive key (a generation: the archive is re-keyed by
	// a new custody ceremony, and groups move to the new key).
	Key string
}

// IssueArchive certifies pub as the organisation's archive key named key,
// valid until notAfter. The certificate carries ArchivePolicy, which
// DeviceOf refuses, and names no device, so it never passes as one.
func (ca *CA) IssueArchive(key string, pub *ecdsa.PublicKey, now, notAfter time.Time) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("pki: the archive key must be named: %w", candor.ErrInvalid)
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("pki: archive key must be ECDSA P-256: %w", candor.ErrInvalid)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: ca.cert.Subject.Organization, CommonName: ArchiveName, SerialNumber: key},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		Policies:     []x509.OID{ArchivePolicy},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
}

// VerifyArchive checks that der is an archive certificate issued by this
// CA and valid at now.
func (ca *CA) VerifyArchive(der []byte, now time.Time) (Archive, error) {
	cert, err := ca.verify(der, now, x509.ExtKeyUsageAny)
	if err != nil {
		return Archive{}, err
	}
	return ArchiveOf(cert)
}

// ArchiveOf reads an archive certificate, not checking its signature.
func ArchiveOf(cert *x509.Certificate) (Archive, error) {
	if !isArchive(cert) || cert.Subject.CommonName != ArchiveName || cert.Subject.SerialNumber == "" {
		return Archive{}, fmt.Errorf("pki: not an archive certificate: %w", candor.ErrInvalid)
	}
	return Archive{Key: cert.Subject.SerialNumber}, nil
}

func isArchive(cert *x509.Certificate) bool {
	return slices.ContainsFunc(cert.Policies, ArchivePolicy.Equal)
}
