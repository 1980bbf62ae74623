package journal

import (
	"fmt"

	"candor"
)

// ErrBroken is what every chain failure wraps: the journal is not the one
// the server appended. Each failure is one of the error types below, which
// say exactly where the chain breaks; callers use errors.As.
var ErrBroken = fmt.Errorf("journal: chain broken: %w", candor.ErrInvalid)

// TamperError reports an entry whose recomputed hash is not the one
// stored: the entry, or one before it, was changed after it was appended.
// It is reported at the first entry where the two differ, which is the
// changed entry itself when the stored hashes were left as they were.
type TamperError struct {
	Group candor.GroupID
	Seq   uint64
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("journal: group %s: entry %d does not match its stored hash: it was changed after it was appended", e.Group, e.Seq)
}

func (e *TamperError) Unwrap() error { return ErrBroken }

// GapError reports a missing entry: the next entry expected was Want and
// the journal went on at Got (Got > Want). Entries Want to Got-1 are
// missing, or were moved later; which cannot be told until they turn up,
// and the verifier does not guess.
type GapError struct {
	Group     candor.GroupID
	Want, Got uint64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("journal: group %s: entry %d is missing (expected seq %d, got %d)", e.Group, e.Want, e.Want, e.Got)
}

func (e *GapError) Unwrap() error { return ErrBroken }

// OrderError reports an entry whose seq was already passed (Got < Want):
// Duplicate when it is byte for byte the entry just before it, delivered
// twice; otherwise an entry out of order.
type OrderError struct {
	Group     candor.GroupID
	Want, Got uint64
	Duplicate bool
}

func (e *OrderError) Error() string {
	if e.Duplicate {
		return fmt.Sprintf("journal: group %s: entry %d appears twice (expected seq %d next)", e.Group, e.Got, e.Want)
	}
	return fmt.Sprintf("journal: group %s: entry %d is out of order (expected seq %d, got %d)", e.Group, e.Got, e.Want, e.Got)
}

func (e *OrderError) Unwrap() error { return ErrBroken }

// Verifier follows one group's chain, entry by entry, in log order. It
// holds only the last hash, so it checks a journal of any length in
// constant memory, and it can start in the middle of a chain from a hash
// verified before (a resumed replay). A Verifier is not safe for concurrent
// use. Once it has reported an error it stays at the last good entry:
// feeding it more entries reports against that same position.
type Verifier struct {
	group candor.GroupID
	next  uint64 // the seq expected next
	head  Hash   // hash of entry next-1, or Genesis
	// before is the hash head was chained to, so that an entry delivered
	// twice can be told by its hash; known is false when the Verifier was
	// resumed and has accepted nothing yet.
	before Hash
	known  bool
}

// NewVerifier starts at the beginning of group's chain.
func NewVerifier(group candor.GroupID) *Verifier {
	return &Verifier{group: group, next: 1, head: Genesis}
}

// ResumeVerifier continues group's chain after entry seq, whose hash is
// head. seq 0 with Genesis is the beginning.
func ResumeVerifier(group candor.GroupID, seq uint64, head Hash) *Verifier {
	return &Verifier{group: group, next: seq + 1, head: head}
}

// Head returns the seq of the last entry accepted and its hash (0 and
// Genesis before the first).
func (v *Verifier) Head() (uint64, Hash) { return v.next - 1, v.head }

// Check accepts e if it is the next entry of the chain and stored is its
// hash as the server stored it, and returns that hash. Otherwise it
// returns a *GapError, *OrderError or *TamperError and stays where it was.
func (v *Verifier) Check(e Entry, stored Hash) (Hash, error) {
	if err := v.order(e); err != nil {
		return Hash{}, err
	}
	h := EntryHash(v.group, e, v.head)
	if !h.Equal(stored) {
		return Hash{}, &TamperError{Group: v.group, Seq: e.Seq}
	}
	v.accept(e, h)
	return h, nil
}

// Follow accepts e if it is the next entry by seq and returns its chain
// hash, for a journal whose source keeps no hashes: order, gaps and
// duplicates are still checked, but a changed entry cannot be told from
// the original. Compare the final Head with a head the server signed
// (a checkpoint) to check the contents too.
func (v *Verifier) Follow(e Entry) (Hash, error) {
	if err := v.order(e); err != nil {
		return Hash{}, err
	}
	h := EntryHash(v.group, e, v.head)
	v.accept(e, h)
	return h, nil
}

func (v *Verifier) order(e Entry) error {
	switch {
	case e.Seq > v.next:
		return &GapError{Group: v.group, Want: v.next, Got: e.Seq}
	case e.Seq < v.next:
		dup := v.known && e.Seq == v.next-1 && EntryHash(v.group, e, v.before).Equal(v.head)
		return &OrderError{Group: v.group, Want: v.next, Got: e.Seq, Duplicate: dup}
	}
	return nil
}

func (v *Verifier) accept(e Entry, h Hash) {
	v.before, v.known = v.head, true
	v.next, v.head = e.Seq+1, h
}

// Linked is an entry with the hash its store keeps beside it.
type Linked struct {
	Entry
	Hash Hash
}

// Verify checks a whole chain of group from its first entry, in the order
// given, and returns its head. The error is the first break, as Check
// reports it.
func Verify(group candor.GroupID, entries []Linked) (Hash, error) {
	v := NewVerifier(group)
	for _, e := range entries {
		if _, err := v.Check(e.Entry, e.Hash); err != nil {
			return Hash{}, err
		}
	}
	_, head := v.Head()
	return head, nil
}
