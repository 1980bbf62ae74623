package mlsx_test

// Conformance with the IETF MLS interoperability test vectors (RFC 9420;
// mlswg/mls-implementations, test-vectors/), run through the adapter's
// public API only: what the vectors check is what candor gets, workarounds
// and policy included.
//
// The vectors live outside the module, in the folder named by the
// environment variable MLS_TEST_VECTORS or else in /work/shared/mls-vectors
// (../../../shared/mls-vectors from this package). Each file's test logs how
// many vectors it ran and why it skipped the others, and fails if it ran none.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
)

// defaultVectorsDir is where the vectors are when MLS_TEST_VECTORS is unset,
// relative to this package's directory.
const defaultVectorsDir = "../../../shared/mls-vectors"

// vectorsDir returns the folder of the vectors. If it is missing, the test
// fails on CI, where the vectors must be present, and is skipped elsewhere.
func vectorsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MLS_TEST_VECTORS")
	if dir == "" {
		dir = defaultVectorsDir
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		reason := fmt.Sprintf("MLS test vectors not found at %q (set MLS_TEST_VECTORS): %v", dir, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(reason)
		}
		t.Skip(reason)
	}
	return dir
}

// readVectors decodes the vector file name into v. The file must exist once
// the folder does: every file this test names is part of the published set.
func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir(t), name))
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
}

// hexBytes is a byte string written in hex, as every binary field of the
// vectors is.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// tally counts what one file's test did with its vectors. Its methods are
// called while the subtests are scheduled, before any of them runs, so it
// needs no lock; report is registered with t.Cleanup and so runs after the
// (parallel) subtests have finished.
type tally struct {
	file    string
	total   int
	ran     int
	skipped map[string]int // reason → vectors not run for it
	design  map[string]int // reason → vectors run to check a refusal by design
}

func newTally(t *testing.T, file string, total int) *tally {
	c := &tally{file: file, total: total, skipped: map[string]int{}, design: map[string]int{}}
	t.Cleanup(func() { c.report(t) })
	return c
}

// supported reports whether the adapter supports suite, and counts a vector
// of an unsupported suite as skipped.
func (c *tally) supported(suite uint16) bool {
	s := mlsx.Suite(suite)
	if !s.Supported() {
		c.skipped[fmt.Sprintf("unsupported suite %s", s)]++
		return false
	}
	c.ran++
	return true
}

func (c *tally) report(t *testing.T) {
	parts := []string{fmt.Sprintf("ran %d of %d vectors", c.ran, c.total)}
	for _, reason := range slices.Sorted(maps.Keys(c.skipped)) {
		parts = append(parts, fmt.Sprintf("%d skipped (%s)", c.skipped[reason], reason))
	}
	for _, reason := range slices.Sorted(maps.Keys(c.design)) {
		parts = append(parts, fmt.Sprintf("%d of them refused by design (%s)", c.design[reason], reason))
	}
	t.Logf("%s: %s", c.file, strings.Join(parts, "; "))
	if c.ran == 0 {
		t.Errorf("%s: no vector ran", c.file)
	}
}

// vectorName names the subtest of the i-th vector of a file.
func vectorName(i int, suite uint16) string {
	return fmt.Sprintf("%03d/suite=%s", i, mlsx.Suite(suite))
}

// TestVectorsMessages checks that Inspect reads every MLSMessage of
// messages.json with the right wire format and content type, and refuses the
// same messages once damaged. The vectors' contents are random, so nothing
// beyond the framing can be checked without keys.
func TestVectorsMessages(t *testing.T) {
	t.Parallel()
	var vectors []map[string]hexBytes
	readVectors(t, "messages.json", &vectors)
	c := newTally(t, "messages.json", len(vectors))

	// The fields of each vector that hold an MLSMessage. A content of 0
	// means "any valid content type": a PrivateMessage of these vectors may
	// carry any of the three.
	fields := []struct {
		name    string
		wire    mlsx.WireFormat
		content mlsx.ContentType
	}{
		{name: "mls_welcome", wire: mlsx.WireWelcome},
		{name: "mls_group_info", wire: mlsx.WireGroupInfo},
		{name: "mls_key_package", wire: mlsx.WireKeyPackage},
		{name: "public_message_application", wire: mlsx.WirePublic, content: mlsx.ContentApplication},
		{name: "public_message_proposal", wire: mlsx.WirePublic, content: mlsx.ContentProposal},
		{name: "public_message_commit", wire: mlsx.WirePublic, content: mlsx.ContentCommit},
		{name: "private_message", wire: mlsx.WirePrivate},
	}
	for i, v := range vectors {
		c.ran++ // messages.json names no suite: every vector runs
		t.Run(fmt.Sprintf("%03d", i), func(t *testing.T) {
			t.Parallel()
			for _, f := range fields {
				t.Run(f.name, func(t *testing.T) {
					msg, ok := v[f.name]
					if !ok || len(msg) == 0 {
						t.Fatalf("vector has no %s", f.name)
					}
					checkInspect(t, msg, f.wire, f.content)
					checkInspectRefusesDamage(t, msg)
				})
			}
		})
	}
}

