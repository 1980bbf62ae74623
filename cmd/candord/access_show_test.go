package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"candor"
	"candor/internal/access"
	"candor/internal/server"
)

// TestAccessShow writes a bundle for a logged request and checks it as a
// custodian would: against access.pub, and nothing else from the server.
func TestAccessShow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	initOrg(t, dir)
	logRequest(t, dir, "CASE-1", "alice")
	second := logRequest(t, dir, "CASE-2", "bob")
	out := filepath.Join(t.TempDir(), "request.bundle")
	if _, err := candord(t, "access", "show", "--data", dir, "--index", "1", "--out", out); err != nil {
		t.Fatalf("candord access show: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := access.ParseBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, server.FileAccessPub))
	if err != nil {
		t.Fatal(err)
	}
	key, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	r, c, err := b.Verify(key)
	if err != nil {
		t.Fatalf("the bundle does not verify: %v", err)
	}
	if c.Size != 2 || r.Request == nil || r.Request.Case != "CASE-2" {
		t.Fatalf("bundle of %d records holds %+v, want CASE-2 of 2", c.Size, r)
	}
	if id, err := r.Request.ID(); err != nil || id.String() != second {
		t.Fatalf("bundle's request id %v (%v), want %s", id, err, second)
	}

	// Writing over an earlier bundle, or past the log's end, fails.
	if _, err := candord(t, "access", "show", "--data", dir, "--index", "0", "--out", out); !errors.Is(err, os.ErrExist) {
		t.Errorf("show over an existing file: %v, want it refused", err)
	}
	beyond := filepath.Join(t.TempDir(), "beyond.bundle")
	if _, err := candord(t, "access", "show", "--data", dir, "--index", "2", "--out", beyond); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("show of index 2 in a log of 2: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(beyond); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed show left %s", beyond)
	}
	if _, err := candord(t, "access", "show", "--data", dir, "--out", beyond); !errors.Is(err, errUsage) {
		t.Errorf("show without --index: %v, want a usage error", err)
	}
}
