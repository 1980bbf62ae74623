package journalgen_test

import (
	"errors"
	"strings"
	"testing"

	"candor"
	"candor/internal/archive/journalgen"
)

func TestReadCorpus(t *testing.T) {
	t.Parallel()
	got, err := journalgen.ReadCorpus(strings.NewReader("lang\tscript\tsnippet\nen\tLatn\tHello there\nja\tJpan\t今日は\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []journalgen.Text{{Lang: "en", Text: "Hello there"}, {Lang: "ja", Text: "今日は"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("ReadCorpus = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "lang\tscript\tsnippet\n", "h\nen\tLatn\n", "h\n\tLatn\tx\n"} {
		if _, err := journalgen.ReadCorpus(strings.NewReader(bad)); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("ReadCorpus(%q): %v", bad, err)
		}
	}
}

// FuzzReadCorpus: every text read is a line's third field, and bad input
// is refused, never half read.
func FuzzReadCorpus(f *testing.F) {
	f.Add("lang\tscript\tsnippet\nen\tLatn\tHello\n")
	f.Add("x\nfr\tLatn\tBonjour\nde\tLatn\tHallo")
	f.Add("x\nen\tLatn\n")
	f.Fuzz(func(t *testing.T, in string) {
		texts, err := journalgen.ReadCorpus(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, candor.ErrInvalid) && !strings.Contains(err.Error(), "token too long") {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		for _, tx := range texts {
			if tx.Lang == "" || tx.Text == "" || strings.ContainsAny(tx.Text, "\t\n") {
				t.Fatalf("read %+v from %q", tx, in)
			}
		}
	})
}