// checkInspect checks what Inspect reads from a well-formed message.
func checkInspect(t *testing.T, msg []byte, wire mlsx.WireFormat, content mlsx.ContentType) {
	t.Helper()
	info, err := mlsx.Inspect(msg)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if info.Wire != wire {
		t.Errorf("wire format %d, want %d", info.Wire, wire)
	}
	switch wire {
	case mlsx.WirePublic, mlsx.WirePrivate:
		if len(info.GroupID) == 0 {
			t.Errorf("no group id")
		}
		if content != 0 && info.Content != content {
			t.Errorf("content type %d, want %d", info.Content, content)
		}
		if info.Content < mlsx.ContentApplication || info.Content > mlsx.ContentCommit {
			t.Errorf("content type %d is not one RFC 9420 defines", info.Content)
		}
	case mlsx.WireWelcome:
		if !info.Suite.Supported() || len(info.NewMembers) == 0 {
			t.Errorf("welcome: suite %s, %d new members", info.Suite, len(info.NewMembers))
		}
	case mlsx.WireGroupInfo:
		if !info.Suite.Supported() || len(info.GroupID) == 0 {
			t.Errorf("group info: suite %s, group id %x", info.Suite, info.GroupID)
		}
	case mlsx.WireKeyPackage:
		if !info.Suite.Supported() || len(info.KeyPackageRef) == 0 {
			t.Errorf("key package: suite %s, ref %x", info.Suite, info.KeyPackageRef)
		}
	}
}

// checkInspectRefusesDamage checks that Inspect refuses the message cut
// short, with a byte appended, with another protocol version and with an
// unknown wire format, each with ErrMalformed.
func checkInspectRefusesDamage(t *testing.T, msg []byte) {
	t.Helper()
	damaged := []struct {
		name string
		msg  []byte
	}{
		{"truncated", msg[:len(msg)-1]},
		{"trailing byte", append(bytes.Clone(msg), 0)},
		{"version 0x0002", append([]byte{0x00, 0x02}, msg[2:]...)},
		{"wire format 0xfff0", append([]byte{msg[0], msg[1], 0xff, 0xf0}, msg[4:]...)},
	}
	for _, d := range damaged {
		if _, err := mlsx.Inspect(d.msg); !errors.Is(err, mlsx.ErrMalformed) {
			t.Errorf("Inspect of the message %s: %v, want %v", d.name, err, mlsx.ErrMalformed)
		}
	}
}

// welcomeVector is one entry of welcome.json: a Welcome, without a ratchet
// tree, for the given KeyPackage.
type welcomeVector struct {
	CipherSuite uint16   `json:"cipher_suite"`
	InitPriv    hexBytes `json:"init_priv"`
	KeyPackage  hexBytes `json:"key_package"`
	SignerPub   hexBytes `json:"signer_pub"`
	Welcome     hexBytes `json:"welcome"`
}

