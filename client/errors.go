package client

import (
	"errors"
	"fmt"

	"candor"
	"candor/api"
)

// Errors a front end shows to people. Each wraps the candor sentinel of its
// class, so callers can test either (errors.Is(err, client.ErrRevoked),
// errors.Is(err, candor.ErrPermission)).
var (
	// ErrBadInvitation: the invitation code is mistyped, already used,
	// expired, or for another person. The server says no more, on purpose.
	ErrBadInvitation = fmt.Errorf("the invitation code is not valid: it may be mistyped, used or expired; ask for a new one: %w", candor.ErrPermission)
	// ErrServerIdentity: the server did not prove it belongs to the
	// organisation (its certificate does not chain to the CA the invitation
	// or the profile names).
	ErrServerIdentity = fmt.Errorf("the server could not prove it belongs to your organisation; not connecting: %w", candor.ErrPermission)
	// ErrUnreachable: the server could not be reached.
	ErrUnreachable = errors.New("the server cannot be reached; check the network and try again")
	// ErrRevoked: this device was revoked. It must be enrolled again.
	ErrRevoked = fmt.Errorf("this device has been revoked; enrol it again with a new invitation: %w", candor.ErrPermission)
	// ErrUnknownDevice: the server does not know this device's certificate.
	ErrUnknownDevice = fmt.Errorf("the server does not know this device; enrol it again with a new invitation: %w", candor.ErrPermission)
	// ErrRemoved: this device is not (or no longer) a member of the
	// conversation.
	ErrRemoved = fmt.Errorf("you are not a member of this conversation (any more): %w", candor.ErrPermission)
	// ErrArchive: the server presents an archive other than the one this
	// device pinned at enrolment, or one not endorsed by every custodian,
	// or a conversation holds another archive. Nothing is sent meanwhile.
	ErrArchive = fmt.Errorf("the organisation's archive is not the one this device trusts: %w", candor.ErrPermission)
	// ErrNotArchived: a conversation lacks the organisation's archive;
	// candor sends nothing into it.
	ErrNotArchived = fmt.Errorf("this conversation lacks the organisation's archive, so nothing can be sent into it: %w", candor.ErrPermission)
	// ErrArchiveStays: the archive cannot be removed from a conversation.
	ErrArchiveStays = fmt.Errorf("the organisation's archive is in every conversation and cannot be removed: %w", candor.ErrPermission)
	// ErrPolicy: the server refused a membership change by policy.
	ErrPolicy = fmt.Errorf("the organisation's policy does not allow this change of members: %w", candor.ErrPermission)
	// ErrUnknownGroup: no such conversation.
	ErrUnknownGroup = fmt.Errorf("no such conversation: %w", candor.ErrNotFound)
	// ErrUnknownUser: no such person in the organisation.
	ErrUnknownUser = fmt.Errorf("no such person in the organisation: %w", candor.ErrNotFound)
	// ErrNoKeys: a device of a person to add has published no keys; it
	// must come online once.
	ErrNoKeys = fmt.Errorf("a device of this person cannot be added until it comes online: %w", candor.ErrNotFound)
	// ErrNotMemberUser: a person to remove is not in the conversation.
	ErrNotMemberUser = fmt.Errorf("this person is not in the conversation: %w", candor.ErrNotFound)
	// ErrBusy: the conversation kept changing under this device (other
	// members' commits) and it gave up after a few tries.
	ErrBusy = fmt.Errorf("the conversation is changing too quickly; try again: %w", candor.ErrConflict)
	// ErrOverloaded: the server is shedding load.
	ErrOverloaded = fmt.Errorf("the server is busy; try again later: %w", candor.ErrOverloaded)
	// ErrTooLarge: the message is over the server's limit.
	ErrTooLarge = fmt.Errorf("the message is too large: %w", candor.ErrInvalid)
	// ErrProtocol: the server and this device do not understand each other
	// (a bug on one side, or versions that do not match).
	ErrProtocol = fmt.Errorf("the server refused the request as malformed; this device may need an update: %w", candor.ErrInvalid)
	// ErrServer: the server failed.
	ErrServer = errors.New("the server had an internal error; try again later")
	// ErrNotEnrolled: the profile folder holds no enrolled device.
	ErrNotEnrolled = fmt.Errorf("no device is enrolled in this profile; enrol it with an invitation code first: %w", candor.ErrNotFound)
	// ErrAlreadyEnrolled: the profile folder already holds a device.
	ErrAlreadyEnrolled = fmt.Errorf("a device is already enrolled in this profile: %w", candor.ErrConflict)
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
)

// ServerError is an error response from the server: its catalogued code,
// its message, and the client sentinel the code maps to, which Unwrap
// returns. Error() speaks to people; Code and Message are for diagnosis.
type ServerError struct {
	Op      string   // the request, e.g. "POST /v1/groups"
	Status  int      // HTTP status
	Code    api.Code // the catalogued code; empty if the body was not an api.Error
	Message string   // the server's message (for people; may change)
	Epoch   uint64   // for stale_epoch and commit_conflict
	Seq     uint64   // for commit_conflict and replay
	err     error
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("%v (%s: %s %s)", e.err, e.Op, e.Code, e.Message)
}

func (e *ServerError) Unwrap() error { return e.err }

// Internal sentinels for codes the client handles itself; they escape only
// when it gives up.
var (
	errStaleEpoch     = fmt.Errorf("message for an old epoch: %w", candor.ErrConflict)
	errCommitConflict = fmt.Errorf("another commit won the epoch: %w", candor.ErrConflict)
	errReplay         = fmt.Errorf("message already in the log: %w", candor.ErrConflict)
	errGroupExists    = fmt.Errorf("group id taken: %w", candor.ErrConflict)
	errNotFound       = fmt.Errorf("not found on the server: %w", candor.ErrNotFound)
)

// sentinelFor maps a catalogued code to the client's sentinel.
func sentinelFor(code api.Code) error {
	switch code {
	case api.CodeBadInvitation:
		return ErrBadInvitation
	case api.CodeRevokedDevice:
		return ErrRevoked
	case api.CodeUnknownDevice, api.CodeNoCertificate:
		return ErrUnknownDevice
	case api.CodeNotMember:
		return ErrRemoved
	case api.CodePolicy:
		return ErrPolicy
	case api.CodeUnknownGroup:
		return ErrUnknownGroup
	case api.CodeUnknownUser:
		return ErrUnknownUser
	case api.CodeNoKeyPackages:
		return ErrNoKeys
	case api.CodeNotFound:
		return errNotFound
	case api.CodeGroupExists:
		return errGroupExists
	case api.CodeStaleEpoch:
		return errStaleEpoch
	case api.CodeCommitConflict:
		return errCommitConflict
	case api.CodeReplay:
		return errReplay
	case api.CodeOverloaded:
		return ErrOverloaded
	case api.CodeTooLarge:
		return ErrTooLarge
	case api.CodeInternal:
		return ErrServer
	}
	return ErrProtocol
}

// fatal reports whether err means this device can no longer talk to the
// server at all, so that Run should stop instead of reconnecting.
func fatal(err error) bool {
	return errors.Is(err, ErrRevoked) || errors.Is(err, ErrUnknownDevice) || errors.Is(err, ErrServerIdentity)
}
