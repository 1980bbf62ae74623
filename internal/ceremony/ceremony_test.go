package ceremony_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"candor"
	"candor/internal/ceremony"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/custody"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

const org = "Example Bank"

// epoch is the tests' fixed "now", so lifetimes are checked at known times.
var epoch = time.Date(2026, 11, 24, 9, 30, 15, 0, time.UTC)

// org holds one organisation's CA and its custodians' keys.
type orgFixture struct {
	ca   *pki.CA
	keys []*custody.CustodianKey
	cfg  ceremony.Config
}

func newOrg(t testing.TB, k int, names ...string) *orgFixture {
	t.Helper()
	ca, err := pki.NewCA(org, epoch.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	o := &orgFixture{ca: ca}
	o.cfg = ceremony.Config{CA: ca, KeyID: "archive-1", K: k, Now: func() time.Time { return epoch }}
	for _, name := range names {
		key, err := custody.GenerateCustodianKey()
		if err != nil {
			t.Fatal(err)
		}
		o.keys = append(o.keys, key)
		o.cfg.Custodians = append(o.cfg.Custodians, custody.Custodian{Name: name, PublicKey: key.PublicKey()})
	}
	return o
}

func (o *orgFixture) run(t testing.TB) *ceremony.Statement {
	t.Helper()
	st, err := ceremony.Run(o.cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return st
}

func (o *orgFixture) endorseAll(t testing.TB, st *ceremony.Statement) []*ceremony.Endorsement {
	t.Helper()
	var es []*ceremony.Endorsement
	for i, k := range o.keys {
		e, err := ceremony.Endorse(st, k)
		if err != nil {
			t.Fatalf("custodian %d endorsing: %v", i+1, err)
		}
		if e.Slot() != i+1 || e.Statement() != st.Hash() {
			t.Fatalf("custodian %d's endorsement says slot %d, statement %s", i+1, e.Slot(), e.Statement())
		}
		es = append(es, e)
	}
	return es
}

// A 2-of-3 ceremony publishes what it was asked to, passes every check a
// custodian and a client make, and is openable: two custodians' approvals
// rebuild a seed that the statement's keys derive from.
func TestRun(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, "Ana Lima, Compliance", "Bea", "Cid")
	st := o.run(t)

	if st.Organisation() != org || st.KeyID() != "archive-1" || !st.Created().Equal(epoch) {
		t.Errorf("statement of %q, key %q, made %v", st.Organisation(), st.KeyID(), st.Created())
	}
	p := st.Policy()
	if p.K() != 2 || p.N() != 3 || p.Custodians()[0].Name != "Ana Lima, Compliance" {
		t.Errorf("policy %d-of-%d, first custodian %q", p.K(), p.N(), p.Custodians()[0].Name)
	}
	if h := sha256.Sum256(st.Bytes()); h != st.Hash() {
		t.Errorf("Hash %s is not the SHA-256 of Bytes (%x)", st.Hash(), h)
	}
	if want := epoch.Add(ceremony.DefaultLifetime); !st.NotAfter().Equal(want) {
		t.Errorf("valid until %v, want %v", st.NotAfter(), want)
	}

	// What Run promised to check, checked again from the outside.
	a, err := o.ca.VerifyArchive(st.Certificate(), epoch)
	if err != nil || a.Key != "archive-1" {
		t.Fatalf("VerifyArchive: %+v, %v", a, err)
	}
	info, err := mlsx.ParseKeyPackage(st.KeyPackage(), epoch)
	if err != nil {
		t.Fatalf("the KeyPackage does not parse: %v", err)
	}
	cert, err := info.Credential.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if string(cert.Raw) != string(st.Certificate()) || !info.LastResort || !info.NotAfter.Equal(st.NotAfter()) {
		t.Errorf("KeyPackage: %+v", info)
	}

	es := o.endorseAll(t, st)
	if err := ceremony.Verify(st, es, o.ca.Certificate(), epoch.Add(time.Hour)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if ceremony.RequiredEndorsements(p) != p.N() {
		t.Errorf("RequiredEndorsements = %d, want every custodian (%d)", ceremony.RequiredEndorsements(p), p.N())
	}

	// Each pair of custodians can open it.
	for _, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}} {
		seed := open(t, st, o.keys[pair[0]], o.keys[pair[1]])
		if err := st.MatchesSeed(seed); err != nil {
			t.Errorf("custodians %v: the rebuilt seed does not match the statement: %v", pair, err)
		}
		seed.Destroy()
	}
	other := newOrg(t, 2, "Ana", "Bea")
	seed := open(t, other.run(t), other.keys[0], other.keys[1])
	if err := st.MatchesSeed(seed); !errors.Is(err, ceremony.ErrSeedMismatch) {
		t.Errorf("another archive's seed: %v, want ErrSeedMismatch", err)
	}
}

