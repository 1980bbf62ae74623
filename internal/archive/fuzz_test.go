package archive

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeText: whatever a member encrypted, the text is what a client
// would show, and anything else is refused without a panic.
func FuzzDecodeText(f *testing.F) {
	f.Add([]byte(`{"text":"hello"}`))
	f.Add([]byte(`{"text":"","name":"desk"}`))
	f.Add([]byte(`{"name":"desk"}`))
	f.Add([]byte(`{"text":null}`))
	f.Add([]byte(`{"text":"\u65e5\u672c"}`))
	f.Add([]byte(`not json`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, plain []byte) {
		text, err := decodeText(plain)
		var want struct {
			Text *string `json:"text"`
		}
		jerr := json.Unmarshal(plain, &want)
		switch {
		case jerr != nil || want.Text == nil:
			if err == nil {
				t.Fatalf("accepted %q as %q", plain, text)
			}
		case err != nil || text != *want.Text:
			t.Fatalf("decodeText(%q) = %q, %v; want %q", plain, text, err, *want.Text)
		}
		if err == nil && !utf8.ValidString(text) {
			t.Fatalf("text is not UTF-8: %q", text)
		}
	})
}
