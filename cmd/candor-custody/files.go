package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"candor/internal/custody"
	"candor/internal/pki"
)

// The organisation's data folder, as cmd/candord's init makes it
// (internal/server/datadir.go, which this tool must not link: it would
// bring the server in).
const (
	fileCACert = "ca.pem"
	fileCAKey  = "ca.key"
	dirArchive = "archive"
	fileStmt   = "statement"
	// fileKeyPackage holds the archive's KeyPackage, also inside the
	// statement, for the server, which must not parse statements (it
	// would link custody code): it registers it in its directory.
	fileKeyPackage = "keypackage"
)

// PEM types this tool writes and reads.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemPublicKey   = "CANDOR CUSTODIAN PUBLIC KEY"
	// pemNameHeader carries the custodian's name in a public key file, so
	// the ceremony can catch a file handed over under the wrong name.
	pemNameHeader = "Custodian"
)

// readPEM reads the one PEM block of type want in path.
func readPEM(path, want string) (*pem.Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != want || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%s: not one PEM %q block", path, want)
	}
	return block, nil
}

// readCACert reads the organisation's CA certificate.
func readCACert(path string) (*x509.Certificate, error) {
	block, err := readPEM(path, pemCertificate)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if !c.IsCA {
		return nil, fmt.Errorf("%s: not a CA certificate", path)
	}
	return c, nil
}

// loadCA reads the CA certificate and key from the data folder, refusing a
// key file that others than its owner may read, as the server does.
func loadCA(dir string) (*pki.CA, error) {
	cert, err := readCACert(filepath.Join(dir, fileCACert))
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, fileCAKey)
	fi, err := os.Stat(keyPath)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others than its owner (mode %v); chmod 600 it", keyPath, fi.Mode().Perm())
	}
	block, err := readPEM(keyPath, pemPrivateKey)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", keyPath, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", keyPath)
	}
	ca, err := pki.Load(cert.Raw, ek)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", fileCACert, fileCAKey, err)
	}
	return ca, nil
}

// readPublicKey reads a custodian's public key file and the name in it.
func readPublicKey(path string) (*custody.CustodianPublicKey, string, error) {
	block, err := readPEM(path, pemPublicKey)
	if err != nil {
		return nil, "", err
	}
	pub, err := custody.ParseCustodianPublicKey(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return pub, block.Headers[pemNameHeader], nil
}

func encodePublicKey(pub *custody.CustodianPublicKey, name string) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Headers: map[string]string{pemNameHeader: name}, Bytes: pub.Bytes()})
}

// writeNew writes a file that must not exist yet, and syncs it.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; not overwriting it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// checkName applies custody's rule for names (non-empty, at most 255
// bytes, UTF-8, no control characters) before any work is done, and
// refuses leading or trailing spaces, which a PEM header would lose.
func checkName(name string) error {
	switch {
	case name == "":
		return usagef("the custodian's name is empty")
	case len(name) > 255:
		return usagef("the custodian's name is longer than 255 bytes")
	case !utf8.ValidString(name):
		return usagef("the custodian's name is not UTF-8")
	case strings.TrimSpace(name) != name:
		return usagef("the custodian's name %q starts or ends with a space", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return usagef("the custodian's name %q contains a control character", name)
	}
	return nil
}

// checkKeyID refuses an archive key id that would not be one plain folder
// name: it becomes DIR/archive/ID.
func checkKeyID(id string) error {
	if id == "" || len(id) > 64 {
		return usagef("-key-id must be 1 to 64 characters")
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && strings.ContainsRune("._-", r)
		if !ok {
			return usagef("-key-id %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", id)
		}
	}
	return nil
}

// endorsementPath is where the endorsement by the custodian named name of
// the statement in file goes: the name with every character other than a
// letter, digit, '.', '_' or '-' replaced by '_', so that it stays one
// file name. verify finds endorsements by their content, not their names.
func endorsementPath(statement, name string) string {
	return statement + ".endorsement." + safeName(name)
}

// safeName is name with every character other than a letter, digit, '.',
// '_' or '-' replaced by '_'.
func safeName(name string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-", r) {
			return r
		}
		return '_'
	}, name)
}
