package ceremony_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor/internal/ceremony"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// u16 is a two-byte length prefix followed by b.
func u16(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }

// The statement's and endorsement's layouts, spelled out field by field.
func TestEncodingByHand(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, "Ana", "Bea", "Cid")
	st := o.run(t)

	var want []byte
	want = append(want, "cast"...)                                   // magic
	want = append(want, 1)                                           // version
	want = binary.BigEndian.AppendUint64(want, uint64(epoch.Unix())) // created
	want = append(want, u16(st.Certificate())...)                    // certificate<1..2^16-1>
	want = append(want, u16(st.KeyPackage())...)                     // key_package<1..2^16-1>
	want = append(want, u16(st.Policy().Bytes())...)                 // policy<1..2^16-1>
	want = append(want, u16(st.Commitments().Bytes())...)            // commitments<1..2^16-1>
	want = append(want, 3)                                           // n
	for _, s := range st.SealedShares() {
		want = append(want, u16(s.Bytes())...) // sealed_share<1..2^16-1>
	}
	if diff := cmp.Diff(want, st.Bytes()); diff != "" {
		t.Errorf("statement encoding (-by hand +Bytes):\n%s", diff)
	}

	e, err := ceremony.Endorse(st, o.keys[1])
	if err != nil {
		t.Fatal(err)
	}
	enc := e.Bytes()
	h := st.Hash()
	head := append([]byte("cend\x01"), h[:]...) // magic, version, statement_hash
	head = append(head, 2)                      // slot
	if !bytes.HasPrefix(enc, head) {
		t.Fatalf("endorsement starts %x, want %x", enc[:min(len(enc), len(head))], head)
	}
	sig := enc[len(head):]
	if len(sig) < 2 || int(sig[0]) != len(sig)-1 || sig[1] != 0x30 { // signature<1..72>, an ASN.1 SEQUENCE
		t.Errorf("endorsement signature field %x", sig)
	}
}

// Every prefix of a statement, and anything after it, is refused; so are
// objects of other kinds and formats this build does not read.
func TestParseRefuses(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, "Ana", "Bea", "Cid")
	st := o.run(t)
	enc := st.Bytes()
	for n := range len(enc) {
		if _, err := ceremony.ParseStatement(enc[:n]); !errors.Is(err, ceremony.ErrMalformed) {
			t.Fatalf("the first %d bytes: %v, want ErrMalformed", n, err)
		}
	}
	e, err := ceremony.Endorse(st, o.keys[0])
	if err != nil {
		t.Fatal(err)
	}
	end := e.Bytes()
	for n := range len(end) {
		if _, err := ceremony.ParseEndorsement(end[:n]); !errors.Is(err, ceremony.ErrMalformed) {
			t.Fatalf("the first %d bytes of an endorsement: %v, want ErrMalformed", n, err)
		}
	}

	// Offsets in the statement.
	created := 5
	certLen := created + 8
	shareAt := len(enc) - 151 // the last sealed share's encoding
	set := func(b []byte, at int, v ...byte) []byte {
		b = bytes.Clone(b)
		copy(b[at:], v)
		return b
	}
	tests := []struct {
		name  string
		parse func([]byte) error
		in    []byte
	}{
		{"trailing byte", parseStatement, append(bytes.Clone(enc), 0)},
		{"an endorsement given as a statement", parseStatement, end},
		{"a statement given as an endorsement", parseEndorsement, enc},
		{"statement format version 2", parseStatement, set(enc, 4, 2)},
		{"creation time beyond int64", parseStatement, set(enc, created, 0x80)},
		{"empty certificate", parseStatement, append(set(enc[:certLen], certLen), 0, 0)},
		{"certificate that is not DER", parseStatement, set(enc, certLen+2, 0x31)},
		{"policy and commitments exchanged", parseStatement, swapFields(t, enc)},
		{"a sealed share of format version 2", parseStatement, set(enc, shareAt+4, 2)},
		{"a sealed share for slot 0", parseStatement, set(enc, shareAt+4+1+32, 0)},
		{"endorsement trailing byte", parseEndorsement, append(bytes.Clone(end), 0)},
		{"endorsement format version 2", parseEndorsement, set(end, 4, 2)},
		{"endorsement for slot 0", parseEndorsement, set(end, 4+1+32, 0)},
		{"endorsement for slot 65", parseEndorsement, set(end, 4+1+32, 65)},
		{"endorsement with an empty signature", parseEndorsement, append(bytes.Clone(end[:4+1+32+1]), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.parse(tt.in); !errors.Is(err, ceremony.ErrMalformed) {
				t.Errorf("parse = %v, want ErrMalformed", err)
			}
		})
	}
}

