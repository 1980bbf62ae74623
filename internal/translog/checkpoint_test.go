package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testKey returns a signer and verifier named name whose Ed25519 seed is
// seed repeated: fixed, so that golden files stay put.
func testKey(t testing.TB, name string, seed byte) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)), name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// TestCheckpointByHand checks the body against bytes written out here,
// with the root hash computed from RFC 6962 §2.1 directly rather than by
// tlog: SHA-256(0x01 || SHA-256(0x00 || "a") || SHA-256(0x00 || "b")).
func TestCheckpointByHand(t *testing.T) {
	t.Parallel()
	leafA := sha256.Sum256([]byte("\x00a"))
	leafB := sha256.Sum256([]byte("\x00b"))
	root := sha256.Sum256(append(append([]byte{0x01}, leafA[:]...), leafB[:]...))
	want := "candor.test/log\n" + // origin
		"2\n" + // two records
		base64.StdEncoding.EncodeToString(root[:]) + "\n" // root hash
	ha, hb := tlog.RecordHash([]byte("a")), tlog.RecordHash([]byte("b"))
	c := Checkpoint{Origin: "candor.test/log", Size: 2, Hash: tlog.NodeHash(ha, hb)}
	got, err := c.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("MarshalText:\n%s\nwant\n%s", got, want)
	}
	back, err := ParseCheckpoint([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("ParseCheckpoint (-want +got):\n%s", diff)
	}
	// The empty tree's hash is SHA-256 of nothing.
	empty := sha256.Sum256(nil)
	if _, err := ParseCheckpoint([]byte("candor.test/log\n0\n" + base64.StdEncoding.EncodeToString(empty[:]) + "\n")); err != nil {
		t.Errorf("empty tree: %v", err)
	}
}

func TestParseCheckpointRejects(t *testing.T) {
	t.Parallel()
	hash := base64.StdEncoding.EncodeToString(make([]byte, 32))
	empty := sha256.Sum256(nil)
	for _, tc := range []struct{ name, text string }{
		{"empty", ""},
		{"no final newline", "o\n1\n" + hash},
		{"two lines", "o\n1\n"},
		{"empty origin", "\n1\n" + hash + "\n"},
		{"leading zero", "o\n01\n" + hash + "\n"},
		{"plus sign", "o\n+1\n" + hash + "\n"},
		{"negative", "o\n-1\n" + hash + "\n"},
		{"size overflow", "o\n9223372036854775808\n" + hash + "\n"},
		{"short hash", "o\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n"},
		{"unpadded hash", "o\n1\n" + strings.TrimRight(hash, "=") + "\n"},
		{"url base64", "o\n1\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)) + "\n"},
		{"empty extension", "o\n1\n" + hash + "\n\n"},
		{"control character", "o\x01\n1\n" + hash + "\n"},
		{"empty tree with a hash", "o\n0\n" + hash + "\n"},
		{"too many extensions", "o\n1\n" + hash + "\n" + strings.Repeat("x\n", maxExtensions+1)},
		{"too long", "o\n1\n" + hash + "\n" + strings.Repeat("x", MaxCheckpointSize) + "\n"},
		{"size with space", "o\n 1\n" + hash + "\n"},
		{"crlf", "o\r\n1\r\n" + base64.StdEncoding.EncodeToString(empty[:]) + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := ParseCheckpoint([]byte(tc.text)); !errors.Is(err, candor.ErrInvalid) {
				t.Errorf("ParseCheckpoint(%q) = %+v, %v; want ErrInvalid", tc.text, c, err)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	signer, verifier := testKey(t, "candor.test/log", 1)
	_, otherKey := testKey(t, "candor.test/log", 2)
	otherSigner, otherVerifier := testKey(t, "candor.test/other", 3)
	witness, _ := testKey(t, "witness.test", 4)
	c := Checkpoint{Origin: "candor.test/log", Size: 7, Hash: tlog.RecordHash([]byte("x")), Extensions: []string{"ext one"}}
	signed, err := Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(signed, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("Open (-want +got):\n%s", diff)
	}

	// A witness's cosignature, from a key the client does not know, is
	// allowed beside the log's.
	text, _ := c.MarshalText()
	cosigned, err := note.Sign(&note.Note{Text: string(text)}, signer, witness)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cosigned, verifier); err != nil {
		t.Errorf("cosigned checkpoint: %v", err)
	}

	if _, err := Sign(c, otherSigner); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("signing with a key named after another log: %v, want ErrInvalid", err)
	}
	onlyWitness, _ := note.Sign(&note.Note{Text: string(text)}, witness)
	otherText, _ := Checkpoint{Origin: "candor.test/other", Size: 1, Hash: c.Hash}.MarshalText()
	otherLog, _ := note.Sign(&note.Note{Text: string(otherText)}, otherSigner)
	// A note whose body names another origin, signed by this log's key.
	misnamed, _ := note.Sign(&note.Note{Text: string(otherText)}, signer)
	flipped := bytes.Clone(signed)
	flipped[len(flipped)-5] ^= 0x01
	changedBody := bytes.Replace(signed, []byte("\n7\n"), []byte("\n8\n"), 1)

	for _, tc := range []struct {
		name   string
		signed []byte
		key    note.Verifier
		want   error
	}{
		{"signature bit flipped", flipped, verifier, ErrBadSignature},
		{"body changed", changedBody, verifier, ErrBadSignature},
		{"another key of the same name", signed, otherKey, ErrBadSignature},
		{"only a witness signed", onlyWitness, verifier, ErrBadSignature},
		{"another log's checkpoint", otherLog, verifier, ErrBadSignature},
		{"body names another origin", misnamed, verifier, ErrWrongOrigin},
		{"checkpoint for the other key's log", signed, otherVerifier, ErrBadSignature},
		{"no signature block", text, verifier, candor.ErrInvalid},
		{"no key", signed, nil, candor.ErrInvalid},
		{"too long", append(bytes.Repeat([]byte("x"), MaxCheckpointSize), signed...), verifier, candor.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := Open(tc.signed, tc.key); !errors.Is(err, tc.want) {
				t.Errorf("Open = %+v, %v; want %v", c, err, tc.want)
			}
		})
	}
}

// TestGolden keeps the signed form of a checkpoint byte for byte: a change
// would make every client's stored checkpoint unreadable. go test -update
// rewrites it.
func TestGolden(t *testing.T) {
	t.Parallel()
	signer, verifier := testKey(t, "candor.test/log", 1)
	hashes := []tlog.Hash{tlog.RecordHash([]byte("a")), tlog.RecordHash([]byte("b")), tlog.RecordHash([]byte("c"))}
	root, err := tlog.TreeHash(3, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			level, n := tlog.SplitStoredHashIndex(x)
			switch {
			case level == 0:
				out[i] = hashes[n]
			case level == 1 && n == 0:
				out[i] = tlog.NodeHash(hashes[0], hashes[1])
			default:
				t.Fatalf("unexpected stored hash %d", x)
			}
		}
		return out, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Sign(Checkpoint{Origin: "candor.test/log", Size: 3, Hash: root}, signer)
	if err != nil {
		t.Fatal(err)
	}
	proof := InclusionProof{Index: 2, Size: 3, Hashes: []tlog.Hash{tlog.NodeHash(hashes[0], hashes[1])}}
	proofText, err := proof.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	cons := ConsistencyProof{Old: 2, New: 3, Hashes: []tlog.Hash{hashes[2]}}
	consText, err := cons.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{
		"checkpoint.golden":  signed,
		"inclusion.golden":   proofText,
		"consistency.golden": consText,
	} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test -update writes it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s changed:\n%s\nwant\n%s", name, got, want)
		}
	}
	// What the golden files hold verifies as what it says.
	c, err := Open(signed, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyInclusion(c, []byte("c"), proof); err != nil {
		t.Error(err)
	}
	older := Checkpoint{Origin: c.Origin, Size: 2, Hash: tlog.NodeHash(hashes[0], hashes[1])}
	if err := VerifyConsistency(older, c, cons); err != nil {
		t.Error(err)
	}
}

