// Package journal defines the hash chain over each group's log that makes
// the server's logs an archive journal (issue 5, item 3): every entry's
// hash covers the entry and the hash of the one before it, so an entry
// changed, removed, inserted or moved after it was appended changes every
// later hash. The server computes the chain when it appends; the archive
// recomputes it during an opening and compares it with what the server
// stored, and the chain heads are what the server's signed checkpoints
// cover (internal/translog).
//
// The package is pure: no I/O, no context, no MLS. The server links it, so
// it must never import the MLS adapter or the archive.
//
// # The chain, version 1
//
// All integers are big-endian; every variable-length field is preceded by
// its length as a uint32.
//
//	genesis = SHA-256("candor/journal/v1/genesis")
//	hash(e) = SHA-256(
//	    "candor/journal/v1/entry" || 0x00 ||
//	    len(group) || group ||
//	    uint64 seq || uint64 epoch || uint8 commit (0 or 1) ||
//	    len(sender) || sender ||
//	    int64 time in Unix milliseconds ||
//	    len(message) || message ||
//	    prev)
//
// where prev is the hash of the entry at seq-1, or genesis for seq 1. The
// label's 0x00 terminator keeps it from running into the length that
// follows; the version in the label means a later chain definition can
// never produce a hash equal to one of version 1. The group id is hashed in
// every entry, so no entry, or run of entries, can be moved from one
// group's chain to another's.
//
// Time is hashed at millisecond precision, which is what every store keeps
// at least.
package journal

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"candor"
)

// Version is the chain definition this package computes.
const Version = 1

const (
	genesisLabel = "candor/journal/v1/genesis"
	entryLabel   = "candor/journal/v1/entry"
)

// HashSize is the size of a chain hash.
const HashSize = sha256.Size

// Hash is one link of a group's chain: the hash of an entry and of every
// entry before it. It is public, not secret; comparisons are in constant
// time anyway, since nothing is lost by it.
type Hash [HashSize]byte

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Equal reports whether h and o are the same hash.
func (h Hash) Equal(o Hash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// ParseHash reads a hash from its bytes.
func ParseHash(b []byte) (Hash, error) {
	var h Hash
	if len(b) != HashSize {
		return h, fmt.Errorf("journal: a hash is %d bytes, not %d: %w", HashSize, len(b), candor.ErrInvalid)
	}
	copy(h[:], b)
	return h, nil
}

// Genesis is the hash the first entry of every group's chain is chained to.
var Genesis = Hash(sha256.Sum256([]byte(genesisLabel)))

// Entry is one entry of a group's log, as the server's store keeps it.
type Entry struct {
	Seq     uint64 // 1 for the first entry of the group's log
	Epoch   candor.Epoch
	Commit  bool // the message is the commit that ended Epoch
	Sender  candor.DeviceID
	Time    time.Time // the server's time of append; hashed in milliseconds
	Message []byte    // the MLSMessage as the device sent it
}

// EntryHash returns the chain hash of entry e of group, given the hash of
// the entry before it (Genesis for the first).
func EntryHash(group candor.GroupID, e Entry, prev Hash) Hash {
	h := sha256.New()
	var buf [8]byte
	writeBytes := func(b []byte) {
		binary.BigEndian.PutUint32(buf[:4], uint32(len(b)))
		h.Write(buf[:4])
		h.Write(b)
	}
	writeUint64 := func(v uint64) {
		binary.BigEndian.PutUint64(buf[:], v)
		h.Write(buf[:])
	}
	h.Write([]byte(entryLabel))
	h.Write([]byte{0})
	writeBytes([]byte(group))
	writeUint64(e.Seq)
	writeUint64(uint64(e.Epoch))
	if e.Commit {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	writeBytes([]byte(e.Sender))
	writeUint64(uint64(e.Time.UnixMilli()))
	writeBytes(e.Message)
	h.Write(prev[:])
	var out Hash
	h.Sum(out[:0])
	return out
}