func parseStatement(b []byte) error {
	_, err := ceremony.ParseStatement(b)
	return err
}

func parseEndorsement(b []byte) error {
	_, err := ceremony.ParseEndorsement(b)
	return err
}

// swapFields re-encodes a statement with its policy and commitments in
// each other's place: both well-formed, neither where it belongs.
func swapFields(t testing.TB, enc []byte) []byte {
	t.Helper()
	st, err := ceremony.ParseStatement(enc)
	if err != nil {
		t.Fatal(err)
	}
	pol, com := u16(st.Policy().Bytes()), u16(st.Commitments().Bytes())
	i := bytes.Index(enc, pol)
	if i < 0 || !bytes.Equal(enc[i+len(pol):i+len(pol)+len(com)], com) {
		t.Fatal("policy and commitments not found in order")
	}
	out := append(bytes.Clone(enc[:i]), com...)
	out = append(out, pol...)
	return append(out, enc[i+len(pol)+len(com):]...)
}

// golden describes testdata/statement, made by an earlier build: the
// format must keep reading it, and it must keep verifying.
type golden struct {
	Hash       string    `json:"hash"`
	Org        string    `json:"organisation"`
	KeyID      string    `json:"key_id"`
	K          int       `json:"k"`
	Custodians []string  `json:"custodians"`
	Created    time.Time `json:"created"`
	NotAfter   time.Time `json:"not_after"`
}

const goldenDir = "testdata"

