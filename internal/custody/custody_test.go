package custody

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/math/polynomial"
	"github.com/cloudflare/circl/secretsharing"

	"candor"
)

// ceremony is a policy with its custodians' keys, a seed and its split.
type ceremony struct {
	keys    []*CustodianKey
	policy  *Policy
	seed    *Seed
	comm    *Commitments
	sealed  []*SealedShare
	request RequestID
	opening *OpeningKey
}

func newKeys(t testing.TB, n int) []*CustodianKey {
	t.Helper()
	keys := make([]*CustodianKey, n)
	for i := range keys {
		k, err := GenerateCustodianKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	return keys
}

func newPolicyFor(t testing.TB, org, keyID string, k int, keys []*CustodianKey) *Policy {
	t.Helper()
	cfg := PolicyConfig{Organisation: org, ArchiveKeyID: keyID, K: k}
	for i, key := range keys {
		cfg.Custodians = append(cfg.Custodians, Custodian{Name: fmt.Sprintf("Custodian %c", 'A'+i), PublicKey: key.PublicKey()})
	}
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newCeremonyWith(t testing.TB, p *Policy, keys []*CustodianKey) *ceremony {
	t.Helper()
	seed, err := NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	comm, sealed, err := Split(p, seed)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpeningKey()
	if err != nil {
		t.Fatal(err)
	}
	c := &ceremony{keys: keys, policy: p, seed: seed, comm: comm, sealed: sealed, opening: o}
	if _, err := rand.Read(c.request[:]); err != nil {
		t.Fatal(err)
	}
	return c
}

func newCeremony(t testing.TB, k, n int) *ceremony {
	t.Helper()
	keys := newKeys(t, n)
	return newCeremonyWith(t, newPolicyFor(t, "Example Bank", "archive-1", k, keys), keys)
}

// approve has custodian i (1-based) approve c's request.
func (c *ceremony) approve(t testing.TB, i int) *Approval {
	t.Helper()
	a, err := c.keys[i-1].Approve(c.policy, c.comm, c.sealed[i-1], c.request, c.opening.PublicKey())
	if err != nil {
		t.Fatalf("custodian %d approving: %v", i, err)
	}
	return a
}

// subsets calls f with every subset of 1..n of size k.
func subsets(n, k int, f func([]int)) {
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == k {
			f(append([]int(nil), cur...))
			return
		}
		for i := start; i <= n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(1, nil)
}

func TestSplitReconstruct(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ k, n int }{{2, 2}, {2, 3}, {3, 5}, {4, 6}} {
		t.Run(fmt.Sprintf("%d-of-%d", tc.k, tc.n), func(t *testing.T) {
			t.Parallel()
			c := newCeremony(t, tc.k, tc.n)
			approvals := make([]*Approval, tc.n+1)
			for i := 1; i <= tc.n; i++ {
				share, err := c.keys[i-1].OpenShare(c.policy, c.comm, c.sealed[i-1])
				if err != nil {
					t.Fatalf("custodian %d checking their share: %v", i, err)
				}
				if share.Index() != i {
					t.Fatalf("custodian %d got share %d", i, share.Index())
				}
				approvals[i] = c.approve(t, i)
				if err := approvals[i].Verify(c.policy); err != nil {
					t.Fatalf("approval %d: %v", i, err)
				}
			}
			pick := func(idx []int) []*Approval {
				var out []*Approval
				for _, i := range idx {
					out = append(out, approvals[i])
				}
				return out
			}
			// Every set of k custodians, and every larger set, rebuilds
			// exactly the seed.
			for size := tc.k; size <= tc.n; size++ {
				subsets(tc.n, size, func(idx []int) {
					got, err := Reconstruct(c.policy, c.comm, c.request, c.opening, pick(idx))
					if err != nil {
						t.Fatalf("custodians %v: %v", idx, err)
					}
					if !got.Equal(c.seed) {
						t.Fatalf("custodians %v rebuilt a different seed", idx)
					}
				})
			}
			// Every set of k-1 custodians rebuilds nothing.
			subsets(tc.n, tc.k-1, func(idx []int) {
				got, err := Reconstruct(c.policy, c.comm, c.request, c.opening, pick(idx))
				if !errors.Is(err, ErrNotEnoughShares) || got != nil {
					t.Fatalf("custodians %v: got seed %v, error %v; want ErrNotEnoughShares", idx, got, err)
				}
			})
		})
	}
}

// TestFewerThanKRevealNothing shows the Shamir property the custody rests
// on: any k-1 shares fit every possible seed equally well. For the real
// shares of k-1 custodians and an unrelated seed, a polynomial of the same
// degree passes through both, so a k-th "share" exists that with those k-1
// real ones rebuilds the unrelated seed.
func TestFewerThanKRevealNothing(t *testing.T) {
	t.Parallel()
	const k, n = 3, 5
	c := newCeremony(t, k, n)
	var x, y []group.Scalar
	for i := 1; i <= k-1; i++ {
		s, err := c.keys[i-1].OpenShare(c.policy, c.comm, c.sealed[i-1])
		if err != nil {
			t.Fatal(err)
		}
		v, _ := shareFromBytes(s.index, s.value[:])
		x, y = append(x, v.ID), append(y, v.Value)
	}
	other, err := NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	otherScalar, err := other.scalar()
	if err != nil {
		t.Fatal(err)
	}
	zero := group.P256.NewScalar()
	f := polynomial.NewLagrangePolynomial(append([]group.Scalar{zero}, x...), append([]group.Scalar{otherScalar}, y...))
	j := group.P256.NewScalar().SetUint64(n)
	forged := secretsharing.Share{ID: j, Value: f.Evaluate(j)}
	shares := []secretsharing.Share{{ID: x[0], Value: y[0]}, {ID: x[1], Value: y[1]}, forged}
	got, err := secretsharing.Recover(k-1, shares)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsEqual(otherScalar) {
		t.Fatal("k-1 real shares and a forged one did not rebuild the unrelated seed")
	}
	// The commitments are what stop the forgery: the forged share fails them.
	v, _ := forged.Value.MarshalBinary()
	if c.comm.verify(n, v) {
		t.Fatal("forged share passed the commitments")
	}
}

func TestTamperedApprovalIsNamed(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 2, 3)
	good := c.approve(t, 1)

	// A custodian who releases a wrong value, properly sealed and signed.
	share, err := c.keys[1].OpenShare(c.policy, c.comm, c.sealed[1])
	if err != nil {
		t.Fatal(err)
	}
	share.value[31] ^= 1
	lying, err := c.keys[1].approve(c.policy, share, c.request, c.opening.PublicKey())
	if err != nil {
		t.Fatal(err)
	}

	// Ciphertext altered in transit, signature left alone.
	altered := c.approve(t, 3)
	altered.sealed[len(altered.sealed)-1] ^= 1

	// Ciphertext altered and then signed by the custodian's own key (a
	// compromised signing step): the HPKE tag still catches it.
	resigned := c.approve(t, 3)
	resigned.sealed[70] ^= 1
	resign(t, c.keys[2], resigned)

	for _, tc := range []struct {
		name      string
		bad       *Approval
		wantIndex int
		want      error
	}{
		{"wrong share value", lying, 2, ErrBadShare},
		{"ciphertext altered", altered, 3, ErrBadSignature},
		{"ciphertext altered and re-signed", resigned, 3, ErrDecrypt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Reconstruct(c.policy, c.comm, c.request, c.opening, []*Approval{good, tc.bad})
			if got != nil {
				t.Fatal("reconstructed a seed from a bad approval")
			}
			var ce *CustodianError
			if !errors.As(err, &ce) || !errors.Is(err, tc.want) {
				t.Fatalf("error %v; want a CustodianError wrapping %v", err, tc.want)
			}
			if ce.Index != tc.wantIndex || ce.Name != c.policy.custodians[tc.wantIndex-1].Name {
				t.Fatalf("blamed custodian %d (%q); want %d", ce.Index, ce.Name, tc.wantIndex)
			}
		})
	}
}

