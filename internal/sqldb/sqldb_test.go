package sqldb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"candor"
)

// schema is a two-step migration history for the tests.
var schema = fstest.MapFS{
	"m/0001_init.sql":  {Data: []byte(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB NOT NULL) STRICT;`)},
	"m/0002_index.sql": {Data: []byte(`CREATE INDEX notes_body ON notes (body);`)},
}

func open(t *testing.T, path string, sync Sync) *SQLite {
	t.Helper()
	db, err := OpenSQLite(context.Background(), path, sync)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := Migrate(context.Background(), db.W, schema, "m", nil); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		sync Sync
		want string
	}{{Normal, "1"}, {Full, "2"}} {
		db := open(t, filepath.Join(t.TempDir(), "x.db"), tc.sync)
		for pool, want := range map[string]map[string]string{
			"writer": {"journal_mode": "wal", "synchronous": tc.want, "foreign_keys": "1", "busy_timeout": "5000"},
			"reader": {"journal_mode": "wal", "query_only": "1", "busy_timeout": "5000"},
		} {
			conn := db.W
			if pool == "reader" {
				conn = db.R
			}
			for pragma, w := range want {
				var got string
				if err := conn.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != w {
					t.Errorf("synchronous=%s %s: PRAGMA %s = %s, want %s", tc.sync, pool, pragma, got, w)
				}
			}
		}
		if _, err := db.R.ExecContext(ctx, `INSERT INTO notes (body) VALUES (x'00')`); err == nil {
			t.Errorf("a reader connection could write")
		}
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	db := open(t, path, Normal)
	// Applied once: migrating again changes nothing and does not fail.
	if err := Migrate(ctx, db.W, schema, "m", nil); err != nil {
		t.Fatalf("migrating twice: %v", err)
	}
	var n int
	if err := db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_version`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("schema_version holds %d rows (%v), want 2", n, err)
	}
	// A database newer than the program is refused.
	if _, err := db.W.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (3)`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db.W, schema, "m", nil); !errors.Is(err, candor.ErrInvalid) {
		t.Fatalf("migrating a newer database: %v, want ErrInvalid", err)
	}
	// Numbering must start at 1 and have no gap; a failing migration
	// leaves nothing behind.
	fresh := open(t, filepath.Join(t.TempDir(), "y.db"), Normal)
	for name, files := range map[string]fstest.MapFS{
		"gap":    {"m/0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER) STRICT;`)}, "m/0003_c.sql": {Data: []byte(`SELECT 1;`)}},
		"broken": {"m/0001_init.sql": schema["m/0001_init.sql"], "m/0002_index.sql": schema["m/0002_index.sql"], "m/0003_bad.sql": {Data: []byte(`CREATE TABLE a (x INTEGER) STRICT; NOT SQL;`)}},
	} {
		if err := Migrate(ctx, fresh.W, files, "m", nil); err == nil {
			t.Errorf("%s migrations were applied", name)
		}
	}
	var tables int
	if err := fresh.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'a'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("a failed migration left table a behind (%d, %v)", tables, err)
	}
}

func TestPaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"with space.db", "query?x=1.db", "hash#frag.db", "percent%20.db"} {
		path := filepath.Join(dir, name)
		db := open(t, path, Normal)
		if _, err := db.W.Exec(`INSERT INTO notes (body) VALUES (x'01')`); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%q: the file is not where the path says: %v", name, err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%q: mode %o, want 600", name, perm)
		}
	}
	for _, bad := range []string{"", "nul\x00.db", filepath.Join(dir, "missing", "x.db")} {
		if db, err := OpenSQLite(context.Background(), bad, Normal); err == nil {
			db.Close()
			t.Errorf("OpenSQLite(%q) succeeded", bad)
		}
	}
}
