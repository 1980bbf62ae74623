package ceremony_test

import (
	"crypto/ecdsa"
	"errors"
	"slices"
	"testing"

	"candor/internal/ceremony"
	"candor/internal/custody"
	"candor/internal/mlsx"
)

// TestKeyPackageSecrets checks that an opening derives, from the rebuilt
// seed, the very KeyPackage keys the ceremony made, and nothing from
// another archive's seed. It sets the secrets hook, so it does not run in
// parallel.
func TestKeyPackageSecrets(t *testing.T) {
	var made mlsx.KeyPackageSecrets
	ceremony.SetTestHookSecrets(func(_ *custody.Seed, _ *ecdsa.PrivateKey, kp mlsx.KeyPackageSecrets) {
		made = mlsx.KeyPackageSecrets{Init: slices.Clone(kp.Init), Encryption: slices.Clone(kp.Encryption)}
	})
	o := newOrg(t, 2, "Ana", "Bea", "Cid")
	st := o.run(t)
	ceremony.SetTestHookSecrets(nil)
	if len(made.Init) == 0 {
		t.Fatal("the test hook was not called")
	}

	seed := open(t, st, o.keys[2], o.keys[0])
	got, err := st.KeyPackageSecrets(seed)
	seed.Destroy()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Init, made.Init) || !slices.Equal(got.Encryption, made.Encryption) {
		t.Fatal("the opening derives other KeyPackage keys than the ceremony made")
	}

	other := newOrg(t, 2, "Ana", "Bea")
	seed = open(t, other.run(t), other.keys[0], other.keys[1])
	defer seed.Destroy()
	if _, err := st.KeyPackageSecrets(seed); !errors.Is(err, ceremony.ErrSeedMismatch) {
		t.Errorf("another archive's seed: %v, want ErrSeedMismatch", err)
	}
}
