package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/api"
	"candor/client"
	"candor/internal/testenv"
)

// trio enrols alice, bob and carol and has alice start a conversation with
// the other two, which have joined it when trio returns.
func trio(t *testing.T, env *testenv.Env) (alice, bob, carol *client.Client, g candor.GroupID) {
	t.Helper()
	alice = env.Enrol(t, "alice", "laptop")
	bob = env.Enrol(t, "bob", "laptop")
	carol = env.Enrol(t, "carol", "desk")
	g, err := alice.CreateGroup(t.Context(), "desk", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	return alice, bob, carol, g
}

func TestSendAfterAnotherMembersCommit(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, carol, g := trio(t, env)
	dave := env.Enrol(t, "dave", "phone")
	ctx := t.Context()
	// Alice adds dave; bob has not seen it and encrypts for the old epoch:
	// the server answers stale_epoch and bob catches up and sends again.
	if err := alice.AddUsers(ctx, g, "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, g, "after dave"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice, carol, dave)
	for _, c := range []*client.Client{alice, carol, dave} {
		waitText(t, c, g, "after dave")
	}
	ms, err := bob.Members(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice", "archive", "bob", "carol", "dave"}, users(ms)); diff != "" {
		t.Errorf("bob's members (-want +got):\n%s", diff)
	}
}

// countingHandler counts log records by message.
type countingHandler struct {
	slog.Handler
	msg string
	n   *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}

func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

func TestConcurrentCommits(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	var conflicts atomic.Int64
	enrol := func(user candor.UserID) *client.Client {
		cfg := env.ClientConfig(user, "laptop")
		cfg.Logger = slog.New(countingHandler{msg: "commit lost the epoch; catching up", n: &conflicts})
		home := filepath.Join(t.TempDir(), string(user))
		c, err := client.EnrolWith(t.Context(), home, env.Invite(t, user), "laptop", cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	alice, bob, carol := enrol("alice"), enrol("bob"), enrol("carol")
	ctx := t.Context()
	g, err := alice.CreateGroup(ctx, "race", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	// Everyone rotates keys at once, a few times: one commit wins each
	// epoch, the others catch up and try again.
	for round := 0; round < 20 && (round < 3 || conflicts.Load() == 0); round++ {
		var wg sync.WaitGroup
		errs := make([]error, 3)
		start := make(chan struct{})
		for i, c := range []*client.Client{alice, bob, carol} {
			wg.Go(func() {
				<-start
				errs[i] = c.UpdateKeys(ctx, g)
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if conflicts.Load() == 0 {
		t.Error("no commit ever lost a race: the conflict path was not exercised")
	}
	t.Logf("%d commits lost the epoch and were retried", conflicts.Load())
	// The group is whole: messages flow between all three.
	mustSync(t, alice, bob, carol)
	for _, c := range []*client.Client{alice, bob, carol} {
		if _, err := c.Send(ctx, g, "from "+string(c.User())); err != nil {
			t.Fatalf("%s: %v", c.User(), err)
		}
	}
	mustSync(t, alice, bob, carol)
	for _, c := range []*client.Client{alice, bob, carol} {
		for _, from := range []string{"alice", "bob", "carol"} {
			waitText(t, c, g, "from "+from)
		}
	}
}

func TestReconnect(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, _, g := trio(t, env)
	ctx := t.Context()
	run(t, bob)
	if _, err := alice.Send(ctx, g, "before"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bob, g, "before")
	for i := range 3 {
		env.DropConnections()
		waitEvent(t, bob, func(ev client.Event) bool { return ev.Kind == client.EventDisconnected })
		text := fmt.Sprint("after drop ", i)
		if _, err := alice.Send(ctx, g, text); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, bob, func(ev client.Event) bool { return ev.Kind == client.EventConnected })
		waitText(t, bob, g, text)
	}
	ms, err := bob.Messages(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"before", "after drop 0", "after drop 1", "after drop 2"}, texts(ms)); diff != "" {
		t.Errorf("bob's history (-want +got):\n%s", diff)
	}
}

func TestRemoveUsers(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	if _, err := alice.Send(ctx, g, "before"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	if err := alice.RemoveUsers(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.RemoveUsers(ctx, g, "bob"); !errors.Is(err, client.ErrNotMemberUser) {
		t.Errorf("removing bob twice: %v, want ErrNotMemberUser", err)
	}
	if _, err := alice.Send(ctx, g, "after"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	waitText(t, carol, g, "after")
	if _, err := bob.Send(ctx, g, "still here?"); !errors.Is(err, client.ErrRemoved) || !errors.Is(err, candor.ErrPermission) {
		t.Errorf("bob sends after his removal: %v, want ErrRemoved", err)
	}
	groups, err := bob.Groups(ctx)
	if err != nil || len(groups) != 1 || !groups[0].Removed {
		t.Errorf("bob's groups = %+v, %v; want one, removed", groups, err)
	}
	ms, err := bob.Messages(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"before"}, texts(ms)); diff != "" {
		t.Errorf("bob keeps his history (-want +got):\n%s", diff)
	}
	members, err := carol.Members(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice", "archive", "carol"}, users(members)); diff != "" {
		t.Errorf("carol's members (-want +got):\n%s", diff)
	}
}

func TestRemovedWhileStreaming(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, _, g := trio(t, env)
	run(t, bob)
	if err := alice.RemoveUsers(t.Context(), g, "bob"); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, bob, func(ev client.Event) bool { return ev.Kind == client.EventRemoved })
	if ev.Group != g {
		t.Errorf("removed from %s, want %s", ev.Group, g)
	}
}

func TestRevocation(t *testing.T) {
	t.Parallel()
	for _, rotate := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotate=%v", rotate), func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t)
			alice := env.Enrol(t, "alice", "laptop")
			bob := env.Enrol(t, "bob", "laptop")
			carol := env.Enrol(t, "carol", "desk")
			ctx := t.Context()
			g, err := alice.CreateGroup(ctx, "desk", "bob", "carol")
			if err != nil {
				t.Fatal(err)
			}
			mustSync(t, bob, carol)
			carolRun := run(t, carol)

			env.Revoke(t, carol.Device())
			if err := carolRun.wait(t); !errors.Is(err, client.ErrRevoked) {
				t.Errorf("carol's Run ended with %v, want ErrRevoked", err)
			}
			if err := carol.Sync(ctx); !errors.Is(err, client.ErrRevoked) || !errors.Is(err, candor.ErrPermission) {
				t.Errorf("carol's Sync: %v, want ErrRevoked", err)
			}
			if _, err := carol.Send(ctx, g, "let me in"); !errors.Is(err, client.ErrRevoked) {
				t.Errorf("carol's Send: %v, want ErrRevoked", err)
			}

			// The others go on: the server, as the group's external sender,
			// proposed carol's removal, and the next member to send or
			// commit (a key rotation here, a message otherwise) commits it.
			mustSync(t, alice, bob)
			if rotate {
				if err := alice.UpdateKeys(ctx, g); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := bob.Send(ctx, g, "carol is gone"); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Send(ctx, g, "indeed"); err != nil {
				t.Fatal(err)
			}
			mustSync(t, alice, bob)
			waitText(t, alice, g, "carol is gone")
			waitText(t, bob, g, "indeed")
			for _, c := range []*client.Client{alice, bob} {
				ms, err := c.Members(ctx, g)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff([]string{"alice", "archive", "bob"}, users(ms)); diff != "" {
					t.Errorf("%s's members (-want +got):\n%s", c.User(), diff)
				}
			}
		})
	}
}

func TestServerNeverSeesText(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	b := make([]byte, 16)
	rand.Read(b)
	marker := "MARKER-" + hex.EncodeToString(b)
	run(t, carol)
	for i, c := range []*client.Client{alice, bob, carol, alice} {
		if _, err := c.Send(ctx, g, fmt.Sprintf("%s %d: the quarterly numbers", marker, i)); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, alice, bob)
	waitText(t, bob, g, marker+" 3: the quarterly numbers")
	waitText(t, carol, g, marker+" 3: the quarterly numbers")
	// The clients have it; the server's folder must not.
	scanned := 0
	err := filepath.WalkDir(env.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		scanned++
		for _, needle := range []string{marker, strings.ToLower(marker), hex.EncodeToString([]byte(marker))} {
			if bytes.Contains(data, []byte(needle)) {
				t.Errorf("%s holds the marker %q", p, needle)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Nor the server's log, at every level.
	serverLog := env.ServerLog()
	if len(serverLog) == 0 {
		t.Error("the server logged nothing: the log scan would find nothing")
	}
	for _, needle := range []string{marker, strings.ToLower(marker), hex.EncodeToString([]byte(marker))} {
		if bytes.Contains(serverLog, []byte(needle)) {
			t.Errorf("the server's log holds the marker %q", needle)
		}
	}
	var names []string
	entries, _ := os.ReadDir(env.Dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !strings.Contains(strings.Join(names, " "), "candor.db-wal") {
		t.Logf("files scanned: %v (no -wal file at the time of the scan)", names)
	}
	if scanned < 7 {
		t.Errorf("scanned %d files of %v; expected the keys, certificates and database", scanned, names)
	}
	// The devices' profile folders no longer hold the marker in the clear
	// either (their storage is encrypted): TestNoSecretInProfile in
	// storage_test.go searches them.
}

func TestEnrolErrors(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	other := testenv.New(t)
	ctx := t.Context()
	code := env.Invite(t, "alice")
	inv, err := api.DecodeInvitation(code)
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(f func(*api.InvitationCode)) string {
		c := inv
		c.CAFingerprint = bytes.Clone(inv.CAFingerprint)
		c.Secret = bytes.Clone(inv.Secret)
		f(&c)
		return api.EncodeInvitation(c)
	}
	home := func() string { return filepath.Join(t.TempDir(), "profile") }
	tests := []struct {
		name string
		code string
		want error
	}{
		{"not a code", "hello", client.ErrBadInvitation},
		{"wrong secret", tamper(func(c *api.InvitationCode) { c.Secret[0] ^= 1 }), client.ErrBadInvitation},
		{"unknown invitation", tamper(func(c *api.InvitationCode) { c.ID = "nope" }), client.ErrBadInvitation},
		{"another organisation's server", tamper(func(c *api.InvitationCode) { c.Server = other.Addr }), client.ErrServerIdentity},
		{"wrong CA fingerprint", tamper(func(c *api.InvitationCode) { c.CAFingerprint[0] ^= 1 }), client.ErrServerIdentity},
		{"unreachable server", tamper(func(c *api.InvitationCode) { c.Server = "127.0.0.1:1" }), client.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Enrol(ctx, home(), tt.code, "laptop")
			if !errors.Is(err, tt.want) {
				t.Errorf("Enrol: %v, want %v", err, tt.want)
			}
		})
	}
	// The real code works once.
	h := home()
	c, err := client.Enrol(ctx, h, code, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := client.Enrol(ctx, home(), code, "laptop"); !errors.Is(err, client.ErrBadInvitation) {
		t.Errorf("a used code: %v, want ErrBadInvitation", err)
	}
	if _, err := client.Enrol(ctx, h, env.Invite(t, "alice"), "laptop"); !errors.Is(err, client.ErrAlreadyEnrolled) {
		t.Errorf("enrolling into a profile twice: %v, want ErrAlreadyEnrolled", err)
	}
	if _, err := client.Open(ctx, home(), client.Config{}); !errors.Is(err, client.ErrNotEnrolled) {
		t.Errorf("opening an empty profile: %v, want ErrNotEnrolled", err)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, "device.key": 0o600, "device.db": 0o600} {
		fi, err := os.Stat(filepath.Join(h, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%q has mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, _, g := trio(t, env)
	ctx := t.Context()
	if _, err := alice.Send(ctx, g, "one"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	home := bob.Home()
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, g, "two"); err != nil {
		t.Fatal(err)
	}
	bob2, err := client.Open(ctx, home, env.ClientConfig("bob", "laptop"))
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	mustSync(t, bob2)
	if _, err := bob2.Send(ctx, g, "three"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	waitText(t, alice, g, "three")
	ms, err := bob2.Messages(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"one", "two", "three"}, texts(ms)); diff != "" {
		t.Errorf("bob's history after reopening (-want +got):\n%s", diff)
	}
}

func TestManyGroupsUseUpKeyPackages(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "laptop")
	ctx := t.Context()
	// More groups than the stock of one-time KeyPackages bob uploaded: bob
	// tops it up after joining, and the last-resort one covers the rest.
	var gs []candor.GroupID
	for i := range 25 {
		g, err := alice.CreateGroup(ctx, fmt.Sprint("g", i), "bob")
		if err != nil {
			t.Fatalf("group %d: %v", i, err)
		}
		gs = append(gs, g)
		if i == 12 {
			mustSync(t, bob)
		}
	}
	mustSync(t, bob)
	groups, err := bob.Groups(ctx)
	if err != nil || len(groups) != len(gs) {
		t.Fatalf("bob is in %d groups (%v), want %d", len(groups), err, len(gs))
	}
	for _, g := range gs {
		if _, err := bob.Send(ctx, g, "hi"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPeopleErrors(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	if err := alice.AddUsers(ctx, g, "nobody"); !errors.Is(err, client.ErrUnknownUser) || !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("adding an unknown person: %v, want ErrUnknownUser", err)
	}
	// Adding people already there changes nothing.
	if err := alice.AddUsers(ctx, g, "bob", "carol"); err != nil {
		t.Errorf("adding members again: %v", err)
	}
	env.Revoke(t, carol.Device())
	dave := env.Enrol(t, "dave", "phone")
	env.Revoke(t, dave.Device())
	if err := bob.AddUsers(ctx, g, "dave"); !errors.Is(err, client.ErrNoKeys) {
		t.Errorf("adding a person whose only device is revoked: %v, want ErrNoKeys", err)
	}
	if _, err := alice.Send(ctx, candor.GroupID("no such group"), "hi"); !errors.Is(err, client.ErrUnknownGroup) {
		t.Errorf("sending to an unknown group: %v, want ErrUnknownGroup", err)
	}
	if _, err := alice.Messages(ctx, candor.GroupID("no such group")); !errors.Is(err, client.ErrUnknownGroup) {
		t.Errorf("reading an unknown group: %v, want ErrUnknownGroup", err)
	}
	// The next commit removes the revoked carol.
	if err := bob.UpdateKeys(ctx, g); err != nil {
		t.Fatal(err)
	}
	ms, err := bob.Members(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice", "archive", "bob"}, users(ms)); diff != "" {
		t.Errorf("bob's members after his commit (-want +got):\n%s", diff)
	}
}
