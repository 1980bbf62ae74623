package client

import (
	"time"

	"candor"
	"candor/internal/devstore"
)

// State is where a message is in its delivery.
type State = devstore.MessageState

// Message states.
const (
	Sending  = devstore.StateSending  // written here, not yet acknowledged by the server
	Sent     = devstore.StateSent     // in the group's log
	Received = devstore.StateReceived // from another device
)

// Message is one text message of a conversation.
type Message struct {
	Group  candor.GroupID
	Seq    uint64 // position in the group's log; 0 while sending
	User   candor.UserID
	Device candor.DeviceID
	Time   time.Time // when the server accepted it; the local time while sending
	Text   string
	State  State
}

// Member is one device in a conversation, or its archive.
type Member struct {
	User   candor.UserID // "archive" for the archive
	Device candor.DeviceID
	Leaf   uint32 // its leaf in the MLS ratchet tree (RFC 9420 §7.8)
	// Archive marks the organisation's archive (see Client.Archive): a
	// member of every conversation, which keeps the record.
	Archive bool
	// ArchiveKey is, for the archive, the name of the archive key the
	// conversation holds: the current one (Archive.Key), or a previous one
	// until the conversation's next commit replaces it.
	ArchiveKey string
}

// Group is a conversation as this device knows it.
type Group struct {
	ID      candor.GroupID
	Name    string // local only; "" for groups this device joined
	Removed bool   // this device is no longer a member; the history stays
	// JoinedSeq is the log entry at which this device was added (0 when
	// it created the conversation), at time Joined. Messages before it
	// were encrypted only for the devices that were members then, so this
	// device's history starts there.
	JoinedSeq uint64
	Joined    time.Time
	ReadSeq   uint64 // the last entry its person has seen here (MarkRead)
	Unread    int    // messages received after ReadSeq
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// EventMessage: a message arrived (Message).
	EventMessage EventKind = iota + 1
	// EventMembers: devices joined or left a conversation (Added, Removed).
	EventMembers
	// EventJoined: this device was added to a conversation (Added lists
	// its members).
	EventJoined
	// EventRemoved: this device was removed from a conversation.
	EventRemoved
	// EventConnected: Run's live stream is up and caught up.
	EventConnected
	// EventDisconnected: Run's live stream broke (Err); it reconnects.
	EventDisconnected
	// EventError: an entry of a group's log could not be used and was
	// skipped (Err): a message that does not decrypt, a change of members
	// that breaks candor's rules.
	EventError
)

func (k EventKind) String() string {
	switch k {
	case EventMessage:
		return "message"
	case EventMembers:
		return "members"
	case EventJoined:
		return "joined"
	case EventRemoved:
		return "removed"
	case EventConnected:
		return "connected"
	case EventDisconnected:
		return "disconnected"
	case EventError:
		return "error"
	}
	return "unknown"
}

// Event is something a front end may want to show at once. Events are
// notifications: everything they report about messages is also in the
// history (Messages), which is the record.
type Event struct {
	Kind    EventKind
	Group   candor.GroupID
	Seq     uint64
	Message Message  // EventMessage
	Added   []Member // EventMembers
	Removed []Member // EventMembers
	Err     error    // EventDisconnected, EventError
}

// eventBuffer is how many events wait for a reader before new ones are
// dropped (and logged).
const eventBuffer = 1024

// emit delivers an event without blocking: a front end that does not read
// Events must not stop the client from processing its logs.
func (c *Client) emit(ev Event) {
	select {
	case c.events <- ev:
	default:
		c.log.Warn("event dropped: nobody reads Events", keyKind, ev.Kind.String(), keyGroup, ev.Group.String())
	}
}

// Events returns the channel of events. It is never closed; events that
// find it full are dropped.
func (c *Client) Events() <-chan Event { return c.events }
