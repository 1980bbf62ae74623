package client_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"candor"
	"candor/client"
	"candor/internal/testenv"
)

const testPassphrase = "a passphrase for the tests"

// enrolWithPassphrase enrols user's device name in a new profile folder,
// its storage protected by passphrase.
func enrolWithPassphrase(t *testing.T, env *testenv.Env, user candor.UserID, name string, passphrase client.Passphrase) *client.Client {
	t.Helper()
	cfg := env.ClientConfig(user, name)
	cfg.Passphrase = passphrase
	c, err := client.EnrolWith(t.Context(), filepath.Join(t.TempDir(), string(user)), env.Invite(t, user), name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// profileFiles is every file of a profile folder, by path.
func profileFiles(t *testing.T, home string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		out[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNoSecretInProfile sends messages carrying a unique marker between a
// device whose storage key is under a passphrase and one whose key is in
// the OS keyring or a key file, then searches every byte of both profile
// folders (the database, its write-ahead log and shared memory, the keys,
// the profile), while the clients are open and after they are closed, for
// the marker, the storage key and the device key's private scalar.
func TestNoSecretInProfile(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := t.Context()
	alice := enrolWithPassphrase(t, env, "alice", "laptop", testPassphrase)
	bob := env.Enrol(t, "bob", "laptop")
	marker := rand.Text()

	g, err := alice.CreateGroup(ctx, "desk "+marker, "bob")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	for i := range 3 {
		if _, err := alice.Send(ctx, g, strings.Repeat("x", i)+" from alice "+marker); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, bob)
	waitText(t, bob, g, "xx from alice "+marker)
	if _, err := bob.Send(ctx, g, "from bob "+marker); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice)
	waitText(t, alice, g, "from bob "+marker)

	type secret struct {
		name    string
		b       []byte
		keyFile bool // may be in the key file: it is the key's home
	}
	var secrets []secret
	for _, c := range []*client.Client{alice, bob} {
		storageKey, scalar, err := client.StorageSecrets(c)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets,
			secret{string(c.User()) + "'s storage key", storageKey, true},
			secret{string(c.User()) + "'s device key", scalar, false})
	}
	search := func(when string) {
		t.Helper()
		for _, c := range []*client.Client{alice, bob} {
			files := profileFiles(t, c.Home())
			if len(files) < 5 {
				t.Fatalf("%s: only %d files in %s", when, len(files), c.Home())
			}
			// Positive control: the scan sees what is stored in the clear.
			if !bytes.Contains(files[filepath.Join(c.Home(), "profile.json")], []byte(c.Device())) {
				t.Fatalf("%s: the device id is not in %s's profile.json: the scan reads nothing", when, c.User())
			}
			for path, data := range files {
				isKeyFile := filepath.Base(path) == "storage.key"
				if bytes.Contains(data, []byte(marker)) {
					t.Errorf("%s: the marker is in %s", when, path)
				}
				for _, s := range secrets {
					if s.keyFile && isKeyFile {
						continue
					}
					for _, form := range [][]byte{s.b, []byte(hex.EncodeToString(s.b)), []byte(base64.StdEncoding.EncodeToString(s.b))} {
						if bytes.Contains(data, form) {
							t.Errorf("%s: %s is in %s", when, s.name, path)
						}
					}
				}
			}
		}
	}
	search("open")
	if bytes.Contains(env.ServerLog(), []byte(marker)) {
		t.Error("the marker is in the server's log")
	}
	for _, c := range []*client.Client{alice, bob} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	search("closed")

	// The history is still there, for the right passphrase only.
	if _, err := client.Open(ctx, alice.Home(), client.Config{Passphrase: "not the passphrase"}); !errors.Is(err, client.ErrWrongKey) {
		t.Errorf("wrong passphrase: %v, want ErrWrongKey", err)
	}
	again, err := client.Open(ctx, alice.Home(), client.Config{Passphrase: testPassphrase})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	waitText(t, again, g, "from bob "+marker)
}

// TestWrongPassphrase: a wrong or missing passphrase is a clear error, and
// the profile folder is left byte for byte as it was.
func TestWrongPassphrase(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	c := enrolWithPassphrase(t, env, "alice", "laptop", testPassphrase)
	home := c.Home()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	before := profileFiles(t, home)
	tests := []struct {
		name       string
		passphrase client.Passphrase
		want       error
	}{
		{"wrong", "a passphrase for the test", client.ErrWrongKey},
		{"missing", "", client.ErrPassphraseNeeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Open(t.Context(), home, client.Config{Passphrase: tt.passphrase})
			if !errors.Is(err, tt.want) || !errors.Is(err, candor.ErrPermission) {
				t.Errorf("Open: %v, want %v", err, tt.want)
			}
		})
	}
	after := profileFiles(t, home)
	if len(after) != len(before) {
		t.Errorf("files before %d, after %d", len(before), len(after))
	}
	for path, b := range before {
		if !bytes.Equal(after[path], b) {
			t.Errorf("%s changed", path)
		}
	}
}

func TestPassphraseNeverPrinted(t *testing.T) {
	t.Parallel()
	cfg := client.Config{Passphrase: testPassphrase}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "passphrase", cfg.Passphrase)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.Passphrase), logged.String()} {
		if strings.Contains(out, testPassphrase) {
			t.Errorf("the passphrase is printed: %s", out)
		}
	}
}

