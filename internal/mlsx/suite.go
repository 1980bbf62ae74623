package mlsx

import (
	"fmt"

	"github.com/thomas-vilte/mls-go/ciphersuite"
)

// Suite is an MLS ciphersuite identifier (RFC 9420 §17.1).
type Suite uint16

// The suites the adapter can parse, follow and replay. Candor's own groups
// use only [DefaultSuite]; the others are here for conformance with the IETF
// vectors and for a future change of suite.
const (
	SuiteX25519AES128   Suite = 0x0001 // MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	SuiteP256AES128     Suite = 0x0002 // MLS_128_DHKEMP256_AES128GCM_SHA256_P256
	SuiteX25519ChaCha20 Suite = 0x0003 // MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519
	SuiteP521AES256     Suite = 0x0005 // MLS_256_DHKEMP521_AES256GCM_SHA512_P521

	// DefaultSuite is the suite of every candor group: P-256, AES-128-GCM
	// and SHA-256, all FIPS-approved and all from Go's standard library.
	DefaultSuite = SuiteP256AES128
)

// Suites lists every suite the adapter supports, in identifier order.
var Suites = []Suite{SuiteX25519AES128, SuiteP256AES128, SuiteX25519ChaCha20, SuiteP521AES256}

// Supported reports whether the adapter can handle groups of suite s.
func (s Suite) Supported() bool {
	for _, x := range Suites {
		if x == s {
			return true
		}
	}
	return false
}

func (s Suite) String() string { return fmt.Sprintf("0x%04x", uint16(s)) }

func (s Suite) lib() ciphersuite.CipherSuite { return ciphersuite.CipherSuite(s) }
