package client_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"candor"
	"candor/client"
	"candor/internal/ceremony"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/server"
	"candor/internal/testenv"
)

// pinned reads the statement hash a device's profile pins, and the ones
// it moved from, as the profile folder holds them.
func pinned(t *testing.T, c *client.Client) (current []byte, previous [][]byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.Home(), "profile.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Archive         []byte   `json:"archive"`
		ArchivePrevious [][]byte `json:"archive_previous"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p.Archive, p.ArchivePrevious
}

// archiveKeys returns the archive keys a device sees among a group's
// members.
func archiveKeys(t *testing.T, c *client.Client, g candor.GroupID) []string {
	t.Helper()
	ms, err := c.Members(t.Context(), g)
	if err != nil {
		t.Fatalf("%s: members: %v", c.User(), err)
	}
	var keys []string
	for _, m := range ms {
		if m.Archive {
			keys = append(keys, m.ArchiveKey)
		}
	}
	return keys
}

// Moving an organisation to a new archive key, end to end: three people
// converse; the custodians hold a second ceremony, two of the three old
// custodians endorse it as the successor, and candord restarts on the
// folder with both keys. The server proposes the old key's removal at
// once; the next device to send commits it with the new key added in the
// same commit, after walking from its pin to the new statement and
// re-pinning. Every device then sees the new key alone, the conversation
// goes on, and the store holds Welcomes to both keys' devices: a replay
// starts from either.
func TestArchiveRotation(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	old := env.Archive
	if _, err := alice.Send(ctx, g, "before the rotation"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)

	next := env.Succeed(t, old, 2, ceremonytest.Threshold)
	env.Restart(t)
	if n, err := env.Server.ProposeAnchors(ctx); err != nil || n != 1 {
		t.Fatalf("proposing the old key's removal: %d, %v; want 1", n, err)
	}
	mustSync(t, bob)
	if _, err := bob.Send(ctx, g, "after the rotation"); err != nil {
		t.Fatalf("sending after the rotation: %v", err)
	}

	a, err := bob.Archive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldHash, nextHash := old.Statement.Hash(), next.Statement.Hash()
	if a.Key != next.Statement.KeyID() || a.Statement != nextHash.String() || !slices.Equal(a.Previous, []string{oldHash.String()}) {
		t.Errorf("bob's archive: key %q, statement %s, previous %v; want %q, %s, [%s]",
			a.Key, a.Statement, a.Previous, next.Statement.KeyID(), nextHash, oldHash)
	}
	cur, prev := pinned(t, bob)
	if !bytes.Equal(cur, nextHash[:]) || len(prev) != 1 || !bytes.Equal(prev[0], oldHash[:]) {
		t.Errorf("bob's profile pins %x after %x; want %s after %s", cur, prev, nextHash, oldHash)
	}

	mustSync(t, alice, carol)
	for _, c := range []*client.Client{alice, bob, carol} {
		waitText(t, c, g, "after the rotation")
		if keys := archiveKeys(t, c, g); !slices.Equal(keys, []string{next.Statement.KeyID()}) {
			t.Errorf("%s: the group's archive keys are %v, want only %q", c.User(), keys, next.Statement.KeyID())
		}
	}
	if _, err := carol.Send(ctx, g, "and on"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	waitText(t, alice, g, "and on")
	if cur, _ := pinned(t, alice); !bytes.Equal(cur, nextHash[:]) {
		t.Errorf("alice's profile pins %x, want the new statement %s", cur, nextHash)
	}

	for _, a := range []ceremonytest.Archive{old, next} {
		ws, err := env.Store().WelcomeSeqs(ctx, server.ArchiveDevice(a.Statement.Certificate()), g)
		if err != nil || len(ws) != 1 {
			t.Errorf("archive key %s's Welcomes in the group: %+v, %v; want one", a.Statement.KeyID(), ws, err)
		}
	}
	// A new group holds the new key from its first commit.
	g2, err := alice.CreateGroup(ctx, "after", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if keys := archiveKeys(t, alice, g2); !slices.Equal(keys, []string{next.Statement.KeyID()}) {
		t.Errorf("a new group's archive keys are %v, want only %q", keys, next.Statement.KeyID())
	}
}

// A successor endorsed by fewer than K of the old custodians is refused:
// the device keeps its pin, says why, and sends nothing into a group it
// would have to move to that key.
func TestArchiveRotationTooFewSuccessions(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	before, _ := pinned(t, alice)

	env.Succeed(t, env.Archive, 2, ceremonytest.Threshold-1)
	env.Restart(t)
	if n, err := env.Server.ProposeAnchors(ctx); err != nil || n != 1 {
		t.Fatalf("proposing the old key's removal: %d, %v; want 1", n, err)
	}
	mustSync(t, alice)
	_, err := alice.Send(ctx, g, "into the unendorsed key")
	if !errors.Is(err, client.ErrArchive) || !strings.Contains(err.Error(), ceremony.ErrMissingSuccession.Error()) {
		t.Fatalf("sending: %v; want ErrArchive saying there are too few successions", err)
	}
	if after, prev := pinned(t, alice); !bytes.Equal(after, before) || len(prev) != 0 {
		t.Errorf("alice's pin moved from %x to %x (previous %x)", before, after, prev)
	}
	mustSync(t, bob, carol)
	for _, c := range []*client.Client{bob, carol} {
		if keys := archiveKeys(t, c, g); !slices.Equal(keys, []string{env.Archive.Statement.KeyID()}) {
			t.Errorf("%s: the group's archive keys are %v, want the old one alone", c.User(), keys)
		}
	}
}
