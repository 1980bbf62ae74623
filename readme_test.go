package candor_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"candor/internal/readme"
)

// TestREADMEServerCommands runs the README's "Running a server and
// enrolling a device" block as written, in a temporary folder, so that the
// README stays true: build, init, the custody ceremony, serve, invite,
// enroll, whoami. The custodians' passphrase comes from the environment,
// as the README says scripts give it.
func TestREADMEServerCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	block, err := readme.Block("README.md", "## Running a server and enrolling a device")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	repo, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var code string
	for _, line := range block {
		args, err := readme.Words(line)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case args[0] == "go":
			// go build -o bin/ ./cmd/...: build from the repository.
			cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", filepath.Join(dir, "bin") + "/"}, args[4:]...)...)
			cmd.Dir = repo
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
			continue
		case args[len(args)-1] == "&":
			// The README names a fixed address; it must be free, or the
			// test would talk to whatever holds it.
			if c, err := net.Dial("tcp", "127.0.0.1:8443"); err == nil {
				c.Close()
				t.Fatal("127.0.0.1:8443, which the README uses, is taken by another process")
			}
			serve := exec.CommandContext(ctx, filepath.Join(dir, args[0]), args[1:len(args)-1]...)
			serve.Dir = dir
			if err := serve.Start(); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			t.Cleanup(func() { serve.Process.Kill(); serve.Wait() })
			waitListening(t, "127.0.0.1:8443")
			continue
		}
		for i, a := range args {
			if strings.HasPrefix(a, "candor1:") {
				args[i] = code
			}
		}
		cmd := exec.CommandContext(ctx, filepath.Join(dir, args[0]), args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CANDOR_CUSTODY_PASSPHRASE=a passphrase for the README")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if strings.Contains(line, " invite ") {
			code = strings.TrimSpace(string(out))
		}
		if strings.Contains(line, " whoami ") && !strings.HasPrefix(string(out), "alice, device ") {
			t.Fatalf("%s printed %q", line, out)
		}
	}
	if code == "" {
		t.Fatal("the README block invited nobody")
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}
