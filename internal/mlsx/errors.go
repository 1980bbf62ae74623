package mlsx

import (
	"errors"
	"fmt"

	"candor"

	"github.com/thomas-vilte/mls-go/ciphersuite"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/group"
)

// Errors. Each wraps a candor sentinel, so callers outside candor's MLS layer
// can test for the broad class (errors.Is(err, candor.ErrConflict)) and
// callers that care can test for the precise one.
var (
	// ErrGroupNotFound: the store holds no state for the group.
	ErrGroupNotFound = fmt.Errorf("mlsx: group state: %w", candor.ErrNotFound)
	// ErrStaleEpoch: the message is for an epoch other than the group's
	// current one. [EpochError] carries both numbers.
	ErrStaleEpoch = fmt.Errorf("mlsx: message is for another epoch: %w", candor.ErrConflict)
	// ErrBadSignature: a signature or membership tag does not verify.
	ErrBadSignature = fmt.Errorf("mlsx: signature does not verify: %w", candor.ErrInvalid)
	// ErrDecrypt: a message could not be decrypted. It says no more, on
	// purpose: which step failed is of use only to an attacker.
	ErrDecrypt = fmt.Errorf("mlsx: message could not be decrypted: %w", candor.ErrInvalid)
	// ErrPolicy: candor's rules refuse the group or a member. [PolicyError]
	// names the member and the rule.
	ErrPolicy = fmt.Errorf("mlsx: %w", candor.ErrPermission)
	// ErrMalformed: the bytes are not a well-formed message of the kind
	// expected, or the message is valid MLS that this operation cannot use.
	ErrMalformed = fmt.Errorf("mlsx: malformed message: %w", candor.ErrInvalid)
	// ErrNoKeyPackage: a Welcome names none of this device's KeyPackages.
	ErrNoKeyPackage = fmt.Errorf("mlsx: welcome is for none of this device's key packages: %w", candor.ErrNotFound)
	// ErrReadOnly: a passive member cannot send or commit.
	ErrReadOnly = fmt.Errorf("mlsx: passive member cannot send: %w", candor.ErrPermission)
)

// EpochError reports a message for an epoch other than the current one.
type EpochError struct {
	Got, Current candor.Epoch
}

func (e *EpochError) Error() string {
	return fmt.Sprintf("mlsx: message for epoch %d, group is at epoch %d", e.Got, e.Current)
}

func (e *EpochError) Unwrap() error { return ErrStaleEpoch }

// PolicyError reports a member that candor's rules refuse.
type PolicyError struct {
	Leaf   uint32 // the member's leaf index in the ratchet tree
	Reason error  // the validator's or the adapter's reason
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("mlsx: member at leaf %d refused: %v", e.Leaf, e.Reason)
}

func (e *PolicyError) Unwrap() []error { return []error{ErrPolicy, e.Reason} }

// translate maps an error from the MLS library to candor's errors. The
// library's text is kept for diagnosis (it never contains key material) but
// flattened with %v, so no library type leaks to callers through errors.As.
// Decryption failures say nothing more than [ErrDecrypt].
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var epochErr *group.ErrEpochMismatch
	var sigErr *group.ErrInvalidSignature
	var decErr *group.ErrDecryptionFailed
	switch {
	case errors.As(err, &epochErr):
		return fmt.Errorf("%s: %w", op, &EpochError{Got: candor.Epoch(epochErr.Got), Current: candor.Epoch(epochErr.Want)})
	case errors.As(err, &sigErr):
		return fmt.Errorf("%s: %w", op, ErrBadSignature)
	case errors.As(err, &decErr):
		return fmt.Errorf("%s: %w", op, ErrDecrypt)
	case errors.Is(err, group.ErrSenderNotActive), errors.Is(err, group.ErrMissingSenderSignature):
		return fmt.Errorf("%s: sender is not a member: %w", op, ErrBadSignature)
	case isSignatureFailure(err):
		return fmt.Errorf("%s: %w", op, ErrBadSignature)
	}
	return fmt.Errorf("%s: %w: %v", op, ErrMalformed, err)
}

func isSignatureFailure(err error) bool {
	return errors.Is(err, framing.ErrVerificationFailed) ||
		errors.Is(err, framing.ErrInvalidMembershipTag) ||
		errors.Is(err, ciphersuite.ErrInvalidSignature) ||
		errors.Is(err, ciphersuite.ErrVerificationError) ||
		errors.Is(err, group.ErrConfirmationTagMismatch)
}
