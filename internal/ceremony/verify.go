package ceremony

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"candor/internal/custody"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

// Why a statement fails. Every error Check, Verify and MatchesSeed return
// wraps one of these (several, joined, when several things are wrong);
// endorsement problems are custody.CustodianError values that name the
// custodian.
var (
	// ErrInconsistent: the statement's parts disagree with each other
	// (policy, certificate, commitments, sealed shares).
	ErrInconsistent = errors.New("ceremony: the statement contradicts itself")
	// ErrCertificate: the archive certificate is not an archive
	// certificate of this organisation's CA, valid now.
	ErrCertificate = errors.New("ceremony: the archive certificate does not verify")
	// ErrKeyPackage: the KeyPackage does not verify, or is not the
	// archive's last-resort KeyPackage under its certificate.
	ErrKeyPackage = errors.New("ceremony: the archive KeyPackage does not match its certificate")
	// ErrMissingEndorsement: a custodian has not endorsed the statement.
	ErrMissingEndorsement = errors.New("ceremony: no endorsement")
	// ErrOtherStatement: an endorsement is for another statement.
	ErrOtherStatement = errors.New("ceremony: endorsement is for another statement")
	// ErrSeedMismatch: the archive's public keys are not the ones a seed
	// derives.
	ErrSeedMismatch = errors.New("ceremony: the archive's keys do not derive from this seed")
)

// RequiredEndorsements is how many distinct custodians must endorse a
// statement before anyone relies on it: all n. Fewer would let a ceremony
// hand a custodian a share that was never checked (their endorsement is
// the proof that they opened it) and would let k-1 colluding custodians
// plus the ceremony machine vouch for an archive the others never saw.
func RequiredEndorsements(p *custody.Policy) int { return p.N() }

// Consistent checks what a statement says about itself, needing neither
// the CA nor a clock: the certificate is an archive certificate for the
// policy's organisation and key id, valid when the statement was made; the
// KeyPackage verifies at that time, is a last-resort KeyPackage of the
// default suite whose credential is exactly that certificate (so the
// certificate certifies its signature key) and whose lifetime is the
// certificate's; the commitments and one sealed share per custodian, in
// slot order, belong to the policy. Custodians run it before endorsing.
func (st *Statement) Consistent() error {
	var errs []error
	fail := func(sentinel error, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...)))
	}
	p := st.policy
	if a, err := pki.ArchiveOf(st.cert); err != nil {
		fail(ErrCertificate, "%v", err)
	} else if a.Key != p.ArchiveKeyID() {
		fail(ErrInconsistent, "the certificate is for archive key %q, the policy for %q", a.Key, p.ArchiveKeyID())
	}
	if org := st.cert.Subject.Organization; !slices.Equal(org, []string{p.Organisation()}) {
		fail(ErrInconsistent, "the certificate names organisation %q, the policy %q", org, p.Organisation())
	}
	if st.created.Before(st.cert.NotBefore) || st.created.After(st.cert.NotAfter) {
		fail(ErrInconsistent, "made at %v, outside its certificate's validity %v to %v",
			st.created, st.cert.NotBefore, st.cert.NotAfter)
	}
	if err := st.checkKeyPackage(); err != nil {
		errs = append(errs, err)
	}
	if c := st.commitments.PolicyID(); c != p.ID() {
		fail(ErrInconsistent, "the commitments are for policy %s, not %s", c, p.ID())
	}
	if len(st.shares) != p.N() {
		fail(ErrInconsistent, "%d sealed shares for %d custodians", len(st.shares), p.N())
	}
	for i, s := range st.shares {
		if s.Index() != i+1 {
			fail(ErrInconsistent, "sealed share %d is for custodian slot %d", i+1, s.Index())
		}
		if s.PolicyID() != p.ID() {
			fail(ErrInconsistent, "sealed share %d is for policy %s, not %s", i+1, s.PolicyID(), p.ID())
		}
	}
	return errors.Join(errs...)
}

// keyPackageInfo parses the KeyPackage as of the statement's creation.
func (st *Statement) keyPackageInfo() (mlsx.KeyPackageInfo, error) {
	info, err := mlsx.ParseKeyPackage(st.keyPackage, st.created)
	if err != nil {
		return mlsx.KeyPackageInfo{}, fmt.Errorf("%w: %v", ErrKeyPackage, err)
	}
	return info, nil
}

func (st *Statement) checkKeyPackage() error {
	info, err := st.keyPackageInfo()
	if err != nil {
		return err
	}
	c := info.Credential
	switch {
	case c.Kind != mlsx.CredentialX509 || len(c.Chain) != 1 || !bytes.Equal(c.Chain[0], st.certDER):
		return fmt.Errorf("%w: its credential is not the statement's certificate", ErrKeyPackage)
	case info.Suite != mlsx.DefaultSuite:
		return fmt.Errorf("%w: suite %v, not %v", ErrKeyPackage, info.Suite, mlsx.DefaultSuite)
	case !info.LastResort:
		return fmt.Errorf("%w: not a last-resort KeyPackage", ErrKeyPackage)
	case !info.NotBefore.Equal(st.cert.NotBefore) || !info.NotAfter.Equal(st.cert.NotAfter):
		return fmt.Errorf("%w: lifetime %v to %v, the certificate's is %v to %v", ErrKeyPackage,
			info.NotBefore, info.NotAfter, st.cert.NotBefore, st.cert.NotAfter)
	}
	return nil
}

