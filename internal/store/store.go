// Package store is the server's storage: enrolment, the key directory, and
// each group's ordered, append-only log (which is also the archive's
// journal). [Store] is the contract; sqlstore is its one database/sql
// implementation, for SQLite now and PostgreSQL later; storetest is the
// contract test suite every implementation passes.
//
// Nothing secret is stored here: certificates, public KeyPackages, hashes
// of invitation secrets, MLS messages as devices sent them (application
// messages are ciphertext, handshake messages are public by design), and the
// public member list the server follows.
package store

import (
	"context"
	"fmt"
	"time"

	"candor"
	"candor/internal/journal"
)

// Store is the server's durable state. Every method is atomic; methods are
// safe for concurrent use. Missing rows are reported by wrapping
// candor.ErrNotFound, lost races by wrapping candor.ErrConflict; no method
// returns a nil error with a zero value to mean "absent".
type Store interface {
	// CreateInvitation stores a new invitation. ErrConflict if the id exists.
	CreateInvitation(ctx context.Context, inv Invitation) error
	// Invitation returns an invitation, used or not.
	Invitation(ctx context.Context, id string) (Invitation, error)
	// Enrol marks invitation id used and adds d, in one transaction, if the
	// invitation exists, is unused, has not expired at now, names d.User,
	// and its SecretHash equals secretHash (compared in constant time).
	// Otherwise it changes nothing and wraps candor.ErrPermission. Exactly
	// one of any number of concurrent Enrols with one invitation succeeds.
	Enrol(ctx context.Context, id string, secretHash []byte, now time.Time, d Device) error
	// Device returns a device by id.
	Device(ctx context.Context, id candor.DeviceID) (Device, error)
	// DeviceByFingerprint returns the device whose certificate has this
	// SHA-256 fingerprint.
	DeviceByFingerprint(ctx context.Context, fingerprint []byte) (Device, error)
	// Devices returns a user's devices, revoked ones included, in
	// enrolment order; an unknown user has none (an empty list, no error).
	Devices(ctx context.Context, user candor.UserID) ([]Device, error)
	// RevokeDevice marks a device revoked at at. Revoking a revoked device
	// keeps the first time and is no error. It also deletes the device's
	// KeyPackages.
	RevokeDevice(ctx context.Context, id candor.DeviceID, at time.Time) error
	// RevokedSince returns the devices revoked at or after since (by their
	// RevokedAt), in no particular order; none is an empty list.
	RevokedSince(ctx context.Context, since time.Time) ([]candor.DeviceID, error)

	// AddKeyPackages adds one-time KeyPackages to a device's stock and,
	// when lastResort is non-nil, replaces its last-resort one. A ref
	// already stored is ErrConflict.
	AddKeyPackages(ctx context.Context, device candor.DeviceID, kps []KeyPackage, lastResort *KeyPackage) error
	// CountKeyPackages says how many unclaimed one-time KeyPackages a
	// device has, and whether it has a last-resort one.
	CountKeyPackages(ctx context.Context, device candor.DeviceID) (available int, lastResort bool, err error)
	// ClaimKeyPackages takes one KeyPackage for each unrevoked device of
	// user: the oldest unclaimed one-time KeyPackage, marked claimed in the
	// same transaction so that no two claims get it, or else the device's
	// last-resort one, which stays. A device with neither is left out; the
	// caller compares with Devices.
	ClaimKeyPackages(ctx context.Context, user candor.UserID, now time.Time) ([]KeyPackage, error)
	// KeyPackageOwner returns the device a KeyPackageRef belongs to, for
	// routing Welcomes; claimed KeyPackages are remembered.
	KeyPackageOwner(ctx context.Context, ref []byte) (candor.DeviceID, error)

	// CreateGroup registers a group at epoch 0 whose one member is
	// creator. ErrConflict if the id exists.
	CreateGroup(ctx context.Context, g Group, creator candor.DeviceID) error
	// Group returns a group's current state.
	Group(ctx context.Context, id candor.GroupID) (Group, error)
	// GroupIDs returns the id of every group, in byte order.
	GroupIDs(ctx context.Context) ([]candor.GroupID, error)
	// GroupsOf returns the groups a device is a member of, with its cursor.
	GroupsOf(ctx context.Context, device candor.DeviceID) ([]Membership, error)
	// Members returns the devices that are members of a group.
	Members(ctx context.Context, id candor.GroupID) ([]candor.DeviceID, error)
	// Append adds one entry at the end of a group's log, if the log's head
	// is still req.PrevHead; otherwise it changes nothing and wraps
	// candor.ErrConflict. An entry whose Message is byte-for-byte one already
	// in the group's log is refused with a *ReplayError. See AppendRequest
	// for what else it changes. It returns the new entry's sequence number
	// (PrevHead+1).
	Append(ctx context.Context, req AppendRequest) (uint64, error)
	// EntryOf returns the sequence number of the entry of a group's log
	// whose message is byte for byte msg; ErrNotFound if there is none (a
	// deleted entry is none).
	EntryOf(ctx context.Context, id candor.GroupID, msg []byte) (uint64, error)
	// Log returns up to limit entries of a group's log with Seq > after, in
	// order. On a log whose prefix was deleted (see DeleteBefore), an after
	// below LogStart's Seq-1 gets the entries from the start: the first
	// entry's Seq then jumps past after+1, and the caller asks LogStart
	// where, and on what hash, the log now begins.
	Log(ctx context.Context, id candor.GroupID, after uint64, limit int) ([]Entry, error)
	// CommitSeq returns the sequence number of the commit that ended epoch
	// in a group's log; ErrNotFound if there is none, or it was deleted.
	CommitSeq(ctx context.Context, id candor.GroupID, epoch candor.Epoch) (uint64, error)
	// SetCursor records that device has processed a group's log up to seq.
	// A cursor never moves back: a lower seq is ignored. A seq past the
	// log's head is ErrInvalid; a device that is not a member of the group
	// (or a group that does not exist) is ErrNotFound.
	SetCursor(ctx context.Context, device candor.DeviceID, id candor.GroupID, seq uint64) error
	// Welcomes returns the unacknowledged Welcomes for a device, oldest first.
	Welcomes(ctx context.Context, device candor.DeviceID) ([]Welcome, error)
	// DeleteWelcome acknowledges a Welcome. ErrNotFound if it is not the
	// device's.
	DeleteWelcome(ctx context.Context, device candor.DeviceID, id string) error

	// DeleteBefore deletes the entries of group id's log with Seq < seq (a
	// whole prefix: the entry at seq is kept) and the Welcomes queued with
	// them, and remembers the chain hash of entry seq-1 as the log's start
	// (LogStart). seq must be 1..Head (ErrInvalid otherwise; ErrNotFound
	// for an unknown group). Cutting at or before the current start deletes
	// nothing and is no error, so DeleteBefore is idempotent, and of
	// concurrent calls on one group each deletes what the others have not;
	// appends, to the group or others, go on meanwhile and are never
	// refused because of it. The head, its hash and the chain of what is
	// kept do not change.
	//
	// A large prefix may be deleted in several transactions, oldest entries
	// first, each moving the start: at any moment, and after a failure (a
	// cancelled ctx, say), the log is a whole log cut at its start, never
	// one with a hole; calling again finishes the cut. It returns how many
	// entries it deleted, a failed call's included.
	//
	// The replay check of Append then covers only the entries kept:
	// refusing messages of epochs long past is the caller's job.
	DeleteBefore(ctx context.Context, id candor.GroupID, seq uint64) (uint64, error)
	// LogStart says where group id's log now begins. ErrNotFound for an
	// unknown group.
	LogStart(ctx context.Context, id candor.GroupID) (LogStart, error)
	// WelcomeSeqs returns the seq and time of every Welcome queued for
	// device in group id and not yet acknowledged or deleted with its
	// entry, oldest (lowest Seq) first: for the archive's device, which
	// never acknowledges, its anchors. None is an empty list.
	WelcomeSeqs(ctx context.Context, device candor.DeviceID, id candor.GroupID) ([]WelcomeRef, error)
	// Spans returns every membership of device, past and present, in group
	// then Joined order: from the entry whose commit added it (0: it created
	// the group, or was a member before the store kept spans) to the entry
	// whose commit removed it (0: still a member). Spans outlive the
	// entries they name: DeleteBefore keeps them. None is an empty list.
	Spans(ctx context.Context, device candor.DeviceID) ([]Span, error)

	// Close releases the store.
	Close() error
}

