package mlsx_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
)

// Fuzz targets for everything in mlsx that reads bytes from outside: the
// key-free parsers the server runs (Inspect, Roster, ParseKeyPackage, the
// stored Roster) and a member's Group.Process. Seeds are real messages made
// by the adapter, plus a few of the IETF messages.json vectors when they are
// reachable.
//
// Each fuzz worker builds its own group, with its own random keys, so seeds
// made by one process are strangers to another's group: they still reach
// the parsers and the epoch and signature checks.

// fuzzGroupID is the group every fixture creates.
const fuzzGroupID = candor.GroupID("fuzz-group")

// fuzzFixture is a group of alice (leaf 0) and bob (leaf 1) taken through
// three epochs, with every message that got it there. Carol, added at leaf 2
// in epoch 0, is removed in epoch 1 on a proposal by the server, the group's
// external sender.
type fuzzFixture struct {
	now        time.Time
	alice, bob *mlsx.Group
	bobDev     *mlsx.Device
	// keyPackages are unused KeyPackages of carol's device: a plain one and
	// a last-resort one.
	keyPackages [][]byte
	welcome     []byte
	// commits[i] ends epoch i: alice adds bob and carol; bob rotates his
	// keys and commits the server's removal of carol; alice rotates hers.
	commits [][]byte
	// proposals holds the server's removal of carol, sent in epoch 1.
	proposals [][]byte
	// rosters are the server's rosters, in order: epoch 0, 1, 1 with the
	// proposal, 2 and 3.
	rosters []*mlsx.Roster
	// app are application messages, each already processed by its receiver.
	app [][]byte
}

