package mlsx

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Golden files pin the stored forms the adapter writes: a device's ratchet
// records and the server's Roster. Once written, old bytes must keep
// loading; a change of format needs a new version, not a new golden file.
// Run with -update to rewrite them after a deliberate change.
var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed (run with -update if that is deliberate):\n got %s\nwant %s", path, got, want)
	}
	return want
}

// goldenRatchets are the records of testdata/ratchet.golden, one per line
// as "name hex".
var goldenRatchets = []struct {
	name string
	r    ratchet
}{
	{"zero", ratchet{}},
	{"sender", ratchet{next: 17}},
	{"receiver", ratchet{top: 100, seen: 1<<63 | 0b1011}},
	{"uint32-edge", ratchet{next: math.MaxUint32, top: 1 << 32, seen: 1}},
	{"all-ones", ratchet{next: math.MaxUint64, top: math.MaxUint64, seen: math.MaxUint64}},
}

func TestRatchetGolden(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	fmt.Fprintln(&b, "# mlsx ratchet records, version 1: name, then the record in hex")
	for _, g := range goldenRatchets {
		fmt.Fprintf(&b, "%s %x\n", g.name, g.r.encode())
	}
	file := golden(t, "ratchet.golden", []byte(b.String()))

	// Every record in the file decodes to its value.
	want := make(map[string]ratchet)
	for _, g := range goldenRatchets {
		want[g.name] = g.r
	}
	sc := bufio.NewScanner(bytes.NewReader(file))
	seen := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, h, ok := strings.Cut(line, " ")
		rec, err := hex.DecodeString(h)
		if !ok || err != nil {
			t.Fatalf("ratchet.golden: bad line %q", line)
		}
		got, err := decodeRatchet(rec)
		if err != nil {
			t.Errorf("%s: stored record %x no longer decodes: %v", name, rec, err)
			continue
		}
		if diff := cmp.Diff(want[name], got, ratchetOpts); diff != "" {
			t.Errorf("%s: stored record decodes differently (-want +got):\n%s", name, diff)
		}
		seen++
	}
	if seen != len(goldenRatchets) {
		t.Errorf("ratchet.golden holds %d records, want %d", seen, len(goldenRatchets))
	}
}

// goldenRoster builds, from fixed bytes, a roster of the kind the server
// stores: an X.509 member, a blank leaf, a basic-credential member and,
// optionally, a pending proposal under a ProposalRef (a hash: any bytes).
func goldenRoster(withProposal bool) *Roster {
	key := func(b byte) []byte { return append([]byte{0x04}, bytes.Repeat([]byte{b}, 64)...) }
	r := &Roster{
		GroupID: "golden-group",
		Suite:   DefaultSuite,
		Epoch:   7,
		Leaves: []*Member{
			{Leaf: 0, Credential: Credential{Kind: CredentialX509, Chain: [][]byte{[]byte("leaf certificate DER"), []byte("issuer certificate DER")}}, SignatureKey: key(0xa0)},
			nil,
			{Leaf: 2, Credential: Credential{Kind: CredentialBasic, Identity: []byte("carol")}, SignatureKey: key(0xc2)},
		},
	}
	if withProposal {
		ref := make([]byte, 32)
		for i := range ref {
			ref[i] = byte(0xe0 + i) // 0xe0…0xff: not UTF-8, as hashes seldom are
		}
		// A Remove proposal of leaf 2: proposal_type 3, removed 2.
		r.Proposals = []RosterProposal{{Ref: ref, Proposal: []byte{0x00, 0x03, 0x00, 0x00, 0x00, 0x02}}}
	}
	return r
}

func TestRosterGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		r    *Roster
	}{
		{"members and a blank leaf", "roster.golden.json", goldenRoster(false)},
		{"pending proposal", "roster-proposals.golden.json", goldenRoster(true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stored, err := json.Marshal(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			file := golden(t, tt.file, stored)
			got, err := UnmarshalRoster(file)
			if err != nil {
				t.Fatalf("stored roster no longer loads: %v", err)
			}
			if diff := cmp.Diff(tt.r, got); diff != "" {
				t.Errorf("stored roster loads differently (-stored +loaded):\n%s", diff)
			}
		})
	}
}