// open rebuilds st's seed as an opening does, from the approvals of the
// custodians whose keys are given.
func open(t *testing.T, st *ceremony.Statement, keys ...*custody.CustodianKey) *custody.Seed {
	t.Helper()
	opening, err := custody.NewOpeningKey()
	if err != nil {
		t.Fatal(err)
	}
	request := custody.RequestID(sha256.Sum256([]byte("case 1: " + st.KeyID())))
	var approvals []*custody.Approval
	for _, k := range keys {
		slot, err := st.Policy().IndexOf(k.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		ap, err := k.Approve(st.Policy(), st.Commitments(), st.SealedShares()[slot-1], request, opening.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		approvals = append(approvals, ap)
	}
	seed, err := custody.Reconstruct(st.Policy(), st.Commitments(), request, opening, approvals)
	if err != nil {
		t.Fatalf("Reconstruct: %v", err)
	}
	return seed
}

// Run leaves none of its secrets in the statement or in what custodians
// make from it, and overwrites the ones it can reach before it returns.
// Not parallel: it sets the package's test hook.
func TestRunSecrets(t *testing.T) {
	o := newOrg(t, 2, "Ana", "Bea", "Cid")
	var (
		seed          *custody.Seed
		sig           []byte
		init, encrypt []byte // the slices Run held
		secrets       = map[string][]byte{}
	)
	ceremony.SetTestHookSecrets(func(s *custody.Seed, k *ecdsa.PrivateKey, kp mlsx.KeyPackageSecrets) {
		seed = s
		var err error
		if sig, err = k.Bytes(); err != nil {
			t.Error(err)
		}
		init, encrypt = kp.Init, kp.Encryption
		secrets["signature key"] = sig
		secrets["init key"] = slices.Clone(kp.Init)
		secrets["encryption key"] = slices.Clone(kp.Encryption)
	})
	t.Cleanup(func() { ceremony.SetTestHookSecrets(nil) })
	st := o.run(t)
	if seed == nil {
		t.Fatal("the test hook was not called")
	}

	if !seed.Equal(&custody.Seed{}) {
		t.Error("the seed was not destroyed")
	}
	for name, b := range map[string][]byte{"init key": init, "encryption key": encrypt} {
		if slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
			t.Errorf("the %s bytes Run held were not overwritten", name)
		}
	}

	public := map[string][]byte{"statement": st.Bytes()}
	for i, e := range o.endorseAll(t, st) {
		public[fmt.Sprintf("endorsement %d", i+1)] = e.Bytes()
	}
	public["statement printed"] = fmt.Appendf(nil, "%v %+v %#v", st, st, st)
	for where, data := range public {
		for name, secret := range secrets {
			if at := ceremonytest.FindSecret(data, secret); at != "" {
				t.Errorf("the archive's %s is in the %s (%s)", name, where, at)
			}
		}
		if at := ceremonytest.FindSeed(data, st); at != "" {
			t.Errorf("the seed is in the %s (%s)", where, at)
		}
	}
	// The same search finds a secret that is there.
	if ceremonytest.FindSecret(append(st.Bytes(), secrets["init key"]...), secrets["init key"]) == "" {
		t.Error("FindSecret misses a key appended to the statement")
	}
}

func TestRunRefuses(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, "Ana", "Bea", "Cid")
	tests := []struct {
		name   string
		change func(*ceremony.Config)
	}{
		{"no CA", func(c *ceremony.Config) { c.CA = nil }},
		{"another organisation than the CA's", func(c *ceremony.Config) { c.Org = "Other Bank" }},
		{"no key id", func(c *ceremony.Config) { c.KeyID = "" }},
		{"k = 1", func(c *ceremony.Config) { c.K = 1 }},
		{"k > n", func(c *ceremony.Config) { c.K = 4 }},
		{"one custodian twice", func(c *ceremony.Config) { c.Custodians = append(c.Custodians, c.Custodians[0]) }},
		{"a custodian without a key", func(c *ceremony.Config) {
			c.Custodians = append(slices.Clone(c.Custodians[:2]), custody.Custodian{Name: "Dan"})
		}},
		{"lifetime beyond the CA's", func(c *ceremony.Config) { c.Lifetime = pki.CALifetime }},
		{"negative lifetime", func(c *ceremony.Config) { c.Lifetime = -time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := o.cfg
			cfg.Custodians = slices.Clone(cfg.Custodians)
			tt.change(&cfg)
			if st, err := ceremony.Run(cfg); !errors.Is(err, candor.ErrInvalid) {
				t.Errorf("Run = %v, %v; want ErrInvalid", st, err)
			}
		})
	}
	// An explicit organisation that is the CA's is fine.
	cfg := o.cfg
	cfg.Org = org
	if _, err := ceremony.Run(cfg); err != nil {
		t.Errorf("Run with the CA's organisation named: %v", err)
	}
}

