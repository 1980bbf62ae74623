// Package ceremonytest helps tests: it holds custody ceremonies for test
// organisations (Hold), and looks for the archive's secrets where they must
// never be: in a statement, an endorsement, the ceremony tool's files and
// output. Tests only.
package ceremonytest

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"

	"candor/internal/ceremony"
)

// FindSecret reports where secret appears in data: as raw bytes, or in
// lower- or upper-case hex, or in standard or URL-safe base64 (with or
// without padding, at any of the three alignments). It returns "" when it
// does not.
func FindSecret(data, secret []byte) string {
	if len(secret) == 0 {
		panic("ceremonytest: empty secret")
	}
	forms := map[string][]byte{
		"raw":       secret,
		"hex":       []byte(hex.EncodeToString(secret)),
		"upper hex": bytes.ToUpper([]byte(hex.EncodeToString(secret))),
	}
	// A secret inside a longer base64 text is encoded differently for
	// each of its three possible offsets; the middle of each encoding
	// (away from the partial groups at its ends) is what appears.
	for shift := range 3 {
		padded := append(make([]byte, shift), secret...)
		for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "url base64": base64.URLEncoding} {
			s := enc.EncodeToString(padded)
			start := (shift*4 + 2) / 3
			end := len(s) - 4
			if end-start >= 16 {
				forms[fmt.Sprintf("%s at offset %d", name, shift)] = []byte(s[start:end])
			}
		}
	}
	for name, f := range forms {
		if i := bytes.Index(data, f); i >= 0 {
			return fmt.Sprintf("%s at byte %d", name, i)
		}
	}
	return ""
}

// hexRun finds long runs of hex digits, which may encode a seed.
var hexRun = regexp.MustCompile(`[0-9a-fA-F]{64,}`)

// FindSeed reports where the seed of st's archive appears in data, without
// knowing the seed: the first Feldman commitment is seed·G, so a 32-byte
// window w of data (raw, or decoded from a run of hex digits) is the seed
// exactly when w·G is that commitment. It returns "" when no window is.
func FindSeed(data []byte, st *ceremony.Statement) string {
	// Commitments encoding: "ccom" | version | policy_id[32] | k |
	// points[k][33], a_0·G first.
	enc := st.Commitments().Bytes()
	return findScalar(data, enc[4+1+32+1:4+1+32+1+33])
}

// findScalar reports where the P-256 scalar whose public point is point
// (compressed) appears in data, raw or in hex.
func findScalar(data, point []byte) string {
	scan := func(b []byte) int {
		for i := 0; i+32 <= len(b); i++ {
			k, err := ecdh.P256().NewPrivateKey(b[i : i+32])
			if err != nil {
				continue
			}
			if bytes.Equal(compress(k.PublicKey().Bytes()), point) {
				return i
			}
		}
		return -1
	}
	if i := scan(data); i >= 0 {
		return fmt.Sprintf("raw at byte %d", i)
	}
	for _, loc := range hexRun.FindAllIndex(data, -1) {
		// Both alignments of the digits, since the run may start mid-byte.
		for shift := range 2 {
			run := data[loc[0]+shift : loc[1]]
			decoded := make([]byte, len(run)/2)
			if _, err := hex.Decode(decoded, run[:2*len(decoded)]); err != nil {
				continue
			}
			if i := scan(decoded); i >= 0 {
				return fmt.Sprintf("hex at byte %d", loc[0]+shift+2*i)
			}
		}
	}
	return ""
}

// compress turns an uncompressed P-256 point into its compressed form
// (SEC 1 §2.3.3).
func compress(p []byte) []byte {
	x, y := p[1:33], p[33:65]
	return append([]byte{2 | y[31]&1}, x...)
}
