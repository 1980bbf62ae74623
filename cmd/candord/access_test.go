package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"candor"
	"candor/client"
	"candor/internal/access"
	"candor/internal/server"
	"candor/internal/translog"
)

// serving is candord serve running in this process.
type serving struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// startServe runs candord serve on listen until stop.
func startServe(t *testing.T, dir, listen string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{cancel: cancel, done: make(chan error, 1)}
	addrc := make(chan net.Addr, 1)
	go func() {
		s.done <- run(ctx, []string{"serve", "--data", dir, "--listen", listen}, io.Discard, io.Discard, func(a net.Addr) { addrc <- a })
	}()
	select {
	case a := <-addrc:
		s.addr = a.String()
	case err := <-s.done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *serving) stop(t *testing.T) {
	t.Helper()
	if s.done == nil {
		return
	}
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("serve did not stop")
	}
	s.done = nil
}

// logRequest runs candord access request for a scope naming user, and
// returns the id it printed.
func logRequest(t *testing.T, dir, caseID, user string) string {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "opening.pub")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(k.PublicKey().Bytes())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := candord(t, "access", "request", "--data", dir, "--case", caseID, "--reason", "an inquiry",
		"--requester", "Compliance", "--users", user, "--from", "2026-01-01", "--to", "2026-02-01T12:00:00Z", "--opening-key", keyFile)
	if err != nil {
		t.Fatalf("candord access request: %v", err)
	}
	m := regexp.MustCompile(`^request ([0-9a-f]{64}) logged at index \d+\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("candord access request printed %q", out)
	}
	return m[1]
}

// TestAccessCommands runs the administrators' commands while serve runs
// and checks what a device reads; then it swaps the access log's file for
// an older copy under a restarted server (a rollback) and for a log that
// went another way (a fork), and replaces the log's key, each of which the
// device must report.
func TestAccessCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	initOrg(t, dir, "--host", "127.0.0.1")
	srv := startServe(t, dir, "127.0.0.1:0")
	addr := srv.addr
	code, err := candord(t, "invite", "--data", dir, "--server", addr, "alice")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := client.Enrol(ctx, filepath.Join(t.TempDir(), "alice"), string(bytes.TrimSpace([]byte(code))), "laptop")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	cases := func() []string {
		t.Helper()
		report, err := alice.Audit(ctx)
		if err != nil {
			t.Fatalf("audit: %v", err)
		}
		entries := report.Openings
		var out []string
		for _, e := range entries {
			s := e.Case
			for _, a := range e.Approvals {
				s += " approved by " + a.Name
			}
			if e.Completed() {
				s += " completed"
			}
			out = append(out, s)
		}
		return out
	}

	first := logRequest(t, dir, "CASE-1", "alice")
	logRequest(t, dir, "CASE-BOB", "bob")
	id, err := access.ParseRequestID(first)
	if err != nil {
		t.Fatal(err)
	}
	approval := filepath.Join(t.TempDir(), "approval")
	custody := append(append(append([]byte("capp\x01"), make([]byte, 32)...), id[:]...), 2, 0xee)
	if err := os.WriteFile(approval, custody, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := candord(t, "access", "approve", "--data", dir, "--custodian", "Bea", approval); err != nil {
		t.Fatal(err)
	}
	if _, err := candord(t, "access", "approve", "--data", dir, "--custodian", "Bea", approval); !errors.Is(err, candor.ErrConflict) {
		t.Errorf("approving twice: %v, want ErrConflict", err)
	}
	if got := cases(); len(got) != 1 || got[0] != "CASE-1 approved by Bea" {
		t.Fatalf("alice's audit: %q", got)
	}

	// A copy of the log as it is now, taken with the server stopped so
	// that SQLite's journal is folded into the file.
	srv.stop(t)
	db := filepath.Join(dir, server.FileAccessDB)
	older, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	srv = startServe(t, dir, addr)
	opening, err := (&access.Opening{Request: id, Completed: time.Unix(1790000000, 0).UTC()}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	openingFile := filepath.Join(t.TempDir(), "opening")
	if err := os.WriteFile(openingFile, opening, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := candord(t, "access", "opened", "--data", dir, openingFile); err != nil {
		t.Fatal(err)
	}
	logRequest(t, dir, "CASE-2", "alice")
	if got := cases(); len(got) != 2 || got[0] != "CASE-1 approved by Bea completed" || got[1] != "CASE-2" {
		t.Fatalf("alice's audit: %q", got)
	}

	swap := func(content []byte) {
		t.Helper()
		srv.stop(t)
		for _, f := range []string{db, db + "-wal", db + "-shm"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(db, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wantInconsistent := func(kind translog.InconsistencyKind) {
		t.Helper()
		_, err := alice.Audit(ctx)
		var ie *translog.InconsistentError
		if !errors.As(err, &ie) || ie.Kind != kind {
			t.Fatalf("audit: %v, want a %v", err, kind)
		}
	}

	// Rollback: the old copy, under a restarted server.
	swap(older)
	srv = startServe(t, dir, addr)
	wantInconsistent(translog.Rollback)

	// Fork: the old copy grown to the same size with other records.
	srv.stop(t)
	logRequest(t, dir, "CASE-OTHER", "carol")
	logRequest(t, dir, "CASE-OTHER-2", "carol")
	srv = startServe(t, dir, addr)
	wantInconsistent(translog.Fork)

	// A fork on a longer log: the proof from the kept size fails.
	srv.stop(t)
	logRequest(t, dir, "CASE-OTHER-3", "carol")
	srv = startServe(t, dir, addr)
	wantInconsistent(translog.Fork)

	// Another key: the server now signs with a key the device did not pin.
	srv.stop(t)
	for _, f := range []string{server.FileAccessKey, server.FileAccessPub} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	srv = startServe(t, dir, addr)
	if _, err := alice.Audit(ctx); !errors.Is(err, client.ErrAccessKeyChanged) {
		t.Fatalf("audit under a new key: %v, want ErrAccessKeyChanged", err)
	}
}

func TestAccessUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := candord(t, "init", "--data", dir, "--org", "Example Bank"); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"access"},
		{"access", "frobnicate"},
		{"access", "request", "--data", dir},
		{"access", "approve", "--data", dir, "file"},
		{"access", "opened", "--data", dir},
	} {
		if _, err := candord(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("candord %q: %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{
		{"access", "request", "--data", dir, "--case", "C", "--reason", "r", "--requester", "q", "--users", "a", "--from", "2026-01-01", "--to", "2026-01-02", "--opening-key", key},
		{"access", "request", "--data", dir, "--case", "C", "--reason", "r", "--requester", "q", "--users", "a", "--from", "yesterday", "--to", "2026-01-02", "--opening-key", key},
		{"access", "request", "--data", dir, "--case", "C", "--reason", "r", "--requester", "q", "--groups", "xyz", "--from", "2026-01-01", "--to", "2026-01-02", "--opening-key", key},
		{"access", "opened", "--data", dir, key},
		{"access", "approve", "--data", dir, "--custodian", "Ana", key},
	} {
		if _, err := candord(t, args...); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("candord %q: %v, want ErrInvalid", args, err)
		}
	}
}
