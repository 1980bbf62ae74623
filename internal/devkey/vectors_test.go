package devkey

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// vectors are records written by this version of devkey that every later
// version must still open: data at rest outlives the program that wrote it.
// Seal's nonces are random, so the file is only rewritten with -update.
type vectors struct {
	Key       string `json:"key"` // hex
	Purpose   string `json:"purpose"`
	AD        string `json:"ad"`
	Plaintext string `json:"plaintext"`
	Sealed    string `json:"sealed"` // hex
	// A passphrase Record and the key it wraps.
	Passphrase string `json:"passphrase"`
	Record     Record `json:"record"`
	Wrapped    string `json:"wrapped_key"` // hex
	KeyFile    string `json:"key_file"`    // a key file holding Key
}

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		writeVectors(t, path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	key := Key(mustHex(t, v.Key))
	sealed := mustHex(t, v.Sealed)
	// The layout: version 1, a 12-byte nonce, the ciphertext, a 16-byte tag.
	if sealed[0] != 1 || len(sealed) != 1+12+len(v.Plaintext)+16 {
		t.Errorf("sealed record %x: want version 1 and %d bytes", sealed, 1+12+len(v.Plaintext)+16)
	}
	got, err := newSealer(t, key, v.Purpose).Open([]byte(v.AD), sealed)
	if err != nil || string(got) != v.Plaintext {
		t.Errorf("the sealed vector opens to %q, %v; want %q", got, err, v.Plaintext)
	}
	wrapped, err := Load(context.Background(), Config{Passphrase: v.Passphrase}, v.Record)
	if err != nil || !wrapped.Equal(Key(mustHex(t, v.Wrapped))) {
		t.Errorf("the passphrase vector: %v", err)
	}
	fromFile, err := parseKeyFile([]byte(v.KeyFile))
	if err != nil || !fromFile.Equal(key) {
		t.Errorf("the key file vector: %v", err)
	}
}

func writeVectors(t *testing.T, path string) {
	t.Helper()
	key, wrappedKey := newKey(t), newKey(t)
	v := vectors{
		Key:        hex.EncodeToString(key[:]),
		Purpose:    "device database",
		AD:         "candor devstore\x00\x00\x00\x08messages",
		Plaintext:  "a message kept at rest",
		Passphrase: "correct horse battery staple",
		Wrapped:    hex.EncodeToString(wrappedKey[:]),
	}
	v.Sealed = hex.EncodeToString(newSealer(t, key, v.Purpose).Seal([]byte(v.AD), []byte(v.Plaintext)))
	rec, err := wrap(Config{Passphrase: v.Passphrase, Iterations: testIterations}.withDefaults(), wrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	v.Record = rec
	dir := t.TempDir()
	if err := writeKeyFile(dir, key); err != nil {
		t.Fatal(err)
	}
	kf, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	v.KeyFile = string(kf)
	out, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
