// Package api is candor's wire protocol between devices and the server: the
// JSON bodies of every endpoint, the frames of the live stream, and the
// append-only catalogue of error codes. docs/protocol.md describes the same
// protocol for implementers in other languages; the two must agree.
//
// All bodies are JSON (media type application/json). Binary values — MLS
// messages, certificates, KeyPackages — are standard base64 with padding
// (encoding/json's []byte). Times are RFC 3339 in UTC.
package api

import "time"

// Version is the path prefix of every endpoint.
const Version = "/v1"

// Paths. {user}, {group} and {id} are path parameters; group ids are hex.
const (
	PathEnrol       = Version + "/enrol"                    // POST  EnrolRequest → EnrolResponse (no client certificate)
	PathMe          = Version + "/me"                       // GET   → Me
	PathDevices     = Version + "/users/{user}/devices"     // GET   → DeviceList
	PathDevice      = Version + "/devices/{id}"             // DELETE: revoke one of the caller's own devices
	PathKeyPackages = Version + "/keypackages"              // POST  UploadKeyPackages → KeyPackageCount; GET → KeyPackageCount
	PathClaim       = Version + "/users/{user}/keypackages" // POST  (empty) → ClaimedKeyPackages
	PathGroups      = Version + "/groups"                   // POST  CreateGroup → GroupHead; GET → GroupList
	PathGroup       = Version + "/groups/{group}"           // GET   → GroupHead (members included)
	PathMessages    = Version + "/groups/{group}/messages"  // POST  SendRequest → SendResponse; GET ?after=N&limit=M → Log
	PathCursor      = Version + "/groups/{group}/cursor"    // PUT   Cursor
	PathLeave       = Version + "/groups/{group}/leave"     // POST  (empty): the server proposes the removal of the caller's person
	PathWelcomes    = Version + "/welcomes"                 // GET   → WelcomeList
	PathWelcome     = Version + "/welcomes/{id}"            // DELETE: acknowledge
	PathArchive     = Version + "/archive"                  // GET   → Archive
	PathStream      = Version + "/stream"                   // GET   WebSocket upgrade; frames are StreamFrame
)

// Paths of the access transparency log (docs/design/access-log.md): read by
// any enrolled device; written only by the organisation's administrators
// on the server's machine (candord access).
const (
	PathAccessKey        = Version + "/access/key"        // GET   → AccessKey
	PathAccessCheckpoint = Version + "/access/checkpoint" // GET   ?since=N → AccessCheckpoint
	PathAccessRecords    = Version + "/access/records"    // GET   ?from=I&limit=L[&size=S] → AccessRecords
)

// MaxAccessPage is the most records one GET of the access log returns.
const MaxAccessPage = 100

// Limits the server enforces; a larger body is refused with CodeTooLarge.
const (
	MaxBodyBytes       = 1 << 20 // one request body
	MaxMessageBytes    = 256 << 10
	MaxKeyPackages     = 100 // per upload
	MaxLogPage         = 500 // entries per GET of a log
	InvitationLifetime = 7 * 24 * time.Hour
)

// Invitation code: what `candord invite` prints and `candor enroll` reads.
// Its text form is "candor1:" followed by base64url (no padding) of the JSON
// encoding of InvitationCode.
type InvitationCode struct {
	Server        string `json:"server"`         // host:port of the server
	CAFingerprint []byte `json:"ca_fingerprint"` // SHA-256 of the CA certificate's DER
	ID            string `json:"id"`             // invitation id
	Secret        []byte `json:"secret"`         // 32 random bytes; the server keeps only a hash
	// Archive is the SHA-256 of the organisation's archive statement (GET
	// /archive) that the device pins: it accepts no other archive.
	Archive []byte `json:"archive"`
}

// EnrolRequest is sent over TLS, verifying the server's certificate against
// the CA whose fingerprint the invitation carries, without a client
// certificate. The CSR proves possession of the device's private key.
type EnrolRequest struct {
	Invitation string `json:"invitation"`
	Secret     []byte `json:"secret"`
	Name       string `json:"name"` // the device's display name, e.g. "laptop"
	CSR        []byte `json:"csr"`  // PKCS #10, DER, ECDSA P-256
}

