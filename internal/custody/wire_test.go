package custody

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the files in testdata")

// unhex decodes hex written with spaces, newlines and # comments.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.Lines(s) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// smallKey is a custodian key with private scalars a and b, so its public
// points are the textbook multiples aG and bG of the P-256 generator.
func smallKey(t *testing.T, a, b int64) *CustodianKey {
	t.Helper()
	k, err := custodianKeyFromScalars(big.NewInt(a).FillBytes(make([]byte, 32)), big.NewInt(b).FillBytes(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestPolicyBytes checks the policy encoding against bytes written out by
// hand from the format in policy.go. The points are 1G..4G from SEC 2 and
// the NIST P-256 point-multiplication vectors.
func TestPolicyBytes(t *testing.T) {
	t.Parallel()
	want := unhex(t, `
		63706f6c  # "cpol"
		01        # version
		03 414243 # organisation "ABC"
		02 6b31   # archive key id "k1"
		02        # k
		02        # n
		# custodian 1
		03 416e61 # name "Ana"
		04 6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296  # hpke key 1G
		   4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5
		04 7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978  # signature key 2G
		   07775510db8ed040293d9ac69f7430dbba7dade63ce982299e04b79d227873d1
		# custodian 2
		03 426561 # name "Bea"
		04 5ecbe4d1a6330a44c8f7ef951d4bf165e6c6b721efada985fb41661bc6e7fd6c  # hpke key 3G
		   8734640c4998ff7e374b06ce1a64a2ecd82ab036384fb83d9a79b127a27d5032
		04 e2534a3532d08fbba02dde659ee62bd0031fe2db785596ef509302446b030852  # signature key 4G
		   e0f1575a4c633cc719dfee5fda862d764efc96c3f30ee0055c42c23f184ed8c6
	`)
	p, err := NewPolicy(PolicyConfig{Organisation: "ABC", ArchiveKeyID: "k1", K: 2, Custodians: []Custodian{
		{Name: "Ana", PublicKey: smallKey(t, 1, 2).PublicKey()},
		{Name: "Bea", PublicKey: smallKey(t, 3, 4).PublicKey()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("policy encodes as\n%x\nwant\n%x", got, want)
	}
	parsed, err := ParsePolicy(want)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.ID() != p.ID() || parsed.Organisation() != "ABC" || parsed.ArchiveKeyID() != "k1" || parsed.K() != 2 || parsed.N() != 2 {
		t.Fatal("parsed policy differs")
	}
	c2, _ := parsed.Custodian(2)
	if c2.Name != "Bea" || !c2.PublicKey.Equal(smallKey(t, 3, 4).PublicKey()) {
		t.Fatal("parsed custodian 2 differs")
	}
}

func TestSealedShareBytes(t *testing.T) {
	t.Parallel()
	want := unhex(t, `
		63736861  # "csha"
		01        # version
		`+strings.Repeat("11", 32)+` # policy id
		03        # custodian 3
		`+strings.Repeat("aa", sealedLen)+` # HPKE enc and ciphertext`)
	s, err := ParseSealedShare(want)
	if err != nil {
		t.Fatal(err)
	}
	if s.Index() != 3 || s.PolicyID() != PolicyID(bytes.Repeat([]byte{0x11}, 32)) {
		t.Fatalf("parsed slot %d of policy %s", s.Index(), s.PolicyID())
	}
	if !bytes.Equal(s.Bytes(), want) {
		t.Fatal("sealed share does not re-encode to its bytes")
	}
	for _, bad := range []struct {
		name string
		b    []byte
	}{
		{"slot 0", append(append([]byte(nil), want[:37]...), append([]byte{0}, want[38:]...)...)},
		{"truncated", want[:len(want)-1]},
		{"trailing byte", append(append([]byte(nil), want...), 0)},
		{"policy magic", append([]byte("cpol"), want[4:]...)},
	} {
		if _, err := ParseSealedShare(bad.b); err == nil {
			t.Errorf("%s: parsed", bad.name)
		}
	}
}

// vectors is testdata/vectors.json: one whole 2-of-3 ceremony and opening,
// with the test-only private keys needed to replay it. Later builds must
// read what this version wrote, so the test parses the stored bytes rather
// than regenerating them; -update writes a fresh set after a deliberate
// format change.
type vectors struct {
	Custodians  [][2]string `json:"custodian_scalars"` // hpke, signature
	Opening     string      `json:"opening_scalar"`
	Seed        string      `json:"seed"`
	Policy      string      `json:"policy"`
	Commitments string      `json:"commitments"`
	Shares      []string    `json:"sealed_shares"`
	Request     string      `json:"request_id"`
	Approvals   []string    `json:"approvals"` // custodians 1 and 3
	// Derived holds public keys derived from Seed: the derivation must
	// never change, or archives made by earlier builds could not be opened.
	Derived map[string]string `json:"derived_public_keys"`
}

func derivedPublic(t *testing.T, s *Seed) map[string]string {
	t.Helper()
	sig, err := s.SignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	sigPub, _ := sig.PublicKey.Bytes()
	out := map[string]string{"signature": hex.EncodeToString(sigPub)}
	for _, i := range []uint32{0, 1, 1<<32 - 1} {
		kp, err := s.KeyPackageKeys(i)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("init %d", i)] = hex.EncodeToString(kp.Init.PublicKey().Bytes())
		out[fmt.Sprintf("encryption %d", i)] = hex.EncodeToString(kp.Encryption.PublicKey().Bytes())
	}
	return out
}

func writeVectors(t *testing.T, path string) {
	c := newCeremony(t, 2, 3)
	var v vectors
	for _, k := range c.keys {
		h, s, err := k.scalars()
		if err != nil {
			t.Fatal(err)
		}
		v.Custodians = append(v.Custodians, [2]string{hex.EncodeToString(h), hex.EncodeToString(s)})
	}
	ob, err := c.opening.k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	v.Opening = hex.EncodeToString(ob)
	v.Seed = hex.EncodeToString(c.seed.b[:])
	v.Policy = hex.EncodeToString(c.policy.Bytes())
	v.Commitments = hex.EncodeToString(c.comm.Bytes())
	for _, s := range c.sealed {
		v.Shares = append(v.Shares, hex.EncodeToString(s.Bytes()))
	}
	v.Request = hex.EncodeToString(c.request[:])
	for _, i := range []int{1, 3} {
		v.Approvals = append(v.Approvals, hex.EncodeToString(c.approve(t, i).Bytes()))
	}
	v.Derived = derivedPublic(t, c.seed)
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		writeVectors(t, path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	dec := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// roundTrip parses b and checks it re-encodes to exactly b.
	roundTrip := func(name string, b []byte, reencode func() []byte) {
		if got := reencode(); !bytes.Equal(got, b) {
			t.Errorf("%s re-encodes differently:\n%x\nwant\n%x", name, got, b)
		}
	}
	p, err := ParsePolicy(dec(v.Policy))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip("policy", dec(v.Policy), p.Bytes)
	comm, err := ParseCommitments(dec(v.Commitments))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip("commitments", dec(v.Commitments), comm.Bytes)
	for i, cs := range v.Custodians {
		k, err := custodianKeyFromScalars(dec(cs[0]), dec(cs[1]))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseSealedShare(dec(v.Shares[i]))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(fmt.Sprintf("share %d", i+1), dec(v.Shares[i]), s.Bytes)
		if _, err := k.OpenShare(p, comm, s); err != nil {
			t.Fatalf("custodian %d: %v", i+1, err)
		}
	}
	var approvals []*Approval
	for i, as := range v.Approvals {
		a, err := ParseApproval(dec(as))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(fmt.Sprintf("approval %d", i), dec(as), a.Bytes)
		approvals = append(approvals, a)
	}
	ok, err := hpkeKEM.NewPrivateKey(dec(v.Opening))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := Reconstruct(p, comm, RequestID(dec(v.Request)), &OpeningKey{k: ok}, approvals)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(seed.b[:]); got != v.Seed {
		t.Fatalf("reconstructed seed %s, want %s", got, v.Seed)
	}
	if diff := cmp.Diff(v.Derived, derivedPublic(t, seed)); diff != "" {
		t.Fatalf("key derivation changed (-stored +now):\n%s", diff)
	}
	// The stored init key 0 is also what a plain ecdh key gives from the
	// derived scalar: the KeyPackage code will hand mlsx these bytes.
	kp, err := seed.KeyPackageKeys(0)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ecdh.P256().NewPrivateKey(kp.Init.Bytes())
	if err != nil || !again.Equal(kp.Init) {
		t.Fatalf("init key does not survive its own encoding: %v", err)
	}
}

// TestEncodedSizes keeps the size table in docs/design/custody.md true.
func TestEncodedSizes(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 3, 4)
	a := c.approve(t, 1)
	file := &keyFile{iterations: keyFileIterations, public: c.keys[0].pub, sealed: make([]byte, keyFileSealed)}
	for _, tc := range []struct {
		name     string
		got      int
		min, max int
	}{
		{"custodian public key", len(c.keys[0].PublicKey().Bytes()), 135, 135},
		{"commitments", len(c.comm.Bytes()), 38 + 33*3, 38 + 33*3},
		{"sealed share", len(c.sealed[0].Bytes()), 151, 151},
		{"approval", len(a.Bytes()), 249 + 8, 249 + maxSignatureLen},
		{"key file body", len(append(file.header(), file.sealed...)), 248, 248},
	} {
		if tc.got < tc.min || tc.got > tc.max {
			t.Errorf("%s is %d bytes, documented as %d..%d", tc.name, tc.got, tc.min, tc.max)
		}
	}
}
