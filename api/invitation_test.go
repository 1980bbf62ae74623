package api

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor"
)

// sampleInvitation and sampleInvitationText are one code in both forms. The
// text was worked out by hand from this JSON (field order as Go encodes it;
// binary values standard base64 with padding):
//
//	{"server":"chat.example.com:8443",
//	 "ca_fingerprint":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",   // 0x01…0x20
//	 "id":"0123456789abcdef",
//	 "secret":"oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8=",         // 0xa0…0xbf
//	 "archive":"wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t8="}         // 0xc0…0xdf
//
// without the white space, then base64url without padding, after "candor1:".
var (
	sampleInvitation = InvitationCode{
		Server:        "chat.example.com:8443",
		CAFingerprint: seq(0x01, 32),
		ID:            "0123456789abcdef",
		Secret:        seq(0xa0, 32),
		Archive:       seq(0xc0, 32),
	}
	sampleInvitationJSON = `{"server":"chat.example.com:8443",` +
		`"ca_fingerprint":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",` +
		`"id":"0123456789abcdef",` +
		`"secret":"oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8=",` +
		`"archive":"wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t8="}`
	sampleInvitationText = "candor1:" +
		"eyJzZXJ2ZXIiOiJjaGF0LmV4YW1wbGUuY29tOjg0NDMiLCJjYV9maW5nZXJwcmludCI6IkFRSURCQVVHQndnSkNnc01E" +
		"UTRQRUJFU0V4UVZGaGNZR1JvYkhCMGVIeUE9IiwiaWQiOiIwMTIzNDU2Nzg5YWJjZGVmIiwic2VjcmV0Ijoib0tHaW82" +
		"U2xwcWVvcWFxcnJLMnVyN0N4c3JPMHRiYTN1TG02dTd5OXZyOD0iLCJhcmNoaXZlIjoid01IQ3c4VEZ4c2ZJeWNyTHpN" +
		"M096OURSMHRQVTFkYlgyTm5hMjl6ZDN0OD0ifQ"
)

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func TestInvitationBytes(t *testing.T) {
	t.Parallel()
	got := EncodeInvitation(sampleInvitation)
	if got != sampleInvitationText {
		t.Fatalf("EncodeInvitation:\n got %s\nwant %s", got, sampleInvitationText)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(got, InvitationPrefix))
	if err != nil || string(raw) != sampleInvitationJSON {
		t.Fatalf("payload %q, %v; want %q", raw, err, sampleInvitationJSON)
	}
	dec, err := DecodeInvitation("  " + sampleInvitationText + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleInvitation, dec); diff != "" {
		t.Fatalf("DecodeInvitation (-want +got):\n%s", diff)
	}
}

func TestDecodeInvitationRefuses(t *testing.T) {
	t.Parallel()
	enc := func(json string) string {
		return InvitationPrefix + base64.RawURLEncoding.EncodeToString([]byte(json))
	}
	fp := `"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="`
	secret := `"oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8="`
	for _, tc := range []struct {
		name, text string
	}{
		{"empty", ""},
		{"other prefix", "candor2:" + strings.TrimPrefix(sampleInvitationText, InvitationPrefix)},
		{"no prefix", strings.TrimPrefix(sampleInvitationText, InvitationPrefix)},
		{"padded", sampleInvitationText + "=="},
		{"standard base64", InvitationPrefix + base64.RawStdEncoding.EncodeToString([]byte(`{"server":"a???>>>"}`))},
		{"not JSON", enc("hello")},
		{"unknown field", enc(`{"server":"s","ca_fingerprint":` + fp + `,"id":"i","secret":` + secret + `,"archive":` + fp + `,"extra":1}`)},
		{"trailing value", enc(`{"server":"s","ca_fingerprint":` + fp + `,"id":"i","secret":` + secret + `,"archive":` + fp + `}{}`)},
		{"no server", enc(`{"ca_fingerprint":` + fp + `,"id":"i","secret":` + secret + `,"archive":` + fp + `}`)},
		{"short fingerprint", enc(`{"server":"s","ca_fingerprint":"AQID","id":"i","secret":` + secret + `,"archive":` + fp + `}`)},
		{"no id", enc(`{"server":"s","ca_fingerprint":` + fp + `,"secret":` + secret + `,"archive":` + fp + `}`)},
		{"short secret", enc(`{"server":"s","ca_fingerprint":` + fp + `,"id":"i","secret":"AQID","archive":` + fp + `}`)},
		{"no archive", enc(`{"server":"s","ca_fingerprint":` + fp + `,"id":"i","secret":` + secret + `}`)},
		{"short archive", enc(`{"server":"s","ca_fingerprint":` + fp + `,"id":"i","secret":` + secret + `,"archive":"AQID"}`)},
		{"too long", InvitationPrefix + strings.Repeat("A", 2000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeInvitation(tc.text)
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("DecodeInvitation: %v, want ErrInvalid", err)
			}
			if strings.Contains(err.Error(), "oKGi") {
				t.Fatalf("error repeats the secret: %v", err)
			}
		})
	}
}

// FuzzDecodeInvitation checks that whatever decodes re-encodes to a code
// that decodes to the same value, and that a changed character of a valid
// code is refused or changes the value.
func FuzzDecodeInvitation(f *testing.F) {
	f.Add(sampleInvitationText, 10)
	f.Add("candor1:e30", 0)
	f.Add("candor1:", 3)
	f.Fuzz(func(t *testing.T, text string, pos int) {
		c, err := DecodeInvitation(text)
		if err != nil {
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		} else {
			again, err := DecodeInvitation(EncodeInvitation(c))
			if err != nil {
				t.Fatalf("re-encoded code refused: %v", err)
			}
			if diff := cmp.Diff(c, again); diff != "" {
				t.Fatalf("round trip (-first +second):\n%s", diff)
			}
		}
		// Tamper with one character of the sample.
		b := []byte(sampleInvitationText)
		if pos < 0 {
			pos = -pos
		}
		i := pos % len(b)
		b[i] ^= 0x01
		if tampered, err := DecodeInvitation(string(b)); err == nil && cmp.Equal(tampered, sampleInvitation) {
			t.Fatalf("tampered code %q decodes to the original", b)
		}
	})
}