// resign re-signs a after a test has changed it.
func resign(t *testing.T, k *CustodianKey, a *Approval) {
	t.Helper()
	sig, err := ecdsa.SignASN1(rand.Reader, k.sig, a.digest())
	if err != nil {
		t.Fatal(err)
	}
	a.signature = sig
}

func TestEveryBadApprovalIsNamed(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 2, 3)
	a1, a2, a3 := c.approve(t, 1), c.approve(t, 2), c.approve(t, 3)
	a1.signature[len(a1.signature)-1] ^= 1
	a3.sealed[0] ^= 1
	_, err := Reconstruct(c.policy, c.comm, c.request, c.opening, []*Approval{a1, a2, a3})
	var blamed []int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *CustodianError
		if errors.As(e, &ce) {
			blamed = append(blamed, ce.Index)
		}
	}
	if fmt.Sprint(blamed) != "[1 3]" {
		t.Fatalf("blamed %v in %v; want custodians 1 and 3", blamed, err)
	}
}

func TestWrongCustodianKey(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 2, 3)
	outsider := newKeys(t, 1)[0]
	for _, tc := range []struct {
		name string
		key  *CustodianKey
		s    *SealedShare
		want error
	}{
		{"another custodian's share", c.keys[1], c.sealed[0], ErrMismatch},
		{"outsider", outsider, c.sealed[0], ErrMismatch},
		{"share relabelled to the opener's slot", c.keys[1], relabel(c.sealed[0], c.policy.id, 2), ErrDecrypt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			share, err := tc.key.OpenShare(c.policy, c.comm, tc.s)
			if !errors.Is(err, tc.want) || share != nil {
				t.Fatalf("got share %v, error %v; want %v", share, err, tc.want)
			}
			a, err := tc.key.Approve(c.policy, c.comm, tc.s, c.request, c.opening.PublicKey())
			if !errors.Is(err, tc.want) || a != nil {
				t.Fatalf("approve: got %v, error %v; want %v", a, err, tc.want)
			}
		})
	}
}

