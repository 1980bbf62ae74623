package sqlstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/sqldb"
	"candor/internal/store"
	"candor/internal/store/storetest"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "candor.db")
	s, err := Open(context.Background(), path)
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

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

var t0 = time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)

// fill writes one of everything to s.
func fill(t *testing.T, s store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	inv := fmt.Sprint("inv-", n)
	dev := candor.DeviceID(fmt.Sprint("dev-", n))
	group := candor.GroupID(fmt.Sprint("group-", n))
	hash := sha256.Sum256([]byte("secret"))
	must(s.CreateInvitation(ctx, store.Invitation{ID: inv, User: "alice", SecretHash: hash[:], Created: t0, Expires: t0.Add(time.Hour)}))
	cert := []byte(fmt.Sprint("certificate ", n))
	fp := sha256.Sum256(cert)
	must(s.Enrol(ctx, inv, hash[:], t0, store.Device{ID: dev, User: "alice", Certificate: cert, Fingerprint: fp[:], EnrolledAt: t0}))
	must(s.AddKeyPackages(ctx, dev, []store.KeyPackage{{Ref: []byte(fmt.Sprint("ref ", n)), Data: []byte("kp"), Added: t0}}, nil))
	must(s.CreateGroup(ctx, store.Group{ID: group, Roster: []byte("roster"), Created: t0}, dev))
	_, err := s.Append(ctx, store.AppendRequest{
		Group:    group,
		Entry:    store.Entry{Commit: true, Sender: dev, Time: t0, Message: []byte(fmt.Sprint("commit ", n))},
		Roster:   []byte("roster 1"),
		Epoch:    1,
		Members:  []candor.DeviceID{dev},
		Welcomes: []store.Welcome{{ID: fmt.Sprint("w-", n), Device: dev, Data: []byte("welcome")}},
	})
	must(err)
	must(s.SetCursor(ctx, dev, group, 1))
}

// dump is what a store holds after fill(n) for each n.
type dump struct {
	Invitations []store.Invitation
	Devices     []store.Device
	Groups      []store.Membership
	Logs        [][]store.Entry
	Welcomes    [][]store.Welcome
}

