package custody_test

import (
	"errors"
	"testing"

	"candor/internal/custody"
)

func TestOpeningKeyBytes(t *testing.T) {
	t.Parallel()
	k, err := custody.NewOpeningKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	back, err := custody.ParseOpeningKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.PublicKey().Equal(k.PublicKey()) {
		t.Fatal("the scalar gives back another key")
	}
	for _, bad := range [][]byte{nil, make([]byte, 32), b[:31], append(b, 0)} {
		if _, err := custody.ParseOpeningKey(bad); !errors.Is(err, custody.ErrMalformed) {
			t.Errorf("ParseOpeningKey(%x) = %v, want ErrMalformed", bad, err)
		}
	}
}
