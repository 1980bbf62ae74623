package ceremonytest

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// The searches find a secret in each form they claim to, wherever it sits,
// and report nothing when it is absent.
func TestFind(t *testing.T) {
	t.Parallel()
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := key.Bytes()
	point := compress(key.PublicKey().Bytes())
	noise := make([]byte, 300)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []int{0, 1, 2, 7} {
		pre := noise[:prefix]
		forms := map[string][]byte{
			"raw":        append(append(bytes.Clone(pre), secret...), noise[prefix:]...),
			"hex":        []byte("key: " + strings.Repeat("0", prefix) + hex.EncodeToString(secret) + "\n"),
			"upper hex":  []byte(strings.ToUpper(hex.EncodeToString(append(bytes.Clone(pre), secret...)))),
			"base64":     []byte(base64.StdEncoding.EncodeToString(append(append(bytes.Clone(pre), secret...), noise[:5]...))),
			"url base64": []byte(base64.RawURLEncoding.EncodeToString(append(bytes.Clone(pre), secret...))),
		}
		for name, data := range forms {
			if FindSecret(data, secret) == "" {
				t.Errorf("FindSecret misses the secret as %s after %d bytes", name, prefix)
			}
			if name == "raw" || strings.Contains(name, "hex") {
				if findScalar(data, point) == "" {
					t.Errorf("findScalar misses the scalar as %s after %d bytes", name, prefix)
				}
			}
		}
	}
	if at := FindSecret(noise, secret); at != "" {
		t.Errorf("FindSecret found the secret in noise: %s", at)
	}
	if at := findScalar(noise, point); at != "" {
		t.Errorf("findScalar found the scalar in noise: %s", at)
	}
}