// Invitation is a one-time invitation for a user to enrol a device.
type Invitation struct {
	ID         string
	User       candor.UserID
	SecretHash []byte // SHA-256 of the secret; the secret itself is never stored
	Created    time.Time
	Expires    time.Time
	Used       bool
}

// Device is an enrolled device.
type Device struct {
	ID          candor.DeviceID
	User        candor.UserID
	Name        string
	Certificate []byte // DER
	Fingerprint []byte // SHA-256 of Certificate
	EnrolledAt  time.Time
	RevokedAt   time.Time // zero: not revoked
}

// Revoked reports whether the device was revoked.
func (d Device) Revoked() bool { return !d.RevokedAt.IsZero() }

// KeyPackage is one public KeyPackage in the directory.
type KeyPackage struct {
	Ref        []byte // KeyPackageRef
	Device     candor.DeviceID
	Data       []byte // MLSMessage-wrapped
	LastResort bool
	Added      time.Time
}

// Group is a group's state on the server.
type Group struct {
	ID      candor.GroupID
	Epoch   candor.Epoch
	Head    uint64 // sequence number of the last entry; 0 for an empty log
	Roster  []byte // the mlsx.Roster the server follows, in its stored form
	Created time.Time
}

// Membership is a device's view of one of its groups.
type Membership struct {
	Group  Group
	Cursor uint64
}

