package devkey

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zalando/go-keyring"

	"candor"
)

// testIterations keeps passphrase tests fast; the count is a parameter of
// the Record, so the code paths are those of DefaultIterations.
const testIterations = 1000

func newKey(t testing.TB) Key {
	t.Helper()
	k, err := NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSealer(t testing.TB, k Key, purpose string) *Sealer {
	t.Helper()
	s, err := NewSealer(k, purpose)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealRejectsTampering(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	s := newSealer(t, k, "db")
	ad := []byte("messages\x00body\x00row 7")
	plain := []byte("the quarterly numbers")
	sealed := s.Seal(ad, plain)
	if got, err := s.Open(ad, sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open(Seal(p)) = %q, %v", got, err)
	}
	if len(sealed) != len(plain)+Overhead {
		t.Errorf("sealed %d bytes for %d, want overhead %d", len(sealed), len(plain), Overhead)
	}
	if again := s.Seal(ad, plain); bytes.Equal(again, sealed) {
		t.Error("two seals of one plaintext are equal: the nonce is not fresh")
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name   string
		sealer *Sealer
		ad     []byte
		sealed []byte
	}{
		{"other row", s, []byte("messages\x00body\x00row 8"), sealed},
		{"no ad", s, nil, sealed},
		{"version", s, ad, flip(0)},
		{"nonce", s, ad, flip(1)},
		{"ciphertext", s, ad, flip(14)},
		{"tag", s, ad, flip(len(sealed) - 1)},
		{"truncated", s, ad, sealed[:len(sealed)-1]},
		{"too short", s, ad, sealed[:Overhead-1]},
		{"empty", s, ad, nil},
		{"other purpose", newSealer(t, k, "device key"), ad, sealed},
		{"other key", newSealer(t, newKey(t), "db"), ad, sealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.sealer.Open(tt.ad, tt.sealed)
			if !errors.Is(err, ErrUnreadable) || got != nil {
				t.Errorf("Open = %q, %v; want ErrUnreadable", got, err)
			}
		})
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "key", k)
	for _, out := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), logged.String()} {
		if !strings.Contains(out, "redacted") || strings.Contains(out, fmt.Sprint([KeySize]byte(k))) || strings.Contains(out, fmt.Sprintf("%x", k[:])) {
			t.Errorf("key printed as %q", out)
		}
	}
	if !k.Equal(k) || k.Equal(newKey(t)) {
		t.Error("Equal is wrong")
	}
}

// memKeyring is an OS keyring in memory.
type memKeyring struct {
	mu      sync.Mutex
	entries map[string]string
	refuse  error // Set's answer, when not nil
}

func (m *memKeyring) Set(_ context.Context, service, account, secret string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refuse != nil {
		return m.refuse
	}
	if m.entries == nil {
		m.entries = map[string]string{}
	}
	m.entries[service+"/"+account] = secret
	return nil
}

func (m *memKeyring) Get(_ context.Context, service, account string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.entries[service+"/"+account]
	if !ok {
		return "", fmt.Errorf("no entry: %w", candor.ErrNotFound)
	}
	return s, nil
}

func (m *memKeyring) Delete(_ context.Context, service, account string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, service+"/"+account)
	return nil
}

func TestCreateThenLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		passphrase string
		keyring    *memKeyring
		want       Method
	}{
		{"passphrase before keyring", "correct horse battery", &memKeyring{}, MethodPassphrase},
		{"keyring before file", "", &memKeyring{}, MethodKeyring},
		{"file when the keyring refuses", "", &memKeyring{refuse: errors.New("the collection is locked")}, MethodFile},
		{"file without a keyring", "", nil, MethodFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := Config{Dir: t.TempDir(), Passphrase: tt.passphrase, Label: "alice/d1", Iterations: testIterations}
			if tt.keyring != nil {
				cfg.Keyring = tt.keyring
			}
			key, rec, err := Create(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Method != tt.want {
				t.Fatalf("method %s, want %s", rec.Method, tt.want)
			}
			_, statErr := os.Stat(filepath.Join(cfg.Dir, FileName))
			if hasFile := statErr == nil; hasFile != (tt.want == MethodFile) {
				t.Errorf("key file present: %v, want %v", hasFile, tt.want == MethodFile)
			}
			got, err := Load(ctx, cfg, rec)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(key) {
				t.Error("Load returned another key than Create")
			}
			if err := Discard(ctx, cfg, rec); err != nil {
				t.Fatal(err)
			}
			if rec.Method != MethodPassphrase {
				if _, err := Load(ctx, cfg, rec); !errors.Is(err, candor.ErrNotFound) {
					t.Errorf("Load after Discard: %v, want ErrNotFound", err)
				}
			}
		})
	}
}

