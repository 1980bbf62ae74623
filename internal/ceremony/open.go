package ceremony

import (
	"fmt"

	"candor/internal/custody"
	"candor/internal/mlsx"
)

// KeyPackageSecrets derives, from the seed an opening rebuilt, the private
// keys of the statement's KeyPackage, as the ceremony derived them: what
// the archive's Welcomes open with. It first checks the seed against the
// statement (MatchesSeed), so keys of another archive are never returned.
// The caller clears the secrets when done.
func (st *Statement) KeyPackageSecrets(seed *custody.Seed) (mlsx.KeyPackageSecrets, error) {
	if err := st.MatchesSeed(seed); err != nil {
		return mlsx.KeyPackageSecrets{}, err
	}
	keys, err := seed.KeyPackageKeys(keyPackageIndex)
	if err != nil {
		return mlsx.KeyPackageSecrets{}, fmt.Errorf("ceremony: deriving the KeyPackage keys: %w", err)
	}
	return mlsx.KeyPackageSecrets{Init: keys.Init.Bytes(), Encryption: keys.Encryption.Bytes()}, nil
}
