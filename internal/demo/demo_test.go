package demo

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestDemoNarratesTheConversation(t *testing.T) {
	t.Parallel()
	corpus := "../../../shared/corpus/udhr-snippets.tsv"
	_, statErr := os.Stat(corpus)
	for _, tc := range []struct {
		name, corpus string
		sentences    []string // sentences the narration must contain
		skip         bool
	}{
		{name: "built-in sentences", corpus: "does-not-exist.tsv", sentences: sentences("does-not-exist.tsv")},
		// The sentences are the corpus's own, picked by the same rule; the
		// case is skipped when the corpus is not beside the repository.
		{name: "shared corpus", corpus: corpus, sentences: sentences(corpus), skip: statErr != nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.skip {
				t.Skip("shared corpus not beside the repository")
			}
			var out strings.Builder
			err := Run(t.Context(), Config{Out: &out, Dir: t.TempDir(), Corpus: tc.corpus})
			text := out.String()
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, text)
			}
			for _, s := range tc.sentences {
				if !strings.Contains(text, "» "+s+"\n") {
					t.Errorf("narration lacks the message %q", s)
				}
			}
			for _, want := range []string{
				"read by 3 other devices",
				"read by 2 other devices",
				"read by 1 other device)",
				"server says: \"this device has been revoked",
				"any 2 of the 3 together can open it",
				"keeps Example Bank's record; opened only by 2 of 3 custodians",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("narration lacks %q", want)
				}
			}
			// Three member lists: everyone and the archive, without the
			// lost phone, and without Carol once she left.
			lists := memberLists(text)
			want := [][]string{
				{"alice/laptop", "bob/laptop", "bob/phone", "carol/desk", "archive"},
				{"alice/laptop", "bob/laptop", "carol/desk", "archive"},
				{"alice/laptop", "bob/laptop", "archive"},
			}
			if len(lists) != len(want) {
				t.Fatalf("%d member lists, want %d:\n%s", len(lists), len(want), text)
			}
			for i := range want {
				if strings.Join(lists[i], " ") != strings.Join(want[i], " ") {
					t.Errorf("member list %d: %v, want %v", i+1, lists[i], want[i])
				}
			}
			if t.Failed() {
				t.Log(text)
			}
		})
	}
}

// memberLists reads the member lists out of the narration: for each, the
// user/name of every "leaf N" line under it, in order.
func memberLists(text string) [][]string {
	var out [][]string
	in := false
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		switch {
		case strings.Contains(line, "Members of the conversation"):
			out = append(out, nil)
			in = true
		case in && len(f) >= 3 && f[0] == "leaf":
			out[len(out)-1] = append(out[len(out)-1], f[2])
		default:
			in = false
		}
	}
	return out
}

// BenchmarkDemo measures one whole demonstration: the server's creation,
// four enrolments, the conversation and its changes. README.md says how
// long it takes from this.
func BenchmarkDemo(b *testing.B) {
	for b.Loop() {
		if err := Run(b.Context(), Config{Out: io.Discard, Dir: b.TempDir(), Corpus: "does-not-exist.tsv"}); err != nil {
			b.Fatal(err)
		}
	}
}