// relabel moves a sealed share to another policy and slot, as a server
// replaying it would.
func relabel(s *SealedShare, policy PolicyID, index int) *SealedShare {
	return &SealedShare{policy: policy, index: index, sealed: append([]byte(nil), s.sealed...)}
}

// TestShareReplay moves a custodian's sealed share into a slot that the
// same custodian key holds under another policy: another organisation,
// another archive key of the same organisation, another slot. The key is
// right each time; the HPKE binding alone refuses.
func TestShareReplay(t *testing.T) {
	t.Parallel()
	keys := newKeys(t, 4)
	x := keys[0]
	source := newCeremonyWith(t, newPolicyFor(t, "Example Bank", "archive-1", 2, keys[:3]), keys[:3])
	for _, tc := range []struct {
		name      string
		org, kid  string
		custodian []*CustodianKey // x's slot is its position + 1
	}{
		{"another organisation, same slot", "Other Bank", "archive-1", keys[:3]},
		{"another archive key, same slot", "Example Bank", "archive-2", keys[:3]},
		{"same organisation and key id, other custodians, another slot", "Example Bank", "archive-1", []*CustodianKey{keys[3], x, keys[1]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := newCeremonyWith(t, newPolicyFor(t, tc.org, tc.kid, 2, tc.custodian), tc.custodian)
			slot, err := target.policy.IndexOf(x.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			replayed := relabel(source.sealed[0], target.policy.id, slot)
			share, err := x.OpenShare(target.policy, target.comm, replayed)
			var ce *CustodianError
			if !errors.Is(err, ErrDecrypt) || !errors.As(err, &ce) || ce.Index != slot || share != nil {
				t.Fatalf("got share %v, error %v; want ErrDecrypt naming slot %d", share, err, slot)
			}
			// The genuine share for the slot still opens.
			if _, err := x.OpenShare(target.policy, target.comm, target.sealed[slot-1]); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestApprovalReplay(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 2, 3)
	other := newCeremonyWith(t, c.policy, c.keys) // same policy, new seed and request
	a1, a2 := c.approve(t, 1), c.approve(t, 2)

	movedRequest := c.approve(t, 2)
	movedRequest.request = other.request

	movedAndSigned := c.approve(t, 2)
	movedAndSigned.request = other.request
	resign(t, c.keys[1], movedAndSigned)

	for _, tc := range []struct {
		name    string
		request RequestID
		opening *OpeningKey
		comm    *Commitments
		list    []*Approval
		want    error
	}{
		{"approvals for another request", other.request, other.opening, other.comm, []*Approval{a1, a2}, ErrMismatch},
		{"request id changed", other.request, c.opening, c.comm, []*Approval{movedRequest}, ErrBadSignature},
		{"request id changed and re-signed", other.request, c.opening, c.comm, []*Approval{movedAndSigned}, ErrDecrypt},
		{"duplicate custodian", c.request, c.opening, c.comm, []*Approval{a1, a1}, ErrMismatch},
		{"commitments of another split", c.request, c.opening, other.comm, []*Approval{a1, a2}, ErrBadShare},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Reconstruct(c.policy, tc.comm, tc.request, tc.opening, tc.list)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got seed %v, error %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestCommitmentsOfAnotherPolicy(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 2, 3)
	other := newCeremony(t, 2, 3)
	if _, err := c.keys[0].OpenShare(c.policy, other.comm, c.sealed[0]); !errors.Is(err, ErrMismatch) {
		t.Fatalf("error %v; want ErrMismatch", err)
	}
	if _, err := Reconstruct(c.policy, other.comm, c.request, c.opening, nil); !errors.Is(err, ErrMismatch) {
		t.Fatalf("error %v; want ErrMismatch", err)
	}
}

func TestDerivedKeys(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 2, 3)
	got, err := Reconstruct(c.policy, c.comm, c.request, c.opening, []*Approval{c.approve(t, 3), c.approve(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.seed.SignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	after, err := got.SignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	if !before.Equal(after) {
		t.Fatal("signature key differs after reconstruction")
	}
	digest := sha256.Sum256([]byte("archive"))
	sig, err := ecdsa.SignASN1(rand.Reader, after, digest[:])
	if err != nil || !ecdsa.VerifyASN1(&before.PublicKey, digest[:], sig) {
		t.Fatalf("derived signature key does not sign: %v", err)
	}

	// Every key of every KeyPackage is distinct from every other and from
	// the signature key, and the same index always gives the same keys.
	sigPub, err := before.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{string(sigPub[1:33]): "signature"}
	for i := range uint32(20) {
		kp, err := got.KeyPackageKeys(i)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.seed.KeyPackageKeys(i)
		if err != nil {
			t.Fatal(err)
		}
		if !kp.Init.Equal(again.Init) || !kp.Encryption.Equal(again.Encryption) {
			t.Fatalf("KeyPackage %d keys differ after reconstruction", i)
		}
		for role, k := range map[string]*ecdh.PrivateKey{"init": kp.Init, "encryption": kp.Encryption} {
			x := string(k.PublicKey().Bytes()[1:33])
			if prev, dup := seen[x]; dup {
				t.Fatalf("KeyPackage %d %s key repeats %s", i, role, prev)
			}
			seen[x] = fmt.Sprintf("KeyPackage %d %s", i, role)
		}
	}
}

func TestScalarRange(t *testing.T) {
	t.Parallel()
	n := append([]byte(nil), p256Order...)
	minus1 := append([]byte(nil), n...)
	minus1[31]--
	plus1 := append([]byte(nil), n...)
	plus1[31]++
	one := make([]byte, 32)
	one[31] = 1
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"zero", make([]byte, 32), false},
		{"one", one, true},
		{"n-1", minus1, true},
		{"n", n, false},
		{"n+1", plus1, false},
		{"all ones", bytes.Repeat([]byte{0xff}, 32), false},
		{"short", one[1:], false},
	} {
		if got := inScalarRange(tc.b); got != tc.want {
			t.Errorf("%s: inScalarRange = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPolicyRules(t *testing.T) {
	t.Parallel()
	keys := newKeys(t, 3)
	base := func() PolicyConfig {
		return PolicyConfig{Organisation: "Example Bank", ArchiveKeyID: "archive-1", K: 2, Custodians: []Custodian{
			{Name: "Ana", PublicKey: keys[0].PublicKey()},
			{Name: "Bea", PublicKey: keys[1].PublicKey()},
			{Name: "Cid", PublicKey: keys[2].PublicKey()},
		}}
	}
	many := base()
	for i := len(many.Custodians); i <= MaxCustodians; i++ {
		many.Custodians = append(many.Custodians, Custodian{Name: fmt.Sprint(i), PublicKey: newKeys(t, 1)[0].PublicKey()})
	}
	for _, tc := range []struct {
		name   string
		change func(*PolicyConfig)
	}{
		{"k = 1", func(c *PolicyConfig) { c.K = 1 }},
		{"k > n", func(c *PolicyConfig) { c.K = 4 }},
		{"no organisation", func(c *PolicyConfig) { c.Organisation = "" }},
		{"control character in key id", func(c *PolicyConfig) { c.ArchiveKeyID = "archive\x1b[2J" }},
		{"name not UTF-8", func(c *PolicyConfig) { c.Custodians[1].Name = "\xff" }},
		{"name too long", func(c *PolicyConfig) { c.Custodians[1].Name = string(bytes.Repeat([]byte("a"), maxText+1)) }},
		{"duplicate name", func(c *PolicyConfig) { c.Custodians[2].Name = "Ana" }},
		{"duplicate key", func(c *PolicyConfig) { c.Custodians[2].PublicKey = keys[0].PublicKey() }},
		{"missing key", func(c *PolicyConfig) { c.Custodians[2].PublicKey = nil }},
		{"too many custodians", func(c *PolicyConfig) { *c = many }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := base()
			tc.change(&cfg)
			if p, err := NewPolicy(cfg); !errors.Is(err, candor.ErrInvalid) || p != nil {
				t.Fatalf("got %v, %v; want candor.ErrInvalid", p, err)
			}
		})
	}
	p, err := NewPolicy(base())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Custodian(4); !errors.Is(err, ErrMismatch) {
		t.Fatalf("custodian 4 of 3: %v", err)
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 2, 3)
	share, err := c.keys[0].OpenShare(c.policy, c.comm, c.sealed[0])
	if err != nil {
		t.Fatal(err)
	}
	hs, ss, err := c.keys[0].scalars()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{"seed": c.seed.b[:], "share": share.value[:], "hpke key": hs, "signature key": ss}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	for _, v := range []any{c.seed, share, c.keys[0], c.opening} {
		log.Info("value", "v", v)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "slog"} {
			out := fmt.Sprintf(verb, v)
			if verb == "slog" {
				out = logged.String()
			}
			for what, s := range secrets {
				if bytes.Contains([]byte(out), s) || bytes.Contains([]byte(out), fmt.Appendf(nil, "%x", s)) {
					t.Errorf("%s of %T shows the %s: %s", verb, v, what, out)
				}
			}
		}
	}
}

// TestBindingInfo checks that every field a sealed share or approval is
// bound to changes the HPKE info. Moving a share to another slot of the
// same policy cannot be tried end to end (a policy never gives one key two
// slots), so the slot's part in the binding is checked here.
func TestBindingInfo(t *testing.T) {
	t.Parallel()
	keys := newKeys(t, 3)
	p := newPolicyFor(t, "Example Bank", "archive-1", 2, keys)
	var r1, r2 RequestID
	r2[0] = 1
	seen := map[string]string{}
	for _, tc := range []struct {
		name string
		info []byte
	}{
		{"share, slot 1", bindingInfo("share", p, nil, 1)},
		{"share, slot 2", bindingInfo("share", p, nil, 2)},
		{"share, other organisation", bindingInfo("share", newPolicyFor(t, "Other Bank", "archive-1", 2, keys), nil, 1)},
		{"share, other key id", bindingInfo("share", newPolicyFor(t, "Example Bank", "archive-2", 2, keys), nil, 1)},
		{"share, other threshold", bindingInfo("share", newPolicyFor(t, "Example Bank", "archive-1", 3, keys), nil, 1)},
		{"approval, slot 1", bindingInfo("approval", p, &r1, 1)},
		{"approval, slot 2", bindingInfo("approval", p, &r1, 2)},
		{"approval, other request", bindingInfo("approval", p, &r2, 1)},
	} {
		if prev, dup := seen[string(tc.info)]; dup {
			t.Errorf("%s has the same HPKE info as %s", tc.name, prev)
		}
		seen[string(tc.info)] = tc.name
	}
}

// TestCustodianDetectsDealer checks what a custodian's verification after
// the ceremony is for: a share that does not belong to the published
// commitments (here, those of another split under the same policy) is
// refused and attributed to the custodian's slot.
func TestCustodianDetectsDealer(t *testing.T) {
	t.Parallel()
	c := newCeremony(t, 2, 3)
	other := newCeremonyWith(t, c.policy, c.keys)
	share, err := c.keys[1].OpenShare(c.policy, other.comm, c.sealed[1])
	var ce *CustodianError
	if !errors.Is(err, ErrBadShare) || !errors.As(err, &ce) || ce.Index != 2 || share != nil {
		t.Fatalf("got %v, %v; want ErrBadShare naming custodian 2", share, err)
	}
}
