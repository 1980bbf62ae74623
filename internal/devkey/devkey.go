// Package devkey is the device's storage key: the 256-bit random key under
// which a device keeps its local state encrypted at rest (its MLS state, its
// message history, its private key), where that key lives, and the sealing
// of records under it with AES-256-GCM.
//
// A key is made once, at enrolment ([Create]), and kept by the first of
// these that is available, in this order:
//
//  1. a passphrase the person gives: the key is wrapped under a key
//     derived from it with PBKDF2-HMAC-SHA256, and the wrapped key is kept
//     in the [Record];
//  2. the OS keyring (on Linux the Secret Service over D-Bus), when one
//     answers;
//  3. a key file, storage.key, mode 0600, in the profile folder.
//
// The [Record] says which was used, and [Load] obtains the key only that
// way: a profile never silently changes method. See
// docs/design/client-storage.md for the reasoning.
package devkey

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"

	"candor"
)

// KeySize is the size of a storage key in bytes.
const KeySize = 32

// Key is a device's storage key.
type Key [KeySize]byte

// NewKey makes a storage key from rand (crypto/rand.Reader in production).
func NewKey(rand io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return Key{}, fmt.Errorf("devkey: making a storage key: %w", err)
	}
	return k, nil
}

// Equal reports whether k and o are the same key, in constant time.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// String never shows the key.
func (Key) String() string { return "devkey.Key(redacted)" }

// GoString never shows the key, even under %#v.
func (Key) GoString() string { return "devkey.Key(redacted)" }

// LogValue never shows the key.
func (Key) LogValue() slog.Value { return slog.StringValue("redacted") }

// Errors. Each wraps the candor sentinel of its class.
var (
	// ErrWrongKey: the passphrase, the keyring's key or the key file is
	// not the one the stored data was sealed under. Nothing was changed.
	ErrWrongKey = fmt.Errorf("the storage key or passphrase is wrong; nothing was changed: %w", candor.ErrPermission)
	// ErrUnreadable: a sealed record does not open under the key it
	// should: it was damaged, moved to another row, or written under
	// another key. One message for every cause, on purpose.
	ErrUnreadable = fmt.Errorf("stored data cannot be decrypted: it is damaged, was moved, or is under another key: %w", candor.ErrInvalid)
	// ErrPassphraseNeeded: the profile's key is protected by a passphrase
	// and none was given.
	ErrPassphraseNeeded = fmt.Errorf("this profile's storage is protected by a passphrase: set CANDOR_PASSPHRASE or give it in the configuration: %w", candor.ErrPermission)
)
