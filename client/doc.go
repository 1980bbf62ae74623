// Package client is the library every candor front end (the CLI, the TUI)
// is built on: one enrolled device, its profile folder, its conversations
// and their history.
//
// A device is enrolled once, from an invitation code ([Enrol]), and opened
// afterwards ([Open]). Every request is HTTPS with mutual TLS: the device
// presents the certificate the organisation's CA issued it at enrolment and
// accepts only a server whose certificate chains to that CA. The wire
// protocol is package api; the MLS side (RFC 9420) is internal/mlsx; the
// device's state and history live in one SQLite file (internal/devstore),
// encrypted at rest under the device's storage key, which a passphrase,
// the OS keyring or a key file protects (Config.Passphrase;
// docs/design/client-storage.md).
//
// Conversations are MLS groups. [Client.CreateGroup], [Client.AddUsers] and
// [Client.RemoveUsers] commit membership changes (RFC 9420 §12.4) and
// retry when another member's commit won the epoch; [Client.Send] encrypts
// a message for the current epoch and catches up when the group has moved
// on. [Client.Run] keeps a live stream open and reconnects with backoff;
// [Client.Sync] catches up once. Every entry of a group's log is processed
// once, in order, and recorded before the server is told (the cursor).
//
// Conversation names are local: they are kept in this device's history and
// never sent, so other members see a conversation by its members, not its
// name.
//
// Concurrency: a Client is safe for concurrent use. One process should open
// a profile at a time: two would hold diverging copies of the MLS state.
package client
