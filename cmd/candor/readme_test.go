package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"candor"
	"candor/internal/demo"
	"candor/internal/readme"
)

// TestREADMEConversation runs the README's "Conversations in the
// terminal" block as written, against a real server, so that it stays
// true: bin/candord invite becomes an invitation from that server, every
// bin/candor line runs the command, ./FOLDER is a folder of the test's,
// and a line ending in & runs alongside the ones after it.
func TestREADMEConversation(t *testing.T) {
	t.Parallel()
	block, err := readme.Block(filepath.Join("..", "..", "README.md"), "## Conversations in the terminal")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := demo.StartServer(ctx, filepath.Join(dir, "org"), "Example Bank")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	// The block follows the one that enrolled alice's laptop.
	code, err := srv.Invite(ctx, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"enroll", "-home", filepath.Join(dir, "alice-laptop"), "-name", "laptop", code}, stdio{in: strings.NewReader(""), out: &strings.Builder{}, err: &strings.Builder{}}); err != nil {
		t.Fatal(err)
	}

	var (
		wg         sync.WaitGroup
		background []*strings.Builder
		outputs    = map[string]string{} // command name → its output, the last one of each
	)
	for _, line := range block {
		args, err := readme.Words(line)
		if err != nil {
			t.Fatal(err)
		}
		if args[0] == "bin/candord" {
			if args[1] != "invite" {
				t.Fatalf("%s: only invitations are expected here", line)
			}
			if code, err = srv.Invite(ctx, candor.UserID(args[len(args)-1]), time.Hour); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if args[0] != "bin/candor" {
			t.Fatalf("%s: not a candor command", line)
		}
		args = args[1:]
		bg := args[len(args)-1] == "&"
		if bg {
			args = args[:len(args)-1]
		}
		for i, a := range args {
			switch {
			case strings.HasPrefix(a, "candor1:"):
				args[i] = code
			case strings.HasPrefix(a, "./"):
				args[i] = filepath.Join(dir, a[2:])
			}
		}
		out, errOut := &strings.Builder{}, &strings.Builder{}
		io := stdio{in: strings.NewReader(""), out: out, err: errOut}
		if bg {
			background = append(background, out)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := run(ctx, args, io); err != nil {
					t.Errorf("%s: %v\n%s", line, err, errOut)
				}
			}()
			continue
		}
		if err := run(ctx, args, io); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, errOut)
		}
		outputs[args[0]] = out.String()
	}
	wg.Wait()
	if len(background) != 1 {
		t.Fatalf("%d lines ran in the background, want the one listen", len(background))
	}
	for _, c := range []struct{ what, got, want string }{
		{"read", outputs["read"], "Good morning, Bob."},
		{"members", outputs["members"], "2 people, 2 devices"},
		{"listen", background[0].String(), "alice: The desk opens at eight."},
	} {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s printed %q, which lacks %q", c.what, c.got, c.want)
		}
	}
}
