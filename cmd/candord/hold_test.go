package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"candor"
	"candor/client"
	"candor/internal/access"
	"candor/internal/server"
)

// holdSet is what candord hold set prints: the hold's id, and its index.
var holdSet = regexp.MustCompile(`^hold ([0-9a-f]{64}) set at index \d+\n$`)

// setHold runs candord hold set with args and returns the id it printed.
func setHold(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := candord(t, append([]string{"hold", "set", "--data", dir}, args...)...)
	if err != nil {
		t.Fatalf("candord hold set: %v", err)
	}
	m := holdSet.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("candord hold set printed %q", out)
	}
	return m[1]
}

// TestHoldCommands sets, lists and lifts holds with candord hold while
// serve runs, and checks what the person held sees on their device.
func TestHoldCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	initOrg(t, dir, "--host", "127.0.0.1")
	srv := startServe(t, dir, "127.0.0.1:0")
	code, err := candord(t, "invite", "--data", dir, "--server", srv.addr, "alice")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := client.Enrol(ctx, filepath.Join(t.TempDir(), "alice"), string(bytes.TrimSpace([]byte(code))), "laptop")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	holds := func() []string {
		t.Helper()
		report, err := alice.Audit(ctx)
		if err != nil {
			t.Fatalf("audit: %v", err)
		}
		var out []string
		for _, h := range report.Holds {
			s := h.Case + " by " + h.By
			if !h.Active() {
				s += ", lifted by " + h.Lifted.By + ": " + h.Lifted.Reason
			}
			out = append(out, s)
		}
		return out
	}

	if out, err := candord(t, "hold", "list", "--data", dir); err != nil || out != "no legal hold is in force\n" {
		t.Fatalf("hold list of a new organisation: %q, %v", out, err)
	}
	onAlice := setHold(t, dir, "--case", "LIT-1", "--reason", "Acme v. Example Bank", "--by", "Legal office", "--users", "alice,bob")
	onGroup := setHold(t, dir, "--case", "LIT-2", "--reason", "an inquiry", "--by", "Legal office", "--groups", "0a0b,0c")
	if got := holds(); len(got) != 1 || got[0] != "LIT-1 by Legal office" {
		t.Fatalf("alice's audit shows holds %q, want LIT-1 in force", got)
	}

	out, err := candord(t, "hold", "list", "--data", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"hold " + onAlice + " (index 0): in force\n", "  case:    LIT-1\n", "  reason:  Acme v. Example Bank\n",
		"  covers:  user alice, user bob\n", "hold " + onGroup + " (index 1): in force\n", "  covers:  group 0a0b, group 0c\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("hold list does not show %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^  set:     by Legal office on \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(out) {
		t.Errorf("hold list does not say who set the holds and when:\n%s", out)
	}

	if out, err := candord(t, "hold", "lift", "--data", dir, "--by", "General counsel", "--reason", "Settled.", onAlice); err != nil || out != "hold "+onAlice+" lifted at index 2\n" {
		t.Fatalf("hold lift: %q, %v", out, err)
	}
	if got := holds(); len(got) != 1 || got[0] != "LIT-1 by Legal office, lifted by General counsel: Settled." {
		t.Errorf("alice's audit shows holds %q, want LIT-1 lifted", got)
	}
	out, err = candord(t, "hold", "list", "--data", dir)
	if err != nil || strings.Contains(out, onAlice) || !strings.Contains(out, onGroup) {
		t.Errorf("hold list after the lift shows %q (%v), want only %s", out, err, onGroup)
	}
	out, err = candord(t, "hold", "list", "--data", dir, "--all")
	if err != nil || !strings.Contains(out, "hold "+onAlice+" (index 0): lifted\n") ||
		!regexp.MustCompile(`(?m)^  lifted:  by General counsel on \S+ \(index 2\): Settled\.$`).MatchString(out) {
		t.Errorf("hold list --all:\n%s(%v)", out, err)
	}

	unknown := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		args []string
		want error
	}{
		{"a second lift", []string{"lift", "--data", dir, "--by", "L", "--reason", "again", onAlice}, candor.ErrConflict},
		{"a lift of a hold not set", []string{"lift", "--data", dir, "--by", "L", "--reason", "r", unknown}, candor.ErrNotFound},
		{"a lift of no hold id", []string{"lift", "--data", dir, "--by", "L", "--reason", "r", "LIT-1"}, candor.ErrInvalid},
		{"a hold on nothing", []string{"set", "--data", dir, "--case", "C", "--reason", "r", "--by", "L"}, candor.ErrInvalid},
		{"a group id not in hex", []string{"set", "--data", dir, "--case", "C", "--reason", "r", "--by", "L", "--groups", "xyz"}, candor.ErrInvalid},
		{"a control character in the reason", []string{"set", "--data", dir, "--case", "C", "--reason", "a\x1b[2J", "--by", "L", "--users", "u"}, candor.ErrInvalid},
		{"set without a case", []string{"set", "--data", dir, "--reason", "r", "--by", "L", "--users", "u"}, errUsage},
		{"lift without who", []string{"lift", "--data", dir, "--reason", "r", onGroup}, errUsage},
		{"lift of two holds", []string{"lift", "--data", dir, "--by", "L", "--reason", "r", onGroup, onAlice}, errUsage},
		{"list with an argument", []string{"list", "--data", dir, "x"}, errUsage},
		{"no data folder", []string{"list"}, errUsage},
		{"an unknown subcommand", []string{"drop", "--data", dir}, errUsage},
	} {
		if _, err := candord(t, append([]string{"hold"}, tc.args...)...); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// None of the refused commands appended anything.
	if log := readAccessLog(t, dir); len(log.Holds) != 2 || len(log.Cases) != 0 || len(log.Deletions) != 0 {
		t.Errorf("the log holds %d holds, %d cases, %d deletions after the refused commands; want the 2 holds only", len(log.Holds), len(log.Cases), len(log.Deletions))
	}
}

// TestHoldUsage checks that candord's usage names the hold command and
// that candord hold help prints its own.
func TestHoldUsage(t *testing.T) {
	t.Parallel()
	if !strings.Contains(usage, "candord hold") {
		t.Error("candord's usage does not name the hold command")
	}
	out, err := candord(t, "hold", "help")
	if err != nil || out != holdUsage {
		t.Errorf("candord hold help: %q, %v", out, err)
	}
	if _, err := candord(t, "hold"); !errors.Is(err, errUsage) {
		t.Errorf("candord hold without a subcommand: %v, want a usage error", err)
	}
}

// readAccessLog reads the data folder's access log, beside the server.
func readAccessLog(t *testing.T, dir string) *access.Log {
	t.Helper()
	l, err := server.OpenAccessLog(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	log, err := l.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return log
}
