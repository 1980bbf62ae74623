package devstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"candor"
	"candor/internal/devkey"
	"candor/internal/sqldb"
)

// snapshot is every file of a directory, by name.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		out[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNothingInTheClear writes a marker into every value the Store seals
// and searches the database, its write-ahead log and its shared-memory
// file for it, while the Store is open and after it is closed.
func TestNothingInTheClear(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, filepath.Join(dir, "device.db"), testKey)
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte(rand.Text())
	with := func(what string) []byte { return append([]byte(what+" "), marker...) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Unix(1_800_000_000, 0)
	must(s.SaveGroup(ctx, "g", 1, with("state")))
	must(s.SaveRatchet(ctx, "g", 1, 2, with("ratchet")))
	must(s.SavePending(ctx, "g", with("commit"), with("pending state")))
	must(s.SaveKeyPackage(ctx, []byte("ref"), with("key package")))
	must(s.AddConversation(ctx, Conversation{Group: "g", Name: string(with("name")), Created: t0}))
	must(s.Advance(ctx, Progress{Group: "g", Seq: 1, Message: &Message{
		SenderUser: candor.UserID(with("user")), SenderDevice: candor.DeviceID(with("device")), Time: t0, Text: string(with("received")),
	}}, t0))
	_, err = s.AddOutgoing(ctx, Message{Group: "g", SenderUser: "me", SenderDevice: "d", Time: t0, Text: string(with("outgoing"))})
	must(err)
	search := func(when string) {
		t.Helper()
		files := snapshot(t, dir)
		if _, ok := files[filepath.Join(dir, "device.db-wal")]; !ok && when == "open" {
			t.Error("no write-ahead log while open: the search would miss nothing there")
		}
		for path, b := range files {
			if bytes.Contains(b, marker) {
				t.Errorf("%s: the marker is in %s", when, path)
			}
		}
	}
	search("open")
	must(s.Close())
	search("closed")
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "device.db")
	s, err := Open(ctx, path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	other, err := devkey.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, other); !errors.Is(err, devkey.ErrWrongKey) || !errors.Is(err, candor.ErrPermission) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}
	// The database file is as it was. (SQLite may leave an empty log or
	// shared-memory file behind; they hold nothing.)
	after := snapshot(t, dir)
	if !bytes.Equal(before[path], after[path]) {
		t.Error("opening with the wrong key changed the database")
	}
	for name, b := range after {
		if _, ok := before[name]; !ok && name != path && len(b) != 0 && filepath.Ext(name) != ".db-shm" {
			t.Errorf("opening with the wrong key left %s (%d bytes)", name, len(b))
		}
	}
	s, err = Open(ctx, path, testKey)
	if err != nil {
		t.Fatalf("Open with the right key afterwards: %v", err)
	}
	defer s.Close()
	check(t, s, filled())
}