// Check checks the statement as Consistent does, and against the
// organisation's CA certificate ca at now: ca is a CA of the statement's
// organisation, it issued the archive certificate, and that certificate
// (and so the KeyPackage, whose lifetime is the same) is valid at now. It
// does not look at endorsements; Verify does.
func (st *Statement) Check(ca *x509.Certificate, now time.Time) error {
	var errs []error
	if err := st.Consistent(); err != nil {
		errs = append(errs, err)
	}
	switch {
	case ca == nil || !ca.IsCA:
		errs = append(errs, fmt.Errorf("%w: the certificate given as the organisation's CA is not a CA", ErrCertificate))
	case !slices.Equal(ca.Subject.Organization, []string{st.Organisation()}):
		errs = append(errs, fmt.Errorf("%w: the CA is organisation %q's, the statement %q's",
			ErrCertificate, ca.Subject.Organization, st.Organisation()))
	default:
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		if _, err := st.cert.Verify(opts); err != nil {
			errs = append(errs, fmt.Errorf("%w: %v", ErrCertificate, err))
		}
	}
	return errors.Join(errs...)
}

// CheckEndorsement checks that e endorses this statement and is signed by
// the custodian in the slot it names. Errors are custody.CustodianError
// values naming that custodian.
func (st *Statement) CheckEndorsement(e *Endorsement) error {
	c, err := st.policy.Custodian(e.slot)
	if err != nil {
		return fmt.Errorf("ceremony: endorsement: %w", err)
	}
	if e.statement != st.hash {
		return &custody.CustodianError{Index: e.slot, Name: c.Name,
			Err: fmt.Errorf("%w %s, not %s", ErrOtherStatement, e.statement, st.hash)}
	}
	return st.policy.VerifyEndorsement(e.slot, st.hash, e.signature)
}

// Verify is what a client runs before it pins an archive: the statement
// passes Check against the organisation's CA at now, every endorsement
// given is valid for it, and RequiredEndorsements distinct custodians have
// endorsed it. An invalid endorsement fails Verify even when enough valid
// ones are present: it means someone tampered with what custodians sent,
// which people must look at. The error lists every problem found, each
// custodian by slot and name.
func Verify(st *Statement, endorsements []*Endorsement, ca *x509.Certificate, now time.Time) error {
	var errs []error
	if err := st.Check(ca, now); err != nil {
		errs = append(errs, err)
	}
	endorsed := make(map[int]bool, len(endorsements))
	for _, e := range endorsements {
		if err := st.CheckEndorsement(e); err != nil {
			errs = append(errs, err)
			continue
		}
		endorsed[e.slot] = true
	}
	if len(endorsed) < RequiredEndorsements(st.policy) {
		for i, c := range st.policy.Custodians() {
			if !endorsed[i+1] {
				errs = append(errs, &custody.CustodianError{Index: i + 1, Name: c.Name, Err: ErrMissingEndorsement})
			}
		}
	}
	return errors.Join(errs...)
}

// MatchesSeed checks that the archive's public keys (the certificate's
// signature key and the KeyPackage's init and encryption keys) are the
// ones seed derives. The ceremony runs it before destroying the seed; an
// opening runs it on the rebuilt seed, which is where a ceremony machine
// that published keys of its own would be caught (custodians cannot check
// this at endorsement: docs/design/custody.md).
func (st *Statement) MatchesSeed(seed *custody.Seed) error {
	sig, err := seed.SignatureKey()
	if err != nil {
		return fmt.Errorf("ceremony: deriving the signature key: %w", err)
	}
	if pub, ok := st.cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&sig.PublicKey) {
		return fmt.Errorf("%w: the certificate's key", ErrSeedMismatch)
	}
	keys, err := seed.KeyPackageKeys(keyPackageIndex)
	if err != nil {
		return fmt.Errorf("ceremony: deriving the KeyPackage keys: %w", err)
	}
	info, err := st.keyPackageInfo()
	if err != nil {
		return err
	}
	for _, k := range []struct {
		what      string
		published []byte
		derived   *ecdh.PrivateKey
	}{{"init key", info.InitKey, keys.Init}, {"encryption key", info.EncryptionKey, keys.Encryption}} {
		if !bytes.Equal(k.published, k.derived.PublicKey().Bytes()) {
			return fmt.Errorf("%w: the KeyPackage's %s", ErrSeedMismatch, k.what)
		}
	}
	return nil
}