// writeGolden runs a ceremony and writes its statement, endorsements and
// CA certificate, and what they say, to testdata.
func writeGolden(t *testing.T) {
	o := newOrg(t, 2, "Ana Lima, Compliance", "Bea Souza, Legal", "Cid Rocha, IT Security")
	st := o.run(t)
	files := map[string][]byte{
		"statement": st.Bytes(),
		"ca.pem":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.ca.Certificate().Raw}),
	}
	for i, e := range o.endorseAll(t, st) {
		files[fmt.Sprintf("statement.endorsement.%d", i+1)] = e.Bytes()
	}
	g := golden{Hash: st.Hash().String(), Org: st.Organisation(), KeyID: st.KeyID(), K: st.Policy().K(),
		Created: st.Created(), NotAfter: st.NotAfter()}
	for _, c := range st.Policy().Custodians() {
		g.Custodians = append(g.Custodians, c.Name)
	}
	j, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	files["golden.json"] = append(j, '\n')
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(goldenDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readGolden returns the golden statement, its endorsements, its CA and
// what it must say.
func readGolden(t testing.TB) ([]byte, [][]byte, *x509.Certificate, golden) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var g golden
	if err := json.Unmarshal(read("golden.json"), &g); err != nil {
		t.Fatal(err)
	}
	var es [][]byte
	for i := range len(g.Custodians) {
		es = append(es, read(fmt.Sprintf("statement.endorsement.%d", i+1)))
	}
	block, _ := pem.Decode(read("ca.pem"))
	if block == nil {
		t.Fatal("testdata/ca.pem: no PEM block")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return read("statement"), es, ca, g
}

func TestGolden(t *testing.T) {
	if *update {
		writeGolden(t)
	}
	t.Parallel()
	enc, encEndorsements, ca, g := readGolden(t)
	st, err := ceremony.ParseStatement(enc)
	if err != nil {
		t.Fatalf("the golden statement no longer parses: %v", err)
	}
	got := golden{Hash: st.Hash().String(), Org: st.Organisation(), KeyID: st.KeyID(), K: st.Policy().K(),
		Created: st.Created(), NotAfter: st.NotAfter()}
	for _, c := range st.Policy().Custodians() {
		got.Custodians = append(got.Custodians, c.Name)
	}
	if diff := cmp.Diff(g, got); diff != "" {
		t.Errorf("the golden statement says (-golden.json +parsed):\n%s", diff)
	}
	if h := sha256.Sum256(enc); fmt.Sprintf("%x", h) != g.Hash {
		t.Errorf("SHA-256 of testdata/statement is %x, golden.json says %s", h, g.Hash)
	}
	if !bytes.Equal(st.Bytes(), enc) {
		t.Error("the golden statement re-encodes differently")
	}
	var es []*ceremony.Endorsement
	for i, b := range encEndorsements {
		e, err := ceremony.ParseEndorsement(b)
		if err != nil {
			t.Fatalf("golden endorsement %d: %v", i+1, err)
		}
		if !bytes.Equal(e.Bytes(), b) {
			t.Errorf("golden endorsement %d re-encodes differently", i+1)
		}
		es = append(es, e)
	}
	if err := ceremony.Verify(st, es, ca, g.Created.Add(time.Hour)); err != nil {
		t.Errorf("the golden statement no longer verifies: %v", err)
	}
}

// FuzzParseStatement: whatever parses re-encodes to the same bytes, and a
// statement that differs from the golden one in any byte never verifies
// with the golden endorsements.
func FuzzParseStatement(f *testing.F) {
	enc, encEndorsements, ca, g := readGolden(f)
	f.Add(enc)
	f.Add(enc[:len(enc)/2])
	f.Add(swapFields(f, enc))
	var es []*ceremony.Endorsement
	for _, b := range encEndorsements {
		e, err := ceremony.ParseEndorsement(b)
		if err != nil {
			f.Fatal(err)
		}
		es = append(es, e)
	}
	at := g.Created.Add(time.Hour)
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ceremony.ParseStatement(b)
		if err != nil {
			if !errors.Is(err, ceremony.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(st.Bytes(), b) {
			t.Fatal("parsed input re-encodes differently")
		}
		if st.Hash() != sha256.Sum256(b) {
			t.Fatal("Hash is not the input's SHA-256")
		}
		if err := ceremony.Verify(st, es, ca, at); err == nil && !bytes.Equal(b, enc) {
			t.Fatal("a changed statement verifies with the golden endorsements")
		}
	})
}

// FuzzParseEndorsement: whatever parses re-encodes to the same bytes, and
// only an endorsement by a golden custodian of the golden statement checks.
func FuzzParseEndorsement(f *testing.F) {
	enc, encEndorsements, _, _ := readGolden(f)
	st, err := ceremony.ParseStatement(enc)
	if err != nil {
		f.Fatal(err)
	}
	golden := map[int]*ceremony.Endorsement{}
	for _, b := range encEndorsements {
		f.Add(b)
		e, err := ceremony.ParseEndorsement(b)
		if err != nil {
			f.Fatal(err)
		}
		golden[e.Slot()] = e
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ceremony.ParseEndorsement(b)
		if err != nil {
			if !errors.Is(err, ceremony.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(e.Bytes(), b) {
			t.Fatal("parsed input re-encodes differently")
		}
		err = st.CheckEndorsement(e)
		if err == nil && (e.Statement() != st.Hash() || golden[e.Slot()] == nil) {
			t.Fatalf("an endorsement for statement %s, slot %d, checks", e.Statement(), e.Slot())
		}
		if g := golden[e.Slot()]; err != nil && g != nil && bytes.Equal(b, g.Bytes()) {
			t.Fatalf("a golden endorsement does not check: %v", err)
		}
	})
}
