package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"candor"
	"candor/client"
	"candor/internal/demo"
)

// TestMain lets the test binary be the candor command inside scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"candor": main})
}

// serverKey is where a script's server is kept in its Values.
type serverKey struct{}

// TestScripts runs the scripts in testdata/script, each against its own
// organisation's server running in this process (real TLS on 127.0.0.1,
// SQLite in the script's folder), with the candor command run as a real
// process. Besides the usual commands, scripts have:
//
//	invite USER VAR [LIFETIME]   set $VAR to a new invitation code for USER
//	capture VAR REGEXP           set $VAR to REGEXP's first group in the last stdout
//	status N PROGRAM ARGS...     run PROGRAM, which must exit with status N
//	stopserver                   stop the server, as if it were unreachable
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: false,
		Setup: func(e *testscript.Env) error {
			srv, err := demo.StartServer(context.Background(), filepath.Join(e.WorkDir, ".candord"), "Example Bank")
			if err != nil {
				return err
			}
			e.Values[serverKey{}] = srv
			e.Defer(func() {
				if err := srv.Close(); err != nil {
					e.T().Log("closing the server:", err)
				}
			})
			// No profile folder is found by default: every script names one.
			e.Setenv("CANDOR_HOME", filepath.Join(e.WorkDir, "no-profile"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"invite":     cmdInvite,
			"capture":    cmdCapture,
			"status":     cmdStatus,
			"stopserver": cmdStopServer,
			"access":     cmdAccess,
		},
	})
}

func scriptServer(ts *testscript.TestScript) *demo.Server {
	return ts.Value(serverKey{}).(*demo.Server)
}

func cmdInvite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: invite USER VAR [LIFETIME]")
	}
	lifetime := time.Hour
	if len(args) == 3 {
		d, err := time.ParseDuration(args[2])
		ts.Check(err)
		lifetime = d
	}
	code, err := scriptServer(ts).Invite(context.Background(), candor.UserID(args[0]), lifetime)
	ts.Check(err)
	ts.Setenv(args[1], code)
}

func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: capture VAR REGEXP")
	}
	re, err := regexp.Compile(`(?m)` + args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("capture: no match for %q in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}

func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N PROGRAM ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("status: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

func cmdStopServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: stopserver")
	}
	ts.Check(scriptServer(ts).Close())
}

// TestUsageDocumentsExitCodes checks that the usage text lists every exit
// status the command can return, so that scripts can rely on it.
func TestUsageDocumentsExitCodes(t *testing.T) {
	t.Parallel()
	for _, code := range []int{0, exitFailed, exitUsage, exitInvitation, exitServer, exitProfile, exitRevoked, exitNotMember, exitNotFound} {
		if !regexp.MustCompile(`(?m)^  ` + strconv.Itoa(code) + `  \S`).MatchString(usage) {
			t.Errorf("the usage text does not document exit status %d", code)
		}
	}
}

// TestExitCodes checks that the errors people meet map to distinct exit
// statuses, wrapped as the client and the command wrap them.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"usage", errUsage, exitUsage},
		{"ambiguous group", fmt.Errorf("%q matches a, b: %w", "x", errAmbiguous), exitUsage},
		{"bad invitation", fmt.Errorf("enrolling: %w", client.ErrBadInvitation), exitInvitation},
		{"unreachable", fmt.Errorf("%w (GET /v1/welcomes: refused)", client.ErrUnreachable), exitServer},
		{"not the organisation's server", client.ErrServerIdentity, exitServer},
		{"not enrolled", profileError{home: "x", err: client.ErrNotEnrolled}, exitProfile},
		{"a server error without a known code", &client.ServerError{Op: "GET /v1/groups", Status: 500}, exitFailed},
		{"removed device", fmt.Errorf("listing groups: %w", client.ErrRevoked), exitRevoked},
		{"unknown device", client.ErrUnknownDevice, exitRevoked},
		{"removed from a conversation", fmt.Errorf("sending: %w", client.ErrRemoved), exitNotMember},
		{"no such group", fmt.Errorf("%q: %w", "x", errNoGroup), exitNotFound},
		{"no such person", client.ErrUnknownUser, exitNotFound},
		{"no such device", client.ErrNoSuchDevice, exitNotFound},
		{"other", errors.New("disk full"), exitFailed},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("%s: exit status %d, want %d", tc.name, got, tc.want)
		}
	}
}