// TestVectorsWelcome runs welcome.json. Its Welcomes carry no ratchet tree,
// which candor requires, so the adapter must refuse them as malformed; but
// it can only reach that check once it has decrypted the group secrets and
// the GroupInfo and verified the GroupInfo's confirmation tag, so a refusal
// with ErrMalformed and not ErrDecrypt shows that decryption conforms. The
// same Welcome opened with a wrong init key must fail with ErrDecrypt.
func TestVectorsWelcome(t *testing.T) {
	t.Parallel()
	var vectors []welcomeVector
	readVectors(t, "welcome.json", &vectors)
	c := newTally(t, "welcome.json", len(vectors))
	const reason = "welcome without ratchet tree"
	for i, v := range vectors {
		if !c.supported(v.CipherSuite) {
			continue
		}
		c.design[reason]++
		t.Run(vectorName(i, v.CipherSuite), func(t *testing.T) {
			t.Parallel()
			// The vectors hold no encryption key, and the join needs none
			// before the refusal: the init key stands in for it.
			secrets := mlsx.KeyPackageSecrets{Init: v.InitPriv, Encryption: v.InitPriv}
			_, err := mlsx.JoinPassive(t.Context(), passiveConfig(mlsxtest.NewStore()), v.Welcome, v.KeyPackage, secrets, nil)
			if errors.Is(err, mlsx.ErrDecrypt) || !errors.Is(err, mlsx.ErrMalformed) {
				t.Errorf("JoinPassive: %v, want %v (%s)", err, mlsx.ErrMalformed, reason)
			} else {
				t.Logf("refused as it must be: %v", err)
			}

			wrong := otherScalar(v.InitPriv)
			secrets = mlsx.KeyPackageSecrets{Init: wrong, Encryption: wrong}
			_, err = mlsx.JoinPassive(t.Context(), passiveConfig(mlsxtest.NewStore()), v.Welcome, v.KeyPackage, secrets, nil)
			if !errors.Is(err, mlsx.ErrDecrypt) || errors.Is(err, mlsx.ErrMalformed) {
				t.Errorf("JoinPassive with a wrong init key: %v, want %v", err, mlsx.ErrDecrypt)
			}
		})
	}
}

// otherScalar returns a different private key of the same curve: the last
// byte of a big-endian P-256 or P-521 scalar, or of an X25519 key (whose
// clamping touches only the first byte and the top bits of the last), with
// its low bit flipped. The result is a valid key except with negligible
// probability.
func otherScalar(k []byte) []byte {
	out := bytes.Clone(k)
	out[len(out)-1] ^= 0x01
	return out
}