// TestLoadNeverSwitches: a profile whose key is in one place is never
// opened from another, even when that other one is available.
func TestLoadNeverSwitches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	kr := &memKeyring{}
	_, fileRec, err := Create(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, Config{Dir: dir, Keyring: kr, Passphrase: "a passphrase nobody set"}, fileRec); err != nil {
		t.Errorf("a key file profile with a keyring and a passphrase about: %v", err)
	}
	_, krRec, err := Create(ctx, Config{Dir: t.TempDir(), Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, Config{Dir: dir}, krRec); !errors.Is(err, candor.ErrPermission) || !strings.Contains(err.Error(), "keyring") {
		t.Errorf("a keyring profile without a keyring: %v, want an error naming the keyring", err)
	}
	if _, err := Load(ctx, Config{Dir: dir}, Record{Method: "tpm"}); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("an unknown method: %v, want ErrInvalid", err)
	}
}

func TestPassphrase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := Config{Dir: t.TempDir(), Passphrase: "the right passphrase", Iterations: testIterations}
	key, rec, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rec.KDF != KDF || rec.Iterations != testIterations || len(rec.Salt) != saltSize {
		t.Errorf("record %+v", rec)
	}
	if bytes.Contains(rec.Wrapped, key[:]) {
		t.Error("the wrapped key holds the key")
	}
	_, rec2, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(rec.Salt, rec2.Salt) {
		t.Error("two profiles share a salt")
	}
	lowered := rec
	lowered.Iterations = 1
	tests := []struct {
		name       string
		passphrase string
		rec        Record
		want       error
	}{
		{"wrong", "the wrong passphrase", rec, ErrWrongKey},
		{"case matters", "The right passphrase", rec, ErrWrongKey},
		{"missing", "", rec, ErrPassphraseNeeded},
		{"iterations changed", cfg.Passphrase, lowered, ErrWrongKey},
		{"damaged record", cfg.Passphrase, Record{Method: MethodPassphrase, KDF: "md5"}, candor.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(ctx, Config{Dir: cfg.Dir, Passphrase: tt.passphrase}, tt.rec)
			if !errors.Is(err, tt.want) {
				t.Errorf("Load: %v, want %v", err, tt.want)
			}
		})
	}
	if !errors.Is(ErrWrongKey, candor.ErrPermission) || !errors.Is(ErrPassphraseNeeded, candor.ErrPermission) {
		t.Error("the passphrase errors do not wrap candor.ErrPermission")
	}
	if _, _, err := Create(ctx, Config{Dir: t.TempDir(), Passphrase: "short"}); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("a short passphrase: %v, want ErrInvalid", err)
	}
}

// TestDefaultIterations checks that the default count is what the Record
// carries when none is asked for (one derivation at full cost).
func TestDefaultIterations(t *testing.T) {
	t.Parallel()
	_, rec, err := Create(context.Background(), Config{Dir: t.TempDir(), Passphrase: "a long enough passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Iterations != DefaultIterations {
		t.Errorf("iterations %d, want %d", rec.Iterations, DefaultIterations)
	}
}

func TestKeyFilePermissions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	key, rec, err := Create(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(ctx, Config{Dir: dir}, rec)
		if !errors.Is(err, candor.ErrPermission) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: %v, want ErrPermission saying to run chmod 600", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(ctx, Config{Dir: dir}, rec); err != nil || !got.Equal(key) {
		t.Errorf("mode 0400: %v", err)
	}
	// A link to a key file elsewhere is refused, whatever its target.
	other := t.TempDir()
	if err := os.Rename(path, filepath.Join(other, FileName)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, FileName), path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, Config{Dir: dir}, rec); !errors.Is(err, candor.ErrPermission) {
		t.Errorf("a symbolic link: %v, want ErrPermission", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, Config{Dir: dir}, rec); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("a file that holds no key: %v, want ErrInvalid", err)
	}
}