func fuzzDevice(tb testing.TB, ca *mlsxtest.CA, user string, now time.Time) *mlsx.Device {
	tb.Helper()
	id, err := ca.Issue(user, "fuzzer")
	if err != nil {
		tb.Fatal(err)
	}
	dev, err := mlsx.NewDevice(context.Background(), mlsx.Config{
		Identity:  id,
		Store:     mlsxtest.NewStore(),
		Validator: ca.Validator(),
		Now:       func() time.Time { return now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dev
}

func newFuzzFixture(tb testing.TB) *fuzzFixture {
	tb.Helper()
	ctx := context.Background()
	fx := &fuzzFixture{now: time.Now()}
	ca := mlsxtest.NewCA(tb, "Fuzz Bank")
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	server, err := ca.Issue("candord", "server")
	must(err)
	aliceDev := fuzzDevice(tb, ca, "alice", fx.now)
	bobDev := fuzzDevice(tb, ca, "bob", fx.now)
	fx.bobDev = bobDev
	carolDev := fuzzDevice(tb, ca, "carol", fx.now)

	fx.alice, err = aliceDev.CreateGroup(ctx, fuzzGroupID, mlsx.GroupOptions{
		ExternalSenders: []mlsx.ExternalSender{{Key: &server.Key.PublicKey, Chain: server.Chain}},
	})
	must(err)
	fx.rosters = append(fx.rosters, mlsx.NewRoster(fx.alice.ID(), fx.alice.Suite(), fx.alice.Members()[0]))
	follow := func(msg []byte) {
		tb.Helper()
		next, _, err := fx.rosters[len(fx.rosters)-1].Apply(msg)
		must(err)
		fx.rosters = append(fx.rosters, next)
	}

	// Epoch 0: alice adds bob and carol.
	bobKPs, err := bobDev.KeyPackages(ctx, 1)
	must(err)
	carolKPs, err := carolDev.KeyPackages(ctx, 1)
	must(err)
	c, err := fx.alice.Commit(ctx, mlsx.CommitOptions{Add: append(bobKPs, carolKPs...)})
	must(err)
	_, err = fx.alice.Confirm(ctx)
	must(err)
	fx.bob, err = bobDev.Join(ctx, c.Welcome)
	must(err)
	fx.welcome = c.Welcome
	fx.commits = append(fx.commits, c.Message)
	follow(c.Message)

	// Epoch 1: a message each way; the server proposes carol's removal and
	// bob commits it with a rotation of his keys.
	fx.exchange(tb, fx.alice, fx.bob, "hello bob")
	fx.exchange(tb, fx.bob, fx.alice, "hello alice")
	p, err := mlsx.ProposeRemoval(server.Key, 0, fuzzGroupID, 1, 2)
	must(err)
	for _, g := range []*mlsx.Group{fx.alice, fx.bob} {
		_, err := g.Process(ctx, p)
		must(err)
	}
	fx.proposals = append(fx.proposals, p)
	follow(p)
	c, err = fx.bob.Commit(ctx, mlsx.CommitOptions{})
	must(err)
	_, err = fx.bob.Confirm(ctx)
	must(err)
	_, err = fx.alice.Process(ctx, c.Message)
	must(err)
	fx.commits = append(fx.commits, c.Message)
	follow(c.Message)

	// Epoch 2: alice rotates hers.
	c, err = fx.alice.Commit(ctx, mlsx.CommitOptions{})
	must(err)
	_, err = fx.alice.Confirm(ctx)
	must(err)
	_, err = fx.bob.Process(ctx, c.Message)
	must(err)
	fx.commits = append(fx.commits, c.Message)
	follow(c.Message)

	// Epoch 3.
	fx.exchange(tb, fx.alice, fx.bob, "in epoch 3")
	if diff := cmp.Diff(fx.alice.Members(), fx.rosters[len(fx.rosters)-1].Members()); diff != "" {
		tb.Fatalf("roster differs from the group (-group +roster):\n%s", diff)
	}

	fx.keyPackages, err = carolDev.KeyPackages(ctx, 1)
	must(err)
	lastResort, err := carolDev.LastResortKeyPackage(ctx)
	must(err)
	fx.keyPackages = append(fx.keyPackages, lastResort)
	return fx
}

// exchange has from encrypt text and to decrypt it, and records the message.
func (fx *fuzzFixture) exchange(tb testing.TB, from, to *mlsx.Group, text string) {
	tb.Helper()
	ctx := context.Background()
	ct, err := from.Encrypt(ctx, []byte(text))
	if err != nil {
		tb.Fatalf("encrypt: %v", err)
	}
	ev, err := to.Process(ctx, ct)
	if err != nil {
		tb.Fatalf("decrypt: %v", err)
	}
	if string(ev.Plaintext) != text {
		tb.Fatalf("decrypted %q, want %q", ev.Plaintext, text)
	}
	fx.app = append(fx.app, ct)
}

// messages lists every message of the fixture.
func (fx *fuzzFixture) messages() [][]byte {
	out := [][]byte{fx.welcome}
	out = append(out, fx.keyPackages...)
	out = append(out, fx.commits...)
	out = append(out, fx.proposals...)
	out = append(out, fx.app...)
	return out
}

// fuzzVectorMessages returns the MLSMessages of the first few entries of the
// IETF messages.json vectors, or nil when the vectors are not reachable.
// They are found as the vectors' README says: $MLS_TEST_VECTORS, or
// ../shared/mls-vectors from the module root.
func fuzzVectorMessages(tb testing.TB) [][]byte {
	tb.Helper()
	dir := os.Getenv("MLS_TEST_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "mls-vectors")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "messages.json"))
	if err != nil {
		tb.Logf("no IETF message vectors (%v); seeding from the adapter's messages only", err)
		return nil
	}
	// The fields that hold a whole MLSMessage; the others are bare structs.
	var vectors []struct {
		Welcome     string `json:"mls_welcome"`
		GroupInfo   string `json:"mls_group_info"`
		KeyPackage  string `json:"mls_key_package"`
		Application string `json:"public_message_application"`
		Proposal    string `json:"public_message_proposal"`
		Commit      string `json:"public_message_commit"`
		Private     string `json:"private_message"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		tb.Fatalf("messages.json: %v", err)
	}
	var out [][]byte
	for _, v := range vectors[:min(3, len(vectors))] {
		for _, h := range []string{v.Welcome, v.GroupInfo, v.KeyPackage, v.Application, v.Proposal, v.Commit, v.Private} {
			b, err := hex.DecodeString(h)
			if err != nil {
				tb.Fatalf("messages.json: %v", err)
			}
			out = append(out, b)
		}
	}
	return out
}

func fuzzValidWire(w mlsx.WireFormat) bool {
	return w >= mlsx.WirePublic && w <= mlsx.WireKeyPackage
}

// fuzzCheckInfo checks that an Info says only what its wire format can say.
func fuzzCheckInfo(t *testing.T, info mlsx.Info) {
	t.Helper()
	if !fuzzValidWire(info.Wire) {
		t.Fatalf("Inspect succeeded with wire format %d", info.Wire)
	}
	switch info.Wire {
	case mlsx.WirePublic, mlsx.WirePrivate:
		if info.Content < mlsx.ContentApplication || info.Content > mlsx.ContentCommit {
			t.Fatalf("Inspect: %v message with content type %d", info.Wire, info.Content)
		}
		if info.NewMembers != nil || info.KeyPackageRef != nil || info.Suite != 0 {
			t.Fatalf("Inspect: group message with welcome or key package fields: %+v", info)
		}
		if info.Wire == mlsx.WirePrivate && info.Sender != (mlsx.Sender{}) {
			t.Fatalf("Inspect: private message with a visible sender: %+v", info)
		}
	case mlsx.WireWelcome:
		if info.GroupID != "" || info.Epoch != 0 || info.KeyPackageRef != nil {
			t.Fatalf("Inspect: welcome with group fields: %+v", info)
		}
	case mlsx.WireKeyPackage:
		if len(info.KeyPackageRef) == 0 || !info.Suite.Supported() {
			t.Fatalf("Inspect: key package without a ref or with suite %v: %+v", info.Suite, info)
		}
	}
}

// fuzzMinimizeQuickly caps how long the fuzzer minimises each new input at
// 200 runs, unless -fuzzminimizetime was given. The default, 60 seconds,
// suits small inputs and cheap targets; minimising a multi-kilobyte MLS
// message a byte at a time through signature checks takes the whole minute
// for every input that finds new coverage, and the fuzzer reports 0 execs/sec
// meanwhile. It matters only when fuzzing.
func fuzzMinimizeQuickly(f *testing.F) {
	const name = "test.fuzzminimizetime"
	given := false
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	if given || flag.Lookup(name) == nil {
		return
	}
	if err := flag.Set(name, "200x"); err != nil {
		f.Logf("cannot shorten minimisation: %v", err)
	}
}

// FuzzInspect: Inspect never panics; what it accepts it reads the same way
// twice; a message one byte shorter or longer than one it accepts is
// refused; and a message with one byte changed is refused or read
// consistently.
func FuzzInspect(f *testing.F) {
	fuzzMinimizeQuickly(f)
	fx := newFuzzFixture(f)
	for _, m := range fx.messages() {
		f.Add(m)
	}
	for _, m := range fuzzVectorMessages(f) {
		f.Add(m)
	}
	f.Add([]byte{})
	f.Add([]byte{0x00, 0x01})
	f.Add([]byte{0x00, 0x01, 0x00, 0x05})
	f.Fuzz(func(t *testing.T, msg []byte) {
		info, err := mlsx.Inspect(msg)
		if err != nil {
			if !errors.Is(err, mlsx.ErrMalformed) {
				t.Fatalf("Inspect refused with %v, want ErrMalformed", err)
			}
			return
		}
		fuzzCheckInfo(t, info)
		again, err := mlsx.Inspect(bytes.Clone(msg))
		if err != nil {
			t.Fatalf("Inspect accepted %x once, then refused it: %v", msg, err)
		}
		if diff := cmp.Diff(info, again); diff != "" {
			t.Fatalf("Inspect read the same message two ways (-first +second):\n%s", diff)
		}
		if short, err := mlsx.Inspect(msg[:len(msg)-1]); err == nil {
			t.Fatalf("Inspect accepted %x and also its first %d bytes, as %+v", msg, len(msg)-1, short)
		}
		if long, err := mlsx.Inspect(append(bytes.Clone(msg), 0)); err == nil {
			t.Fatalf("Inspect accepted %x and also with a byte appended, as %+v", msg, long)
		}
		// One changed byte, chosen by the message itself.
		tampered := bytes.Clone(msg)
		i := int(msg[len(msg)-1]) % len(msg)
		tampered[i] ^= 0x80
		if tinfo, err := mlsx.Inspect(tampered); err == nil {
			fuzzCheckInfo(t, tinfo)
		}
	})
}

// FuzzProcess feeds arbitrary bytes to bob's group. Nothing the fuzzer can
// make is a message bob has not processed: each must be refused, and bob
// must still be in the same epoch and read alice's next message, both with
// the group in memory and with the group reloaded from his Store.
func FuzzProcess(f *testing.F) {
	fuzzMinimizeQuickly(f)
	fx := newFuzzFixture(f)
	for _, m := range fx.messages() {
		f.Add(m)
	}
	for _, m := range fuzzVectorMessages(f) {
		f.Add(m)
	}
	f.Add([]byte{})
	ctx := context.Background()
	readsAlice := func(t *testing.T, bob *mlsx.Group, when string) {
		t.Helper()
		ct, err := fx.alice.Encrypt(ctx, []byte("still there?"))
		if err != nil {
			t.Fatalf("alice: %v", err)
		}
		ev, err := bob.Process(ctx, ct)
		if err != nil {
			t.Fatalf("%s, bob cannot read alice: %v", when, err)
		}
		if string(ev.Plaintext) != "still there?" {
			t.Fatalf("%s, bob read %q", when, ev.Plaintext)
		}
	}
	runs := 0
	f.Fuzz(func(t *testing.T, msg []byte) {
		epoch := fx.bob.Epoch()
		if ev, err := fx.bob.Process(ctx, msg); err == nil {
			t.Fatalf("bob processed %x as %+v", msg, ev)
		}
		if got := fx.bob.Epoch(); got != epoch {
			t.Fatalf("bob moved from epoch %d to %d on a refused message", epoch, got)
		}
		readsAlice(t, fx.bob, "after a refused message")
		// Reloading costs about as much as the rest; do it now and then.
		if runs++; runs%16 != 1 {
			return
		}
		reloaded, err := fx.bobDev.Group(ctx, fuzzGroupID)
		if err != nil {
			t.Fatalf("after a refused message, bob's group does not load: %v", err)
		}
		fx.bob = reloaded
		if got := fx.bob.Epoch(); got != epoch {
			t.Fatalf("bob's stored group is at epoch %d, want %d", got, epoch)
		}
		readsAlice(t, fx.bob, "reloaded after a refused message")
	})
}

// FuzzProcessTampered changes one byte of a fresh legitimate message from
// alice, an application message or a commit, and gives it to bob. It must be
// refused, and must cost bob nothing: the untouched message must then be
// processed as if the tampered one had never come.
func FuzzProcessTampered(f *testing.F) {
	fuzzMinimizeQuickly(f)
	fx := newFuzzFixture(f)
	for _, pos := range []uint16{0, 1, 2, 3, 4, 10, 20, 40, 60, 80, 100, 150, 200, 300, 1000} {
		f.Add(false, pos, byte(0x01))
		f.Add(true, pos, byte(0x80))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, commit bool, pos uint16, xor byte) {
		if xor == 0 {
			xor = 1
		}
		var msg []byte
		if commit {
			c, err := fx.alice.Commit(ctx, mlsx.CommitOptions{})
			if err != nil {
				t.Fatalf("alice commit: %v", err)
			}
			msg = c.Message
		} else {
			var err error
			msg, err = fx.alice.Encrypt(ctx, []byte("tamper with me"))
			if err != nil {
				t.Fatalf("alice encrypt: %v", err)
			}
		}
		i := int(pos) % len(msg)
		tampered := bytes.Clone(msg)
		tampered[i] ^= xor
		epoch := fx.bob.Epoch()
		if ev, err := fx.bob.Process(ctx, tampered); err == nil {
			t.Fatalf("bob accepted a message with byte %d of %d changed (^%#02x): %+v", i, len(msg), xor, ev)
		}
		if got := fx.bob.Epoch(); got != epoch {
			t.Fatalf("bob moved from epoch %d to %d on a refused message", epoch, got)
		}
		ev, err := fx.bob.Process(ctx, msg)
		if err != nil {
			t.Fatalf("after refusing a copy with byte %d of %d changed (^%#02x), bob refuses the real message: %v", i, len(msg), xor, err)
		}
		if commit {
			if _, err := fx.alice.Confirm(ctx); err != nil {
				t.Fatalf("alice confirm: %v", err)
			}
			if ev.Kind != mlsx.EventCommit || fx.bob.Epoch() != epoch+1 {
				t.Fatalf("bob processed the commit as %+v, now at epoch %d", ev, fx.bob.Epoch())
			}
		} else if string(ev.Plaintext) != "tamper with me" {
			t.Fatalf("bob read %q", ev.Plaintext)
		}
	})
}

// FuzzRosterApply applies arbitrary bytes to the server's roster at every
// epoch of the fixture. Apply must not panic and must never change the
// roster it is called on: a Roster is a value.
func FuzzRosterApply(f *testing.F) {
	fuzzMinimizeQuickly(f)
	fx := newFuzzFixture(f)
	for _, m := range fx.messages() {
		f.Add(m)
	}
	for _, m := range fuzzVectorMessages(f) {
		f.Add(m)
	}
	rosters := fx.rosters
	before := make([][]byte, len(rosters))
	for i, r := range rosters {
		b, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		before[i] = b
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for i, r := range rosters {
			next, info, err := r.Apply(msg)
			after, merr := json.Marshal(r)
			if merr != nil {
				t.Fatal(merr)
			}
			if !bytes.Equal(after, before[i]) {
				t.Fatalf("Apply (err %v) changed the roster of epoch %d:\nbefore %s\nafter  %s", err, r.Epoch, before[i], after)
			}
			if err != nil {
				if next != nil {
					t.Fatalf("Apply failed (%v) and returned a roster", err)
				}
				continue
			}
			if info.Wire != mlsx.WirePublic {
				t.Fatalf("Apply accepted a %v message", info.Wire)
			}
			switch info.Content {
			case mlsx.ContentCommit:
				if next.Epoch != r.Epoch+1 {
					t.Fatalf("commit took the roster from epoch %d to %d", r.Epoch, next.Epoch)
				}
				if len(next.Proposals) != 0 {
					t.Fatalf("roster of a new epoch keeps %d proposals", len(next.Proposals))
				}
			case mlsx.ContentProposal:
				if next.Epoch != r.Epoch || len(next.Proposals) == 0 {
					t.Fatalf("proposal took the roster from epoch %d to %d, with %d proposals", r.Epoch, next.Epoch, len(next.Proposals))
				}
			default:
				t.Fatalf("Apply accepted content type %d", info.Content)
			}
			if len(next.Members()) == 0 {
				t.Fatalf("Apply left a roster with no members")
			}
			stored, err := json.Marshal(next)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := mlsx.UnmarshalRoster(stored); err != nil {
				t.Fatalf("the roster Apply returned does not load back: %v", err)
			}
		}
	})
}

// FuzzParseKeyPackage: ParseKeyPackage never panics, accepts the adapter's
// own KeyPackages, refuses them one byte shorter or longer or with a byte
// changed, and agrees with Inspect on what it accepts.
func FuzzParseKeyPackage(f *testing.F) {
	fuzzMinimizeQuickly(f)
	fx := newFuzzFixture(f)
	for _, kp := range fx.keyPackages {
		if _, err := mlsx.ParseKeyPackage(kp, fx.now); err != nil {
			f.Fatalf("ParseKeyPackage refused the adapter's own key package: %v", err)
		}
		f.Add(kp)
	}
	f.Add(fx.welcome)
	f.Add(fx.app[0])
	for _, m := range fuzzVectorMessages(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		info, err := mlsx.ParseKeyPackage(msg, fx.now)
		if err != nil {
			return
		}
		if _, err := mlsx.ParseKeyPackage(msg[:len(msg)-1], fx.now); err == nil {
			t.Fatalf("ParseKeyPackage accepted %x and also its first %d bytes", msg, len(msg)-1)
		}
		if _, err := mlsx.ParseKeyPackage(append(bytes.Clone(msg), 0), fx.now); err == nil {
			t.Fatalf("ParseKeyPackage accepted %x and also with a byte appended", msg)
		}
		insp, err := mlsx.Inspect(msg)
		if err != nil {
			t.Fatalf("ParseKeyPackage accepted a key package that Inspect refuses: %v", err)
		}
		if insp.Wire != mlsx.WireKeyPackage || !bytes.Equal(insp.KeyPackageRef, info.Ref) || insp.Suite != info.Suite {
			t.Fatalf("ParseKeyPackage and Inspect disagree: ref %x suite %v, Inspect %+v", info.Ref, info.Suite, insp)
		}
		// Every byte of a KeyPackage is signed or is the signature.
		tampered := bytes.Clone(msg)
		i := int(msg[len(msg)-1]) % len(msg)
		tampered[i] ^= 0x01
		if _, err := mlsx.ParseKeyPackage(tampered, fx.now); err == nil {
			t.Fatalf("ParseKeyPackage accepted %x with byte %d changed", msg, i)
		}
	})
}

// FuzzUnmarshalRoster: the stored roster's loader never panics, accepts
// what the adapter stores, refuses it one byte shorter, and what it loads
// stores back to a form that loads to the same roster.
func FuzzUnmarshalRoster(f *testing.F) {
	fuzzMinimizeQuickly(f)
	fx := newFuzzFixture(f)
	for _, r := range fx.rosters {
		b, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := mlsx.UnmarshalRoster(b); err != nil {
			f.Fatalf("UnmarshalRoster refused a stored roster: %v", err)
		}
		f.Add(b)
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "roster.golden.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`null`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"suite":2,"leaves":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := mlsx.UnmarshalRoster(b)
		if err != nil {
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("UnmarshalRoster refused with %v, want candor.ErrInvalid", err)
			}
			return
		}
		// JSON may end in white space; anything shorter than the closing
		// brace is not a roster.
		trimmed := bytes.TrimRight(b, " \t\r\n")
		if _, err := mlsx.UnmarshalRoster(trimmed[:len(trimmed)-1]); err == nil {
			t.Fatalf("UnmarshalRoster accepted %q and also %q", b, trimmed[:len(trimmed)-1])
		}
		stored, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("a loaded roster does not store: %v", err)
		}
		back, err := mlsx.UnmarshalRoster(stored)
		if err != nil {
			t.Fatalf("a loaded roster stores as %s, which does not load: %v", stored, err)
		}
		if diff := cmp.Diff(r, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("stored and loaded again, the roster changed (-loaded +again):\n%s", diff)
		}
		// A loaded roster is something Apply must cope with.
		for _, m := range fx.commits {
			_, _, _ = r.Apply(m)
		}
	})
}

// TestStoredRosterKeepsPendingProposals: a server that stores its roster
// between a proposal and the commit that references it, as it must to
// survive a restart, can still follow the commit.
func TestStoredRosterKeepsPendingProposals(t *testing.T) {
	t.Parallel()
	fx := newFuzzFixture(t)
	withProposal, want := fx.rosters[2], fx.rosters[3]
	if len(withProposal.Proposals) != 1 {
		t.Fatalf("fixture: roster holds %d proposals, want 1", len(withProposal.Proposals))
	}
	stored, err := json.Marshal(withProposal)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := mlsx.UnmarshalRoster(stored)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(withProposal, loaded); diff != "" {
		t.Errorf("stored and loaded, the roster changed (-stored +loaded):\n%s", diff)
	}
	got, _, err := loaded.Apply(fx.commits[1])
	if err != nil {
		t.Fatalf("the loaded roster cannot follow the commit of its proposal: %v", err)
	}
	if diff := cmp.Diff(want.Members(), got.Members()); diff != "" {
		t.Fatalf("members after the commit (-want +got):\n%s", diff)
	}
}