// swapSealed returns a and b with their HPKE ciphertexts exchanged and
// their headers (policy, slot) kept: custodian a's slot holding b's share.
func swapSealed(t *testing.T, a, b *custody.SealedShare) (*custody.SealedShare, *custody.SealedShare) {
	t.Helper()
	ab, bb := a.Bytes(), b.Bytes()
	const sealedLen = 65 + 32 + 16 // HPKE enc, share, GCM tag
	x := append(ab[:len(ab)-sealedLen:len(ab)-sealedLen], bb[len(bb)-sealedLen:]...)
	y := append(bb[:len(bb)-sealedLen:len(bb)-sealedLen], ab[len(ab)-sealedLen:]...)
	sa, err := custody.ParseSealedShare(x)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := custody.ParseSealedShare(y)
	if err != nil {
		t.Fatal(err)
	}
	return sa, sb
}

// rebuild makes a statement from st's parts with some replaced.
type parts struct {
	created     time.Time
	cert, kp    []byte
	policy      *custody.Policy
	commitments *custody.Commitments
	shares      []*custody.SealedShare
}

func partsOf(st *ceremony.Statement) parts {
	return parts{st.Created(), st.Certificate(), st.KeyPackage(), st.Policy(), st.Commitments(), st.SealedShares()}
}

func (p parts) statement(t *testing.T) *ceremony.Statement {
	t.Helper()
	st, err := ceremony.NewStatementForTest(p.created, p.cert, p.kp, p.policy, p.commitments, p.shares)
	if err != nil {
		t.Fatal(err)
	}
	// What reaches Verify has gone through the wire.
	again, err := ceremony.ParseStatement(st.Bytes())
	if err != nil {
		t.Fatalf("ParseStatement: %v", err)
	}
	return again
}

