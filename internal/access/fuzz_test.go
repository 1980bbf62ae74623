package access_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"candor/internal/access"
)

// seed adds the golden records and some near misses to a fuzz corpus.
func seed(f *testing.F) {
	for _, name := range []string{"request.bin", "approval.bin", "opening.bin", "hold.bin", "release.bin", "deletion.bin"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(append(bytes.Clone(b), 0))
	}
	f.Add([]byte("cacc\x01"))
	f.Add([]byte{})
}

// roundTrip checks what every decoder promises: what it accepts, its
// encoder writes back byte for byte; what it refuses is ErrMalformed.
func roundTrip[T interface{ MarshalBinary() ([]byte, error) }](t *testing.T, b []byte, parse func([]byte) (T, error)) {
	v, err := parse(b)
	if err != nil {
		if !errors.Is(err, access.ErrMalformed) {
			t.Fatalf("refused with %v, want ErrMalformed", err)
		}
		return
	}
	again, err := v.MarshalBinary()
	if err != nil {
		t.Fatalf("accepted, then does not encode: %v", err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", b, again)
	}
}

func FuzzParseRecord(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, access.ParseRecord) })
}

func FuzzParseRequest(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, access.ParseRequest)
		if q, err := access.ParseRequest(b); err == nil {
			if id, err := q.ID(); err != nil || id.String() == "" {
				t.Fatalf("a parsed request has no id: %v", err)
			}
		}
	})
}

func FuzzParseApproval(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, access.ParseApproval) })
}

func FuzzParseOpening(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, access.ParseOpening) })
}

func FuzzParseHold(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, access.ParseHold)
		if h, err := access.ParseHold(b); err == nil {
			if id, err := h.ID(); err != nil || id != sha256.Sum256(b) {
				t.Fatalf("a parsed hold's id is not the SHA-256 of its record: %v", err)
			}
		}
	})
}

func FuzzParseRelease(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, access.ParseRelease) })
}

func FuzzParseDeletion(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, access.ParseDeletion) })
}