// passiveVector is one entry of the passive-client-*.json files: a Welcome
// for a passive client, the keys to open it, and the epochs that follow.
type passiveVector struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		ID  hexBytes `json:"psk_id"`
		PSK hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexBytes  `json:"key_package"`
	SignaturePriv             hexBytes  `json:"signature_priv"`
	EncryptionPriv            hexBytes  `json:"encryption_priv"`
	InitPriv                  hexBytes  `json:"init_priv"`
	Welcome                   hexBytes  `json:"welcome"`
	RatchetTree               *hexBytes `json:"ratchet_tree"` // nil: the Welcome carries the tree
	InitialEpochAuthenticator hexBytes  `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func passiveConfig(store mlsx.Store) mlsx.PassiveConfig {
	// The vectors' credentials are basic ones, which no candor policy
	// admits: the test is of MLS, not of candor's membership rules.
	return mlsx.PassiveConfig{Store: store, Validator: mlsxtest.AcceptAll}
}

// TestVectorsPassiveClientWelcome runs passive-client-welcome.json.
func TestVectorsPassiveClientWelcome(t *testing.T) {
	t.Parallel()
	runPassiveVectors(t, "passive-client-welcome.json")
}

// TestVectorsPassiveClientHandlingCommit runs
// passive-client-handling-commit.json: commits of every proposal kind.
func TestVectorsPassiveClientHandlingCommit(t *testing.T) {
	t.Parallel()
	runPassiveVectors(t, "passive-client-handling-commit.json")
}

// TestVectorsPassiveClientRandom runs passive-client-random.json: one group
// followed through 200 random epochs.
func TestVectorsPassiveClientRandom(t *testing.T) {
	t.Parallel()
	runPassiveVectors(t, "passive-client-random.json")
}

// runPassiveVectors runs one passive-client file: each vector is joined with
// JoinPassive and followed epoch by epoch with Process, and its epoch
// authenticator compared with the vector's after the join and every commit.
// Vectors whose ratchet tree is given out of band must be refused: candor
// requires the tree in the Welcome.
func runPassiveVectors(t *testing.T, file string) {
	var vectors []passiveVector
	readVectors(t, file, &vectors)
	c := newTally(t, file, len(vectors))
	var mu sync.Mutex
	var slowest time.Duration
	t.Cleanup(func() { t.Logf("%s: slowest vector took %v", file, slowest) })
	for i, v := range vectors {
		if !c.supported(v.CipherSuite) {
			continue
		}
		external := v.RatchetTree != nil
		if external {
			c.design["external ratchet tree"]++
		}
		t.Run(vectorName(i, v.CipherSuite), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			if external {
				checkExternalTreeRefused(t, v)
			} else {
				followPassive(t, v)
			}
			mu.Lock()
			slowest = max(slowest, time.Since(start))
			mu.Unlock()
		})
	}
}

func (v passiveVector) secrets() mlsx.KeyPackageSecrets {
	return mlsx.KeyPackageSecrets{Init: v.InitPriv, Encryption: v.EncryptionPriv}
}

func (v passiveVector) psks() []mlsx.PSK {
	var out []mlsx.PSK
	for _, p := range v.ExternalPSKs {
		out = append(out, mlsx.PSK{ID: p.ID, Secret: p.PSK})
	}
	return out
}

// checkExternalTreeRefused checks that a Welcome whose ratchet tree is sent
// out of band is refused as malformed, after it was decrypted.
func checkExternalTreeRefused(t *testing.T, v passiveVector) {
	_, err := mlsx.JoinPassive(t.Context(), passiveConfig(mlsxtest.NewStore()), v.Welcome, v.KeyPackage, v.secrets(), v.psks())
	if errors.Is(err, mlsx.ErrDecrypt) || !errors.Is(err, mlsx.ErrMalformed) {
		t.Errorf("JoinPassive of a welcome without its ratchet tree: %v, want %v", err, mlsx.ErrMalformed)
	} else {
		t.Logf("refused as it must be: %v", err)
	}
}

// followPassive joins the vector's group and follows its epochs. The group
// is reloaded from its Store, and followed from the reloaded copy, right
// after the join and after each epoch's proposals, and reloaded once more
// after the last epoch: the durable state alone must be enough to follow the
// group.
func followPassive(t *testing.T, v passiveVector) {
	ctx := t.Context()
	cfg := passiveConfig(mlsxtest.NewStore())
	g, err := mlsx.JoinPassive(ctx, cfg, v.Welcome, v.KeyPackage, v.secrets(), v.psks())
	if err != nil {
		t.Fatalf("JoinPassive: %v", err)
	}
	checkAuthenticator(t, "after the join", g, v.InitialEpochAuthenticator)
	g = reload(t, cfg, g, "after the join")

	for i, epoch := range v.Epochs {
		before := g.Epoch()
		for j, p := range epoch.Proposals {
			ev, err := g.Process(ctx, p)
			if err != nil {
				t.Fatalf("epoch %d (%d), proposal %d: %v", i, before, j, err)
			}
			if ev.Kind != mlsx.EventProposal {
				t.Fatalf("epoch %d (%d), proposal %d: event kind %d, want %d", i, before, j, ev.Kind, mlsx.EventProposal)
			}
		}
		if len(epoch.Proposals) > 0 {
			// The proposals wait in the Store for the commit that uses them.
			g = reload(t, cfg, g, fmt.Sprintf("after the proposals of epoch %d (%d)", i, before))
		}
		ev, err := g.Process(ctx, epoch.Commit)
		if err != nil {
			t.Fatalf("epoch %d (%d), commit: %v", i, before, err)
		}
		if ev.Kind != mlsx.EventCommit || ev.SelfRemoved || ev.NewEpoch != before+1 || g.Epoch() != before+1 {
			t.Fatalf("epoch %d (%d), commit: event %+v, group at epoch %d; want a commit to epoch %d",
				i, before, ev, g.Epoch(), before+1)
		}
		checkAuthenticator(t, fmt.Sprintf("epoch %d (%d)", i, g.Epoch()), g, epoch.EpochAuthenticator)
	}
	if len(v.Epochs) > 0 {
		reload(t, cfg, g, "after the last epoch")
	}
}

// reload loads g afresh from cfg's Store, checks it is in the same epoch
// with the same authenticator, and returns it.
func reload(t *testing.T, cfg mlsx.PassiveConfig, g *mlsx.Group, when string) *mlsx.Group {
	t.Helper()
	loaded, err := mlsx.LoadPassive(t.Context(), cfg, g.ID())
	if err != nil {
		t.Fatalf("LoadPassive %s: %v", when, err)
	}
	if loaded.Epoch() != g.Epoch() {
		t.Fatalf("reloaded %s: epoch %d, want %d", when, loaded.Epoch(), g.Epoch())
	}
	checkAuthenticator(t, "reloaded "+when, loaded, g.EpochAuthenticator())
	return loaded
}

func checkAuthenticator(t *testing.T, when string, g *mlsx.Group, want []byte) {
	t.Helper()
	if got := g.EpochAuthenticator(); !bytes.Equal(got, want) {
		t.Fatalf("%s: epoch authenticator %x, want %x", when, got, want)
	}
}