// TestSystemKeyring runs the go-keyring adapter against go-keyring's own
// in-memory provider (a real keyring is not reachable from tests).
func TestSystemKeyring(t *testing.T) {
	keyring.MockInit()
	ctx := context.Background()
	kr := systemKeyring{}
	if _, err := kr.Get(ctx, Service, "nobody"); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("Get of a missing entry: %v, want ErrNotFound", err)
	}
	if err := kr.Delete(ctx, Service, "nobody"); err != nil {
		t.Errorf("Delete of a missing entry: %v", err)
	}
	key, rec, err := Create(ctx, Config{Dir: t.TempDir(), Keyring: kr, Label: "alice/d1"})
	if err != nil || rec.Method != MethodKeyring || !strings.HasPrefix(rec.Account, "alice/d1 ") {
		t.Fatalf("Create: %+v, %v", rec, err)
	}
	if got, err := Load(ctx, Config{Keyring: kr}, rec); err != nil || !got.Equal(key) {
		t.Fatalf("Load: %v", err)
	}
	if err := Discard(ctx, Config{Keyring: kr}, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, Config{Keyring: kr}, rec); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("Load after Discard: %v, want ErrNotFound", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	block := make(chan struct{})
	defer close(block)
	if _, err := withContext(canceled, func() (int, error) { <-block; return 0, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("a keyring call past its context: %v, want context.Canceled", err)
	}
}

func FuzzOpen(f *testing.F) {
	k := newKey(f)
	s := newSealer(f, k, "fuzz")
	f.Add([]byte("ad"), []byte("plaintext"), []byte{})
	f.Add([]byte{}, []byte{}, []byte{1, 2, 3})
	// A real record, but sealed for another place.
	f.Add([]byte("ad"), bytes.Repeat([]byte{0}, 100), s.Seal([]byte("other ad"), []byte("x")))
	f.Fuzz(func(t *testing.T, ad, plain, junk []byte) {
		// Arbitrary bytes never open and never panic.
		if got, err := s.Open(ad, junk); err == nil {
			t.Fatalf("junk %x opened as %q", junk, got)
		}
		sealed := s.Seal(ad, plain)
		got, err := s.Open(ad, sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("round trip: %q, %v", got, err)
		}
		// Any single changed bit, in the record or its additional data,
		// is refused.
		i := len(junk) % len(sealed)
		sealed[i] ^= 1 << (len(plain) % 8)
		if _, err := s.Open(ad, sealed); !errors.Is(err, ErrUnreadable) {
			t.Fatalf("flipped byte %d opened: %v", i, err)
		}
		sealed[i] ^= 1 << (len(plain) % 8)
		if _, err := s.Open(append(bytes.Clone(ad), 0), sealed); !errors.Is(err, ErrUnreadable) {
			t.Fatalf("longer ad opened: %v", err)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	k := newKey(f)
	good := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: k[:]})
	f.Add(good)
	f.Add(append(bytes.Clone(good), "\n\n"...))
	f.Add(append(bytes.Clone(good), good...))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k[:]}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: k[:31]}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		key, err := parseKeyFile(raw)
		if err != nil {
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// What parses is one block of the key's type and size, and
		// writing it back parses to the same key.
		b, _ := pem.Decode(raw)
		if b.Type != pemType || !bytes.Equal(b.Bytes, key[:]) {
			t.Fatalf("parsed %x from a block %q of %x", key, b.Type, b.Bytes)
		}
		again, err := parseKeyFile(pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: key[:]}))
		if err != nil || !again.Equal(key) {
			t.Fatalf("re-encoded key: %v", err)
		}
	})
}

// BenchmarkSealer is the CPU cost of sealing and opening one record, at the
// sizes devstore writes: a ratchet record, a message body, and the
// snapshot of a 1,000-member group (2.8 MB).
func BenchmarkSealer(b *testing.B) {
	s := newSealer(b, newKey(b), "bench")
	ad := []byte("candor devstore ratchets record group leaf epoch")
	for _, size := range []int{25, 256, 2_800_000} {
		plain := make([]byte, size)
		b.Run(fmt.Sprintf("op=Seal/bytes=%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				s.Seal(ad, plain)
			}
		})
		sealed := s.Seal(ad, plain)
		b.Run(fmt.Sprintf("op=Open/bytes=%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := s.Open(ad, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPassphrase is what opening a passphrase profile costs: one
// PBKDF2 derivation at DefaultIterations and the unwrap.
func BenchmarkPassphrase(b *testing.B) {
	ctx := context.Background()
	cfg := Config{Dir: b.TempDir(), Passphrase: "a long enough passphrase"}
	_, rec, err := Create(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Load(ctx, cfg, rec); err != nil {
			b.Fatal(err)
		}
	}
}