// TestUnencryptedRefused: a database written before encryption (schema
// version 3) is refused with a clear error and left alone.
func TestUnencryptedRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "device.db")
	old := fstest.MapFS{}
	for _, name := range []string{"0001_init.sql", "0002_history.sql", "0003_outgoing_wire.sql"} {
		b, err := migrationFiles.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		old["migrations/"+name] = &fstest.MapFile{Data: b}
	}
	db, err := sqldb.OpenSQLite(ctx, path, sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqldb.Migrate(ctx, db.W, old, "migrations", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.ExecContext(ctx, `INSERT INTO conversations (group_id, created) VALUES (x'01', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.ExecContext(ctx, `
		INSERT INTO messages (group_id, seq, sender_user, sender_device, time, text, state)
		VALUES (x'01', 1, 'bob', 'd2', 0, 'in the clear', 'received')`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, path, testKey)
	if !errors.Is(err, ErrUnencrypted) || !errors.Is(err, candor.ErrInvalid) {
		t.Fatalf("Open of an unencrypted database: %v, want ErrUnencrypted", err)
	}
	db, err = sqldb.OpenSQLite(ctx, path, sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version int
	if err := db.R.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_version`).Scan(&version); err != nil || version != 3 {
		t.Errorf("schema version after the refusal: %d, %v; want 3, untouched", version, err)
	}
}

// TestMovedValuesRefused moves sealed values between rows and columns, as
// someone with the file but not the key could, and checks that reading
// them fails instead of returning another row's data.
func TestMovedValuesRefused(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	swap := func(table, column, row1, row2 string) func(context.Context, *testing.T, *Store) {
		return func(ctx context.Context, t *testing.T, s *Store) {
			t.Helper()
			var v1, v2 []byte
			get := `SELECT ` + column + ` FROM ` + table + ` WHERE `
			if err := s.w.QueryRowContext(ctx, get+row1).Scan(&v1); err != nil {
				t.Fatal(err)
			}
			if err := s.w.QueryRowContext(ctx, get+row2).Scan(&v2); err != nil {
				t.Fatal(err)
			}
			set := `UPDATE ` + table + ` SET ` + column + ` = ? WHERE `
			if _, err := s.w.ExecContext(ctx, set+row1, v2); err != nil {
				t.Fatal(err)
			}
			if _, err := s.w.ExecContext(ctx, set+row2, v1); err != nil {
				t.Fatal(err)
			}
		}
	}
	exec := func(q string) func(context.Context, *testing.T, *Store) {
		return func(ctx context.Context, t *testing.T, s *Store) {
			t.Helper()
			if _, err := s.w.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		change func(context.Context, *testing.T, *Store)
		read   func(context.Context, *Store) error
	}{
		{
			name:   "snapshots swapped between groups",
			change: swap("groups", "state", `group_id = CAST('plain' AS BLOB)`, `group_id = CAST('busy' AS BLOB)`),
			read:   loadGroup("plain"),
		},
		{
			name:   "snapshot under another epoch",
			change: exec(`UPDATE groups SET epoch = epoch + 1 WHERE group_id = CAST('plain' AS BLOB)`),
			read:   loadGroup("plain"),
		},
		{
			name:   "pending commit and state swapped",
			change: exec(`UPDATE groups SET pending_commit = pending_state, pending_state = pending_commit WHERE group_id = CAST('busy' AS BLOB)`),
			read:   loadGroup("busy"),
		},
		{
			name: "pending commit moved to another group",
			change: exec(`UPDATE groups SET (pending_commit, pending_state) =
				(SELECT pending_commit, pending_state FROM groups WHERE group_id = CAST('busy' AS BLOB)) WHERE group_id = CAST('plain' AS BLOB)`),
			read: loadGroup("plain"),
		},
		{
			name:   "ratchet records swapped between leaves",
			change: swap("ratchets", "record", `leaf = 0`, `leaf = 3`),
			read:   loadGroup("busy"),
		},
		{
			name:   "ratchet record under another epoch",
			change: exec(`UPDATE ratchets SET epoch = epoch - 1 WHERE leaf = 3`),
			read:   loadGroup("busy"),
		},
		{
			name:   "key package secrets swapped",
			change: swap("key_packages", "secrets", `ref = CAST('ref' AS BLOB)`, `ref = CAST('ref2' AS BLOB)`),
			read: func(ctx context.Context, s *Store) error {
				_, err := s.LoadKeyPackage(ctx, []byte("ref2"))
				return err
			},
		},
		{
			name:   "conversation names swapped",
			change: swap("conversations", "name", `group_id = CAST('c1' AS BLOB)`, `group_id = CAST('c2' AS BLOB)`),
			read: func(ctx context.Context, s *Store) error {
				_, err := s.Conversation(ctx, "c2")
				return err
			},
		},
		{
			name:   "message bodies swapped",
			change: swap("messages", "body", `seq = 1`, `seq = 2`),
			read:   messages("c1"),
		},
		{
			name:   "message moved to another conversation",
			change: exec(`UPDATE messages SET group_id = CAST('c2' AS BLOB) WHERE seq = 1`),
			read:   messages("c2"),
		},
		{
			name:   "message under another id",
			change: exec(`UPDATE messages SET id = id + 100 WHERE seq = 1`),
			read:   messages("c1"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, _ := openTemp(t)
			fill(t, s)
			if err := s.SaveKeyPackage(ctx, []byte("ref2"), []byte("other secrets")); err != nil {
				t.Fatal(err)
			}
			for _, g := range []candor.GroupID{"c1", "c2"} {
				if err := s.AddConversation(ctx, Conversation{Group: g, Name: "name of " + string(g), Created: t0}); err != nil {
					t.Fatal(err)
				}
			}
			for seq := range uint64(2) {
				m := &Message{SenderUser: "bob", SenderDevice: "d2", Time: t0, Text: "text"}
				if err := s.Advance(ctx, Progress{Group: "c1", Seq: seq + 1, Message: m}, t0); err != nil {
					t.Fatal(err)
				}
			}
			if err := tt.read(ctx, s); err != nil {
				t.Fatalf("before the change: %v", err)
			}
			// Raw SQL on the writer: what anyone with the file can do.
			tt.change(ctx, t, s)
			if err := tt.read(ctx, s); !errors.Is(err, devkey.ErrUnreadable) {
				t.Errorf("after the change: %v, want devkey.ErrUnreadable", err)
			}
		})
	}
}

func loadGroup(g candor.GroupID) func(context.Context, *Store) error {
	return func(ctx context.Context, s *Store) error {
		_, err := s.LoadGroup(ctx, g)
		return err
	}
}

func messages(g candor.GroupID) func(context.Context, *Store) error {
	return func(ctx context.Context, s *Store) error {
		_, err := s.Messages(ctx, g)
		return err
	}
}

// TestBodyBytes pins the body encoding by hand.
func TestBodyBytes(t *testing.T) {
	t.Parallel()
	got := encodeBody(Message{SenderUser: "bob", SenderDevice: "d2", Text: "hi"})
	want := []byte{
		0x01,                // version
		0x03, 'b', 'o', 'b', // user
		0x02, 'd', '2', // device
		'h', 'i', // text, to the end
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encodeBody = %x, want %x", got, want)
	}
}

func FuzzDecodeBody(f *testing.F) {
	f.Add(encodeBody(Message{SenderUser: "bob", SenderDevice: "d2", Text: "hi"}))
	f.Add(encodeBody(Message{}))
	f.Add([]byte{0x01, 0x80, 0x00, 0x00})             // a length in a longer form than needed
	f.Add([]byte{0x01, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a length past the end
	f.Add([]byte{0x02, 0x00, 0x00})                   // another version
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		user, device, text, err := decodeBody(b)
		if err != nil {
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// What decodes encodes back to the same bytes.
		if again := encodeBody(Message{SenderUser: user, SenderDevice: device, Text: text}); !bytes.Equal(again, b) {
			t.Fatalf("%x decoded to (%q, %q, %q), which encodes to %x", b, user, device, text, again)
		}
	})
}

// plainBox seals nothing: the baseline BenchmarkEncryption compares with.
type plainBox struct{}

func (plainBox) Seal(_, plaintext []byte) []byte       { return append([]byte{}, plaintext...) }
func (plainBox) Open(_, sealed []byte) ([]byte, error) { return sealed, nil }

// BenchmarkEncryption is what sealing costs on the Store's hot paths,
// against the same Store sealing nothing, in one run: the ratchet record
// written for every message received (and every block of messages sent),
// the history row of every message received, and reading a conversation of
// 100 messages back; and the snapshot of a 1,000-member group written at
// every epoch change. Both synchronous modes: FULL is what Open uses, where
// the fsync hides the rest; NORMAL shows the work around it.
func BenchmarkEncryption(b *testing.B) {
	boxes := []struct {
		name string
		box  sealer
	}{{"aes-256-gcm", testBox(b)}, {"none", plainBox{}}}
	ctx := context.Background()
	t0 := time.Unix(1_800_000_000, 0)
	text := strings.Repeat("a message of a usual length, ", 7) // 203 bytes
	snapshot := bytes.Repeat([]byte{0x5a}, 2_800_000)          // a 1,000-member group's
	for _, mode := range []sqldb.Sync{sqldb.Full, sqldb.Normal} {
		for _, bx := range boxes {
			suffix := "/synchronous=" + string(mode) + "/sealing=" + bx.name
			b.Run("op=SaveRatchet"+suffix, func(b *testing.B) {
				s, err := open(ctx, filepath.Join(b.TempDir(), "device.db"), mode, bx.box)
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
			// SQLite skips overflow pages whose bytes an update leaves
			// as they were; a sealed snapshot, under a fresh nonce, never
			// has any. So the clear baseline is measured twice: with a
			// snapshot that changes nowhere, its best case, and with one
			// that changes in every page, as a sealed one does.
			for _, changed := range []string{"nowhere", "every-page"} {
				b.Run("op=SaveGroup/bytes=2800000/changed="+changed+suffix, func(b *testing.B) {
					if changed == "nowhere" && bx.name != "none" {
						b.Skip("a sealed snapshot changes in every page")
					}
					s, err := open(ctx, filepath.Join(b.TempDir(), "device.db"), mode, bx.box)
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					state := bytes.Clone(snapshot)
					for i := 0; b.Loop(); i++ {
						if changed == "every-page" {
							for j := 0; j < len(state); j += 1024 {
								state[j]++
							}
						}
						if err := s.SaveGroup(ctx, "g", candor.Epoch(i), state); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			b.Run("op=Advance"+suffix, func(b *testing.B) {
				s, err := open(ctx, filepath.Join(b.TempDir(), "device.db"), mode, bx.box)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				m := &Message{SenderUser: "bob", SenderDevice: "d2", Time: t0, Text: text}
				for i := 0; b.Loop(); i++ {
					if err := s.Advance(ctx, Progress{Group: "g", Seq: uint64(i + 1), Message: m}, t0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	for _, bx := range boxes {
		b.Run("op=Messages/n=100/sealing="+bx.name, func(b *testing.B) {
			s, err := open(ctx, filepath.Join(b.TempDir(), "device.db"), sqldb.Normal, bx.box)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			m := &Message{SenderUser: "bob", SenderDevice: "d2", Time: t0, Text: text}
			for seq := range uint64(100) {
				if err := s.Advance(ctx, Progress{Group: "g", Seq: seq + 1, Message: m}, t0); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				ms, err := s.Messages(ctx, "g")
				if err != nil || len(ms) != 100 || ms[99].Text != text {
					b.Fatalf("Messages: %d, %v", len(ms), err)
				}
			}
		})
	}
}
