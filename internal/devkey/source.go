package devkey

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"unicode/utf8"

	"candor"
)

// Method is where a profile's storage key is kept.
type Method string

// Methods, in the order Create prefers them.
const (
	MethodPassphrase Method = "passphrase" // wrapped under a passphrase, in the Record
	MethodKeyring    Method = "keyring"    // in the OS keyring
	MethodFile       Method = "file"       // in the key file, FileName
)

// FileName is the key file in the profile folder.
const FileName = "storage.key"

// Passphrase key derivation: PBKDF2-HMAC-SHA256 (NIST SP 800-132), the
// FIPS 140-3 approved password-based KDF of Go's crypto module.
const (
	// KDF names the derivation in the Record.
	KDF = "pbkdf2-hmac-sha256"
	// DefaultIterations is OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
	DefaultIterations = 600_000
	// MinPassphrase is the shortest passphrase Create accepts, in
	// characters: PBKDF2 is not memory-hard, so the passphrase must carry
	// the strength.
	MinPassphrase = 12
	// maxIterations bounds what Load will run for a Record, so that a
	// damaged profile cannot make opening take hours.
	maxIterations = 100_000_000
	saltSize      = 32 // SP 800-132 asks for at least 16 random bytes
)

// keyErr is the log attribute of an error.
const keyErr = "err"

// Service is the keyring service entries are stored under.
const Service = "candor"

// Record is what a profile keeps about its storage key: the method, and
// what the method needs to find the key again. It holds no secret in the
// clear (Wrapped is the key sealed under the passphrase) and is meant to be
// stored as JSON beside the profile.
type Record struct {
	Method     Method `json:"method"`
	Account    string `json:"account,omitempty"`    // keyring: the entry's account
	KDF        string `json:"kdf,omitempty"`        // passphrase: always KDF
	Iterations int    `json:"iterations,omitempty"` // passphrase
	Salt       []byte `json:"salt,omitempty"`       // passphrase: random, per profile
	Wrapped    []byte `json:"wrapped,omitempty"`    // passphrase: the key, sealed under the derived key
}

// Config says where Create may keep a key and where Load finds it.
type Config struct {
	// Dir is the profile folder, where the key file is kept. It must exist.
	Dir string
	// Passphrase, when not empty, protects a new key (Create) or unwraps
	// one (Load).
	Passphrase string
	// Keyring is the OS keyring; nil means there is none (see System).
	Keyring Keyring
	// Label names a new keyring entry for the person who browses the
	// keyring, such as "alice/d1 at chat.example.com:443". Create adds
	// a random suffix, so two profiles never share an entry.
	Label string
	// Rand is the source of keys and salts; nil means crypto/rand.
	Rand io.Reader
	// Iterations is the PBKDF2 count for a new passphrase; zero means
	// DefaultIterations.
	Iterations int
	// Logger hears why the keyring was passed over; nil discards.
	Logger *slog.Logger
}

