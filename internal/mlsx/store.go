package mlsx

import (
	"context"
	"encoding/binary"
	"fmt"

	"candor"
)

// Store keeps one device's MLS state durably: a snapshot of each group taken
// at every epoch change, small ratchet records written per message in
// between, and the private halves of the device's unused KeyPackages.
//
// Every method must be atomic and durable when it returns: the adapter relies
// on a record being on disk before it releases the ciphertext it protects.
// Implementations must be safe for concurrent use; the adapter serialises the
// calls for any one group. Missing entries are reported by wrapping
// candor.ErrNotFound. Everything given to a Store is secret: a Store that
// writes to disk must encrypt at rest.
type Store interface {
	// SaveGroup replaces the group's snapshot with state, taken at epoch,
	// and deletes every ratchet record and any pending commit of the group,
	// in one transaction.
	SaveGroup(ctx context.Context, group candor.GroupID, epoch candor.Epoch, state []byte) error
	// LoadGroup returns the snapshot and the ratchet records saved since.
	LoadGroup(ctx context.Context, group candor.GroupID) (StoredGroup, error)
	// SaveRatchet stores the record of one leaf's ratchet in the group's
	// current epoch, replacing the leaf's previous record. It is idempotent.
	SaveRatchet(ctx context.Context, group candor.GroupID, epoch candor.Epoch, leaf uint32, record []byte) error
	// SavePending stores the state a commit of this device's leads to,
	// beside the current snapshot, until SaveGroup replaces both. It lets a
	// device that crashed after sending a commit recognise the commit in the
	// log and adopt its state.
	SavePending(ctx context.Context, group candor.GroupID, commit []byte, state []byte) error
	// DeleteGroup forgets the group; deleting a missing group is no error.
	DeleteGroup(ctx context.Context, group candor.GroupID) error

	// SaveKeyPackage stores the private keys of a KeyPackage under its
	// KeyPackageRef (RFC 9420 §5.2).
	SaveKeyPackage(ctx context.Context, ref []byte, secrets []byte) error
	// LoadKeyPackage returns what SaveKeyPackage stored under ref.
	LoadKeyPackage(ctx context.Context, ref []byte) ([]byte, error)
	// DeleteKeyPackage forgets a used KeyPackage; a missing one is no error.
	DeleteKeyPackage(ctx context.Context, ref []byte) error
}

// StoredGroup is what [Store.LoadGroup] returns.
type StoredGroup struct {
	Epoch    candor.Epoch
	State    []byte
	Ratchets map[uint32]RatchetRecord // leaf → record; may include stale epochs
	Pending  *PendingState            // nil unless SavePending was called since
}

// PendingState is a commit this device sent and the state it leads to.
type PendingState struct {
	Commit []byte
	State  []byte
}

// RatchetRecord is an opaque, fixed-size record of one leaf's ratchet in one
// epoch. Stores keep it as bytes; only the adapter reads it.
type RatchetRecord struct {
	Epoch  candor.Epoch
	Record []byte
}

// ratchet is the decoded record. For the device's own leaf, next is the
// first generation it has not yet reserved for sending: generations are
// reserved reserveBlock at a time, and a crash loses at most the rest of a
// block, never the promise not to reuse one. For other leaves, top is
// one more than the highest generation received (0: none yet) and seen has
// bit i set when generation top-1-i was received, a sliding window of 64
// that rejects replays after a restart as the library does within one
// process.
type ratchet struct {
	next uint64
	top  uint64
	seen uint64
}

// reserveBlock is how many generations a sender reserves with one durable
// write: a Store that syncs every write (as devstore does, so that the
// reservation survives power loss) then pays one sync per reserveBlock
// messages sent. RFC 9420 §9.2 leaves it to receivers how far ahead they
// derive keys; the library goes 2,048 generations, far more than a block.
const reserveBlock = 16

const (
	ratchetVersion = 1
	ratchetSize    = 1 + 3*8
	replayWindow   = 64
)

func (r ratchet) encode() []byte {
	b := make([]byte, 0, ratchetSize)
	b = append(b, ratchetVersion)
	b = binary.BigEndian.AppendUint64(b, r.next)
	b = binary.BigEndian.AppendUint64(b, r.top)
	b = binary.BigEndian.AppendUint64(b, r.seen)
	return b
}

func decodeRatchet(b []byte) (ratchet, error) {
	if len(b) != ratchetSize || b[0] != ratchetVersion {
		return ratchet{}, fmt.Errorf("mlsx: ratchet record: %w", candor.ErrInvalid)
	}
	return ratchet{
		next: binary.BigEndian.Uint64(b[1:]),
		top:  binary.BigEndian.Uint64(b[9:]),
		seen: binary.BigEndian.Uint64(b[17:]),
	}, nil
}

// fresh reports whether generation gen has not been received yet.
func (r ratchet) fresh(gen uint64) bool {
	if gen >= r.top {
		return true
	}
	back := r.top - 1 - gen
	return back < replayWindow && r.seen&(1<<back) == 0
}

// receive records generation gen as received; the caller checked fresh.
// Generations are uint32 on the wire (RFC 9420 §6.3.2), so top never
// overflows.
func (r ratchet) receive(gen uint64) ratchet {
	if gen >= r.top {
		shift := gen + 1 - r.top
		if shift >= replayWindow {
			r.seen = 0
		} else {
			r.seen <<= shift
		}
		r.top = gen + 1
		r.seen |= 1
		return r
	}
	r.seen |= 1 << (r.top - 1 - gen)
	return r
}
