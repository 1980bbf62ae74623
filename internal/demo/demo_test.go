package demo

import (
	"context"
	"strings"
	"testing"
)

func TestDemoNarratesTheConversation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, corpus string
		sentence     string // one sentence the narration must contain
	}{
		{name: "built-in sentences", corpus: "does-not-exist.tsv", sentence: "Guten Morgen, der Handel beginnt um acht."},
		{name: "shared corpus", corpus: "../../../shared/corpus/udhr-snippets.tsv", sentence: "Whereas recognition of the inherent dignity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			err := Run(context.Background(), Config{Out: &out, Dir: t.TempDir(), Corpus: tc.corpus})
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out.String())
			}
			text := out.String()
			if tc.name == "shared corpus" && !strings.Contains(text, "Whereas") {
				t.Skip("shared corpus not beside the repository")
			}
			for _, want := range []string{
				"leaf 0  alice/laptop",
				"leaf 1  bob/laptop",
				"leaf 2  bob/phone",
				"leaf 3  carol/desk",
				"certified by Example Bank device CA",
				tc.sentence,
				"read by 3 devices",
				"cannot read it",
				"All 3 devices derive the same epoch authenticator",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("narration lacks %q", want)
				}
			}
			// After the phone's removal the member list has three entries.
			last := text[strings.LastIndex(text, "Members of the conversation"):]
			if strings.Contains(last, "bob/phone") {
				t.Errorf("the removed phone is still listed:\n%s", last)
			}
			if t.Failed() {
				t.Log(text)
			}
		})
	}
}
