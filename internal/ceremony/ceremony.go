package ceremony

import (
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"candor"
	"candor/internal/custody"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

// DefaultLifetime is how long an archive key's certificate and KeyPackage
// stay valid when Config.Lifetime is zero. The archive key is replaced by a
// new ceremony before then; five years keeps ceremonies rare without
// outliving a custodian team by much.
const DefaultLifetime = 5 * 365 * 24 * time.Hour

// keyPackageIndex is the custody key derivation's index of the archive's
// one KeyPackage (docs/design/archive.md: one last-resort KeyPackage per
// archive key). An opening derives the same index's keys.
const keyPackageIndex = 0

// Config describes a ceremony to Run.
type Config struct {
	// CA is the organisation's certificate authority, which certifies the
	// archive's signature key. Required.
	CA *pki.CA
	// Org is the organisation's name. Empty means the one in the CA's
	// certificate; otherwise it must be that one.
	Org string
	// KeyID names this archive key among the organisation's archive keys
	// over time (its generation). Required.
	KeyID string
	// K is how many custodians must approve an opening,
	// custody.MinThreshold..len(Custodians).
	K int
	// Custodians are the n custodians, in slot order, with the public keys
	// they made with their own tool.
	Custodians []custody.Custodian
	// Now tells the time. Nil means time.Now.
	Now func() time.Time
	// Lifetime is how long the archive key is valid. Zero means
	// DefaultLifetime. It must end before the CA's certificate does.
	Lifetime time.Duration
}

// testHookSecrets, when set by a test, sees the ceremony's secrets just
// before they are destroyed, so that the test can look for them in what
// Run returned and check that they were wiped.
var testHookSecrets func(seed *custody.Seed, signature *ecdsa.PrivateKey, keyPackage mlsx.KeyPackageSecrets)

// Run holds the custody ceremony: it draws the archive's seed, derives the
// archive's signature key and KeyPackage keys, has cfg.CA certify the
// signature key, builds the KeyPackage, splits the seed among the
// custodians (each share sealed to one of them), checks the result as a
// client would (Check) and against the seed (MatchesSeed), and destroys
// the seed and the private keys derived from it before returning.
//
// Destroying is best effort: Run overwrites the seed and the raw key bytes
// it holds, but the derived keys also live inside crypto/ecdsa and
// crypto/ecdh values, which offer no way to overwrite them, and Go may
// have copied a value; the process that runs a ceremony should exit after
// it, as cmd/candor-custody does.
// The returned statement is public and needs every custodian's
// endorsement before clients rely on it.
func Run(cfg Config) (*Statement, error) {
	if cfg.CA == nil {
		return nil, fmt.Errorf("ceremony: no CA: %w", candor.ErrInvalid)
	}
	caCert := cfg.CA.Certificate()
	org := cfg.Org
	if org == "" && len(caCert.Subject.Organization) == 1 {
		org = caCert.Subject.Organization[0]
	}
	if !slices.Equal(caCert.Subject.Organization, []string{org}) {
		return nil, fmt.Errorf("ceremony: organisation %q, but the CA is organisation %q's: %w",
			org, caCert.Subject.Organization, candor.ErrInvalid)
	}
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	// Certificates and KeyPackage lifetimes count whole seconds.
	created := now().UTC().Truncate(time.Second)
	lifetime := cfg.Lifetime
	if lifetime == 0 {
		lifetime = DefaultLifetime
	}
	notAfter := created.Add(lifetime)
	if lifetime < 0 || notAfter.After(caCert.NotAfter) {
		return nil, fmt.Errorf("ceremony: archive key lifetime %v ends after the CA's certificate (%v): %w",
			lifetime, caCert.NotAfter, candor.ErrInvalid)
	}
	policy, err := custody.NewPolicy(custody.PolicyConfig{
		Organisation: org, ArchiveKeyID: cfg.KeyID, K: cfg.K, Custodians: cfg.Custodians,
	})
	if err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}

	seed, err := custody.NewSeed()
	if err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}
	defer seed.Destroy()
	sig, err := seed.SignatureKey()
	if err != nil {
		return nil, fmt.Errorf("ceremony: deriving the signature key: %w", err)
	}
	kpKeys, err := seed.KeyPackageKeys(keyPackageIndex)
	if err != nil {
		return nil, fmt.Errorf("ceremony: deriving the KeyPackage keys: %w", err)
	}
	secrets := mlsx.KeyPackageSecrets{Init: kpKeys.Init.Bytes(), Encryption: kpKeys.Encryption.Bytes()}
	defer clear(secrets.Init)
	defer clear(secrets.Encryption)
	if testHookSecrets != nil {
		// Deferred calls run last-in first-out: this one sees the
		// secrets before any is wiped.
		defer testHookSecrets(seed, sig, secrets)
	}

	certDER, err := cfg.CA.IssueArchive(cfg.KeyID, &sig.PublicKey, created, notAfter)
	if err != nil {
		return nil, fmt.Errorf("ceremony: certifying the archive key: %w", err)
	}
	if _, err := cfg.CA.VerifyArchive(certDER, created); err != nil {
		return nil, fmt.Errorf("ceremony: the CA's archive certificate does not verify: %w", err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("ceremony: the CA's archive certificate: %w", err)
	}
	id := mlsx.Identity{Key: sig, Chain: [][]byte{certDER}}
	kp, err := mlsx.ArchiveKeyPackage(id, secrets, cert.NotBefore, cert.NotAfter)
	if err != nil {
		return nil, fmt.Errorf("ceremony: building the archive KeyPackage: %w", err)
	}
	commitments, shares, err := custody.Split(policy, seed)
	if err != nil {
		return nil, fmt.Errorf("ceremony: splitting the seed: %w", err)
	}
	st, err := newStatement(created, certDER, kp, policy, commitments, shares)
	if err != nil {
		return nil, err
	}
	if err := st.Check(caCert, created); err != nil {
		return nil, fmt.Errorf("ceremony: the statement made does not check: %w", err)
	}
	if err := st.MatchesSeed(seed); err != nil {
		return nil, fmt.Errorf("ceremony: the statement made does not match its seed: %w", err)
	}
	return st, nil
}
