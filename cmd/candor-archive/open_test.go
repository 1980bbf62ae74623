package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"candor"
	"candor/client"
	"candor/internal/access"
	"candor/internal/archive"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/custody"
	"candor/internal/journal"
	"candor/internal/server"
	"candor/internal/sqldb"
	"candor/internal/testenv"
)

// opener drives the tool and the access log of one organisation as its
// administrator and custodians would.
type opener struct {
	t    *testing.T
	env  *testenv.Env
	log  *server.AccessLog
	key  note.Verifier // access.pub, as the custodians were given it
	dir  string        // the opener's working folder
	stmt string        // the archive statement's file
	arch ceremonytest.Archive
}

func newOpener(t *testing.T, env *testenv.Env) *opener {
	t.Helper()
	l, err := server.OpenAccessLog(t.Context(), env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pub, err := os.ReadFile(filepath.Join(env.Dir, server.FileAccessPub))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	o := &opener{t: t, env: env, log: l, key: v, dir: t.TempDir()}
	o.use(env.Archive)
	return o
}

// use makes a the archive key the opener opens, and whose custodians
// approve.
func (o *opener) use(a ceremonytest.Archive) {
	o.t.Helper()
	o.arch = a
	o.stmt = o.path("statement." + a.Statement.KeyID())
	if err := os.WriteFile(o.stmt, a.Statement.Bytes(), 0o644); err != nil {
		o.t.Fatal(err)
	}
}

func (o *opener) path(name string) string { return filepath.Join(o.dir, name) }

// tool runs candor-archive with args and returns its output and error
// output; it fails the test if the exit status is not want.
func (o *opener) tool(want int, args ...string) (string, string) {
	o.t.Helper()
	var out, errOut bytes.Buffer
	if got := run(o.t.Context(), args, &out, &errOut); got != want {
		o.t.Fatalf("candor-archive %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, want, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// request makes a one-time key with keygen and logs a request naming it
// for groups; it returns the key file, the request's id and its index.
func (o *opener) request(name string, groups ...candor.GroupID) (string, access.RequestID, int64) {
	o.t.Helper()
	return o.requestScope(name, access.Scope{Groups: groups})
}

// requestScope is request for a scope naming groups, people or both; its
// time range is the hour before and after now.
func (o *opener) requestScope(name string, scope access.Scope) (string, access.RequestID, int64) {
	o.t.Helper()
	keyFile := o.path(name + ".key")
	o.tool(0, "keygen", "-out", keyFile)
	pubHex, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		o.t.Fatal(err)
	}
	pub, err := hex.DecodeString(strings.TrimSpace(string(pubHex)))
	if err != nil {
		o.t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	id, index, err := o.log.LogRequest(o.t.Context(), &access.Request{
		Case: name, Reason: "inquiry into " + name, Requester: "Compliance", Created: now,
		Scope:      access.Scope{Groups: scope.Groups, Users: scope.Users, From: now.Add(-time.Hour), To: now.Add(time.Hour)},
		OpeningKey: pub,
	})
	if err != nil {
		o.t.Fatal(err)
	}
	return keyFile, id, index
}

// approve is custodian i (0-based) approving the request at index as
// candor-custody approve does: from the bundle candord access show
// writes, checked against access.pub; the administrator then logs it. It
// returns the approval's file.
func (o *opener) approve(index int64, i int) string {
	o.t.Helper()
	ctx := o.t.Context()
	b, err := o.log.Bundle(ctx, index)
	if err != nil {
		o.t.Fatal(err)
	}
	enc, err := b.MarshalBinary()
	if err != nil {
		o.t.Fatal(err)
	}
	b, err = access.ParseBundle(enc)
	if err != nil {
		o.t.Fatal(err)
	}
	rec, _, err := b.Verify(o.key)
	if err != nil {
		o.t.Fatal(err)
	}
	id, err := rec.Request.ID()
	if err != nil {
		o.t.Fatal(err)
	}
	opening, err := custody.ParseOpeningPublicKey(rec.Request.OpeningKey)
	if err != nil {
		o.t.Fatal(err)
	}
	st, key := o.arch.Statement, o.arch.Keys[i]
	slot, err := st.Policy().IndexOf(key.PublicKey())
	if err != nil {
		o.t.Fatal(err)
	}
	a, err := key.Approve(st.Policy(), st.Commitments(), st.SealedShares()[slot-1], custody.RequestID(id), opening)
	if err != nil {
		o.t.Fatal(err)
	}
	c, err := st.Policy().Custodian(slot)
	if err != nil {
		o.t.Fatal(err)
	}
	if _, err := o.log.LogApproval(ctx, &access.Approval{Request: id, Custodian: slot, CustodianName: c.Name, Custody: a.Bytes()}); err != nil {
		o.t.Fatal(err)
	}
	file := o.path(hex.EncodeToString(id[:4]) + "." + c.Name + ".approval")
	if err := os.WriteFile(file, a.Bytes(), 0o644); err != nil {
		o.t.Fatal(err)
	}
	return file
}

// open runs candor-archive open; it returns the error output of a failed
// run, after checking that it wrote nothing.
func (o *opener) open(want int, keyFile string, id access.RequestID, approvals ...string) string {
	o.t.Helper()
	out, jsonl := o.path("review.db"), o.path("review.jsonl")
	_, stderr := o.tool(want, "open", "-data", o.env.Dir, "-request", id.String(), "-opening-key", keyFile,
		"-approvals", strings.Join(approvals, ","), "-statement", o.stmt, "-out", out, "-jsonl", jsonl)
	if want != 0 {
		for _, p := range []string{out, jsonl} {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				o.t.Errorf("a failed opening left %s", p)
			}
		}
	}
	return stderr
}

func mustSync(t *testing.T, cs ...*client.Client) {
	t.Helper()
	for _, c := range cs {
		if err := c.Sync(t.Context()); err != nil {
			t.Fatalf("%s: sync: %v", c.User(), err)
		}
	}
}

// sent is a message as the test compares it.
type sent struct {
	User candor.UserID
	Text string
}

// TestOpenCase is issue 5's "done means": an organisation with 3
// custodians (k = 2), three people exchanging messages, a case opened
// with two custodians' approvals, its records read back, and the opening
// seen in the audit of every member's device. Along the way it tries the
// openings that must fail.
func TestOpenCase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "phone")
	carol := env.Enrol(t, "carol", "laptop")
	g, err := alice.CreateGroup(ctx, "deals", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	var want []sent
	var last uint64
	for _, m := range []struct {
		from *client.Client
		text string
	}{
		{alice, "Morning. The Q3 term sheet is ready for review."},
		{bob, "Thanks — sending comments by noon."},
		{carol, "Grüße: Zürich signed off, 契約書は明日送ります。"},
		{alice, "Great, closing on Friday."},
	} {
		msg, err := m.from.Send(ctx, g, m.text)
		if err != nil {
			t.Fatal(err)
		}
		last = msg.Seq
		want = append(want, sent{m.from.User(), m.text})
		mustSync(t, alice, bob, carol)
	}

	o := newOpener(t, env)
	keyFile, id, index := o.request("CASE-1", g)
	first := o.approve(index, 0)

	t.Run("one approval", func(t *testing.T) {
		stderr := o.open(1, keyFile, id, first)
		if !strings.Contains(stderr, "1 logged approvals") || !strings.Contains(stderr, "2 custodians must approve") {
			t.Errorf("error %q does not say how many approvals are missing", stderr)
		}
	})
	t.Run("request not in the log", func(t *testing.T) {
		var other access.RequestID
		other[0] = 1
		if stderr := o.open(1, keyFile, other, first); !strings.Contains(stderr, "is not in the access log") {
			t.Errorf("error %q does not say the request is not logged", stderr)
		}
	})
	otherKey, _, otherIndex := o.request("CASE-OTHER", g)
	foreign := o.approve(otherIndex, 2)
	t.Run("approval for another request", func(t *testing.T) {
		if stderr := o.open(1, keyFile, id, first, foreign); !strings.Contains(stderr, "not "+id.String()) {
			t.Errorf("error %q does not name the approval of another request", stderr)
		}
	})
	t.Run("another request's opening key", func(t *testing.T) {
		if stderr := o.open(1, otherKey, id, first); !strings.Contains(stderr, "is not the one request") {
			t.Errorf("error %q does not name the wrong key", stderr)
		}
	})
	t.Run("approval not logged", func(t *testing.T) {
		// A second approval by custodian 2, made but never logged.
		st, key := env.Archive.Statement, env.Archive.Keys[1]
		okey, err := parseOpeningKeyFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		a, err := key.Approve(st.Policy(), st.Commitments(), st.SealedShares()[1], custody.RequestID(id), okey.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		unlogged := o.path("unlogged.approval")
		if err := os.WriteFile(unlogged, a.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if stderr := o.open(1, keyFile, id, first, unlogged); !strings.Contains(stderr, "is not in the access log: log it with candord access approve") {
			t.Errorf("error %q does not say the approval is not logged", stderr)
		}
	})

	second := o.approve(index, 1)
	waitSignedHead(t, env, g, last)
	o.open(0, keyFile, id, first, second)
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the one-time key %s is still there after the opening", keyFile)
	}

	// The records, from the review store and the JSON Lines.
	review, err := archive.OpenReview(ctx, o.path("review.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer review.Close()
	recs, err := review.Records(ctx, g, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []sent
	for _, r := range recs {
		if r.Status != archive.Verified && r.Status != archive.Joined {
			t.Errorf("record %d: %s (%s)", r.Seq, r.Status, r.Reason)
		}
		if r.Kind == archive.KindMessage {
			got = append(got, sent{r.Sender.User, r.Text})
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages in the review store (-want +got):\n%s", diff)
	}
	f, err := os.Open(o.path("review.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []sent
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var r archive.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Kind == archive.KindMessage {
			lines = append(lines, sent{r.Sender.User, r.Text})
		}
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("messages in the JSON Lines (-want +got):\n%s", diff)
	}

	// Every member's device sees the opening, and who approved it.
	for _, c := range []*client.Client{alice, bob, carol} {
		report, err := c.Audit(ctx)
		if err != nil {
			t.Fatalf("%s: audit: %v", c.User(), err)
		}
		entries := report.Openings
		var found bool
		for _, e := range entries {
			if e.Case != "CASE-1" {
				continue
			}
			found = true
			var names []string
			for _, a := range e.Approvals {
				names = append(names, a.Name)
			}
			if !e.Completed() || len(names) != 2 || e.Openings[0].Groups[0].Group != g || e.Openings[0].Groups[0].Records != uint64(len(recs)) {
				t.Errorf("%s sees CASE-1 as %+v, approved by %v", c.User(), e, names)
			}
		}
		if !found {
			t.Errorf("%s's audit does not list CASE-1: %+v", c.User(), entries)
		}
	}
}

// waitSignedHead waits until the server has signed a head of group at or
// after entry seq.
func waitSignedHead(t *testing.T, env *testenv.Env, group candor.GroupID, seq uint64) {
	t.Helper()
	j, err := server.OpenJournalLog(t.Context(), env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := j.HeadBundle(t.Context(), group, 0)
		if err == nil {
			h, err := journal.ParseHead(b.Record)
			if err != nil {
				t.Fatal(err)
			}
			if h.Seq >= seq {
				return
			}
		} else if !errors.Is(err, candor.ErrNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no signed head of %s at entry %d after 15s", group, seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOpenRewrittenChain: an administrator backdates a message in the
// server's database and recomputes the chain hashes of it and of every
// later entry, so that the store's chain is consistent again. The replay
// cannot tell; the head the server signed before the rewrite can, and the
// opening fails, naming the group, and is not logged.
func TestOpenRewrittenChain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "phone")
	g, err := alice.CreateGroup(ctx, "deals", "bob")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	var last uint64
	for _, text := range []string{"Sell at 102.", "Agreed.", "Done."} {
		msg, err := alice.Send(ctx, g, text)
		if err != nil {
			t.Fatal(err)
		}
		last = msg.Seq
	}
	mustSync(t, bob)
	waitSignedHead(t, env, g, last)

	db, err := sqldb.OpenSQLite(ctx, filepath.Join(env.Dir, server.FileDB), sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The first message is backdated by an hour.
	if _, err := db.W.ExecContext(ctx, `UPDATE entries SET sent_at = sent_at - ? WHERE group_id = ? AND seq = ?`, int64(time.Hour), []byte(g), last-2); err != nil {
		t.Fatal(err)
	}
	rechain(t, db, g)

	o := newOpener(t, env)
	keyFile, id, index := o.request("CASE-REWRITE", g)
	_, stderr := o.tool(1, "open", "-data", env.Dir, "-request", id.String(), "-opening-key", keyFile,
		"-approvals", o.approve(index, 0)+","+o.approve(index, 1), "-statement", o.stmt, "-out", o.path("review.db"))
	if !strings.Contains(stderr, "DO NOT MATCH ITS SIGNED JOURNAL HEADS") || !strings.Contains(stderr, g.String()) {
		t.Errorf("error %q does not name the mismatch and the group", stderr)
	}
	log, err := o.log.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range log.Cases {
		if len(c.Openings) > 0 {
			t.Errorf("case %s is logged as opened", c.Request.Case)
		}
	}
}

// rechain recomputes the chain hash of every entry of group in the
// server's database, and the group's head hash, as someone covering a
// rewrite would.
func rechain(t *testing.T, db *sqldb.SQLite, group candor.GroupID) {
	t.Helper()
	ctx := t.Context()
	rows, err := db.W.QueryContext(ctx, `SELECT seq, epoch, is_commit, sender, sent_at, message FROM entries WHERE group_id = ? ORDER BY seq`, []byte(group))
	if err != nil {
		t.Fatal(err)
	}
	var entries []journal.Entry
	for rows.Next() {
		var e journal.Entry
		var sentAt int64
		if err := rows.Scan(&e.Seq, &e.Epoch, &e.Commit, &e.Sender, &sentAt, &e.Message); err != nil {
			t.Fatal(err)
		}
		e.Time = time.Unix(0, sentAt)
		entries = append(entries, e)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	prev := journal.Genesis
	for _, e := range entries {
		prev = journal.EntryHash(group, e, prev)
		if _, err := db.W.ExecContext(ctx, `UPDATE entries SET hash = ? WHERE group_id = ? AND seq = ?`, prev[:], []byte(group), e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.W.ExecContext(ctx, `UPDATE groups SET head_hash = ? WHERE id = ?`, prev[:], []byte(group)); err != nil {
		t.Fatal(err)
	}
}

// parseOpeningKeyFile reads a key file keygen wrote.
func parseOpeningKeyFile(path string) (*custody.OpeningKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseOpeningKey(b)
}

// TestOpeningKeyFile checks the key file's decoder on what keygen writes
// and on near misses.
func TestOpeningKeyFile(t *testing.T) {
	t.Parallel()
	k, err := custody.NewOpeningKey()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encodeOpeningKey(k)
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseOpeningKey(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !back.PublicKey().Equal(k.PublicKey()) {
		t.Fatal("the key file gives back another key")
	}
	for _, bad := range [][]byte{
		nil,
		append(bytes.Clone(enc), "trailing"...),
		bytes.Replace(enc, []byte("OPENING KEY"), []byte("OTHER KEY"), 2),
		[]byte("-----BEGIN CANDOR OPENING KEY-----\nAAAA\n-----END CANDOR OPENING KEY-----\n"),
	} {
		if _, err := parseOpeningKey(bad); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("parseOpeningKey(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzParseOpeningKey(f *testing.F) {
	k, err := custody.NewOpeningKey()
	if err != nil {
		f.Fatal(err)
	}
	enc, err := encodeOpeningKey(k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add(enc[:len(enc)-3])
	f.Add([]byte("-----BEGIN CANDOR OPENING KEY-----\n-----END CANDOR OPENING KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseOpeningKey(b)
		if err != nil {
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("refused with %v, want ErrInvalid", err)
			}
			return
		}
		again, err := encodeOpeningKey(o)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical key file:\n in %q\nout %q", b, again)
		}
	})
}