func read(t *testing.T, s store.Store, ns ...int) dump {
	t.Helper()
	ctx := context.Background()
	var d dump
	for _, n := range ns {
		inv, err := s.Invitation(ctx, fmt.Sprint("inv-", n))
		if err != nil {
			t.Fatal(err)
		}
		d.Invitations = append(d.Invitations, inv)
		dev := candor.DeviceID(fmt.Sprint("dev-", n))
		gs, err := s.GroupsOf(ctx, dev)
		if err != nil {
			t.Fatal(err)
		}
		d.Groups = append(d.Groups, gs...)
		log, err := s.Log(ctx, candor.GroupID(fmt.Sprint("group-", n)), 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		d.Logs = append(d.Logs, log)
		ws, err := s.Welcomes(ctx, dev)
		if err != nil {
			t.Fatal(err)
		}
		d.Welcomes = append(d.Welcomes, ws)
	}
	var err error
	d.Devices, err = s.Devices(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "candor.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 1)
	fill(t, s, 2)
	want := read(t, s, 1, 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second reopening migrates nothing
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open %d: %v", i+2, err)
		}
		if diff := cmp.Diff(want, read(t, s, 1, 2)); diff != "" {
			t.Errorf("after reopening (-before +after):\n%s", diff)
		}
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

// TestTwoOpens: two Stores on one file, as candord serve and candord
// revoke have, see each other's writes and can both write.
func TestTwoOpens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s1, path := openTemp(t)
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	fill(t, s1, 1)
	fill(t, s2, 2)
	want := read(t, s1, 1, 2)
	if diff := cmp.Diff(want, read(t, s2, 1, 2)); diff != "" {
		t.Errorf("the second Store sees (-first +second):\n%s", diff)
	}
	// A revocation through the second is seen by the first at once.
	if err := s2.RevokeDevice(ctx, "dev-1", t0); err != nil {
		t.Fatal(err)
	}
	d, err := s1.Device(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Revoked() {
		t.Errorf("a revocation through another Store is not seen")
	}
}

// TestTwoProcesses writes from a child process and this one at once: each
// waits for the other's write lock, neither fails.
func TestTwoProcesses(t *testing.T) {
	const n = 100
	if path := os.Getenv("SQLSTORE_CHILD"); path != "" {
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range n {
			fill(t, s, 1000+i)
		}
		return
	}
	t.Parallel()
	s, path := openTemp(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestTwoProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SQLSTORE_CHILD="+path)
	out := new(strings.Builder)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		fill(t, s, i)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	ds, err := s.Devices(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2*n {
		t.Errorf("%d devices after two processes enrolled %d each", len(ds), n)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, dsn := range []string{"", "a\x00b", "postgres://localhost/candor", "postgresql://localhost/candor"} {
		if s, err := Open(ctx, dsn); !errors.Is(err, candor.ErrInvalid) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%q): %v, want ErrInvalid", dsn, err)
		}
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "no such dir", "candor.db")); err == nil {
		t.Errorf("Open in a missing directory succeeded")
	}
}

func TestRebind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		d    *dialect
		in   string
		want string
	}{
		{"sqlite", sqliteDialect, `SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = ? AND c = ?`},
		{"postgres", postgresDialect, `SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = $1 AND c = $2`},
		{"postgres quoted", postgresDialect, `SELECT '?', ? FROM t WHERE x = 'it''s ?' AND y = ?`, `SELECT '?', $1 FROM t WHERE x = 'it''s ?' AND y = $2`},
		{"postgres ten", postgresDialect, strings.Repeat("?,", 10), "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.rebind(tc.in); got != tc.want {
				t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestPostgresSchema checks the rewriting of the migrations for
// PostgreSQL: no SQLite-only word is left outside comments, and every
// serial column became an identity column.
func TestPostgresSchema(t *testing.T) {
	t.Parallel()
	ms, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		body, err := migrationFiles.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		comments := regexp.MustCompile(`--[^\n]*`)
		code := comments.ReplaceAllString(postgresDialect.schema.Replace(string(body)), "")
		for _, word := range []string{"BLOB", "STRICT", "INTEGER", "AUTOINCREMENT", "WITHOUT ROWID"} {
			if strings.Contains(code, word) {
				t.Errorf("%s for PostgreSQL still says %s", m, word)
			}
		}
		serials := strings.Count(comments.ReplaceAllString(string(body), ""), "INTEGER PRIMARY KEY")
		if got := strings.Count(code, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"); got != serials {
			t.Errorf("%s: %d identity columns for %d serial ones", m, got, serials)
		}
	}
}

// appendBench appends application entries to groups from parallel
// goroutines; each append holds its group's lock, as the server does.
func appendBench(b *testing.B, synchronous sqldb.Sync, groups int, parallel bool) {
	ctx := context.Background()
	s, err := openSQLite(ctx, filepath.Join(b.TempDir(), "candor.db"), synchronous)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	hash := sha256.Sum256([]byte("secret"))
	if err := s.CreateInvitation(ctx, store.Invitation{ID: "inv", User: "alice", SecretHash: hash[:], Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	fp := sha256.Sum256([]byte("cert"))
	if err := s.Enrol(ctx, "inv", hash[:], t0, store.Device{ID: "dev", User: "alice", Certificate: []byte("cert"), Fingerprint: fp[:], EnrolledAt: t0}); err != nil {
		b.Fatal(err)
	}
	type group struct {
		sync.Mutex
		id   candor.GroupID
		head uint64
	}
	gs := make([]*group, groups)
	for i := range gs {
		gs[i] = &group{id: candor.GroupID(fmt.Sprintf("group %03d", i))}
		if err := s.CreateGroup(ctx, store.Group{ID: gs[i].id, Roster: make([]byte, 2048), Created: t0}, "dev"); err != nil {
			b.Fatal(err)
		}
	}
	// A 300-byte PrivateMessage, unique by its counter.
	var counter atomic.Uint64
	appendOne := func(g *group) {
		msg := make([]byte, 300)
		copy(msg, strconv.FormatUint(counter.Add(1), 10))
		g.Lock()
		defer g.Unlock()
		seq, err := s.Append(ctx, store.AppendRequest{Group: g.id, PrevHead: g.head,
			Entry: store.Entry{Sender: "dev", Time: t0, Message: msg}})
		if err != nil {
			b.Error(err)
			return
		}
		g.head = seq
	}
	var next atomic.Uint64
	start := time.Now()
	if parallel {
		b.SetParallelism(groups) // goroutines: groups × GOMAXPROCS
		b.RunParallel(func(pb *testing.PB) {
			g := gs[next.Add(1)%uint64(groups)]
			for pb.Next() {
				appendOne(g)
			}
		})
	} else {
		for b.Loop() {
			appendOne(gs[0])
		}
	}
	b.ReportMetric(float64(counter.Load())/time.Since(start).Seconds(), "entries/s")
}

// BenchmarkAppend appends application messages to one group, one after the
// other: the latency of an append, in both synchronous modes (FULL, what
// Open uses: an fsync per append; NORMAL: durable across process crashes
// only).
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []sqldb.Sync{sqldb.Full, sqldb.Normal} {
		b.Run("synchronous="+string(mode), func(b *testing.B) { appendBench(b, mode, 1, false) })
	}
}

// BenchmarkAppendParallel appends from many goroutines to 100 groups: the
// throughput of the single writer.
func BenchmarkAppendParallel(b *testing.B) {
	for _, mode := range []sqldb.Sync{sqldb.Full, sqldb.Normal} {
		b.Run("synchronous="+string(mode), func(b *testing.B) { appendBench(b, mode, 100, true) })
	}
}

// BenchmarkLog reads pages of a 1,000-entry log from random positions, as
// catching-up devices do: limit=1 is the live case (one new entry), where
// the cost of each statement's preparation shows most; limit=100 a page.
func BenchmarkLog(b *testing.B) {
	ctx := context.Background()
	s, err := openSQLite(ctx, filepath.Join(b.TempDir(), "candor.db"), sqldb.Normal)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	hash := sha256.Sum256([]byte("secret"))
	if err := s.CreateInvitation(ctx, store.Invitation{ID: "inv", User: "alice", SecretHash: hash[:], Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	fp := sha256.Sum256([]byte("cert"))
	if err := s.Enrol(ctx, "inv", hash[:], t0, store.Device{ID: "dev", User: "alice", Certificate: []byte("cert"), Fingerprint: fp[:], EnrolledAt: t0}); err != nil {
		b.Fatal(err)
	}
	gid := candor.GroupID("group")
	if err := s.CreateGroup(ctx, store.Group{ID: gid, Roster: make([]byte, 2048), Created: t0}, "dev"); err != nil {
		b.Fatal(err)
	}
	const entries = 1000
	var head uint64
	for i := range entries {
		msg := make([]byte, 300)
		copy(msg, strconv.Itoa(i))
		if head, err = s.Append(ctx, store.AppendRequest{Group: gid, PrevHead: head,
			Entry: store.Entry{Sender: "dev", Time: t0, Message: msg}}); err != nil {
			b.Fatal(err)
		}
	}
	for _, limit := range []int{1, 100} {
		b.Run("limit="+strconv.Itoa(limit), func(b *testing.B) {
			after := uint64(0)
			for b.Loop() {
				after = (after + 7919) % (entries - uint64(limit))
				got, err := s.Log(ctx, gid, after, limit)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != limit {
					b.Fatalf("Log(%d, %d): %d entries", after, limit, len(got))
				}
			}
		})
	}
}

// TestPreparedStatements checks that the hot paths run on prepared
// statements once warm: a second round of the same calls runs no query
// unprepared, and gives the same answers.
func TestPreparedStatements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openTemp(t)
	hash := sha256.Sum256([]byte("secret"))
	if err := s.CreateInvitation(ctx, store.Invitation{ID: "inv", User: "alice", SecretHash: hash[:], Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	fp := sha256.Sum256([]byte("cert"))
	if err := s.Enrol(ctx, "inv", hash[:], t0, store.Device{ID: "dev", User: "alice", Certificate: []byte("cert"), Fingerprint: fp[:], EnrolledAt: t0}); err != nil {
		t.Fatal(err)
	}
	gid := candor.GroupID("group")
	if err := s.CreateGroup(ctx, store.Group{ID: gid, Roster: []byte("roster"), Created: t0}, "dev"); err != nil {
		t.Fatal(err)
	}
	var head uint64
	round := func(i int) {
		t.Helper()
		msg := []byte("message " + strconv.Itoa(i))
		seq, err := s.Append(ctx, store.AppendRequest{Group: gid, PrevHead: head, Roster: []byte("roster"), Epoch: candor.Epoch(i),
			Members: []candor.DeviceID{"dev"}, Entry: store.Entry{Sender: "dev", Time: t0, Message: msg}})
		if err != nil {
			t.Fatal(err)
		}
		head = seq
		// A replay, a stale head.
		var replay *store.ReplayError
		if _, err := s.Append(ctx, store.AppendRequest{Group: gid, PrevHead: head, Entry: store.Entry{Sender: "dev", Time: t0, Message: msg}}); !errors.As(err, &replay) || replay.Seq != seq {
			t.Fatalf("replayed append: %v", err)
		}
		if _, err := s.Append(ctx, store.AppendRequest{Group: gid, PrevHead: head - 1, Entry: store.Entry{Sender: "dev", Time: t0, Message: []byte("stale")}}); !errors.Is(err, candor.ErrConflict) {
			t.Fatalf("stale append: %v", err)
		}
		if got, err := s.Log(ctx, gid, seq-1, 10); err != nil || len(got) != 1 || got[0].Seq != seq || string(got[0].Message) != string(msg) {
			t.Fatalf("Log: %v, %v", got, err)
		}
		if got, err := s.EntryOf(ctx, gid, msg); err != nil || got != seq {
			t.Fatalf("EntryOf: %d, %v", got, err)
		}
		if g, err := s.Group(ctx, gid); err != nil || g.Head != seq {
			t.Fatalf("Group: %+v, %v", g, err)
		}
		if ms, err := s.Members(ctx, gid); err != nil || len(ms) != 1 || ms[0] != "dev" {
			t.Fatalf("Members: %v, %v", ms, err)
		}
		if d, err := s.DeviceByFingerprint(ctx, fp[:]); err != nil || d.ID != "dev" {
			t.Fatalf("DeviceByFingerprint: %+v, %v", d, err)
		}
		if d, err := s.Device(ctx, "dev"); err != nil || d.ID != "dev" {
			t.Fatalf("Device: %+v, %v", d, err)
		}
		if err := s.SetCursor(ctx, "dev", gid, seq); err != nil {
			t.Fatal(err)
		}
		if gs, err := s.GroupsOf(ctx, "dev"); err != nil || len(gs) != 1 || gs[0].Cursor != seq {
			t.Fatalf("GroupsOf: %+v, %v", gs, err)
		}
	}
	unprepared := func() int64 { return s.ws.unprepared.Load() + s.rs.unprepared.Load() }
	round(1)
	if unprepared() == 0 {
		t.Error("no query was met unprepared in the first round")
	}
	warm := unprepared()
	for i := 2; i <= 4; i++ {
		round(i)
	}
	if got := unprepared() - warm; got != 0 {
		t.Errorf("%d queries ran unprepared once warm", got)
	}
}
