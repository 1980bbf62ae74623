package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"candor"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

// chainFolder is a data folder's archive directory with a first key and
// the keys that follow it, each written as the custody tool writes them.
type chainFolder struct {
	dir  string
	ca   *pki.CA
	keys []ceremonytest.Archive
}

func newChainFolder(t *testing.T) *chainFolder {
	t.Helper()
	ca, err := pki.NewCA("Example Bank", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f := &chainFolder{dir: t.TempDir(), ca: ca}
	first := ceremonytest.Hold(t, ca, time.Now())
	if err := PublishArchive(f.dir, first.Statement.KeyID(), first.Statement.Bytes(), first.Statement.KeyPackage(), first.Endorsements); err != nil {
		t.Fatal(err)
	}
	f.keys = append(f.keys, first)
	return f
}

// succeed adds a key named id that succeeds prev, with n successions.
func (f *chainFolder) succeed(t *testing.T, prev ceremonytest.Archive, id string, n int) ceremonytest.Archive {
	t.Helper()
	next := ceremonytest.Succeed(t, f.ca, time.Now(), id, prev, n)
	st := next.Statement
	if err := PublishSuccessor(f.dir, id, st.Bytes(), st.KeyPackage(), next.Endorsements, prev.Statement.Bytes(), next.Successions); err != nil {
		t.Fatal(err)
	}
	f.keys = append(f.keys, next)
	return next
}

// chain returns the key ids of LoadArchive's chain, current first.
func chain(t *testing.T, a *Archive) []string {
	t.Helper()
	var ids []string
	for ; a != nil; a = a.Previous {
		info, err := mlsx.ParseKeyPackage(a.KeyPackage, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := info.Credential.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		arch, err := pki.ArchiveOf(cert)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, arch.Key)
	}
	return ids
}

// LoadArchive follows the chain the predecessor files describe, stops
// before a successor no previous custodian has endorsed yet, and refuses
// a folder that is not one chain, saying why.
func TestLoadArchiveChain(t *testing.T) {
	t.Parallel()
	f := newChainFolder(t)
	first := f.keys[0]
	second := f.succeed(t, first, "k2", 2)

	a, err := LoadArchive(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(chain(t, a), " "); got != "k2 test" {
		t.Errorf("chain %q, want k2 test", got)
	}
	if len(a.Successions) != 2 || len(a.Endorsements) != 3 || a.Previous.Successions != nil || len(a.Pending) != 0 {
		t.Errorf("current key: %d successions, %d endorsements, pending %v; first key %d successions",
			len(a.Successions), len(a.Endorsements), a.Pending, len(a.Previous.Successions))
	}

	// A third key, not yet succeeded: pending, and k2 stays current.
	f.succeed(t, second, "k3", 0)
	if a, err = LoadArchive(f.dir); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(chain(t, a), " "); got != "k2 test" || strings.Join(a.Pending, " ") != "k3" {
		t.Errorf("chain %q, pending %v; want k2 test, pending k3", got, a.Pending)
	}

	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, dir string)
		want    string
	}{
		{"two first keys", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, DirArchive, "k2", FilePredecessor))
		}, "2 archive keys that succeed none"},
		{"two successors of one key", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, DirArchive, "k2", FilePredecessor), filepath.Join(dir, DirArchive, "k3", FilePredecessor))
		}, "all succeed test"},
		{"an unknown predecessor", func(t *testing.T, dir string) {
			h := sha256.Sum256([]byte("no such statement"))
			writeFile(t, filepath.Join(dir, DirArchive, "k3", FilePredecessor), []byte(hex.EncodeToString(h[:])+"\n"))
		}, "which no archive key"},
		{"a malformed predecessor", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, DirArchive, "k3", FilePredecessor), []byte("k2\n"))
		}, "not the hex SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			copyTree(t, f.dir, dir)
			tc.breakIt(t, dir)
			_, err := LoadArchive(dir)
			if !errors.Is(err, candor.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadArchive: %v; want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, b)
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// The member-list rule across a rotation: one archive key, the current
// one or a previous one the group already held; a previous key never
// joins, two keys are never members together, and a key the server does
// not hold is no archive at all.
func TestRequireArchiveAcrossRotation(t *testing.T) {
	t.Parallel()
	cur, prev := candor.DeviceID("archive-new"), candor.DeviceID("archive-old")
	s := &Server{archive: &archiveState{
		archiveKey: archiveKey{device: cur, key: "new"},
		previous:   []archiveKey{{device: prev, key: "old"}},
	}}
	for _, tc := range []struct {
		name          string
		before, after []candor.DeviceID
		ok            bool
	}{
		{"the current key stays", []candor.DeviceID{"a", cur}, []candor.DeviceID{"a", "b", cur}, true},
		{"a previous key stays", []candor.DeviceID{"a", prev}, []candor.DeviceID{"a", "b", prev}, true},
		{"replaced by the current key", []candor.DeviceID{"a", prev}, []candor.DeviceID{"a", cur}, true},
		{"a first commit adds the current key", []candor.DeviceID{"a"}, []candor.DeviceID{"a", "b", cur}, true},
		{"a first commit adds a previous key", []candor.DeviceID{"a"}, []candor.DeviceID{"a", "b", prev}, false},
		{"the current key replaced by a previous one", []candor.DeviceID{"a", cur}, []candor.DeviceID{"a", prev}, false},
		{"both keys", []candor.DeviceID{"a", prev}, []candor.DeviceID{"a", prev, cur}, false},
		{"the previous key removed alone", []candor.DeviceID{"a", prev}, []candor.DeviceID{"a"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := s.requireArchive(tc.after, tc.before)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, errPolicy) {
				t.Fatalf("requireArchive: %v; want ok %v", err, tc.ok)
			}
		})
	}
}

// GET /v1/archive serves the current key and the chain back to the
// first, each with its endorsements and successions.
func TestArchiveServesChain(t *testing.T) {
	t.Parallel()
	f := newChainFolder(t)
	f.succeed(t, f.keys[0], "k2", 2)
	a, err := LoadArchive(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	pub := publishedChain(a)
	if !bytes.Equal(pub.Statement, f.keys[1].Statement.Bytes()) || len(pub.Successions) != 2 ||
		len(pub.Previous) != 1 || !bytes.Equal(pub.Previous[0].Statement, f.keys[0].Statement.Bytes()) ||
		len(pub.Previous[0].Endorsements) != 3 || len(pub.Previous[0].Successions) != 0 {
		t.Errorf("published chain: current %d bytes, %d successions; %d previous", len(pub.Statement), len(pub.Successions), len(pub.Previous))
	}
}
