package archive

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

// validator admits the members the organisation's CA certified: devices,
// and archives. One serves one group's replay, which sets at to the server
// time of the entry being processed before each, so that a certificate is
// checked as of when its member was added, not as of the opening (by
// which time it may well have expired). The group's replay is one
// goroutine, so at needs no lock.
type validator struct {
	roots *x509.CertPool
	at    time.Time
}

func newValidator(ca *x509.Certificate) *validator {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &validator{roots: roots}
}

func (v *validator) ValidateMember(ctx context.Context, group candor.GroupID, m mlsx.Member) error {
	_, err := v.identify(m)
	return err
}

// identify checks m's certificate chain against the CA and says whom it
// names.
func (v *validator) identify(m mlsx.Member) (who, error) {
	cert, err := m.Credential.Certificate()
	if err != nil {
		return who{}, fmt.Errorf("member at leaf %d: %w", m.Leaf, err)
	}
	inter := x509.NewCertPool()
	for _, der := range m.Credential.Chain[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return who{}, fmt.Errorf("member at leaf %d: intermediate certificate: %w", m.Leaf, candor.ErrInvalid)
		}
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: v.roots, Intermediates: inter, CurrentTime: v.at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return who{}, fmt.Errorf("member at leaf %d: certificate not issued by the organisation's CA at %s: %w: %v",
			m.Leaf, v.at.UTC().Format(time.RFC3339), candor.ErrPermission, err)
	}
	return name(m.Leaf, cert)
}

// name says whom a certificate names.
func name(leaf uint32, cert *x509.Certificate) (who, error) {
	if a, err := pki.ArchiveOf(cert); err == nil {
		return who{user: pki.ArchiveName, device: candor.DeviceID(a.Key), archive: true}, nil
	}
	d, err := pki.DeviceOf(cert)
	if err != nil {
		return who{}, fmt.Errorf("member at leaf %d: %w", leaf, err)
	}
	return who{user: d.User, device: d.Device}, nil
}

// who is a member as its verified certificate names it.
type who struct {
	user    candor.UserID
	device  candor.DeviceID
	archive bool
}

func (w who) String() string { return string(w.user) + "/" + string(w.device) }

// roster maps each leaf of a group to whom its certificate names. It is
// rebuilt after every commit. The chains are not verified again: the
// adapter had the validator admit every leaf a Welcome or commit brought.
func roster(members []mlsx.Member) (map[uint32]who, error) {
	out := make(map[uint32]who, len(members))
	for _, m := range members {
		cert, err := m.Credential.Certificate()
		if err != nil {
			return nil, fmt.Errorf("member at leaf %d: %w", m.Leaf, err)
		}
		w, err := name(m.Leaf, cert)
		if err != nil {
			return nil, err
		}
		out[m.Leaf] = w
	}
	return out, nil
}
