package ceremony

import (
	"crypto/ecdsa"

	"candor/internal/custody"
	"candor/internal/mlsx"
)

// SetTestHookSecrets lets the external tests see the ceremony's secrets
// just before Run destroys them. Not safe with parallel ceremonies: tests
// that set it do not run in parallel with others that call Run.
func SetTestHookSecrets(f func(seed *custody.Seed, signature *ecdsa.PrivateKey, keyPackage mlsx.KeyPackageSecrets)) {
	testHookSecrets = f
}

// NewStatementForTest assembles a statement from parts Run would not
// combine, to test that Check and Verify refuse it.
var NewStatementForTest = newStatement
