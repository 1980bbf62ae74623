package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/client"
	"candor/internal/access"
	"candor/internal/archive"
	"candor/internal/journal"
	"candor/internal/server"
	"candor/internal/testenv"
)

// line is one message to send.
type line struct {
	from *client.Client
	text string
}

// say sends each line in group g, everyone syncing after each, and
// returns the last one's seq.
func say(t *testing.T, g candor.GroupID, all []*client.Client, lines ...line) (last uint64) {
	t.Helper()
	for _, l := range lines {
		m, err := l.from.Send(t.Context(), g, l.text)
		if err != nil {
			t.Fatal(err)
		}
		last = m.Seq
		mustSync(t, all...)
	}
	return last
}

// A request naming a person replays exactly the groups the person's
// devices were members of, and the Opening record lists those.
func TestOpenPerson(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "phone")
	carol := env.Enrol(t, "carol", "laptop")
	hers, err := alice.CreateGroup(ctx, "deals", "bob")
	if err != nil {
		t.Fatal(err)
	}
	others, err := bob.CreateGroup(ctx, "lunch", "carol")
	if err != nil {
		t.Fatal(err)
	}
	everyone := []*client.Client{alice, bob, carol}
	mustSync(t, everyone...)
	lastHers := say(t, hers, everyone, line{alice, "The bid goes in at 101."}, line{bob, "Confirmed."})
	lastOthers := say(t, others, everyone, line{bob, "Noon?"}, line{carol, "Yes."})
	waitSignedHead(t, env, hers, lastHers)
	waitSignedHead(t, env, others, lastOthers)

	o := newOpener(t, env)
	keyFile, id, index := o.requestScope("CASE-ALICE", access.Scope{Users: []candor.UserID{"alice"}})
	stdout, _ := o.tool(0, "open", "-data", env.Dir, "-request", id.String(), "-opening-key", keyFile,
		"-approvals", o.approve(index, 0)+","+o.approve(index, 2), "-statement", o.stmt, "-out", o.path("review.db"))
	if !strings.Contains(stdout, "group "+hers.String()) || strings.Contains(stdout, others.String()) {
		t.Errorf("the output does not list alice's group alone:\n%s", stdout)
	}

	review, err := archive.OpenReview(ctx, o.path("review.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer review.Close()
	ps, err := review.Progress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var replayed []candor.GroupID
	for _, p := range ps {
		replayed = append(replayed, p.Group)
	}
	if diff := cmp.Diff([]candor.GroupID{hers}, replayed); diff != "" {
		t.Errorf("groups replayed (-alice's +replayed):\n%s", diff)
	}
	recs, err := review.Records(ctx, hers, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, r := range recs {
		if r.Kind == archive.KindMessage {
			texts = append(texts, r.Text)
		}
	}
	if diff := cmp.Diff([]string{"The bid goes in at 101.", "Confirmed."}, texts); diff != "" {
		t.Errorf("alice's group's messages (-sent +replayed):\n%s", diff)
	}

	l, err := o.log.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Case(id)
	if c == nil || len(c.Openings) != 1 {
		t.Fatalf("the case in the log: %+v", c)
	}
	var logged []candor.GroupID
	for _, g := range c.Openings[0].Groups {
		logged = append(logged, g.Group)
	}
	if diff := cmp.Diff([]candor.GroupID{hers}, logged); diff != "" {
		t.Errorf("groups in the Opening record (-alice's +logged):\n%s", diff)
	}
}

// A log whose start was cut without a Deletion record that explains it
// stops the opening, naming the group; so does one whose Deletion record
// names another hash. Neither opening is logged.
func TestOpenUnexplainedCut(t *testing.T) {
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
	last := say(t, g, []*client.Client{alice, bob}, line{alice, "Sell at 102."}, line{bob, "Agreed."}, line{alice, "Done."})
	waitSignedHead(t, env, g, last)
	// Someone with the database deletes the start of the log.
	s := env.Store()
	if _, err := s.DeleteBefore(ctx, g, last-1); err != nil {
		t.Fatal(err)
	}
	start, err := s.LogStart(ctx, g)
	if err != nil {
		t.Fatal(err)
	}

	o := newOpener(t, env)
	open := func(name string) string {
		t.Helper()
		keyFile, id, index := o.request(name, g)
		_, stderr := o.tool(1, "open", "-data", env.Dir, "-request", id.String(), "-opening-key", keyFile,
			"-approvals", o.approve(index, 0)+","+o.approve(index, 1), "-statement", o.stmt, "-out", o.path(name+".db"))
		return stderr
	}
	stderr := open("CASE-HIDDEN")
	for _, want := range []string{"WITHOUT A RECORD IN THE ACCESS LOG", g.String(), "does not explain", "no Deletion record in the access log names this group"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("error %q does not say %q", stderr, want)
		}
	}

	// A Deletion record of the right entries with another hash.
	other := start.Prev
	other[0] ^= 1
	if _, err := o.log.LogDeletion(ctx, &access.Deletion{Group: g, First: 1, Last: start.Seq - 1, LastHash: journal.Hash(other),
		At: time.Now().UTC().Truncate(time.Second), Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	stderr = open("CASE-OTHER-HASH")
	if !strings.Contains(stderr, g.String()) || !strings.Contains(stderr, "the Deletion record at index") {
		t.Errorf("error %q does not name the group and the record", stderr)
	}

	l, err := o.log.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(l.Cases, func(c *access.Case) bool { return len(c.Openings) > 0 }); i >= 0 {
		t.Errorf("case %s is logged as opened", l.Cases[i].Request.Case)
	}
}

// A group whose log retention cut at an anchor, with the Deletion record
// the server logs, opens: its replay starts at the anchor, says why, reads
// the messages from there on, and passes the signed heads.
func TestOpenCutAtAnchor(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env := testenv.New(t, func(c *server.Config) { c.AnchorInterval = time.Nanosecond })
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "phone")
	g, err := alice.CreateGroup(ctx, "deals", "bob")
	if err != nil {
		t.Fatal(err)
	}
	both := []*client.Client{alice, bob}
	mustSync(t, bob)
	say(t, g, both, line{alice, "Before the anchor: sell at 102."})
	if n, err := env.Server.ProposeAnchors(ctx); err != nil || n != 1 {
		t.Fatalf("proposing anchors: %d, %v", n, err)
	}
	mustSync(t, both...)
	last := say(t, g, both, line{bob, "After the anchor: agreed."}, line{alice, "Done."})
	waitSignedHead(t, env, g, last)

	s := env.Store()
	ws, err := s.WelcomeSeqs(ctx, server.ArchiveDevice(env.Archive.Statement.Certificate()), g)
	if err != nil || len(ws) != 2 {
		t.Fatalf("the archive's Welcomes: %+v, %v; want the first commit's and the anchor's", ws, err)
	}
	anchor := ws[1].Seq
	o := newOpener(t, env)
	// Retention as the server runs it: the record first, then the cut.
	before, err := s.Log(ctx, g, anchor-2, 1)
	if err != nil || len(before) != 1 {
		t.Fatalf("entry %d: %v, %v", anchor-1, before, err)
	}
	if _, err := o.log.LogDeletion(ctx, &access.Deletion{Group: g, First: 1, Last: anchor - 1, LastHash: before[0].Hash,
		At: time.Now().UTC().Truncate(time.Second), Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteBefore(ctx, g, anchor); err != nil {
		t.Fatal(err)
	}

	keyFile, id, index := o.request("CASE-CUT", g)
	stdout, _ := o.tool(0, "open", "-data", env.Dir, "-request", id.String(), "-opening-key", keyFile,
		"-approvals", o.approve(index, 0)+","+o.approve(index, 1), "-statement", o.stmt, "-out", o.path("review.db"))
	if want := fmt.Sprintf("replayed from entry %d: the log's first kept entry: entries 1..%d were deleted under retention", anchor, anchor-1); !strings.Contains(stdout, want) {
		t.Errorf("the output does not say %q:\n%s", want, stdout)
	}
	review, err := archive.OpenReview(ctx, o.path("review.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer review.Close()
	recs, err := review.Records(ctx, g, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || recs[0].Seq != anchor || recs[0].Status != archive.Joined {
		t.Fatalf("records start with %+v, want the archive joining at %d", recs, anchor)
	}
	var texts []string
	for _, r := range recs {
		if r.Status != archive.Verified && r.Status != archive.Joined {
			t.Errorf("record %d: %s (%s)", r.Seq, r.Status, r.Reason)
		}
		if r.Kind == archive.KindMessage {
			texts = append(texts, r.Text)
		}
	}
	if diff := cmp.Diff([]string{"After the anchor: agreed.", "Done."}, texts); diff != "" {
		t.Errorf("messages after the cut (-sent +replayed):\n%s", diff)
	}
}
