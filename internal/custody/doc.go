// Package custody splits the secret of an organisation's archive among n
// custodians so that any k of them, and no fewer, can rebuild it.
//
// The archive is the visible member of every candor group that keeps the
// record (docs/design/custody.md). Its MLS signature key and the HPKE keys of
// its KeyPackages all derive from one Seed. At the custody ceremony the Seed
// is split with Shamir's scheme over the P-256 scalar field, with Feldman
// commitments so that each custodian can check that their share belongs to
// the published secret (github.com/cloudflare/circl/secretsharing). Each
// share is sealed with HPKE (RFC 9180: DHKEM(P-256, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM) to one custodian, bound to the organisation,
// the archive key id, the policy and the custodian's slot. To authorise an
// opening, a custodian re-seals their share to the opening's one-time HPKE
// key, bound to the request id, and signs that Approval with ECDSA P-256.
// Reconstruct checks k approvals against the commitments, names any
// custodian whose share is wrong, and returns the Seed.
//
// Only FIPS-approved primitives are used (P-256 ECDH and ECDSA, HKDF and
// PBKDF2 with SHA-256, AES-GCM), all from the standard library, so the
// package works under GODEBUG=fips140=on. Shamir's polynomial arithmetic
// comes from circl and is not constant time on P-256: the ceremony and an
// opening run on machines the organisation controls.
//
// Policy, Commitments, SealedShare, Approval and the key types are
// immutable once made (Destroy aside) and safe for concurrent use.
//
// The package is pure: no network, no files, no clock. Randomness comes from
// crypto/rand (tests make it deterministic with testing/cryptotest). Every
// value it decodes is a versioned binary format, documented beside its
// parser and in docs/design/custody.md.
package custody
