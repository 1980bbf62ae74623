package server

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor/api"
)

// fuzzDecoder checks one request decoder: it never panics, refuses only
// with a catalogued code, and what it accepts encodes to JSON that it
// accepts again as the same value.
func fuzzDecoder[T any](f *testing.F, validate func(*T) error, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v T
		if err := decodeJSON(data, &v); err != nil {
			wantRefusal(t, err)
			return
		}
		if err := validate(&v); err != nil {
			wantRefusal(t, err)
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var again T
		if err := decodeJSON(b, &again); err != nil {
			t.Fatalf("re-encoded %s refused: %v", b, err)
		}
		if err := validate(&again); err != nil {
			t.Fatalf("re-encoded %s refused: %v", b, err)
		}
		if diff := cmp.Diff(v, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func wantRefusal(t *testing.T, err error) {
	t.Helper()
	var he *httpError
	if !errors.As(err, &he) {
		t.Fatalf("refusal %v is no httpError", err)
	}
	if _, ok := api.Status[he.public.Code]; !ok || he.public.Code == api.CodeInternal {
		t.Fatalf("refusal with code %q", he.public.Code)
	}
}

func noCheck[T any](*T) error { return nil }

func FuzzDecodeEnrolRequest(f *testing.F) {
	fuzzDecoder(f, func(r *api.EnrolRequest) error { _, err := validateEnrol(r); return err },
		`{"invitation":"0123456789abcdef","secret":"AAAA","name":"laptop","csr":"MIIB"}`,
		`{"invitation":"","secret":null,"name":"","csr":""}`,
		`{"invitation":"x","name":"\u0000"}`)
}

func FuzzDecodeUploadKeyPackages(f *testing.F) {
	fuzzDecoder(f, validateUpload,
		`{"key_packages":["AAEC","AwQF"],"last_resort":"BgcI"}`,
		`{"key_packages":[]}`,
		`{"key_packages":null,"last_resort":""}`)
}

func FuzzDecodeCreateGroup(f *testing.F) {
	fuzzDecoder(f, validateCreateGroup, `{"group_id":"AQID"}`, `{"group_id":""}`, `{}`)
}

func FuzzDecodeSendRequest(f *testing.F) {
	fuzzDecoder(f, validateSend,
		`{"message":"AAEAAg==","welcome":"AAEAAw=="}`,
		`{"message":"AAEAAg=="}`,
		`{"message":"","welcome":""}`,
		`{"message":"AA"} {}`)
}

func FuzzDecodeCursor(f *testing.F) {
	fuzzDecoder(f, noCheck[api.Cursor], `{"seq":3}`, `{"seq":-1}`, `{"seq":18446744073709551615}`, `{"seq":1e3}`)
}

// FuzzDecodeAck checks the one frame a device sends.
func FuzzDecodeAck(f *testing.F) {
	for _, s := range []string{
		`{"type":"ack","group_id":"AQID","seq":7}`,
		`{"type":"ack","group_id":"","seq":7}`,
		`{"type":"entry","group_id":"AQID","entry":{"seq":1,"epoch":0,"sender":"","time":"2026-11-24T12:00:00Z","message":"AA=="}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, seq, err := parseAck(data)
		if err != nil {
			if !errors.Is(err, errBadFrame) {
				t.Fatalf("refusal %v is not errBadFrame", err)
			}
			return
		}
		b, _ := json.Marshal(api.StreamFrame{Type: api.FrameAck, GroupID: []byte(id), Seq: seq})
		id2, seq2, err := parseAck(b)
		if err != nil || id2 != id || seq2 != seq {
			t.Fatalf("round trip of %s: %q %d %v", b, id2, seq2, err)
		}
	})
}
