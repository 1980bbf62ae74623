package devstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"modernc.org/sqlite"

	"candor"
	"candor/internal/devkey"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
	"candor/internal/sqldb"
)

// testKey is the storage key of the tests' databases: fixed, so that the
// crash test's child process opens its parent's database.
var testKey = devkey.Key(sha256.Sum256([]byte("devstore test key")))

func testBox(t testing.TB) *devkey.Sealer {
	t.Helper()
	box, err := devkey.NewSealer(testKey, purpose)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "device.db")
	s, err := Open(context.Background(), path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, path
}

func TestStoreContract(t *testing.T) {
	t.Parallel()
	mlsxtest.TestStore(t, func(t *testing.T) mlsx.Store {
		s, _ := openTemp(t)
		return s
	})
}

// fill writes one of everything to s; filled is what LoadGroup then finds.
func fill(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SaveGroup(ctx, "plain", 4, []byte("state 4")))
	must(s.SaveGroup(ctx, "busy", 9, []byte("state 9")))
	must(s.SaveRatchet(ctx, "busy", 9, 0, []byte("leaf 0")))
	must(s.SaveRatchet(ctx, "busy", 9, 3, []byte("leaf 3")))
	must(s.SavePending(ctx, "busy", []byte("commit"), []byte("state 10")))
	must(s.SaveKeyPackage(ctx, []byte("ref"), []byte("secrets")))
}

func filled() map[candor.GroupID]mlsx.StoredGroup {
	return map[candor.GroupID]mlsx.StoredGroup{
		"plain": {Epoch: 4, State: []byte("state 4"), Ratchets: map[uint32]mlsx.RatchetRecord{}},
		"busy": {
			Epoch: 9,
			State: []byte("state 9"),
			Ratchets: map[uint32]mlsx.RatchetRecord{
				0: {Epoch: 9, Record: []byte("leaf 0")},
				3: {Epoch: 9, Record: []byte("leaf 3")},
			},
			Pending: &mlsx.PendingState{Commit: []byte("commit"), State: []byte("state 10")},
		},
	}
}

func check(t *testing.T, s *Store, want map[candor.GroupID]mlsx.StoredGroup) {
	t.Helper()
	ctx := context.Background()
	for id, w := range want {
		got, err := s.LoadGroup(ctx, id)
		if err != nil {
			t.Fatalf("LoadGroup(%s): %v", id, err)
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("group %s (-want +got):\n%s", id, diff)
		}
	}
	secrets, err := s.LoadKeyPackage(ctx, []byte("ref"))
	if err != nil || string(secrets) != "secrets" {
		t.Errorf("LoadKeyPackage: %q, %v", secrets, err)
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "device.db")
	s, err := Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s)
	want := filled()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second open migrates nothing
		s, err := Open(ctx, path, testKey)
		if err != nil {
			t.Fatalf("open %d: %v", i+2, err)
		}
		check(t, s, want)
		var versions []int
		rows, err := s.r.QueryContext(ctx, `SELECT version FROM schema_version ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			versions = append(versions, v)
		}
		rows.Close()
		ms, _ := fs.Glob(migrationFiles, "migrations/*.sql")
		if len(versions) != len(ms) || versions[len(versions)-1] != len(ms) {
			t.Errorf("schema_version holds %v, want 1 to %d", versions, len(ms))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %o, want 600", perm)
	}
}

// TestSurvivesProcessCrash writes from a child process that kills itself
// with SIGKILL without closing anything, then finds everything: what the
// adapter's generation reservation relies on. (Power loss is another matter;
// see the package comment.)
func TestSurvivesProcessCrash(t *testing.T) {
	if path := os.Getenv("DEVSTORE_CRASH_CHILD"); path != "" {
		s, err := Open(context.Background(), path, testKey)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fill(t, s)
		// Die the hard way: no Close, no deferred functions, no checkpoint.
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "device.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesProcessCrash$")
	cmd.Env = append(os.Environ(), "DEVSTORE_CRASH_CHILD="+path)
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Logf("no write-ahead log left behind: %v", err)
	}
	s, err := Open(context.Background(), path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(t, s, filled())
}

// BenchmarkSaveRatchet is the write on every message received and every
// block of messages sent, in both synchronous modes: NORMAL (durable across
// process crashes) and FULL (what Open uses: an fsync per commit; durable
// across power loss too),
// and FULL with fdatasync(2) in place of fsync(2) (a process-wide switch of
// the driver, see sqlite.Fdatasync).
func BenchmarkSaveRatchet(b *testing.B) {
	for _, mode := range []string{string(sqldb.Normal), string(sqldb.Full), string(sqldb.Full) + ",fdatasync"} {
		b.Run("synchronous="+mode, func(b *testing.B) {
			mode, datasync := strings.CutSuffix(mode, ",fdatasync")
			if datasync {
				prev, err := sqlite.Fdatasync(true)
				if err != nil {
					b.Skip(err)
				}
				defer sqlite.Fdatasync(prev)
			}
			ctx := context.Background()
			s, err := open(ctx, filepath.Join(b.TempDir(), "device.db"), sqldb.Sync(mode), testBox(b))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.SaveGroup(ctx, "g", 1, make([]byte, 4096)); err != nil {
				b.Fatal(err)
			}
			record := make([]byte, 25)
			for i := 0; b.Loop(); i++ {
				record[24] = byte(i)
				if err := s.SaveRatchet(ctx, "g", 1, uint32(i%2), record); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSnapshot is the writes of an epoch change with a snapshot the
// size of a 1,000-member group's (2.8 MB with mls-go v1.6.0): SavePending
// when this device commits, SaveGroup when the commit is confirmed or
// another member's is processed.
func BenchmarkSnapshot(b *testing.B) {
	for _, mode := range []sqldb.Sync{sqldb.Normal, sqldb.Full} {
		ctx := context.Background()
		state := bytes.Repeat([]byte{0x5a}, 2_800_000)
		commit := bytes.Repeat([]byte{0xa5}, 120_000)
		b.Run("op=SaveGroup/synchronous="+string(mode), func(b *testing.B) {
			s, err := open(ctx, filepath.Join(b.TempDir(), "device.db"), sqldb.Sync(mode), testBox(b))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for i := 0; b.Loop(); i++ {
				if err := s.SaveGroup(ctx, "g", candor.Epoch(i), state); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("op=SavePending/synchronous="+string(mode), func(b *testing.B) {
			s, err := open(ctx, filepath.Join(b.TempDir(), "device.db"), sqldb.Sync(mode), testBox(b))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.SaveGroup(ctx, "g", 1, state); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := s.SavePending(ctx, "g", commit, state); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
