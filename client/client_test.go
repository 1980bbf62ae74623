package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"candor"
	"candor/api"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	lo, hi := 100*time.Millisecond, 3*time.Second
	for n := range 70 {
		want := hi
		if n < 5 {
			want = lo << n
		}
		for range 20 {
			d := backoff(n, lo, hi)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// TestContentBytes pins the plaintext format of a text message, which
// every device must read the same way.
func TestContentBytes(t *testing.T) {
	t.Parallel()
	got, err := encodeText("hé \"x\"")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"text":"hé \"x\""}` // one JSON object; the text in UTF-8, quotes escaped
	if string(got) != want {
		t.Errorf("encodeText = %s, want %s", got, want)
	}
	// Fields a later version adds are ignored; a text-less object is an
	// empty text; what is not a JSON object is refused.
	for _, tt := range []struct {
		name, in, text string
		ok             bool
	}{
		{"later field", `{"text":"a","kind":"reaction"}`, "a", true},
		{"no text", `{}`, "", true},
		{"not json", `hello`, "", false},
		{"array", `["a"]`, "", false},
		{"text not a string", `{"text":1}`, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := decodeContent([]byte(tt.in))
			if (err == nil) != tt.ok || c.Text != tt.text {
				t.Errorf("decodeContent(%s) = %q, %v", tt.in, c.Text, err)
			}
			if err != nil && !errors.Is(err, candor.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func FuzzContent(f *testing.F) {
	f.Add("hello")
	f.Add("")
	f.Add("\x00\u2028\"\\")
	f.Fuzz(func(t *testing.T, text string) {
		b, err := encodeText(text)
		if err != nil {
			t.Fatal(err)
		}
		c, err := decodeContent(b)
		if err != nil {
			t.Fatal(err)
		}
		// encoding/json turns invalid UTF-8 into U+FFFD; valid text round-trips.
		if c.Text != text && validUTF8(text) {
			t.Errorf("round trip of %q gave %q", text, c.Text)
		}
		for i := range b {
			tampered := append([]byte(nil), b[:i]...)
			_, _ = decodeContent(tampered) // must not panic
		}
	})
}

func validUTF8(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' {
			return false
		}
	}
	return true
}

func TestResponseError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   []error
		code   api.Code
	}{
		{"revoked", 403, `{"code":"revoked_device","message":"x"}`, []error{ErrRevoked, candor.ErrPermission}, api.CodeRevokedDevice},
		{"bad invitation", 403, `{"code":"bad_invitation","message":"x"}`, []error{ErrBadInvitation, candor.ErrPermission}, api.CodeBadInvitation},
		{"not member", 403, `{"code":"not_member","message":"x"}`, []error{ErrRemoved}, api.CodeNotMember},
		{"stale epoch", 409, `{"code":"stale_epoch","message":"x","epoch":4}`, []error{errStaleEpoch, candor.ErrConflict}, api.CodeStaleEpoch},
		{"overloaded", 503, `{"code":"overloaded","message":"x"}`, []error{ErrOverloaded, candor.ErrOverloaded}, api.CodeOverloaded},
		{"unknown user", 404, `{"code":"unknown_user","message":"x"}`, []error{ErrUnknownUser, candor.ErrNotFound}, api.CodeUnknownUser},
		{"a code from the future", 400, `{"code":"brand_new","message":"x"}`, []error{ErrProtocol}, "brand_new"},
		{"not json", 502, `<html>bad gateway</html>`, []error{ErrServer}, ""},
		{"not json 4xx", 400, `nope`, []error{ErrProtocol}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := responseError("GET /x", tt.status, []byte(tt.body))
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("%v does not wrap %v", err, w)
				}
			}
			if got := apiCode(err); got != tt.code {
				t.Errorf("code = %q, want %q", got, tt.code)
			}
		})
	}
	se := serverError(responseError("POST /m", 409, []byte(`{"code":"commit_conflict","message":"x","epoch":3,"seq":9}`)))
	if diff := cmp.Diff(&ServerError{Op: "POST /m", Status: 409, Code: api.CodeCommitConflict, Message: "x", Epoch: 3, Seq: 9}, se, cmpopts.IgnoreUnexported(ServerError{})); diff != "" {
		t.Errorf("ServerError (-want +got):\n%s", diff)
	}
	if !errors.Is(se, errCommitConflict) {
		t.Errorf("%v does not wrap errCommitConflict", se)
	}
}

// certs makes a CA and a server certificate for 127.0.0.1 under it.
func certs(t *testing.T, usage x509.ExtKeyUsage) (ca, leaf *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(der)
	lkey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ltmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err = x509.CreateCertificate(rand.Reader, ltmpl, ca, &lkey.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	return ca, leaf
}

func TestVerifyPinned(t *testing.T) {
	t.Parallel()
	ca, leaf := certs(t, x509.ExtKeyUsageServerAuth)
	otherCA, otherLeaf := certs(t, x509.ExtKeyUsageServerAuth)
	_, clientOnly := certs(t, x509.ExtKeyUsageClientAuth)
	fp := sha256.Sum256(ca.Raw)
	otherFP := sha256.Sum256(otherCA.Raw)
	tests := []struct {
		name  string
		chain []*x509.Certificate
		fp    []byte
		host  string
		ok    bool
	}{
		{"good", []*x509.Certificate{leaf, ca}, fp[:], "127.0.0.1", true},
		{"CA not sent", []*x509.Certificate{leaf}, fp[:], "127.0.0.1", false},
		{"another CA pinned", []*x509.Certificate{leaf, ca}, otherFP[:], "127.0.0.1", false},
		{"leaf of another CA", []*x509.Certificate{otherLeaf, ca}, fp[:], "127.0.0.1", false},
		{"wrong host", []*x509.Certificate{leaf, ca}, fp[:], "10.0.0.1", false},
		{"not for servers", []*x509.Certificate{clientOnly, ca}, fp[:], "127.0.0.1", false},
		{"the CA as leaf", []*x509.Certificate{ca}, fp[:], "127.0.0.1", false},
		{"nothing", nil, fp[:], "127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := verifyPinned(tt.chain, tt.fp, tt.host)
			if (err == nil) != tt.ok {
				t.Errorf("verifyPinned: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestPath(t *testing.T) {
	t.Parallel()
	got := path(api.PathClaim, "user", "a/b c")
	if want := "/v1/users/a%2Fb%20c/keypackages"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
}