// TestFIPS runs the signing and checking of a checkpoint again in a child
// process with GODEBUG=fips140=only, in which Go refuses any algorithm
// outside its FIPS 140-3 module.
func TestFIPS(t *testing.T) {
	if os.Getenv("TRANSLOG_FIPS_CHILD") == "1" {
		signer, verifier := testKey(t, "candor.test/log", 1)
		signed, err := Sign(Checkpoint{Origin: "candor.test/log", Size: 1, Hash: tlog.RecordHash([]byte("a"))}, signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Open(signed, verifier); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFIPS$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TRANSLOG_FIPS_CHILD=1", "GODEBUG=fips140=only")
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("PASS")) {
		t.Fatalf("under fips140=only: %v\n%s", err, out)
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	empty := sha256.Sum256(nil)
	f.Add([]byte("candor.test/log\n0\n" + base64.StdEncoding.EncodeToString(empty[:]) + "\n"))
	some := tlog.RecordHash([]byte("seed"))
	f.Add([]byte("candor.test/log\n20852163\n" + base64.StdEncoding.EncodeToString(some[:]) + "\nsome extension\n"))
	f.Add([]byte("o\n01\n" + base64.StdEncoding.EncodeToString(some[:]) + "\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		// Only canonical text parses, so it marshals back to itself.
		back, err := c.MarshalText()
		if err != nil {
			t.Fatalf("parsed %+v does not marshal: %v", c, err)
		}
		if !bytes.Equal(back, text) {
			t.Fatalf("round trip: %q became %q", text, back)
		}
	})
}

func FuzzOpen(f *testing.F) {
	signer, verifier := testKey(f, "candor.test/log", 1)
	for _, size := range []int64{1, 2, 1 << 40} {
		signed, err := Sign(Checkpoint{Origin: "candor.test/log", Size: size, Hash: tlog.RecordHash([]byte{byte(size)})}, signer)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(signed)
	}
	f.Fuzz(func(t *testing.T, signed []byte) {
		c, err := Open(signed, verifier)
		if err != nil {
			if !errors.Is(err, candor.ErrInvalid) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrWrongOrigin) {
				t.Fatalf("unnamed error %v", err)
			}
			return
		}
		// Whatever opened is the canonical body signed by the key, and
		// Ed25519 signs deterministically: signing the body again gives
		// the same text and a signature line the input holds.
		again, err := Sign(c, signer)
		if err != nil {
			t.Fatal(err)
		}
		body, sigLine, _ := bytes.Cut(again, []byte("\n\n"))
		if !bytes.HasPrefix(signed, append(body, "\n\n"...)) || !bytes.Contains(signed, sigLine) {
			t.Fatalf("opened %q, which re-signs as %q", signed, again)
		}
	})
}