// Entry is one message in a group's log.
type Entry struct {
	Seq     uint64
	Epoch   candor.Epoch // the epoch the message was sent in
	Commit  bool         // the message is a commit: it ended Epoch
	Sender  candor.DeviceID
	Time    time.Time
	Message []byte
	// Hash is the journal's chain hash of the entry (journal.EntryHash
	// over the entry and its predecessor's Hash), which the store
	// computes when it appends it; Append ignores the field.
	Hash journal.Hash
}

// AppendRequest is one append to a group's log. Besides the entry:
//   - Roster, when non-nil, replaces the group's roster and Epoch its epoch
//     (commits, and proposals, which the roster remembers);
//   - Members, when non-nil, replaces the set of the group's member devices;
//     devices that join get a cursor at the new entry's predecessor and a
//     Span from the new entry; devices that leave end theirs at it;
//   - Welcomes are queued for their devices, with the new entry's Seq.
type AppendRequest struct {
	Group    candor.GroupID
	PrevHead uint64
	Entry    Entry
	Roster   []byte
	Epoch    candor.Epoch
	Members  []candor.DeviceID
	Welcomes []Welcome
}

// Welcome is a Welcome queued for one device.
type Welcome struct {
	ID     string
	Device candor.DeviceID
	Group  candor.GroupID
	Seq    uint64
	Time   time.Time
	Data   []byte
}

// LogStart is where a group's log begins: its first entry kept, and the
// chain hash that entry is chained to.
type LogStart struct {
	Seq uint64 // the first entry kept: 1 for a log never cut
	// Prev is the chain hash of entry Seq-1, which DeleteBefore deleted;
	// zero for a log never cut, whose entry 1 is chained to
	// journal.Genesis.
	Prev journal.Hash
}

// WelcomeRef is where a Welcome was queued: with the entry at Seq, at Time.
type WelcomeRef struct {
	Seq  uint64
	Time time.Time
}

// Span is one membership of a device in a group: from the commit at
// Joined (0: from the group's creation) to the commit at Left (0: still a
// member), both sequence numbers of the group's log.
type Span struct {
	Group        candor.GroupID
	Device       candor.DeviceID
	Joined, Left uint64
}

// UserSpans returns every membership of every device of user, revoked
// devices included, device by device in enrolment order: the groups a
// person was ever in, which legal holds and openings scoped to people
// cover. An unknown user has none.
func UserSpans(ctx context.Context, s Store, user candor.UserID) ([]Span, error) {
	devices, err := s.Devices(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("store: the devices of %s: %w", user, err)
	}
	var out []Span
	for _, d := range devices {
		spans, err := s.Spans(ctx, d.ID)
		if err != nil {
			return nil, fmt.Errorf("store: the memberships of %s's device %s: %w", user, d.ID, err)
		}
		out = append(out, spans...)
	}
	return out, nil
}

// ReplayError reports that a message is already in the log, at Seq.
type ReplayError struct {
	Seq uint64
}

func (e *ReplayError) Error() string {
	return fmt.Sprintf("store: message already in the log at %d", e.Seq)
}

func (e *ReplayError) Unwrap() error { return candor.ErrConflict }
