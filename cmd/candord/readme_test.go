package main

import (
	"path/filepath"
	"strings"
	"testing"

	"candor/internal/readme"
)

// TestREADMEHolds runs the hold commands of the README's "Retention and
// legal holds" block as written, on an organisation made by init in
// place of ./org, with the id the set command prints for
// HOLD. The serve line is left out: TestServe runs the server, and
// TestUsage checks its retention flags.
func TestREADMEHolds(t *testing.T) {
	t.Parallel()
	block, err := readme.Block(filepath.Join("..", "..", "README.md"), "## Retention and legal holds")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "org")
	if _, err := candord(t, "init", "--data", dir, "--org", "Example Bank"); err != nil {
		t.Fatal(err)
	}
	var hold string
	var outs []string
	for _, line := range block {
		args, err := readme.Words(line)
		if err != nil {
			t.Fatal(err)
		}
		if len(args) < 2 || args[0] != "bin/candord" {
			t.Fatalf("README line %q is not a candord command", line)
		}
		if args[1] == "serve" {
			continue
		}
		for i, a := range args {
			switch a {
			case "./org":
				args[i] = dir
			case "HOLD":
				args[i] = hold
			}
		}
		out, err := candord(t, args[1:]...)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if args[2] == "set" {
			m := holdSet.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("%s printed %q", line, out)
			}
			hold = m[1]
		}
		outs = append(outs, out)
	}
	if len(outs) != 3 {
		t.Fatalf("ran %d hold commands, want set, list and lift", len(outs))
	}
	if list := outs[1]; !strings.Contains(list, hold) || !strings.Contains(list, "CASE-2") || !strings.Contains(list, "alice") {
		t.Errorf("hold list printed %q, want the hold on alice for CASE-2", list)
	}
	if !strings.HasPrefix(outs[2], "hold "+hold+" lifted") {
		t.Errorf("hold lift printed %q", outs[2])
	}
	if out, err := candord(t, "hold", "list", "--data", dir); err != nil || strings.Contains(out, hold) {
		t.Errorf("after the lift, hold list printed %q, %v", out, err)
	}
}