// EnrolResponse carries the device's certificate.
type EnrolResponse struct {
	User        string `json:"user"`
	Device      string `json:"device"`      // the device id the server assigned
	Certificate []byte `json:"certificate"` // DER, issued by the CA
	CA          []byte `json:"ca"`          // DER of the CA certificate
	// ExternalSender is the DER certificate, issued by the CA, of the key
	// the server signs its proposals with. Devices name it at index 0 of
	// every group's external_senders extension (RFC 9420 §12.1.8.1).
	ExternalSender []byte `json:"external_sender"`
}

// Me answers who the calling device is.
type Me struct {
	User   string `json:"user"`
	Device string `json:"device"`
	Name   string `json:"name"`
}

// Device describes one enrolled device.
type Device struct {
	ID          string     `json:"id"`
	User        string     `json:"user"`
	Name        string     `json:"name"`
	Certificate []byte     `json:"certificate"`
	EnrolledAt  time.Time  `json:"enrolled_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// DeviceList lists a user's devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

// UploadKeyPackages adds KeyPackages (MLSMessage-wrapped) to the calling
// device's stock. LastResort, when set, replaces the device's last-resort one.
type UploadKeyPackages struct {
	KeyPackages [][]byte `json:"key_packages"`
	LastResort  []byte   `json:"last_resort,omitempty"`
}

// KeyPackageCount says how many one-time KeyPackages the device has left.
type KeyPackageCount struct {
	Available  int  `json:"available"`
	LastResort bool `json:"last_resort"`
}

// ClaimedKeyPackages holds one KeyPackage per unrevoked device of a user:
// a one-time one, consumed by this claim, or the device's last-resort one.
type ClaimedKeyPackages struct {
	KeyPackages []ClaimedKeyPackage `json:"key_packages"`
}

// ClaimedKeyPackage is one device's KeyPackage.
type ClaimedKeyPackage struct {
	Device     string `json:"device"`
	KeyPackage []byte `json:"key_package"`
}

// CreateGroup registers a new group at epoch 0 with the caller as its only
// member, at leaf 0, with the credential of the caller's certificate.
type CreateGroup struct {
	GroupID []byte `json:"group_id"`
}

// GroupHead is a group as the server knows it.
type GroupHead struct {
	GroupID []byte   `json:"group_id"`
	Epoch   uint64   `json:"epoch"`
	Head    uint64   `json:"head"`   // sequence number of the last entry; 0: none
	Cursor  uint64   `json:"cursor"` // the calling device's acknowledged position
	Members []Member `json:"members,omitempty"`
}

// Member is one leaf of a group as the server follows it.
type Member struct {
	Leaf   uint32 `json:"leaf"`
	User   string `json:"user"`
	Device string `json:"device"`
	// Archive marks the organisation's archive, whose User is "archive"
	// and Device its device id in the directory.
	Archive bool `json:"archive,omitempty"`
}

// Archive is the organisation's archive as its custody ceremony published
// it: the statement (certificate, KeyPackage, custody policy, commitments
// and sealed shares; its SHA-256 is what invitations pin) and every
// custodian's endorsement of it. The server serves them as they are.
//
// After a move to a new archive key, Successions are the previous key's
// custodians' endorsements of Statement as its successor, and Previous
// holds the keys before it, newest first, each with its own successions,
// so that a device that pinned any of them can walk forward to this one.
type Archive struct {
	Statement    []byte       `json:"statement"`
	Endorsements [][]byte     `json:"endorsements"`
	Successions  [][]byte     `json:"successions,omitempty"`
	Previous     []ArchiveKey `json:"previous,omitempty"`
}

// ArchiveKey is one previous archive key in Archive's chain.
type ArchiveKey struct {
	Statement    []byte   `json:"statement"`
	Endorsements [][]byte `json:"endorsements"`
	Successions  [][]byte `json:"successions,omitempty"` // none for the organisation's first key
}

// GroupList lists the calling device's groups.
type GroupList struct {
	Groups []GroupHead `json:"groups"`
}

// SendRequest appends one MLS message to a group's log. A commit that adds
// devices carries the Welcome for them.
type SendRequest struct {
	Message []byte `json:"message"`
	Welcome []byte `json:"welcome,omitempty"`
}

// SendResponse acknowledges a message: it is durably in the log at Seq.
type SendResponse struct {
	Seq   uint64    `json:"seq"`
	Epoch uint64    `json:"epoch"` // the group's epoch after the message
	Time  time.Time `json:"time"`  // the entry's time, as the log (and its chain hash) holds it
}

// Entry is one message of a group's log.
type Entry struct {
	Seq     uint64    `json:"seq"`
	Epoch   uint64    `json:"epoch"`   // the epoch the message was sent in
	Sender  string    `json:"sender"`  // the device that uploaded it
	Time    time.Time `json:"time"`    // when the server accepted it
	Message []byte    `json:"message"` // the MLSMessage as sent
}

// Log is a page of a group's log, in order.
type Log struct {
	Entries []Entry `json:"entries"`
	More    bool    `json:"more"` // more entries follow this page
	// Prev is the journal chain hash (package internal/journal) of the
	// entry before the first one of the page, which the first entry's
	// hash chains to: the journal's genesis hash before entry 1, the
	// log's start hash on a log whose prefix was deleted. Omitted with no
	// entries.
	Prev []byte `json:"prev,omitempty"`
}

// Cursor acknowledges a group's log up to and including Seq.
type Cursor struct {
	Seq uint64 `json:"seq"`
}

// Welcome is a Welcome addressed to the calling device.
type Welcome struct {
	ID      string    `json:"id"`
	Seq     uint64    `json:"seq"` // the commit's position in the group's log
	Time    time.Time `json:"time"`
	Welcome []byte    `json:"welcome"`
}

// WelcomeList lists the calling device's unacknowledged Welcomes.
type WelcomeList struct {
	Welcomes []Welcome `json:"welcomes"`
}

// StreamFrame is one frame of the live stream (a WebSocket text message).
// Server to device: Type "entry" (GroupID and Entry), "welcome" (Welcome)
// or "devices" (no other field: another device of the same person has
// published its first KeyPackages, so the device may add it to its groups;
// see GET /users/{user}/devices). Device to server: Type "ack" (GroupID and
// Seq), which moves the device's cursor like PUT cursor.
type StreamFrame struct {
	Type    string   `json:"type"`
	GroupID []byte   `json:"group_id,omitempty"`
	Entry   *Entry   `json:"entry,omitempty"`
	Welcome *Welcome `json:"welcome,omitempty"`
	Seq     uint64   `json:"seq,omitempty"`
}

// Stream frame types.
const (
	FrameEntry   = "entry"
	FrameWelcome = "welcome"
	FrameDevices = "devices"
	FrameAck     = "ack"
)

// AccessKey is the access log's public key: a signed-note verifier key
// ("<origin>+<hash>+<key>", golang.org/x/mod/sumdb/note), which devices pin
// at first use.
type AccessKey struct {
	Key string `json:"key"`
}

// AccessCheckpoint is the access log's current checkpoint, a C2SP signed
// note, with the consistency proof (translog's text form) from the size
// the device asked about (since) to the checkpoint's size. When since
// exceeds the log's size the proof is for no sizes at all, and the device
// sees the rollback.
type AccessCheckpoint struct {
	Checkpoint []byte `json:"checkpoint"`
	Proof      []byte `json:"proof"`
}

// AccessRecords is a page of the access log: records from index From on,
// each with its inclusion proof in the tree of Size records (the size
// asked for, or the log's size when none was), at most MaxAccessPage and
// none at or past Size.
type AccessRecords struct {
	Size    int64          `json:"size"`
	Records []AccessRecord `json:"records"`
}

// AccessRecord is one record of the access log (package internal/access's
// encoding) and the proof (translog's text form) that it is the record at
// Index in the tree of AccessRecords.Size records.
type AccessRecord struct {
	Index  int64  `json:"index"`
	Record []byte `json:"record"`
	Proof  []byte `json:"proof"`
}

// The journal-heads log's endpoints (docs/protocol.md, "Journal heads").
// The key and the checkpoint have the access log's bodies: AccessKey and
// AccessCheckpoint.
const (
	PathJournalKey        = Version + "/journal/key"        // GET   → AccessKey
	PathJournalCheckpoint = Version + "/journal/checkpoint" // GET   ?since=N → AccessCheckpoint
	PathJournalHeads      = Version + "/journal/heads"      // GET   ?group=HEX[&since=N] → JournalHead
)

// JournalHead is the latest head of a group in the journal-heads log: the
// record (package internal/journal's Head encoding) at Index, the proof
// (translog's text form) that it is included in the tree the signed
// Checkpoint, a C2SP signed note, commits to, and the proof that this
// checkpoint extends the tree of the size the device asked about (since),
// so that a device updates its trusted checkpoint with it first.
type JournalHead struct {
	Index       int64  `json:"index"`
	Record      []byte `json:"record"`
	Proof       []byte `json:"proof"`
	Checkpoint  []byte `json:"checkpoint"`
	Consistency []byte `json:"consistency"`
}
