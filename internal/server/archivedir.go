package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"candor"
)

// Where the custody ceremony (cmd/candor-custody) writes an archive key
// in a data folder: DirArchive/KEYID/ holds FileStatement, its
// endorsements (FileStatement + ".endorsement." + custodian) and
// FileArchiveKeyPackage.
const (
	DirArchive            = "archive"
	FileStatement         = "statement"
	FileArchiveKeyPackage = "keypackage"
	endorsementInfix      = ".endorsement."
)

// LoadArchive reads the archive key in the data folder dir. It returns
// ErrNoArchive when the ceremony has not been held. Moving a running
// organisation to a new archive key is not supported yet, so a folder with
// two is refused.
func LoadArchive(dir string) (*Archive, error) {
	keys, err := os.ReadDir(filepath.Join(dir, DirArchive))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoArchive
	} else if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	var names []string
	for _, k := range keys {
		if k.IsDir() {
			names = append(names, k.Name())
		}
	}
	switch len(names) {
	case 0:
		return nil, ErrNoArchive
	case 1:
	default:
		return nil, fmt.Errorf("server: %s holds archive keys %s; moving to a new archive key is not supported yet: %w",
			filepath.Join(dir, DirArchive), strings.Join(names, ", "), candor.ErrInvalid)
	}
	keyDir := filepath.Join(dir, DirArchive, names[0])
	a := &Archive{}
	if a.Statement, err = os.ReadFile(filepath.Join(keyDir, FileStatement)); err != nil {
		return nil, fmt.Errorf("server: the archive's statement: %w", err)
	}
	if a.KeyPackage, err = os.ReadFile(filepath.Join(keyDir, FileArchiveKeyPackage)); err != nil {
		return nil, fmt.Errorf("server: the archive's KeyPackage: %w", err)
	}
	files, err := os.ReadDir(keyDir)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	for _, f := range files {
		if !f.Type().IsRegular() || !strings.HasPrefix(f.Name(), FileStatement+endorsementInfix) {
			continue
		}
		e, err := os.ReadFile(filepath.Join(keyDir, f.Name()))
		if err != nil {
			return nil, fmt.Errorf("server: an endorsement of the archive: %w", err)
		}
		a.Endorsements = append(a.Endorsements, e)
	}
	return a, nil
}

// PublishArchive writes an archive key into the data folder dir as the
// custody ceremony does (LoadArchive reads it): statement and keyPackage
// under DirArchive/keyID, and each custodian's endorsement, keyed by a
// file-name-safe custodian name. It refuses a key id that exists. The
// ceremony tool writes the same layout itself, since it must not link the
// server; its tests check that LoadArchive reads what it writes.
func PublishArchive(dir, keyID string, statement, keyPackage []byte, endorsements map[string][]byte) error {
	keyDir := filepath.Join(dir, DirArchive, keyID)
	if err := os.MkdirAll(filepath.Dir(keyDir), 0o755); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := os.Mkdir(keyDir, 0o755); err != nil {
		return fmt.Errorf("server: archive key %q: %w", keyID, err)
	}
	files := map[string][]byte{FileArchiveKeyPackage: keyPackage, FileStatement: statement}
	for name, e := range endorsements {
		files[FileStatement+endorsementInfix+name] = e
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(keyDir, name), data, 0o644); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	return nil
}
