package client_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
	"candor/client"
	"candor/internal/journal"
	"candor/internal/server"
	"candor/internal/sqldb"
	"candor/internal/testenv"
	"candor/internal/translog"
)

// unsignedEnv is a server that signs journal heads only when it stops and
// starts (Restart), so that a test decides which heads are signed.
func unsignedEnv(t *testing.T) *testenv.Env {
	return testenv.New(t, func(c *server.Config) { c.JournalInterval = time.Hour })
}

// head is the seq of the last entry of a group's log in the server's store.
func head(t *testing.T, env *testenv.Env, g candor.GroupID) uint64 {
	t.Helper()
	grp, err := env.Store().Group(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	return grp.Head
}

// checkJournal runs c's check, which must pass, and returns its line for g.
func checkJournal(t *testing.T, c *client.Client, g candor.GroupID) client.JournalGroup {
	t.Helper()
	r, err := c.CheckJournal(t.Context())
	if err != nil {
		t.Fatalf("%s: journal check: %v", c.User(), err)
	}
	for _, jg := range r.Groups {
		if jg.Group == g {
			return jg
		}
	}
	t.Fatalf("%s: the journal check does not list %s: %+v", c.User(), g, r.Groups)
	return client.JournalGroup{}
}

// mismatch runs c's check, which must fail for g alone, and returns the
// mismatch.
func mismatch(t *testing.T, c *client.Client, g candor.GroupID) *client.JournalMismatchError {
	t.Helper()
	r, err := c.CheckJournal(t.Context())
	var me *client.JournalMismatchError
	if !errors.Is(err, client.ErrJournalMismatch) || !errors.As(err, &me) || me.Group != g {
		t.Fatalf("%s: journal check of a changed journal: %v, want a mismatch in %s", c.User(), err, g)
	}
	for _, jg := range r.Groups {
		if want := jg.Group == g; want != (jg.Status == client.JournalDiffers) {
			t.Errorf("%s: %s is %v in the report", c.User(), jg.Group, jg.Status)
		}
	}
	return me
}

// TestCheckJournal follows a conversation, with the server's own
// proposals and a replay anchor in it, through the three ways a device's
// record can stand against the signed head: behind, level and ahead.
func TestCheckJournal(t *testing.T) {
	t.Parallel()
	env := testenv.New(t, func(c *server.Config) { c.JournalInterval, c.AnchorInterval = time.Hour, time.Nanosecond })
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	for _, c := range []*client.Client{alice, bob, carol} {
		if _, err := c.Send(ctx, g, "from "+string(c.User())); err != nil {
			t.Fatal(err)
		}
		mustSync(t, alice, bob, carol)
	}
	// A replay anchor: the server's proposal (an entry without a sender),
	// then two commits.
	if n, err := env.Server.ProposeAnchors(ctx); err != nil || n != 1 {
		t.Fatalf("proposing anchors: %d, %v; want 1", n, err)
	}
	mustSync(t, bob)
	if _, err := bob.Send(ctx, g, "after the anchor"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice, bob, carol)

	// Nothing is signed yet.
	if jg := checkJournal(t, alice, g); jg.Status != client.JournalNotCovered || jg.Seq != head(t, env, g) {
		t.Fatalf("before any head is signed: %+v, want not covered at %d", jg, head(t, env, g))
	}
	env.Restart(t)
	signed := head(t, env, g)
	for _, c := range []*client.Client{alice, bob, carol} {
		if jg := checkJournal(t, c, g); jg.Status != client.JournalAgrees || jg.Seq != signed || jg.Signed != signed {
			t.Errorf("%s: %+v, want agreement at %d", c.User(), jg, signed)
		}
	}
	// Ahead of the signed head: alice's message is not signed yet.
	if _, err := alice.Send(ctx, g, "unsigned yet"); err != nil {
		t.Fatal(err)
	}
	if jg := checkJournal(t, alice, g); jg.Status != client.JournalAgrees || jg.Seq != signed+1 || jg.Signed != signed {
		t.Errorf("alice, ahead: %+v, want agreement with %d at %d", jg, signed+1, signed)
	}
	// Behind it: bob has not read alice's message when it is signed.
	env.Restart(t)
	if jg := checkJournal(t, bob, g); jg.Status != client.JournalAgrees || jg.Seq != signed || jg.Signed != signed+1 {
		t.Errorf("bob, behind: %+v, want agreement with %d at %d", jg, signed, signed+1)
	}
	mustSync(t, bob)
	if jg := checkJournal(t, bob, g); jg.Status != client.JournalAgrees || jg.Seq != signed+1 {
		t.Errorf("bob, caught up: %+v, want agreement at %d", jg, signed+1)
	}
	// The checkpoint checked is kept, under the key pinned.
	pub, err := os.ReadFile(filepath.Join(bob.Home(), "journal.pub"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := os.ReadFile(filepath.Join(bob.Home(), "journal.checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := translog.Open(kept, key); err != nil || cp.Size < 2 {
		t.Errorf("bob kept %q (%v), want a checkpoint of at least 2 heads", kept, err)
	}
}

// TestCheckJournalLive checks devices that follow the conversation on the
// live stream, against a server signing every few milliseconds.
func TestCheckJournalLive(t *testing.T) {
	t.Parallel()
	env := testenv.New(t, func(c *server.Config) { c.JournalInterval = 20 * time.Millisecond })
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	run(t, bob)
	for i, c := range []*client.Client{alice, carol, alice} {
		text := "live " + string(rune('a'+i))
		if _, err := c.Send(ctx, g, text); err != nil {
			t.Fatal(err)
		}
		waitText(t, bob, g, text)
	}
	want := head(t, env, g)
	deadline := time.Now().Add(10 * time.Second)
	for {
		jg := checkJournal(t, bob, g)
		if jg.Status == client.JournalAgrees && jg.Seq == want && jg.Signed == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob: %+v, want agreement at %d", jg, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCheckJournalLateJoiner: a device added after the conversation began
// chains from the entry that added it, whose hash it takes from the
// server once, and is checked like the others.
func TestCheckJournalLateJoiner(t *testing.T) {
	t.Parallel()
	env := unsignedEnv(t)
	alice, bob, _, g := trio(t, env)
	ctx := t.Context()
	for _, text := range []string{"one", "two"} {
		if _, err := bob.Send(ctx, g, text); err != nil {
			t.Fatal(err)
		}
	}
	dave := env.Enrol(t, "dave", "phone")
	if err := alice.AddUsers(ctx, g, "dave"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, dave)
	joined := head(t, env, g)
	if jg := checkJournal(t, dave, g); jg.Status != client.JournalNothingYet {
		t.Errorf("dave, just added: %+v, want nothing to check yet", jg)
	}
	if _, err := bob.Send(ctx, g, "welcome dave"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, dave)
	env.Restart(t)
	if jg := checkJournal(t, dave, g); jg.Status != client.JournalAgrees || jg.Seq != joined+1 || jg.Signed != joined+1 {
		t.Errorf("dave: %+v, want agreement at %d", jg, joined+1)
	}
}

// storeDB opens the server's store file beside it, as someone with the
// server's disk could.
func storeDB(t *testing.T, env *testenv.Env) *sqldb.SQLite {
	db, err := sqldb.OpenSQLite(t.Context(), filepath.Join(env.Dir, server.FileDB), sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// flipMessage changes one byte of the message of entry seq in the store.
func flipMessage(t *testing.T, db *sqldb.SQLite, g candor.GroupID, seq uint64) {
	t.Helper()
	res, err := db.W.ExecContext(t.Context(), `
		UPDATE entries SET message = CAST(substr(message, 1, length(message) - 1) || X'00' AS BLOB)
		WHERE group_id = ? AND seq = ? AND substr(message, -1) != X'00'`, []byte(g), seq)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("changing entry %d: %v (%d rows)", seq, err, n)
	}
}

// rechain recomputes, in the store, the chain hashes of a group's entries
// from seq on and its head hash, as a server rewriting its history would.
func rechain(ctx context.Context, t *testing.T, env *testenv.Env, db *sqldb.SQLite, g candor.GroupID, seq uint64) {
	t.Helper()
	prev := journal.Genesis
	if seq > 1 {
		before, err := env.Store().Log(ctx, g, seq-2, 1)
		if err != nil || len(before) != 1 {
			t.Fatalf("entry %d: %v", seq-1, err)
		}
		prev = before[0].Hash
	}
	es, err := env.Store().Log(ctx, g, seq-1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		prev = journal.EntryHash(g, journal.Entry{Seq: e.Seq, Epoch: e.Epoch, Commit: e.Commit, Sender: e.Sender, Time: e.Time, Message: e.Message}, prev)
		mh := sha256.Sum256(e.Message)
		if _, err := db.W.ExecContext(ctx, `UPDATE entries SET hash = ?, message_hash = ? WHERE group_id = ? AND seq = ?`,
			prev[:], mh[:], []byte(g), e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.W.ExecContext(ctx, `UPDATE groups SET head_hash = ? WHERE id = ?`, prev[:], []byte(g)); err != nil {
		t.Fatal(err)
	}
}

// TestCheckJournalTampered changes the server's store under it, in the
// two ways that matter: an entry after the signed head, which the server
// then serves altered; and an earlier entry with the whole chain after it
// recomputed and signed again, a history rewritten consistently. Each
// device's check names the conversation and the entries.
func TestCheckJournalTampered(t *testing.T) {
	t.Parallel()
	env := unsignedEnv(t)
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	if _, err := bob.Send(ctx, g, "signed"); err != nil {
		t.Fatal(err)
	}
	env.Restart(t)
	signed := head(t, env, g)
	if _, err := alice.Send(ctx, g, "not signed yet"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice, bob, carol)
	checkJournal(t, carol, g)

	db := storeDB(t, env)
	flipMessage(t, db, g, signed+1)
	if me := mismatch(t, carol, g); me.From != signed+1 || me.To != signed+1 {
		t.Errorf("carol: mismatch %v, want entries %d to %d", me, signed+1, signed+1)
	}

	// Rewritten from bob's message on, chain and all, and signed.
	flipMessage(t, db, g, signed)
	rechain(ctx, t, env, db, g, signed)
	env.Restart(t)
	last := signed + 1
	for _, c := range []*client.Client{alice, bob, carol} {
		if me := mismatch(t, c, g); me.From != last || me.To != last {
			t.Errorf("%s: mismatch %v, want entry %d", c.User(), me, last)
		}
	}
}

// TestCheckJournalFork rewrites a stored hash of the journal-heads log, so
// that it signs another tree of the size a device checked: the device
// says the log is inconsistent, and keeps both checkpoints.
func TestCheckJournalFork(t *testing.T) {
	t.Parallel()
	env := unsignedEnv(t)
	alice, bob, _, g := trio(t, env)
	ctx := t.Context()
	env.Restart(t)
	if _, err := bob.Send(ctx, g, "second head"); err != nil {
		t.Fatal(err)
	}
	env.Restart(t)
	mustSync(t, alice)
	checkJournal(t, alice, g)

	db, err := sqldb.OpenSQLite(ctx, filepath.Join(env.Dir, server.FileJournalDB), sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The hash over both records, which the root of 2 records is: the
	// server still reads its records, and signs another root.
	if _, err := db.W.ExecContext(ctx, `UPDATE hashes SET hash = zeroblob(32) WHERE idx = ?`, tlog.StoredHashIndex(1, 0)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err := alice.CheckJournal(ctx)
		var ie *translog.InconsistentError
		if !errors.As(err, &ie) || ie.Kind != translog.Fork {
			t.Fatalf("journal check of a forked log: %v, want a fork", err)
		}
	}
	for _, f := range []string{"journal.checkpoint", "journal.presented"} {
		if _, err := os.Stat(filepath.Join(alice.Home(), f)); err != nil {
			t.Errorf("the evidence: %v", err)
		}
	}
}

// TestCheckJournalCutLog cuts the log's prefix, as retention does, under
// devices whose entries all come after the start, one of which starts its
// chain at the start itself: no device raises an alarm.
func TestCheckJournalCutLog(t *testing.T) {
	t.Parallel()
	env := unsignedEnv(t)
	alice, bob, carol, g := trio(t, env)
	ctx := t.Context()
	if _, err := bob.Send(ctx, g, "before dave"); err != nil {
		t.Fatal(err)
	}
	dave := env.Enrol(t, "dave", "phone")
	if err := alice.AddUsers(ctx, g, "dave"); err != nil {
		t.Fatal(err)
	}
	joined := head(t, env, g)
	mustSync(t, dave)
	if jg := checkJournal(t, dave, g); jg.Status != client.JournalNothingYet {
		t.Fatalf("dave, just added: %+v, want nothing to check yet", jg)
	}
	if _, err := carol.Send(ctx, g, "after dave"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, alice, bob)
	// Everything before carol's message goes, the commit that added dave
	// included: dave, who has read nothing since he joined, starts his
	// chain from the hash the cut log keeps.
	if n, err := env.Store().DeleteBefore(ctx, g, joined+1); err != nil || n != joined {
		t.Fatalf("cutting the log: %d deleted, %v; want %d", n, err, joined)
	}
	mustSync(t, dave)
	waitText(t, dave, g, "after dave")
	if _, err := alice.Send(ctx, g, "after the cut"); err != nil {
		t.Fatal(err)
	}
	env.Restart(t)
	want := map[*client.Client]uint64{alice: joined + 2, bob: joined + 1, carol: joined + 1, dave: joined + 1}
	for c, seq := range want {
		if jg := checkJournal(t, c, g); jg.Status != client.JournalAgrees || jg.Seq != seq || jg.Signed != joined+2 {
			t.Errorf("%s: %+v, want agreement from %d with %d", c.User(), jg, seq, joined+2)
		}
	}
}
