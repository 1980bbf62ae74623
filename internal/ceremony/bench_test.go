package ceremony_test

import (
	"testing"
	"time"

	"candor/internal/ceremony"
)

// BenchmarkRun is a whole 2-of-3 ceremony: seed, derivations, certificate,
// KeyPackage, split, and the self-checks.
func BenchmarkRun(b *testing.B) {
	o := newOrg(b, 2, "Ana", "Bea", "Cid")
	for b.Loop() {
		if _, err := ceremony.Run(o.cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is what a client pays to pin an archive: parse the
// statement and check it and three endorsements.
func BenchmarkVerify(b *testing.B) {
	o := newOrg(b, 2, "Ana", "Bea", "Cid")
	st := o.run(b)
	es := o.endorseAll(b, st)
	enc := st.Bytes()
	at := epoch.Add(time.Hour)
	for b.Loop() {
		parsed, err := ceremony.ParseStatement(enc)
		if err != nil {
			b.Fatal(err)
		}
		if err := ceremony.Verify(parsed, es, o.ca.Certificate(), at); err != nil {
			b.Fatal(err)
		}
	}
}
