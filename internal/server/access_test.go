package server

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
	"candor/api"
	"candor/internal/access"
	"candor/internal/sqldb"
	"candor/internal/translog"
)

// testRequest is a valid opening request for case, with a fresh opening
// key.
func testRequest(t testing.TB, caseID string, groups []candor.GroupID, users []candor.UserID) *access.Request {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &access.Request{
		Case: caseID, Reason: "an inquiry", Requester: "Compliance", Created: time.Unix(1790000000, 0).UTC(),
		Scope:      access.Scope{Groups: groups, Users: users, From: time.Unix(1780000000, 0).UTC(), To: time.Unix(1790000000, 0).UTC()},
		OpeningKey: k.PublicKey().Bytes(),
	}
}

// custodyApproval is bytes with internal/custody's approval header, which
// is all the server reads of one.
func custodyApproval(id access.RequestID, slot int) []byte {
	b := append([]byte("capp\x01"), make([]byte, 32)...)
	b = append(b, id[:]...)
	return append(append(b, byte(slot)), bytes.Repeat([]byte{1}, 100)...)
}

// accessClient fetches and checks the access log as a device would.
type accessClient struct {
	d    *device
	v    *translog.Verifier
	page int // records asked for per request
}

func newAccessClient(t testing.TB, d *device) *accessClient {
	var k api.AccessKey
	d.call("GET", api.PathAccessKey, nil, &k)
	pub, err := os.ReadFile(filepath.Join(d.e.data.Dir, FileAccessPub))
	if err != nil {
		t.Fatal(err)
	}
	if k.Key != strings.TrimSpace(string(pub)) {
		t.Fatalf("served key %q, %s holds %q", k.Key, FileAccessPub, pub)
	}
	verifier, err := note.NewVerifier(k.Key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := translog.NewVerifier(translog.VerifierConfig{Key: verifier})
	if err != nil {
		t.Fatal(err)
	}
	return &accessClient{d: d, v: v, page: 2}
}

// update moves the client to the server's current checkpoint.
func (c *accessClient) update(t testing.TB) translog.Checkpoint {
	t.Helper()
	trusted, _ := c.v.Trusted()
	var cp api.AccessCheckpoint
	c.d.call("GET", fmt.Sprintf("%s?since=%d", api.PathAccessCheckpoint, trusted.Size), nil, &cp)
	var p translog.ConsistencyProof
	if err := p.UnmarshalText(cp.Proof); err != nil {
		t.Fatal(err)
	}
	got, err := c.v.Update(cp.Checkpoint, p)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// records fetches every record under the trusted checkpoint and checks its
// inclusion proof.
func (c *accessClient) records(t testing.TB) []access.Record {
	t.Helper()
	trusted, _ := c.v.Trusted()
	var out []access.Record
	for from := int64(0); from < trusted.Size; {
		var page api.AccessRecords
		c.d.call("GET", fmt.Sprintf("%s?from=%d&size=%d&limit=%d", api.PathAccessRecords, from, trusted.Size, c.page), nil, &page)
		if page.Size != trusted.Size || len(page.Records) == 0 || len(page.Records) > c.page {
			t.Fatalf("a page from %d: size %d, %d records", from, page.Size, len(page.Records))
		}
		for _, r := range page.Records {
			var p translog.InclusionProof
			if err := p.UnmarshalText(r.Proof); err != nil {
				t.Fatal(err)
			}
			if r.Index != from || p.Index != from {
				t.Fatalf("record %d (proof of %d), want %d", r.Index, p.Index, from)
			}
			if err := c.v.VerifyInclusion(r.Record, p); err != nil {
				t.Fatalf("record %d: %v", r.Index, err)
			}
			rec, err := access.ParseRecord(r.Record)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
			from++
		}
	}
	return out
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := e.ctx
	alice := e.enrol("alice", "laptop")
	c := newAccessClient(t, alice)
	if got := c.update(t); got.Size != 0 {
		t.Fatalf("a new organisation's access log has %d records", got.Size)
	}

	// The administrators' commands open the log on their own, as another
	// process would; the running server sees what they append.
	admin, err := OpenAccessLog(ctx, e.data.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	q := testRequest(t, "CASE-1", []candor.GroupID{"g1"}, nil)
	id, index, err := admin.LogRequest(ctx, q)
	if err != nil || index != 0 {
		t.Fatalf("LogRequest: index %d, %v", index, err)
	}
	if want, _ := q.ID(); id != want {
		t.Fatalf("LogRequest returned id %v, want %v", id, want)
	}
	if _, _, err := admin.LogRequest(ctx, q); !errors.Is(err, candor.ErrConflict) {
		t.Errorf("logging a request twice: %v, want ErrConflict", err)
	}
	var unknown access.RequestID
	unknown[0] = 1
	if _, err := admin.LogApproval(ctx, &access.Approval{Request: unknown, Custodian: 1, CustodianName: "Ana", Custody: custodyApproval(unknown, 1)}); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("approving a request not in the log: %v, want ErrNotFound", err)
	}
	if _, err := admin.LogOpening(ctx, &access.Opening{Request: unknown, Completed: time.Unix(1790000100, 0)}); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("an opening of a request not in the log: %v, want ErrNotFound", err)
	}
	if _, err := e.data.Access.LogApproval(ctx, &access.Approval{Request: id, Custodian: 2, CustodianName: "Bea", Custody: custodyApproval(id, 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.LogApproval(ctx, &access.Approval{Request: id, Custodian: 2, CustodianName: "Bea", Custody: custodyApproval(id, 2)}); !errors.Is(err, candor.ErrConflict) {
		t.Errorf("a custodian approving twice: %v, want ErrConflict", err)
	}
	if got := c.update(t); got.Size != 2 {
		t.Fatalf("after a request and an approval the client trusts %d records", got.Size)
	}
	if _, err := admin.LogOpening(ctx, &access.Opening{Request: id, Completed: time.Unix(1790000100, 0).UTC(), Groups: []access.Replayed{{Group: "g1", Records: 3}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.LogRequest(ctx, testRequest(t, "CASE-2", nil, []candor.UserID{"bob"})); err != nil {
		t.Fatal(err)
	}
	if got := c.update(t); got.Size != 4 {
		t.Fatalf("the client trusts %d records, want 4", got.Size)
	}
	l, err := access.Read(0, c.records(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := l.Cases
	if len(cases) != 2 || cases[0].Request.Case != "CASE-1" || len(cases[0].Approvals) != 1 || len(cases[0].Openings) != 1 || cases[1].Request.Case != "CASE-2" {
		t.Fatalf("the client read %d cases: %+v", len(cases), cases)
	}

	for _, tc := range []struct {
		name, path string
		code       api.Code
	}{
		{"a size beyond the log", api.PathAccessRecords + "?size=5", api.CodeBeyondLog},
		{"a negative index", api.PathAccessRecords + "?from=-1", api.CodeBadRequest},
		{"a zero limit", api.PathAccessRecords + "?limit=0", api.CodeBadRequest},
		{"since that is not a number", api.PathAccessCheckpoint + "?since=x", api.CodeBadRequest},
	} {
		st, ae := alice.try("GET", tc.path, nil, nil)
		if ae == nil || ae.Code != tc.code {
			t.Errorf("%s: %d %+v, want %s", tc.name, st, ae, tc.code)
		}
	}
	for _, p := range []string{api.PathAccessKey, api.PathAccessCheckpoint, api.PathAccessRecords} {
		st, ae := e.do(e.client(nil), "GET", p, nil, nil)
		wantCode(t, st, ae, api.CodeNoCertificate)
		st, ae = alice.try("POST", p, nil, nil)
		wantCode(t, st, ae, api.CodeMethodNotAllowed)
	}
	// A since past the log's end is answered, and the client sees the
	// rollback for itself.
	var cp api.AccessCheckpoint
	alice.call("GET", api.PathAccessCheckpoint+"?since=9", nil, &cp)
	var p translog.ConsistencyProof
	if err := p.UnmarshalText(cp.Proof); err != nil {
		t.Fatal(err)
	}
	if _, err := c.v.Update(cp.Checkpoint, p); err != nil {
		t.Fatalf("the same checkpoint again: %v", err)
	}
}

// TestAccessLogHolds sets, lifts and reads legal holds and logs
// deletions through a real access log in a data folder, as candord hold
// and the server's retention do, and checks what each refuses.
func TestAccessLogHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := newAccessLog(t)
	set := time.Unix(1790000000, 0).UTC()
	onGroup := &access.Hold{Case: "LIT-1", Reason: "a lawsuit", By: "Legal", Set: set, Groups: []candor.GroupID{"g1"}}
	onBob := &access.Hold{Case: "LIT-2", Reason: "an inquiry", By: "Legal", Set: set, Users: []candor.UserID{"bob"}}
	id1, index, err := l.LogHold(ctx, onGroup)
	if err != nil || index != 0 {
		t.Fatalf("LogHold: index %d, %v", index, err)
	}
	if want, _ := onGroup.ID(); id1 != want {
		t.Errorf("LogHold returned id %v, want %v", id1, want)
	}
	if _, _, err := l.LogHold(ctx, onGroup); !errors.Is(err, candor.ErrConflict) {
		t.Errorf("logging a hold twice: %v, want ErrConflict", err)
	}
	if _, _, err := l.LogHold(ctx, &access.Hold{Case: "LIT-3", Reason: "r", By: "Legal", Set: set}); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("a hold on nothing: %v, want ErrInvalid", err)
	}
	id2, _, err := l.LogHold(ctx, onBob)
	if err != nil {
		t.Fatal(err)
	}
	lift := func(id access.HoldID) *access.Release {
		return &access.Release{Hold: id, Reason: "settled", By: "Legal", At: set.Add(time.Hour)}
	}
	if _, err := l.LogRelease(ctx, lift(access.HoldID{1})); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("lifting a hold not in the log: %v, want ErrNotFound", err)
	}
	if index, err := l.LogRelease(ctx, lift(id1)); err != nil || index != 2 {
		t.Fatalf("LogRelease: index %d, %v", index, err)
	}
	if _, err := l.LogRelease(ctx, lift(id1)); !errors.Is(err, candor.ErrConflict) {
		t.Errorf("lifting a hold twice: %v, want ErrConflict", err)
	}

	del := func(g candor.GroupID, first, last uint64) *access.Deletion {
		var h [32]byte
		h[0] = byte(last)
		return &access.Deletion{Group: g, First: first, Last: last, LastHash: h, At: set.Add(2 * time.Hour), Retention: 90 * 24 * time.Hour}
	}
	for _, tc := range []struct {
		name string
		d    *access.Deletion
		want error // nil: logged
	}{
		{"a group's first deletion, not from 1", del("g2", 5, 9), candor.ErrConflict},
		{"a group's first deletion", del("g2", 1, 9), nil},
		{"the same again, after an interruption", del("g2", 1, 12), nil},
		{"the next prefix", del("g2", 13, 20), nil},
		{"a gap after the last", del("g2", 22, 30), candor.ErrConflict},
		{"another group's first", del("g3", 1, 1), nil},
		{"entries out of order", del("g3", 3, 2), candor.ErrInvalid},
	} {
		_, err := l.LogDeletion(ctx, tc.d)
		if (tc.want == nil && err != nil) || !errors.Is(err, tc.want) {
			t.Errorf("%s: LogDeletion: %v, want %v", tc.name, err, tc.want)
		}
	}

	got, err := l.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var active []string
	for _, h := range got.ActiveHolds() {
		active = append(active, h.Hold.Case)
	}
	if len(got.Holds) != 2 || len(active) != 1 || active[0] != "LIT-2" || got.Holds[0].ReleaseIndex != 2 {
		t.Errorf("holds read back: %d, active %v", len(got.Holds), active)
	}
	held, err := got.HeldGroups(func(u candor.UserID) ([]candor.GroupID, error) { return []candor.GroupID{"bob's"}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if hs := held["bob's"]; len(held) != 1 || len(hs) != 1 || hs[0].ID != id2 {
		t.Errorf("held groups: %v, want bob's group under the hold on bob, and g1's hold lifted", held)
	}
	var deletions []string
	for _, d := range got.Deletions {
		deletions = append(deletions, fmt.Sprintf("%d %s %d-%d", d.Index, string(d.Deletion.Group), d.Deletion.First, d.Deletion.Last))
	}
	want := []string{"3 g2 1-9", "4 g2 1-12", "5 g2 13-20", "6 g3 1-1"}
	if fmt.Sprint(deletions) != fmt.Sprint(want) {
		t.Errorf("deletions read back: %q, want %q", deletions, want)
	}
}

// TestAccessLogReadAfterRewrite checks that an AccessLog that has read the
// log does not trust what it read once the file changes under it: the
// log cut back in place and grown another way is read afresh.
func TestAccessLogReadAfterRewrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, dir := newAccessLog(t)
	set := time.Unix(1790000000, 0).UTC()
	hold := func(caseID string) *access.Hold {
		return &access.Hold{Case: caseID, Reason: "r", By: "Legal", Set: set, Users: []candor.UserID{"alice"}}
	}
	cases := func() []string {
		t.Helper()
		got, err := l.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range got.Holds {
			out = append(out, h.Hold.Case)
		}
		return out
	}
	for _, c := range []string{"A", "B", "C"} {
		if _, _, err := l.LogHold(ctx, hold(c)); err != nil {
			t.Fatal(err)
		}
	}
	if got := cases(); fmt.Sprint(got) != "[A B C]" {
		t.Fatalf("read %v", got)
	}

	// Someone with the server's disk cuts the log to n records, in place.
	db, err := sqldb.OpenSQLite(ctx, filepath.Join(dir, FileAccessDB), sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cut := func(n int64) {
		t.Helper()
		for _, q := range []string{
			fmt.Sprintf(`DELETE FROM records WHERE idx >= %d`, n),
			fmt.Sprintf(`DELETE FROM hashes WHERE idx >= %d`, tlog.StoredHashCount(n)),
			fmt.Sprintf(`UPDATE logs SET size = %d`, n),
		} {
			if _, err := db.W.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A fork: cut to one record and grown past the size read before,
	// through another process's view of the file.
	cut(1)
	other, err := OpenAccessLog(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, c := range []string{"X", "Y", "Z"} {
		if _, _, err := other.LogHold(ctx, hold(c)); err != nil {
			t.Fatal(err)
		}
	}
	if got := cases(); fmt.Sprint(got) != "[A X Y Z]" {
		t.Errorf("after the log was grown another way, read %v, want [A X Y Z]", got)
	}
	// A rollback: cut below what was read.
	cut(2)
	if got := cases(); fmt.Sprint(got) != "[A X]" {
		t.Errorf("after the log was cut back, read %v, want [A X]", got)
	}
}

// TestAccessKeyFiles checks the key's files: made by Init with the other
// keys' modes, made by Open for a folder from before the access log, and
// refused when others may read the signing key.
func TestAccessKeyFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if err := Init(ctx, dir, InitOptions{Org: "Example Bank", Hosts: []string{"chat.example.com"}, OpenStore: openSQL}); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{FileAccessKey: 0o600, FileAccessPub: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	first, err := os.ReadFile(filepath.Join(dir, FileAccessPub))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(first), "chat.example.com/candor/access+") {
		t.Errorf("the log's key is named %q", first)
	}
	d, err := Open(ctx, dir, openSQL)
	if err != nil {
		t.Fatal(err)
	}
	if d.Access.VerifierKey() != strings.TrimSpace(string(first)) {
		t.Errorf("Open made a new key over the one Init made")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	for _, f := range []string{FileAccessKey, FileAccessPub} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	d, err = Open(ctx, dir, openSQL)
	if err != nil {
		t.Fatalf("opening a folder without the access log's key: %v", err)
	}
	if d.Access.VerifierKey() == strings.TrimSpace(string(first)) || d.Access.Origin() != "chat.example.com/candor/access" {
		t.Errorf("Open did not make a fresh key named after the host: %s", d.Access.VerifierKey())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(filepath.Join(dir, FileAccessKey), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, openSQL); !errors.Is(err, candor.ErrPermission) {
		t.Errorf("Open with a group-readable access key: %v, want ErrPermission", err)
	}
	if err := os.Chmod(filepath.Join(dir, FileAccessKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileAccessPub), first, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, openSQL); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("Open with a verifier key of another signing key: %v, want ErrInvalid", err)
	}
}

// BenchmarkAccessLogAppend measures an administrator's append to an access
// log that already holds 1,000 records: the append reads the whole log
// first, to check that the request it names is there (fetching only the
// records appended since the last read, parsing them all).
func BenchmarkAccessLogAppend(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	if err := Init(ctx, dir, InitOptions{Org: "Example Bank", OpenStore: openSQL}); err != nil {
		b.Fatal(err)
	}
	if _, err := createLogKey(dir, "localhost", accessLogFiles); err != nil {
		b.Fatal(err)
	}
	l, err := OpenAccessLog(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var id access.RequestID
	for i := range 1000 {
		if id, _, err = l.LogRequest(ctx, testRequest(b, fmt.Sprintf("CASE-%d", i), nil, []candor.UserID{"alice"})); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		if _, err := l.LogOpening(ctx, &access.Opening{Request: id, Completed: time.Unix(1790000000+int64(i), 0).UTC()}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccessLogRead measures what a device's audit costs the server
// and the device for a log of 1,000 records: the checkpoint with its
// consistency proof, then every record with its inclusion proof, checked,
// over real TLS.
func BenchmarkAccessLogRead(b *testing.B) {
	e := newEnv(b)
	alice := e.enrol("alice", "laptop")
	for i := range 1000 {
		if _, _, err := e.data.Access.LogRequest(e.ctx, testRequest(b, fmt.Sprintf("CASE-%d", i), nil, []candor.UserID{"alice"})); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		c := newAccessClient(b, alice)
		c.page = api.MaxAccessPage
		c.update(b)
		if n := len(c.records(b)); n != 1000 {
			b.Fatalf("read %d records", n)
		}
	}
}

// BenchmarkAccessLogDeletion measures the server's retention logging one
// deletion into an access log that already holds the deletions of 10,000
// other groups: like every append, it reads the whole log first, here to
// check that the deletion continues the group's earlier ones. The first
// iteration fetches the 10,000 records; later ones, only the last
// appended.
func BenchmarkAccessLogDeletion(b *testing.B) {
	ctx := context.Background()
	l, _ := newAccessLog(b)
	deletion := func(g string, first, last uint64) *access.Deletion {
		return &access.Deletion{Group: candor.GroupID(g), First: first, Last: last, LastHash: [32]byte{1},
			At: time.Unix(1790000000, 0).UTC(), Retention: 365 * 24 * time.Hour}
	}
	// The log is filled in one batch: appending one by one through
	// LogDeletion would cost what is measured, 10,000 times.
	var records [][]byte
	for i := range 10000 {
		enc, err := deletion(fmt.Sprintf("group-%d", i), 1, 100).MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		records = append(records, enc)
	}
	if _, err := l.log.Append(ctx, records...); err != nil {
		b.Fatal(err)
	}
	for i := uint64(0); b.Loop(); i++ {
		if _, err := l.LogDeletion(ctx, deletion("busy", 1+i*10, 10+i*10)); err != nil {
			b.Fatal(err)
		}
	}
}

// newAccessLog returns the access log of a new organisation's data
// folder, closed when the test ends, and the folder.
func newAccessLog(tb testing.TB) (*AccessLog, string) {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	if err := Init(ctx, dir, InitOptions{Org: "Example Bank", OpenStore: openSQL}); err != nil {
		tb.Fatal(err)
	}
	l, err := OpenAccessLog(ctx, dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l, dir
}
