// Package candor holds the vocabulary every layer of candor shares: the
// identifiers of groups, devices and epochs, and the sentinel errors that
// every backend and adapter wraps so callers can test them with errors.Is.
//
// Candor is an end-to-end encrypted messenger whose record copy is a visible
// member of every conversation; see README.md and docs/design/architecture.md.
package candor

import (
	"encoding/hex"
	"errors"
)

// Sentinel errors. Packages wrap them with context
// (fmt.Errorf("loading group %s: %w", id, candor.ErrNotFound)) and callers
// test for them with errors.Is; no package returns them bare where it can
// say more.
var (
	// ErrNotFound reports that a group, device, key or record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports that the request lost a race with another writer:
	// a commit for an epoch that already has one, or a message for an epoch
	// that has moved on. The caller catches up and tries again.
	ErrConflict = errors.New("conflict")
	// ErrPermission reports a refusal by policy: a member that is not an
	// enrolled device, a group without the archive, a revoked device.
	ErrPermission = errors.New("refused by policy")
	// ErrInvalid reports malformed or oversized input.
	ErrInvalid = errors.New("invalid input")
	// ErrOverloaded reports that the service is shedding load; retry later.
	ErrOverloaded = errors.New("overloaded")
)

// GroupID names one conversation: the MLS group_id. Candor makes them 16
// random bytes; values from elsewhere (test vectors) may have other lengths.
type GroupID string

// String returns the group id in lower-case hex, the form used in logs,
// URLs and the command line.
func (id GroupID) String() string { return hex.EncodeToString([]byte(id)) }

// MarshalText encodes the id in hex, so that JSON and other text formats
// carry binary ids intact (encoding/json would replace bytes that are not
// UTF-8 in a plain string).
func (id GroupID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (id *GroupID) UnmarshalText(b []byte) error {
	v, err := ParseGroupID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseGroupID is the inverse of GroupID.String.
func ParseGroupID(s string) (GroupID, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return "", errors.Join(ErrInvalid, errors.New("group id must be non-empty hex"))
	}
	return GroupID(b), nil
}

// Epoch is an MLS epoch number: it advances by one with every commit.
type Epoch uint64

// UserID names a person in the organisation, as written in the subject of
// their devices' certificates.
type UserID string

// DeviceID names one enrolled device of a person.
type DeviceID string