func (cfg Config) withDefaults() Config {
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Iterations == 0 {
		cfg.Iterations = DefaultIterations
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Create makes a new storage key and keeps it by the first method
// available: the passphrase if one is given, else the keyring if it
// accepts the key, else a key file in cfg.Dir (replacing any key file
// there: Create is for a profile being made). The Record says which, and
// is what Load needs.
func Create(ctx context.Context, cfg Config) (Key, Record, error) {
	cfg = cfg.withDefaults()
	key, err := NewKey(cfg.Rand)
	if err != nil {
		return Key{}, Record{}, err
	}
	if cfg.Passphrase != "" {
		rec, err := wrap(cfg, key)
		if err != nil {
			return Key{}, Record{}, err
		}
		return key, rec, nil
	}
	if cfg.Keyring != nil {
		var suffix [8]byte
		if _, err := io.ReadFull(cfg.Rand, suffix[:]); err != nil {
			return Key{}, Record{}, fmt.Errorf("devkey: %w", err)
		}
		account := cfg.Label + " " + hex.EncodeToString(suffix[:])
		err := cfg.Keyring.Set(ctx, Service, account, base64.StdEncoding.EncodeToString(key[:]))
		if err == nil {
			return key, Record{Method: MethodKeyring, Account: account}, nil
		}
		if ctx.Err() != nil {
			return Key{}, Record{}, fmt.Errorf("devkey: storing the key in the OS keyring: %w", err)
		}
		cfg.Logger.InfoContext(ctx, "the OS keyring refused the storage key; keeping it in a key file", keyErr, err)
	}
	if err := writeKeyFile(cfg.Dir, key); err != nil {
		return Key{}, Record{}, err
	}
	return key, Record{Method: MethodFile}, nil
}

// Load obtains the key the way rec says, and only that way. A wrong
// passphrase is ErrWrongKey, a missing one ErrPassphraseNeeded.
func Load(ctx context.Context, cfg Config, rec Record) (Key, error) {
	cfg = cfg.withDefaults()
	switch rec.Method {
	case MethodPassphrase:
		return unwrap(cfg, rec)
	case MethodKeyring:
		if cfg.Keyring == nil {
			return Key{}, fmt.Errorf("devkey: this profile's storage key is in the OS keyring, and no keyring answers here (no D-Bus session on Linux?): %w", candor.ErrPermission)
		}
		secret, err := cfg.Keyring.Get(ctx, Service, rec.Account)
		if err != nil {
			return Key{}, fmt.Errorf("devkey: reading the storage key from the OS keyring (entry %q of service %q): %w", rec.Account, Service, err)
		}
		raw, err := base64.StdEncoding.DecodeString(secret)
		if err != nil || len(raw) != KeySize {
			return Key{}, fmt.Errorf("devkey: the OS keyring's entry %q of service %q is not a storage key: %w", rec.Account, Service, candor.ErrInvalid)
		}
		return Key(raw), nil
	case MethodFile:
		return readKeyFile(cfg.Dir)
	default:
		return Key{}, fmt.Errorf("devkey: unknown storage key method %q: %w", rec.Method, candor.ErrInvalid)
	}
}

// Discard removes a key Create kept, for a profile that could not be
// completed: the keyring entry or the key file. A wrapped key lives only in
// the Record, which the caller drops.
func Discard(ctx context.Context, cfg Config, rec Record) error {
	switch rec.Method {
	case MethodKeyring:
		if cfg.Keyring == nil {
			return nil
		}
		return cfg.Keyring.Delete(ctx, Service, rec.Account)
	case MethodFile:
		if err := os.Remove(filepath.Join(cfg.Dir, FileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("devkey: %w", err)
		}
	}
	return nil
}

// wrapAD binds a wrapped key to its derivation's parameters.
func wrapAD(iterations int, salt []byte) []byte {
	ad := binary.BigEndian.AppendUint64([]byte(KDF+"\x00"), uint64(iterations))
	return append(ad, salt...)
}

func deriveKEK(passphrase string, salt []byte, iterations int) (*Sealer, error) {
	kek, err := pbkdf2.Key(sha256.New, passphrase, salt, iterations, KeySize)
	if err != nil {
		return nil, fmt.Errorf("devkey: deriving a key from the passphrase: %w", err)
	}
	return NewSealer(Key(kek), "passphrase wrap")
}

func wrap(cfg Config, key Key) (Record, error) {
	if n := utf8.RuneCountInString(cfg.Passphrase); n < MinPassphrase {
		return Record{}, fmt.Errorf("devkey: the passphrase has %d characters; it needs at least %d: %w", n, MinPassphrase, candor.ErrInvalid)
	}
	if cfg.Iterations < 1 || cfg.Iterations > maxIterations {
		return Record{}, fmt.Errorf("devkey: %d PBKDF2 iterations: %w", cfg.Iterations, candor.ErrInvalid)
	}
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(cfg.Rand, salt); err != nil {
		return Record{}, fmt.Errorf("devkey: %w", err)
	}
	kek, err := deriveKEK(cfg.Passphrase, salt, cfg.Iterations)
	if err != nil {
		return Record{}, err
	}
	return Record{
		Method:     MethodPassphrase,
		KDF:        KDF,
		Iterations: cfg.Iterations,
		Salt:       salt,
		Wrapped:    kek.Seal(wrapAD(cfg.Iterations, salt), key[:]),
	}, nil
}

func unwrap(cfg Config, rec Record) (Key, error) {
	if cfg.Passphrase == "" {
		return Key{}, ErrPassphraseNeeded
	}
	if rec.KDF != KDF || rec.Iterations < 1 || rec.Iterations > maxIterations || len(rec.Salt) < 16 {
		return Key{}, fmt.Errorf("devkey: the profile's passphrase parameters (%s, %d iterations, %d-byte salt) are not valid: %w", rec.KDF, rec.Iterations, len(rec.Salt), candor.ErrInvalid)
	}
	kek, err := deriveKEK(cfg.Passphrase, rec.Salt, rec.Iterations)
	if err != nil {
		return Key{}, err
	}
	raw, err := kek.Open(wrapAD(rec.Iterations, rec.Salt), rec.Wrapped)
	if err != nil || len(raw) != KeySize {
		return Key{}, ErrWrongKey
	}
	return Key(raw), nil
}

// The key file is one PEM block of this type holding the 32 key bytes.
const pemType = "CANDOR STORAGE KEY"

func writeKeyFile(dir string, key Key) (err error) {
	path := filepath.Join(dir, FileName)
	f, err := os.CreateTemp(dir, "."+FileName+".*")
	if err != nil {
		return fmt.Errorf("devkey: writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: key[:]})
	if err := f.Chmod(0o600); err != nil {
		return errors.Join(fmt.Errorf("devkey: writing %s: %w", path, err), f.Close())
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(fmt.Errorf("devkey: writing %s: %w", path, err), f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(fmt.Errorf("devkey: writing %s: %w", path, err), f.Close())
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("devkey: writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("devkey: writing %s: %w", path, err)
	}
	return nil
}

// readKeyFile reads the key file, refusing one that others may read or
// that is not a plain file (a symbolic link could point anywhere).
func readKeyFile(dir string) (Key, error) {
	path := filepath.Join(dir, FileName)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Key{}, fmt.Errorf("devkey: this profile's storage key file %s is missing: %w", path, candor.ErrNotFound)
	}
	if err != nil {
		return Key{}, fmt.Errorf("devkey: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("devkey: %s is not a regular file: %w", path, candor.ErrPermission)
	}
	// Windows has no such permission bits; its profile folders are private
	// to their user by their ACLs.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return Key{}, fmt.Errorf("devkey: %s has mode %04o, so others can read the storage key; refusing to use it: check who could have read it, then run: chmod 600 %s: %w", path, perm, path, candor.ErrPermission)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("devkey: %w", err)
	}
	key, err := parseKeyFile(raw)
	if err != nil {
		return Key{}, fmt.Errorf("devkey: %s: %w", path, err)
	}
	return key, nil
}

// parseKeyFile decodes the key file's contents: one PEM block of pemType
// holding exactly KeySize bytes, and nothing else but blanks.
func parseKeyFile(raw []byte) (Key, error) {
	b, rest := pem.Decode(raw)
	if b == nil || b.Type != pemType || len(b.Headers) != 0 || len(b.Bytes) != KeySize || len(bytes.TrimSpace(rest)) != 0 {
		return Key{}, fmt.Errorf("not a storage key file: %w", candor.ErrInvalid)
	}
	return Key(b.Bytes), nil
}
