package client_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
	"candor/client"
	"candor/internal/access"
	"candor/internal/server"
	"candor/internal/sqldb"
	"candor/internal/testenv"
	"candor/internal/translog"
)

// accessAdmin appends to an Env's access log the way candord access does:
// through the data folder, beside the running server.
type accessAdmin struct {
	t *testing.T
	l *server.AccessLog
}

func newAccessAdmin(t *testing.T, env *testenv.Env) *accessAdmin {
	l, err := server.OpenAccessLog(t.Context(), env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &accessAdmin{t: t, l: l}
}

func (a *accessAdmin) request(caseID string, groups []candor.GroupID, users ...candor.UserID) access.RequestID {
	a.t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		a.t.Fatal(err)
	}
	id, _, err := a.l.LogRequest(a.t.Context(), &access.Request{
		Case: caseID, Reason: "reason for " + caseID, Requester: "Compliance", Created: time.Unix(1790000000, 0).UTC(),
		Scope:      access.Scope{Groups: groups, Users: users, From: time.Unix(1780000000, 0).UTC(), To: time.Unix(1790000000, 0).UTC()},
		OpeningKey: k.PublicKey().Bytes(),
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return id
}

func (a *accessAdmin) approve(id access.RequestID, slot int, name string) {
	a.t.Helper()
	custody := append([]byte("capp\x01"), make([]byte, 32)...)
	custody = append(append(custody, id[:]...), byte(slot), 0xee)
	if _, err := a.l.LogApproval(a.t.Context(), &access.Approval{Request: id, Custodian: slot, CustodianName: name, Custody: custody}); err != nil {
		a.t.Fatal(err)
	}
}

func (a *accessAdmin) opened(id access.RequestID, g candor.GroupID, records uint64) {
	a.t.Helper()
	if _, err := a.l.LogOpening(a.t.Context(), &access.Opening{Request: id, Completed: time.Unix(1790000500, 0).UTC(), Groups: []access.Replayed{{Group: g, Records: records}}}); err != nil {
		a.t.Fatal(err)
	}
}

// summary is what a test compares of an AuditEntry.
type summary struct {
	Case      string
	Groups    []candor.GroupID
	NamesYou  bool
	Approvers []string
	Completed bool
}

func audit(t *testing.T, c *client.Client) []summary {
	t.Helper()
	report, err := c.Audit(t.Context())
	if err != nil {
		t.Fatalf("%s: audit: %v", c.User(), err)
	}
	var out []summary
	for _, e := range report.Openings {
		s := summary{Case: e.Case, Groups: e.Groups, NamesYou: e.NamesYou, Completed: e.Completed()}
		for _, a := range e.Approvals {
			s.Approvers = append(s.Approvers, a.Name)
		}
		out = append(out, s)
	}
	return out
}

func TestAudit(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "laptop")
	ctx := t.Context()
	g, err := alice.CreateGroup(ctx, "deals", "bob")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)

	if got := audit(t, alice); len(got) != 0 {
		t.Fatalf("an empty access log shows %+v", got)
	}
	admin := newAccessAdmin(t, env)
	deals := admin.request("CASE-DEALS", []candor.GroupID{g, "other"})
	admin.request("CASE-CAROL", []candor.GroupID{"elsewhere"}, "carol")
	admin.request("CASE-ALICE", nil, "alice")
	admin.approve(deals, 1, "Ana")
	admin.approve(deals, 3, "Cid")
	admin.opened(deals, g, 42)

	want := []summary{
		{Case: "CASE-DEALS", Groups: []candor.GroupID{g}, Approvers: []string{"Ana", "Cid"}, Completed: true},
		{Case: "CASE-ALICE", NamesYou: true},
	}
	if diff := cmp.Diff(want, audit(t, alice)); diff != "" {
		t.Errorf("alice's audit (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[:1], audit(t, bob)); diff != "" {
		t.Errorf("bob's audit (-want +got):\n%s", diff)
	}
	report, err := alice.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Holds) != 0 || len(report.Deletions) != 0 {
		t.Errorf("a log of openings only shows holds %+v and deletions %+v", report.Holds, report.Deletions)
	}
	entries := report.Openings
	if o := entries[0].Openings; len(o) != 1 || o[0].Groups[0].Records != 42 || entries[0].Reason != "reason for CASE-DEALS" {
		t.Errorf("the opening as alice sees it: %+v", entries[0])
	}
	for _, f := range []string{"access.pub", "access.checkpoint"} {
		if _, err := os.Stat(filepath.Join(alice.Home(), f)); err != nil {
			t.Errorf("the profile lacks %s: %v", f, err)
		}
	}
	kept, err := os.ReadFile(filepath.Join(alice.Home(), "access.checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(env.Dir, server.FileAccessPub))
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := os.ReadFile(filepath.Join(alice.Home(), "access.pub"))
	if err != nil || string(pinned) != string(pub) {
		t.Errorf("alice pinned %q, the server's key is %q (%v)", pinned, pub, err)
	}
	key, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := translog.Open(kept, key); err != nil || c.Size != 6 {
		t.Errorf("alice kept the checkpoint %q (%v), want one of 6 records", kept, err)
	}
}

// accessDB opens the server's access log file beside it, as someone with
// the server's disk could.
func accessDB(t *testing.T, env *testenv.Env) *sqldb.SQLite {
	db, err := sqldb.OpenSQLite(t.Context(), filepath.Join(env.Dir, server.FileAccessDB), sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestAuditTamperedRecord alters a record and its stored leaf hash, so the
// server serves it without complaint, and checks that the device's
// inclusion check catches it.
func TestAuditTamperedRecord(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	admin := newAccessAdmin(t, env)
	admin.request("CASE-1", nil, "alice")
	admin.request("CASE-2", nil, "alice")
	if got := audit(t, alice); len(got) != 2 {
		t.Fatalf("audit shows %d requests, want 2", len(got))
	}
	raw, err := admin.l.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	q := *raw.Cases[0].Request
	q.Case = "CASE-X"
	forged, err := q.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	db := accessDB(t, env)
	h := tlog.RecordHash(forged)
	if _, err := db.W.ExecContext(t.Context(), `UPDATE records SET data = ? WHERE idx = 0`, forged); err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.ExecContext(t.Context(), `UPDATE hashes SET hash = ? WHERE idx = 0`, h[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Audit(t.Context()); !errors.Is(err, translog.ErrNotIncluded) {
		t.Fatalf("audit of a tampered record: %v, want ErrNotIncluded", err)
	}
}

// TestAuditRollbackInPlace rolls the log back in the server's own file,
// while it runs, and checks that a device that saw the longer log says so,
// and keeps saying so.
func TestAuditRollbackInPlace(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	admin := newAccessAdmin(t, env)
	admin.request("CASE-1", nil, "alice")
	admin.request("CASE-2", nil, "alice")
	admin.request("CASE-3", nil, "alice")
	if got := audit(t, alice); len(got) != 3 {
		t.Fatalf("audit shows %d requests, want 3", len(got))
	}
	db := accessDB(t, env)
	ctx := t.Context()
	for _, q := range []string{
		`DELETE FROM records WHERE idx >= 1`,
		`DELETE FROM hashes WHERE idx >= 2`, // tlog.StoredHashCount(1)
		`UPDATE logs SET size = 1`,
	} {
		if _, err := db.W.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		_, err := alice.Audit(ctx)
		var ie *translog.InconsistentError
		if !errors.As(err, &ie) || ie.Kind != translog.Rollback || ie.Trusted.Size != 3 || ie.Presented.Size != 1 {
			t.Fatalf("audit of a rolled-back log: %v, want a rollback from 3 to 1", err)
		}
	}
	// Both signed checkpoints stay in the profile: the evidence.
	pub, err := os.ReadFile(filepath.Join(alice.Home(), "access.pub"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	for f, size := range map[string]int64{"access.checkpoint": 3, "access.presented": 1} {
		signed, err := os.ReadFile(filepath.Join(alice.Home(), f))
		if err != nil {
			t.Fatal(err)
		}
		if c, err := translog.Open(signed, key); err != nil || c.Size != size {
			t.Errorf("%s: a checkpoint of %d records (%v), want %d", f, c.Size, err, size)
		}
	}
}
