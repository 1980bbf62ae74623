package candor

import (
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
	for _, bad := range []string{"", "xyz", "abc"} {
		if _, err := ParseGroupID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseGroupID(%q): %v, want ErrInvalid", bad, err)
		}
	}
}
