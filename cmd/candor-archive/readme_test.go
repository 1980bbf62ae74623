package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"candor/internal/ceremony/ceremonytest"
	"candor/internal/custody"
	"candor/internal/readme"
	"candor/internal/testenv"
)

// TestREADMEOpening runs the README's "Opening a case" block as written,
// with the real binaries, against an organisation like the one the block
// before it makes: ./org is the data folder of a running server, whose
// custodians ana and bea hold the first two keys, and where alice and bob
// have talked. Four things are put in as a person would: the group's id
// for GROUP, the request id printed for ID, the test archive's key id for
// 2026 in the statement's path, and a time range around now for the
// README's past month (or there would be no records to read). alice's
// candor audit is her device in this process.
func TestREADMEOpening(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	block, err := readme.Block(filepath.Join("..", "..", "README.md"), "## Opening a case")
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.New(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "laptop")
	g, err := alice.CreateGroup(ctx, "deals", "bob")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	for _, text := range []string{"The term sheet is ready.", "Signing tomorrow."} {
		if _, err := alice.Send(ctx, g, text); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, bob)

	dir := t.TempDir()
	if err := os.Symlink(env.Dir, filepath.Join(dir, "org")); err != nil {
		t.Fatal(err)
	}
	const pass = "a passphrase for the README"
	for i, name := range []string{"ana", "bea"} {
		enc, err := custody.EncryptKeyFile(env.Archive.Keys[i], []byte(pass))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".key"), enc, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	subst := map[string]string{
		"GROUP":      g.String(),
		"2026-03-01": now.Add(-time.Hour).Format(time.RFC3339),
		"2026-04-01": now.Add(time.Hour).Format(time.RFC3339),
	}
	idLine := regexp.MustCompile(`^request ([0-9a-f]{64}) logged at index 0$`)
	ran := 0
	for _, line := range block {
		args, err := readme.Words(line)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case args[0] == "go":
			build := exec.CommandContext(ctx, "go", append([]string{"build", "-o", filepath.Join(dir, "bin") + "/", "./cmd/candord", "./cmd/candor-custody"}, args[4:]...)...)
			build.Dir = filepath.Join("..", "..")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
			continue
		case args[0] == "bin/candor":
			// alice's device is this process's.
			report, err := alice.Audit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			entries := report.Openings
			if len(entries) != 1 || entries[0].Case != "CASE-1" || !entries[0].Completed() || len(entries[0].Approvals) != 2 {
				t.Fatalf("alice's audit: %+v", entries)
			}
			if r := entries[0].Openings[0].Groups; len(r) != 1 || r[0].Group != g || r[0].Records < 2 {
				t.Fatalf("alice's audit shows the opening reading %+v", r)
			}
			ran++
			continue
		}
		for i, a := range args {
			if v, ok := subst[a]; ok {
				args[i] = v
			}
			args[i] = strings.Replace(args[i], "/archive/2026/", "/archive/"+ceremonytest.KeyID+"/", 1)
		}
		cmd := exec.CommandContext(ctx, filepath.Join(dir, args[0]), args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CANDOR_CUSTODY_PASSPHRASE="+pass)
		// The custodians type yes once they have read the request.
		cmd.Stdin = strings.NewReader("yes\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s%s", line, err, out, stderr.Bytes())
		}
		if m := idLine.FindStringSubmatch(strings.TrimSpace(string(out))); m != nil {
			subst["ID"] = m[1]
		}
		ran++
	}
	if ran != len(block)-1 || subst["ID"] == "" {
		t.Fatalf("ran %d of the block's %d lines; request id %q", ran, len(block), subst["ID"])
	}
	if _, err := os.Stat(filepath.Join(dir, "review.jsonl")); err != nil {
		t.Errorf("the opening wrote no JSON Lines: %v", err)
	}
}
