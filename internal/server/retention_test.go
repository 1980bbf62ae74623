package server

import (
	"sync"
	"testing"
	"time"

	"candor"
	"candor/internal/access"
	"candor/internal/mlsx"
)

// clock is a time the test moves; the server may read it from any
// goroutine.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// anchor proposes the anchors due and has d commit them: the removal of
// the archive, then its return. It returns the return's seq.
func (e *env) anchor(t *testing.T, d *device, id candor.GroupID) uint64 {
	t.Helper()
	if _, err := e.srv.ProposeAnchors(e.ctx); err != nil {
		t.Fatal(err)
	}
	d.catchUp(id)
	d.commit(id, mlsx.CommitOptions{})
	_, resp := d.commit(id, mlsx.CommitOptions{Add: [][]byte{e.archive.Statement.KeyPackage()}})
	return resp.Seq
}

// TestRetention deletes what the retention period lets go, and only
// that: whole prefixes up to an anchor older than the period, each logged
// in the access log first, nothing from a group a legal hold covers.
func TestRetention(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	c := &clock{now: time.Now().UTC().Truncate(time.Second)}
	e := newEnv(t, func(cfg *Config) {
		cfg.Now = c.Now
		cfg.AnchorInterval = 7 * day
		cfg.Retention = 30 * day
	})
	alice, bob, carol := e.enrol("alice", "laptop"), e.enrol("bob", "phone"), e.enrol("carol", "desk")
	bob.uploadKeyPackages(4, false)
	carol.uploadKeyPackages(4, false)
	cut, held := candor.GroupID("cut"), candor.GroupID("held")
	alice.createGroup(cut)
	alice.commit(cut, mlsx.CommitOptions{Add: alice.claim("bob")})
	alice.createGroup(held)
	alice.commit(held, mlsx.CommitOptions{Add: alice.claim("carol")})
	bob.joinWelcomes()
	carol.joinWelcomes()
	for _, id := range []candor.GroupID{cut, held} {
		alice.send(id, "day 0")
	}
	hold := &access.Hold{Case: "2026-17", Reason: "litigation", By: "legal", Set: c.Now(), Users: []candor.UserID{"carol"}}
	holdID, _, err := e.data.Access.LogHold(e.ctx, hold)
	if err != nil {
		t.Fatal(err)
	}

	c.advance(10 * day)
	anchors := map[candor.GroupID]uint64{cut: e.anchor(t, bob, cut), held: e.anchor(t, carol, held)}
	for _, id := range []candor.GroupID{cut, held} {
		alice.catchUp(id)
		alice.send(id, "day 10")
	}
	// Day 35: the anchor of day 10 is not older than the period yet, and
	// the one of day 0 starts the log.
	c.advance(25 * day)
	if ds, err := e.srv.Retain(e.ctx); err != nil || len(ds) != 0 {
		t.Fatalf("retention on day 35: %+v, %v; want nothing", ds, err)
	}
	// Day 41: it is; the held group keeps everything.
	c.advance(6 * day)
	before, err := e.data.Store.Log(e.ctx, cut, anchors[cut]-2, 1)
	if err != nil || len(before) != 1 {
		t.Fatal(before, err)
	}
	ds, err := e.srv.Retain(e.ctx)
	if err != nil || len(ds) != 1 {
		t.Fatalf("retention on day 41: %+v, %v; want one deletion", ds, err)
	}
	d := ds[0]
	if d.Group != cut || d.First != 1 || d.Last != anchors[cut]-1 || d.LastHash != before[0].Hash || d.Retention != 30*day {
		t.Errorf("deletion %+v, want entries 1 to %d of %s with the hash of %d", d, anchors[cut]-1, cut, anchors[cut]-1)
	}
	start, err := e.data.Store.LogStart(e.ctx, cut)
	if err != nil || start.Seq != anchors[cut] || start.Prev != before[0].Hash {
		t.Errorf("the log's start: %+v, %v; want seq %d", start, err, anchors[cut])
	}
	log, err := e.data.Access.Read(e.ctx)
	if err != nil || len(log.Deletions) != 1 || log.Deletions[0].Deletion.Last != d.Last {
		t.Fatalf("the access log's deletions: %+v, %v", log, err)
	}
	if start, err := e.data.Store.LogStart(e.ctx, held); err != nil || start.Seq != 1 {
		t.Errorf("the held group's start: %+v, %v; want 1", start, err)
	}
	// The log goes on from its start, and a second pass finds nothing.
	bob.catchUp(cut)
	bob.send(cut, "day 41")
	if got := alice.catchUp(cut); len(got) != 1 || got[0] != "day 41" {
		t.Errorf("alice read %q after the deletion", got)
	}
	if ds, err := e.srv.Retain(e.ctx); err != nil || len(ds) != 0 {
		t.Fatalf("retention again: %+v, %v; want nothing", ds, err)
	}

	// The hold lifted, the held group's prefix goes too.
	if _, err := e.data.Access.LogRelease(e.ctx, &access.Release{Hold: holdID, Reason: "case closed", By: "legal", At: c.Now()}); err != nil {
		t.Fatal(err)
	}
	if ds, err := e.srv.Retain(e.ctx); err != nil || len(ds) != 1 || ds[0].Group != held || ds[0].Last != anchors[held]-1 {
		t.Fatalf("retention after the release: %+v, %v", ds, err)
	}
}

// A deletion logged by a server that stopped before carrying it out is
// carried out by the next pass, without a second record.
func TestRetentionResumes(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	c := &clock{now: time.Now().UTC().Truncate(time.Second)}
	e := newEnv(t, func(cfg *Config) {
		cfg.Now = c.Now
		cfg.AnchorInterval = day
		cfg.Retention = 2 * day
	})
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	bob.uploadKeyPackages(2, false)
	id := candor.GroupID("resumed")
	alice.createGroup(id)
	alice.commit(id, mlsx.CommitOptions{Add: alice.claim("bob")})
	bob.joinWelcomes()
	alice.send(id, "first")
	c.advance(2 * day)
	anchor := e.anchor(t, bob, id)
	c.advance(3 * day)
	last, err := e.data.Store.Log(e.ctx, id, anchor-2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.data.Access.LogDeletion(e.ctx, &access.Deletion{
		Group: id, First: 1, Last: anchor - 1, LastHash: last[0].Hash, At: c.Now(), Retention: 2 * day,
	}); err != nil {
		t.Fatal(err)
	}
	ds, err := e.srv.Retain(e.ctx)
	if err != nil || len(ds) != 1 {
		t.Fatalf("resuming: %+v, %v", ds, err)
	}
	if start, err := e.data.Store.LogStart(e.ctx, id); err != nil || start.Seq != anchor {
		t.Errorf("start %+v, %v; want %d", start, err, anchor)
	}
	log, err := e.data.Access.Read(e.ctx)
	if err != nil || len(log.Deletions) != 1 {
		t.Fatalf("deletions logged: %+v, %v; want the one", log.Deletions, err)
	}
}