// TestPassphraseFromEnvironment: CANDOR_PASSPHRASE is the passphrase when
// the configuration gives none. (Not parallel: it sets the environment.)
func TestPassphraseFromEnvironment(t *testing.T) {
	env := testenv.New(t)
	t.Setenv(client.EnvPassphrase, testPassphrase)
	c := env.Enrol(t, "alice", "laptop")
	home := c.Home()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, "storage.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a key file was written beside a passphrase: %v", err)
	}
	c, err := client.Open(t.Context(), home, client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	t.Setenv(client.EnvPassphrase, "")
	if _, err := client.Open(t.Context(), home, client.Config{}); !errors.Is(err, client.ErrPassphraseNeeded) {
		t.Errorf("without the variable: %v, want ErrPassphraseNeeded", err)
	}
}

// TestShortPassphraseKeepsInvitation: a passphrase refused at enrolment is
// refused before the invitation is spent.
func TestShortPassphraseKeepsInvitation(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	code := env.Invite(t, "alice")
	home := filepath.Join(t.TempDir(), "alice")
	cfg := env.ClientConfig("alice", "laptop")
	cfg.Passphrase = "short"
	if _, err := client.EnrolWith(t.Context(), home, code, "laptop", cfg); !errors.Is(err, candor.ErrInvalid) {
		t.Fatalf("a short passphrase: %v, want ErrInvalid", err)
	}
	cfg.Passphrase = testPassphrase
	c, err := client.EnrolWith(t.Context(), home, code, "laptop", cfg)
	if err != nil {
		t.Fatalf("enrolling with the same invitation: %v", err)
	}
	c.Close()
}

// TestProfileFilesChecked: a key file others can read is refused with the
// command that fixes it, and a profile from before encryption is refused
// with what to do.
func TestProfileFilesChecked(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	c := env.Enrol(t, "alice", "laptop")
	home := c.Home()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(home, "storage.key")
	if _, err := os.Stat(keyFile); err != nil {
		t.Skipf("the storage key is not in a key file here (an OS keyring answered?): %v", err)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Open(t.Context(), home, client.Config{}); !errors.Is(err, candor.ErrPermission) || !strings.Contains(err.Error(), "chmod 600 "+keyFile) {
		t.Errorf("a key file others can read: %v, want ErrPermission saying to run chmod 600", err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.Open(t.Context(), home, client.Config{})
	if err != nil {
		t.Fatalf("after chmod 600: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// What an earlier candor wrote: no "storage" in profile.json.
	profile := filepath.Join(home, "profile.json")
	raw, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(raw, []byte(`"storage"`))
	if start < 0 {
		t.Fatalf("profile.json has no storage record:\n%s", raw)
	}
	old := append(bytes.TrimRight(bytes.TrimRight(raw[:start], " \t\n"), ","), "\n}\n"...)
	if err := os.WriteFile(profile, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Open(t.Context(), home, client.Config{}); !errors.Is(err, candor.ErrInvalid) || !strings.Contains(err.Error(), "enrol this device again") {
		t.Errorf("a profile from before encryption: %v, want ErrInvalid saying to enrol again", err)
	}
}
