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

	"candor"
	"candor/api"
	"candor/internal/access"
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
	cases, err := access.Collect(0, c.records(t))
	if err != nil {
		t.Fatal(err)
	}
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
// first, to check that the request it names is there.
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
