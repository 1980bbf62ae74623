// Package ceremony makes an organisation's archive and the statement that
// publishes it, and checks that statement for the custodians who endorse it
// and the clients who pin it.
//
// The archive (docs/design/archive.md) is the MLS member every candor group
// contains. Run draws the archive's seed, derives its signature key and the
// HPKE keys of its KeyPackage from it (internal/custody), has the
// organisation's CA certify the signature key (internal/pki), builds the
// last-resort KeyPackage (RFC 9420 §10 and §17.3, through internal/mlsx),
// splits the seed k-of-n among the custodians with each share sealed to one
// of them, and destroys the seed. What remains is a Statement: all public,
// in one canonical, versioned encoding whose SHA-256 (the statement hash)
// names it.
//
// Each custodian then opens their own share, checks it against the
// published Feldman commitments, and signs the statement hash (Endorse).
// Verify checks a statement against the organisation's CA certificate and
// requires an endorsement from every custodian in its policy
// (RequiredEndorsements): that is what lets a client trust an archive that
// a server holding the CA key could not have minted alone.
//
// The package is pure apart from its randomness (crypto/rand, through
// internal/custody and internal/pki): no files, network or logs. The
// ceremony tool (cmd/candor-custody) reads and writes the files. The
// delivery server never imports it: it only serves the statement's bytes.
package ceremony
