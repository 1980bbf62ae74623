package custody

import (
	"errors"
	"fmt"

	"candor"
)

// Sentinel errors. Every error the package returns wraps one of them, or
// candor.ErrInvalid for a bad argument.
var (
	// ErrMalformed reports bytes that are not a well-formed encoding of the
	// expected object. It wraps candor.ErrInvalid.
	ErrMalformed = fmt.Errorf("custody: malformed encoding: %w", candor.ErrInvalid)
	// ErrDecrypt is the one opaque failure of every HPKE open: a wrong key,
	// a share sealed for another slot, organisation or request, and damaged
	// ciphertext all look the same, on purpose.
	ErrDecrypt = errors.New("custody: decryption failed")
	// ErrPassphrase reports that a custodian key file did not open: the
	// passphrase is wrong or the file was altered. AES-GCM cannot tell
	// which.
	ErrPassphrase = errors.New("custody: wrong passphrase or damaged key file")
	// ErrBadShare reports a share that does not lie on the polynomial the
	// published commitments describe.
	ErrBadShare = errors.New("custody: share does not match the published commitments")
	// ErrBadSignature reports an approval or endorsement whose signature
	// does not verify under the custodian's public key in the policy.
	ErrBadSignature = errors.New("custody: custodian's signature does not verify")
	// ErrMismatch reports an object bound to another policy, custodian slot
	// or opening request than the one it is used with.
	ErrMismatch = errors.New("custody: object belongs to another policy, custodian or request")
	// ErrNotEnoughShares reports fewer than k distinct valid approvals.
	ErrNotEnoughShares = errors.New("custody: fewer approvals than the policy's threshold")
)

// CustodianError names the custodian an error is about, so that a tampered
// or mistaken share is attributed to its slot rather than lost in a
// generic failure. Err wraps one of the sentinels above.
type CustodianError struct {
	Index int    // the custodian's slot in the policy, 1..n
	Name  string // the custodian's name in the policy
	Err   error
}

func (e *CustodianError) Error() string {
	return fmt.Sprintf("custodian %d (%q): %v", e.Index, e.Name, e.Err)
}

func (e *CustodianError) Unwrap() error { return e.Err }
