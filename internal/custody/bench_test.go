package custody

import (
	"fmt"
	"testing"
)

// Costs of the ceremony and an opening, which run once per archive key and
// once per case: they matter only as a check that no step is slow enough to
// notice.
func BenchmarkSplit(b *testing.B) {
	for _, kn := range [][2]int{{2, 3}, {5, 9}} {
		b.Run(fmt.Sprintf("%d-of-%d", kn[0], kn[1]), func(b *testing.B) {
			keys := newKeys(b, kn[1])
			p := newPolicyFor(b, "Example Bank", "archive-1", kn[0], keys)
			seed, err := NewSeed()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, _, err := Split(p, seed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReconstruct(b *testing.B) {
	for _, kn := range [][2]int{{2, 3}, {5, 9}} {
		b.Run(fmt.Sprintf("%d-of-%d", kn[0], kn[1]), func(b *testing.B) {
			c := newCeremony(b, kn[0], kn[1])
			var approvals []*Approval
			for i := 1; i <= kn[0]; i++ {
				approvals = append(approvals, c.approve(b, i))
			}
			for b.Loop() {
				if _, err := Reconstruct(c.policy, c.comm, c.request, c.opening, approvals); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDeriveKeyPackageKeys(b *testing.B) {
	seed, err := NewSeed()
	if err != nil {
		b.Fatal(err)
	}
	var i uint32
	for b.Loop() {
		if _, err := seed.KeyPackageKeys(i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDecryptKeyFile is dominated by PBKDF2's 600,000 iterations: the
// wait a custodian sees after typing their passphrase, and the cost of one
// guess to whoever steals the file.
func BenchmarkDecryptKeyFile(b *testing.B) {
	k := newKeys(b, 1)[0]
	pass := []byte("correct horse battery staple")
	file, err := EncryptKeyFile(k, pass)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := DecryptKeyFile(file, pass); err != nil {
			b.Fatal(err)
		}
	}
}
