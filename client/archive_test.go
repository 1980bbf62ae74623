package client_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"candor/client"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/testenv"
)

// Every conversation holds the organisation's archive, which each device
// shows with its custody policy and which nobody can remove.
func TestArchiveMember(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()

	a, err := alice.Archive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := env.Archive.Statement
	if a.K != ceremonytest.Threshold || a.N != ceremonytest.Custodians || len(a.Custodians) != a.N ||
		a.Key != st.KeyID() || a.Statement != st.Hash().String() || a.Organisation != "Example Bank" {
		t.Errorf("alice's archive: %+v", a)
	}
	for _, c := range []*client.Client{alice, bob, carol} {
		ms, err := c.Members(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		archives := slices.DeleteFunc(slices.Clone(ms), func(m client.Member) bool { return !m.Archive })
		if len(archives) != 1 || archives[0].User != "archive" {
			t.Errorf("%s sees archive members %+v", c.User(), archives)
		}
	}
	if err := alice.RemoveUsers(ctx, g, "archive"); !errors.Is(err, client.ErrArchiveStays) {
		t.Errorf("removing the archive: %v, want ErrArchiveStays", err)
	}
	// A group of one is archived too.
	solo, err := alice.CreateGroup(ctx, "notes")
	if err != nil {
		t.Fatal(err)
	}
	if ms, err := alice.Members(ctx, solo); err != nil || len(ms) != 2 || !slices.ContainsFunc(ms, func(m client.Member) bool { return m.Archive }) {
		t.Errorf("a conversation with oneself: members %+v, %v", ms, err)
	}
}

// A device refuses an archive other than the one it pinned at enrolment,
// and then sends nothing.
func TestArchivePinned(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, _, _, g := trio(t, env)
	home := alice.Home()
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, "profile.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	p["archive"] = bytes.Repeat([]byte{7}, 32)
	if raw, err = json.Marshal(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	alice, err = client.Open(t.Context(), home, env.ClientConfig("alice", "laptop"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	if _, err := alice.Archive(t.Context()); !errors.Is(err, client.ErrArchive) {
		t.Errorf("another archive than the pinned one: %v, want ErrArchive", err)
	}
	if _, err := alice.Send(t.Context(), g, "to whom?"); !errors.Is(err, client.ErrArchive) {
		t.Errorf("sending with another archive: %v, want ErrArchive", err)
	}
	if _, err := alice.CreateGroup(t.Context(), "new"); !errors.Is(err, client.ErrArchive) {
		t.Errorf("creating a group with another archive: %v, want ErrArchive", err)
	}
}
