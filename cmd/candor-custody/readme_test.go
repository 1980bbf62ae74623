package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"candor/internal/server"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// TestREADME runs the README's "Archive custody" block as written, in a
// folder of its own whose ./org was made as candord init makes it, so that
// the block stays true. Not parallel: it changes directory and sets the
// passphrase variable.
func TestREADME(t *testing.T) {
	lines := readmeBlock(t, "## Archive custody")
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv(envPassphrase, "one passphrase for the example")
	open := func(ctx context.Context, path string) (store.Store, error) { return sqlstore.Open(ctx, path) }
	if err := server.Init(t.Context(), filepath.Join(dir, "org"), server.InitOptions{Org: "Example Bank", OpenStore: open}); err != nil {
		t.Fatal(err)
	}
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var last string
	ran := 0
	for _, line := range lines {
		args := shellWords(t, line)
		switch args[0] {
		case "go":
			continue // the test binary is the command
		case "bin/candor-custody":
		default:
			t.Fatalf("%s: only candor-custody is expected here", line)
		}
		var out, errOut strings.Builder
		if code := run(args[1:], stdin, &out, &errOut); code != exitOK {
			t.Fatalf("%s: exit status %d\n%s%s", line, code, out.String(), errOut.String())
		}
		last = out.String()
		ran++
	}
	if ran < 6 || !strings.Contains(last, "Endorsed by every custodian") {
		t.Errorf("the README block ran %d commands, the last printing:\n%s", ran, last)
	}
}

// readmeBlock returns the command lines of the first sh block after
// heading in README.md, comments removed.
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	state := 0 // 0: before the heading, 1: before the block, 2: in it
	for s := bufio.NewScanner(f); s.Scan(); {
		line := s.Text()
		switch {
		case state == 0 && line == heading:
			state = 1
		case state == 1 && line == "```sh":
			state = 2
		case state == 2 && line == "```":
			return lines
		case state == 2:
			if i := strings.Index(line, "  #"); i >= 0 {
				line = line[:i]
			}
			if line = strings.TrimSpace(line); line != "" {
				lines = append(lines, line)
			}
		}
	}
	t.Fatalf("README.md has no sh block under %q", heading)
	return nil
}

// shellWords splits a command line as the shell would for the README's
// simple lines: words separated by spaces, double quotes grouping.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("%s: unbalanced quotes", line)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}
