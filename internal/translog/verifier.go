package translog

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/note"

	"candor"
)

// InconsistencyKind says how a presented checkpoint contradicts a trusted
// one.
type InconsistencyKind int

const (
	// Rollback: the presented tree is smaller than the trusted one. The
	// log lost or withdrew records it had published.
	Rollback InconsistencyKind = iota + 1
	// Fork: the presented tree does not extend the trusted one. Either
	// both have the same size and different root hashes (two signed
	// versions of the same history), or the log could not prove that the
	// larger tree keeps the smaller as its prefix.
	Fork
)

func (k InconsistencyKind) String() string {
	switch k {
	case Rollback:
		return "rollback"
	case Fork:
		return "fork"
	}
	return fmt.Sprintf("InconsistencyKind(%d)", int(k))
}

// An InconsistentError reports that a log signed two checkpoints that
// cannot both be true of one append-only log. It matches ErrInconsistent
// under errors.Is. When both checkpoints came signed, the pair is evidence
// against the log that anyone holding its public key can check: keep it and
// show it, do not retry it away.
type InconsistentError struct {
	Kind InconsistencyKind
	// Trusted is the checkpoint checked earlier; Presented is the one that
	// contradicts it.
	Trusted, Presented Checkpoint
	// TrustedNote and PresentedNote are the signed checkpoints, when the
	// check was given them (Verifier always is).
	TrustedNote, PresentedNote []byte
	// Unproven is set when the sizes differ and the consistency proof
	// failed: the pair alone is not evidence of a fork, because the log,
	// or whatever carried the proof, may have sent a wrong proof for a
	// tree that is consistent. A log that is honest can always send a
	// proof that verifies.
	Unproven bool
}

func (e *InconsistentError) Error() string {
	detail := ""
	switch {
	case e.Kind == Rollback:
		detail = fmt.Sprintf("it now shows %d records after showing %d", e.Presented.Size, e.Trusted.Size)
	case e.Unproven:
		detail = fmt.Sprintf("its tree of %d records (root %v) is not proven to extend the tree of %d records (root %v) it showed before", e.Presented.Size, e.Presented.Hash, e.Trusted.Size, e.Trusted.Hash)
	default:
		detail = fmt.Sprintf("it signed two different trees of %d records (roots %v and %v)", e.Trusted.Size, e.Trusted.Hash, e.Presented.Hash)
	}
	return fmt.Sprintf("translog: LOG %s IS INCONSISTENT (%s): %s", e.Trusted.Origin, e.Kind, detail)
}

// Is makes errors.Is(err, ErrInconsistent) hold.
func (e *InconsistentError) Is(target error) bool { return target == ErrInconsistent }

// A Verifier is a log's client: it keeps the last checkpoint it trusted
// and accepts a new one only if the log's key signed it and the log proves
// it extends the trusted one. It is safe for concurrent use; updates are
// serialised, so two fetched checkpoints are checked one after the other.
//
// The trusted checkpoint is the client's memory of the log: persist
// [Verifier.Trusted] after each successful [Verifier.Update] and give it
// back in [VerifierConfig.Trusted] next time, or a log that rolled back
// while the client was away goes unnoticed.
type Verifier struct {
	key note.Verifier

	mu          sync.Mutex
	trusted     Checkpoint
	trustedNote []byte
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Key is the log's public key; its name is the log's origin.
	// Required.
	Key note.Verifier
	// Trusted is the signed checkpoint the client trusted last, as
	// Verifier.Trusted returned it. Nil starts from the empty log: the
	// first checkpoint is then accepted on its signature alone (every
	// tree extends the empty one).
	Trusted []byte
}

// NewVerifier returns a Verifier for the log whose key cfg names. A
// Trusted checkpoint that does not open under the key is refused, with the
// error Open gives.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Key == nil {
		return nil, fmt.Errorf("translog: verifier without a key: %w", candor.ErrInvalid)
	}
	v := &Verifier{key: cfg.Key, trusted: Checkpoint{Origin: cfg.Key.Name(), Hash: emptyTree}}
	if cfg.Trusted != nil {
		c, err := Open(cfg.Trusted, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("translog: trusted checkpoint: %w", err)
		}
		v.trusted, v.trustedNote = c, append([]byte(nil), cfg.Trusted...)
	}
	return v, nil
}

// Trusted returns the checkpoint the Verifier trusts and its signed form
// (nil while it trusts only the empty log).
func (v *Verifier) Trusted() (Checkpoint, []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.trusted, append([]byte(nil), v.trustedNote...)
}

// Update checks signed, a checkpoint the log presents, against the trusted
// one, with proof a consistency proof from the trusted size to the
// presented size (ignored when the sizes are equal or nothing is trusted
// yet). On success the presented checkpoint becomes the trusted one and is
// returned.
//
// Failures, none of which changes what is trusted:
//   - ErrBadSignature: not signed by the log's key;
//   - ErrWrongOrigin: a checkpoint of another log;
//   - ErrInconsistent (an [*InconsistentError] carrying both signed
//     checkpoints): a rollback or a fork. Stop and say so; this is what
//     the log exists to catch;
//   - candor.ErrInvalid: malformed input, or a proof between other sizes.
func (v *Verifier) Update(signed []byte, proof ConsistencyProof) (Checkpoint, error) {
	c, err := Open(signed, v.key)
	if err != nil {
		return Checkpoint{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := VerifyConsistency(v.trusted, c, proof); err != nil {
		if ie, ok := errors.AsType[*InconsistentError](err); ok {
			ie.TrustedNote = append([]byte(nil), v.trustedNote...)
			ie.PresentedNote = append([]byte(nil), signed...)
		}
		return Checkpoint{}, err
	}
	v.trusted, v.trustedNote = c, append([]byte(nil), signed...)
	return c, nil
}

// VerifyInclusion checks that record is in the log under the trusted
// checkpoint: p must be a proof for the trusted size. See the function
// VerifyInclusion for the errors.
func (v *Verifier) VerifyInclusion(record []byte, p InclusionProof) error {
	v.mu.Lock()
	c := v.trusted
	v.mu.Unlock()
	return VerifyInclusion(c, record, p)
}
