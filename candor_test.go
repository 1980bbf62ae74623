package candor

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestGroupIDText(t *testing.T) {
	t.Parallel()
	id := GroupID("\x00\xffgroup")
	got, err := ParseGroupID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseGroupID(%q) = %q, %v", id.String(), got, err)
	}
	type doc struct {
		ID GroupID `json:"id"`
	}
	b, err := json.Marshal(doc{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	var back doc
	if err := json.Unmarshal(b, &back); err != nil || back.ID != id {
		t.Fatalf("JSON round trip of %q via %s gave %q, %v", id, b, back.ID, err)
	}
	for _, bad := range []string{"", "xyz", "abc"} {
		if _, err := ParseGroupID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseGroupID(%q): %v, want ErrInvalid", bad, err)
		}
	}
}
