package server

import (
	"crypto/sha256"
	"encoding/hex"
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
// FileArchiveKeyPackage. A key that succeeds another (a move to a new
// archive key) also holds FilePredecessor, the hex SHA-256 of the
// statement it succeeds, and the previous custodians' successions
// (FileStatement + ".succession." + custodian).
const (
	DirArchive            = "archive"
	FileStatement         = "statement"
	FileArchiveKeyPackage = "keypackage"
	FilePredecessor       = "predecessor"
	endorsementInfix      = ".endorsement."
	successionInfix       = ".succession."
)

// folderKey is one archive key read from the data folder.
type folderKey struct {
	name        string
	archive     *Archive
	hash        [sha256.Size]byte
	predecessor string // hex; empty for the first key
}

// LoadArchive reads the archive keys in the data folder dir and returns
// the current one, whose Previous leads back to the first. It returns
// ErrNoArchive when the ceremony has not been held.
//
// The server cannot check signatures (it does not link custody code), so
// the chain is read from the folder by a rule devices then check: exactly
// one key names no predecessor, each other names the statement of another
// key, and no key has two successors. The current key is the last one of
// that chain whose folder holds at least one endorsement and one
// succession; a successor that lacks either (its ceremony is under way) is
// left out and named in Pending, so a restart in the middle of a
// hand-over keeps serving the key devices can still check. A folder that
// breaks the rule is refused with an error that says how.
func LoadArchive(dir string) (*Archive, error) {
	root := filepath.Join(dir, DirArchive)
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoArchive
	} else if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	var keys []*folderKey
	byHash := map[string]*folderKey{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		k, err := readArchiveKey(filepath.Join(root, e.Name()))
		if err != nil {
			return nil, err
		}
		k.name = e.Name()
		if other := byHash[hex.EncodeToString(k.hash[:])]; other != nil {
			return nil, fmt.Errorf("server: %s: archive keys %s and %s hold the same statement: %w", root, other.name, k.name, candor.ErrInvalid)
		}
		byHash[hex.EncodeToString(k.hash[:])] = k
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, ErrNoArchive
	}
	var first []*folderKey
	successors := map[string][]*folderKey{}
	for _, k := range keys {
		switch {
		case k.predecessor == "":
			first = append(first, k)
		case byHash[k.predecessor] == nil:
			return nil, fmt.Errorf("server: archive key %s succeeds statement %s, which no archive key in %s holds: %w",
				k.name, k.predecessor, root, candor.ErrInvalid)
		default:
			successors[k.predecessor] = append(successors[k.predecessor], k)
		}
	}
	if len(first) != 1 {
		return nil, fmt.Errorf("server: %s holds %d archive keys that succeed none (%s); every key after the first must name its predecessor: %w",
			root, len(first), keyNames(first), candor.ErrInvalid)
	}
	cur := first[0]
	reached := 1
	var pending []string
	for {
		next := successors[hex.EncodeToString(cur.hash[:])]
		if len(next) > 1 {
			return nil, fmt.Errorf("server: archive keys %s all succeed %s; only one may: %w", keyNames(next), cur.name, candor.ErrInvalid)
		}
		if len(next) == 0 {
			break
		}
		n := next[0]
		if len(n.archive.Successions) == 0 || len(n.archive.Endorsements) == 0 {
			for k := n; k != nil; {
				pending = append(pending, k.name)
				reached++
				after := successors[hex.EncodeToString(k.hash[:])]
				if len(after) != 1 {
					break
				}
				k = after[0]
			}
			break
		}
		n.archive.Previous = cur.archive
		cur = n
		reached++
	}
	if reached != len(keys) {
		return nil, fmt.Errorf("server: %s: the archive keys do not form one chain from %s (a key succeeds itself, or two succeed one): %w",
			root, first[0].name, candor.ErrInvalid)
	}
	cur.archive.Pending = pending
	return cur.archive, nil
}

func keyNames(ks []*folderKey) string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// readArchiveKey reads one archive key's folder.
func readArchiveKey(keyDir string) (*folderKey, error) {
	a := &Archive{}
	var err error
	if a.Statement, err = os.ReadFile(filepath.Join(keyDir, FileStatement)); err != nil {
		return nil, fmt.Errorf("server: the archive's statement: %w", err)
	}
	if a.KeyPackage, err = os.ReadFile(filepath.Join(keyDir, FileArchiveKeyPackage)); err != nil {
		return nil, fmt.Errorf("server: the archive's KeyPackage: %w", err)
	}
	k := &folderKey{archive: a, hash: sha256.Sum256(a.Statement)}
	switch b, err := os.ReadFile(filepath.Join(keyDir, FilePredecessor)); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("server: the archive's predecessor: %w", err)
	default:
		h, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("server: %s: not the hex SHA-256 of a statement: %w", filepath.Join(keyDir, FilePredecessor), candor.ErrInvalid)
		}
		k.predecessor = hex.EncodeToString(h)
	}
	files, err := os.ReadDir(keyDir)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	for _, f := range files {
		var list *[][]byte
		switch name := f.Name(); {
		case !f.Type().IsRegular():
			continue
		case strings.HasPrefix(name, FileStatement+endorsementInfix):
			list = &a.Endorsements
		case strings.HasPrefix(name, FileStatement+successionInfix):
			list = &a.Successions
		default:
			continue
		}
		b, err := os.ReadFile(filepath.Join(keyDir, f.Name()))
		if err != nil {
			return nil, fmt.Errorf("server: the archive's %s: %w", f.Name(), err)
		}
		*list = append(*list, b)
	}
	return k, nil
}

// PublishArchive writes an archive key into the data folder dir as the
// custody ceremony does (LoadArchive reads it): statement and keyPackage
// under DirArchive/keyID, and each custodian's endorsement, keyed by a
// file-name-safe custodian name. It refuses a key id that exists. The
// ceremony tool writes the same layout itself, since it must not link the
// server; its tests check that LoadArchive reads what it writes.
func PublishArchive(dir, keyID string, statement, keyPackage []byte, endorsements map[string][]byte) error {
	return publish(dir, keyID, statement, keyPackage, endorsements, nil, nil)
}

// PublishSuccessor writes an archive key that succeeds the one whose
// statement is previous, as PublishArchive does, with the previous
// custodians' successions, keyed by file-name-safe custodian names.
func PublishSuccessor(dir, keyID string, statement, keyPackage []byte, endorsements map[string][]byte, previous []byte, successions map[string][]byte) error {
	h := sha256.Sum256(previous)
	return publish(dir, keyID, statement, keyPackage, endorsements, []byte(hex.EncodeToString(h[:])+"\n"), successions)
}

func publish(dir, keyID string, statement, keyPackage []byte, endorsements map[string][]byte, predecessor []byte, successions map[string][]byte) error {
	keyDir := filepath.Join(dir, DirArchive, keyID)
	if err := os.MkdirAll(filepath.Dir(keyDir), 0o755); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := os.Mkdir(keyDir, 0o755); err != nil {
		return fmt.Errorf("server: archive key %q: %w", keyID, err)
	}
	files := map[string][]byte{FileArchiveKeyPackage: keyPackage, FileStatement: statement}
	if predecessor != nil {
		files[FilePredecessor] = predecessor
	}
	for name, e := range endorsements {
		files[FileStatement+endorsementInfix+name] = e
	}
	for name, e := range successions {
		files[FileStatement+successionInfix+name] = e
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(keyDir, name), data, 0o644); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	return nil
}