// A custodian endorses only a statement whose share for them opens and
// matches the commitments, and the refusal names them.
func TestEndorseRefuses(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, "Ana", "Bea", "Cid")
	st := o.run(t)
	// The same configuration again: the same policy, another split.
	again := o.run(t)
	if again.Policy().ID() != st.Policy().ID() {
		t.Fatal("two runs of one configuration made different policies")
	}

	swapped := partsOf(st)
	swapped.shares[0], swapped.shares[1] = swapSealed(t, swapped.shares[0], swapped.shares[1])
	otherSplit := partsOf(st)
	otherSplit.shares[0] = again.SealedShares()[0]
	outOfOrder := partsOf(st)
	outOfOrder.shares[0], outOfOrder.shares[1] = outOfOrder.shares[1], outOfOrder.shares[0]
	stranger, err := custody.GenerateCustodianKey()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		st        *ceremony.Statement
		key       *custody.CustodianKey
		want      error
		custodian string // named in the error, if any
	}{
		{"custodian 1 holds custodian 2's sealed share", swapped.statement(t), o.keys[0], custody.ErrDecrypt, `custodian 1 ("Ana")`},
		{"custodian 2 holds custodian 1's sealed share", swapped.statement(t), o.keys[1], custody.ErrDecrypt, `custodian 2 ("Bea")`},
		{"a share from another split of the same policy", otherSplit.statement(t), o.keys[0], custody.ErrBadShare, `custodian 1 ("Ana")`},
		{"shares out of slot order", outOfOrder.statement(t), o.keys[2], ceremony.ErrInconsistent, ""},
		{"a key that is not a custodian's", st, stranger, custody.ErrMismatch, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := ceremony.Endorse(tt.st, tt.key)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Endorse = %v, %v; want %v", e, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.custodian) {
				t.Errorf("error %q does not name %s", err, tt.custodian)
			}
		})
	}
	// Custodian 3's share was not touched by the swap.
	if _, err := ceremony.Endorse(swapped.statement(t), o.keys[2]); err != nil {
		t.Errorf("custodian 3 on the swapped statement: %v", err)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, "Ana", "Bea", "Cid")
	st := o.run(t)
	es := o.endorseAll(t, st)
	now := epoch.Add(time.Hour)

	// Another ceremony by the same custodians and CA: its parts are
	// genuine, just not this statement's.
	other := o.run(t)
	otherEndorsement, err := ceremony.Endorse(other, o.keys[1])
	if err != nil {
		t.Fatal(err)
	}
	// Another archive key id under the same CA and custodians.
	cfg2 := o.cfg
	cfg2.KeyID = "archive-2"
	second, err := ceremony.Run(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	// A CA of the same name that is not the organisation's, and another
	// organisation's CA.
	impostor, err := pki.NewCA(org, epoch)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := pki.NewCA("Other Bank", epoch)
	if err != nil {
		t.Fatal(err)
	}

	flipped := es[0].Bytes()
	flipped[len(flipped)-5] ^= 1
	badSig, err := ceremony.ParseEndorsement(flipped)
	if err != nil {
		t.Fatal(err)
	}
	moved := es[0].Bytes()
	moved[4+1+32] = 2 // the slot: custodian 1's signature claimed for slot 2
	movedSlot, err := ceremony.ParseEndorsement(moved)
	if err != nil {
		t.Fatal(err)
	}

	with := func(change func(*parts)) *ceremony.Statement {
		p := partsOf(st)
		change(&p)
		return p.statement(t)
	}

	tests := []struct {
		name         string
		st           *ceremony.Statement
		endorsements []*ceremony.Endorsement
		ca           *x509.Certificate
		now          time.Time
		want         []error
		names        []string // custodians the error must name
	}{
		{name: "endorsed by all", st: st, endorsements: es},
		{name: "endorsed by all, one twice", st: st, endorsements: append(slices.Clone(es), es[1])},
		{name: "custodian 3 has not endorsed", st: st, endorsements: es[:2],
			want: []error{ceremony.ErrMissingEndorsement}, names: []string{`custodian 3 ("Cid")`}},
		{name: "nobody has endorsed", st: st,
			want: []error{ceremony.ErrMissingEndorsement}, names: []string{`"Ana"`, `"Bea"`, `"Cid"`}},
		{name: "an endorsement of another statement", st: st, endorsements: []*ceremony.Endorsement{es[0], otherEndorsement, es[2]},
			want: []error{ceremony.ErrOtherStatement, ceremony.ErrMissingEndorsement}, names: []string{`custodian 2 ("Bea")`}},
		{name: "a signature bit flipped", st: st, endorsements: []*ceremony.Endorsement{badSig, es[1], es[2]},
			want: []error{custody.ErrBadSignature}, names: []string{`custodian 1 ("Ana")`}},
		{name: "custodian 1's signature in custodian 2's slot", st: st, endorsements: []*ceremony.Endorsement{movedSlot, es[2]},
			want: []error{custody.ErrBadSignature, ceremony.ErrMissingEndorsement}, names: []string{`custodian 2 ("Bea")`, `custodian 1 ("Ana")`}},
		{name: "an impostor CA of the same name", st: st, endorsements: es, ca: impostor.Certificate(),
			want: []error{ceremony.ErrCertificate}},
		{name: "another organisation's CA", st: st, endorsements: es, ca: elsewhere.Certificate(),
			want: []error{ceremony.ErrCertificate}},
		{name: "the archive certificate given as the CA", st: st, endorsements: es, ca: mustParse(t, st.Certificate()),
			want: []error{ceremony.ErrCertificate}},
		{name: "after the archive key expired", st: st, endorsements: es, now: st.NotAfter().Add(time.Second),
			want: []error{ceremony.ErrCertificate}},
		{name: "before the ceremony", st: st, endorsements: es, now: epoch.Add(-2 * time.Hour),
			want: []error{ceremony.ErrCertificate}},
		{name: "another ceremony's KeyPackage", st: with(func(p *parts) { p.kp = other.KeyPackage() }), endorsements: es,
			want: []error{ceremony.ErrKeyPackage, ceremony.ErrOtherStatement}},
		{name: "another ceremony's certificate", st: with(func(p *parts) { p.cert = other.Certificate() }), endorsements: es,
			want: []error{ceremony.ErrKeyPackage, ceremony.ErrOtherStatement}},
		{name: "another key id's certificate and KeyPackage", st: with(func(p *parts) { p.cert, p.kp = second.Certificate(), second.KeyPackage() }),
			endorsements: es, want: []error{ceremony.ErrInconsistent, ceremony.ErrOtherStatement}},
		{name: "another key id's policy", st: with(func(p *parts) { p.policy = second.Policy() }), endorsements: es,
			want: []error{ceremony.ErrInconsistent}},
		{name: "a sealed share missing", st: with(func(p *parts) { p.shares = p.shares[:2] }), endorsements: es,
			want: []error{ceremony.ErrInconsistent}},
		{name: "sealed shares out of order", st: with(func(p *parts) { p.shares[1], p.shares[2] = p.shares[2], p.shares[1] }),
			endorsements: es, want: []error{ceremony.ErrInconsistent}},
		{name: "made outside its certificate's validity", st: with(func(p *parts) { p.created = st.NotAfter().Add(time.Hour) }),
			endorsements: es, want: []error{ceremony.ErrInconsistent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca, at := tt.ca, tt.now
			if ca == nil {
				ca = o.ca.Certificate()
			}
			if at.IsZero() {
				at = now
			}
			err := ceremony.Verify(tt.st, tt.endorsements, ca, at)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify accepted it")
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Verify = %v; want it to wrap %v", err, w)
				}
			}
			for _, n := range tt.names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("Verify = %v; want it to name %s", err, n)
				}
			}
			var ce *custody.CustodianError
			if len(tt.names) > 0 && !errors.As(err, &ce) {
				t.Errorf("Verify = %v; want a custody.CustodianError", err)
			}
		})
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
