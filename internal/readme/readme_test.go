package readme

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`bin/candor send -home ./a desk 'Good morning, Bob.'`, []string{"bin/candor", "send", "-home", "./a", "desk", "Good morning, Bob."}},
		{`init --org "Example Bank"  --data ./org`, []string{"init", "--org", "Example Bank", "--data", "./org"}},
		{`a "it's" 'say "hi"' ''`, []string{"a", "it's", `say "hi"`, ""}},
		{`x	y`, []string{"x", "y"}},
	} {
		got, err := Words(tc.line)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Words(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	if _, err := Words(`say 'unfinished`); err == nil {
		t.Error("an unbalanced quote was accepted")
	}
}

func TestBlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	text := "# x\n\n## Run\n\nSome words.\n\n```sh\ngo build ./...   # build\n\nbin/x serve &\n```\n\n```sh\nnot this\n```\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Block(path, "## Run")
	if err != nil || !slices.Equal(got, []string{"go build ./...", "bin/x serve &"}) {
		t.Errorf("Block = %q, %v", got, err)
	}
	if _, err := Block(path, "## Missing"); err == nil {
		t.Error("a missing heading was found")
	}
}
