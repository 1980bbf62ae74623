// Package mlsx is candor's one door to MLS (RFC 9420). It is the only package
// that imports github.com/thomas-vilte/mls-go, and no type of that library
// crosses its API: the rest of candor sees candor's identifiers, byte slices
// in RFC 9420 wire format, and candor's errors.
//
// What it gives:
//
//   - Devices ([Device]) with X.509 credentials (ECDSA P-256) that make
//     KeyPackages (§10), create groups (§11) with the extensions candor
//     requires, join from a Welcome (§12.4.3.1), commit adds, removes and key
//     rotations (§12.4) and protect application messages (§6.3).
//   - Passive members ([JoinPassive]) that follow a group from a Welcome and
//     its log of commits and messages with keys handed to them: the archive's
//     replay path, and the IETF passive-client test vectors.
//   - Parsing that needs no key ([Inspect], [Roster]), for the server: the
//     group, epoch, sender and content type of any MLSMessage, and the member
//     list a PublicMessage commit leads to.
//
// Handshake messages are always PublicMessage, so the server can follow the
// member list; application messages are always PrivateMessage.
//
// Group state is durable through [Store]. A commit writes one snapshot of the
// group; a message writes only the one sender ratchet it moved, and a sender
// writes that record before it encrypts, so a crash can never make it reuse a
// (generation, key) pair. See docs/design/mls-adapter.md.
//
// Workarounds for the library's known defects live here too: key rotation is
// an empty commit (never the library's SelfUpdate, whose commits RFC 9420
// §12.2 forbids), required_capabilities match what candor's KeyPackages
// advertise, and the library's errors are translated into candor's.
package mlsx
