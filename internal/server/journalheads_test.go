package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"candor"
	"candor/api"
	"candor/internal/journal"
	"candor/internal/sqldb"
	"candor/internal/store"
	"candor/internal/translog"
)

// journalClient fetches and checks group heads as a device would.
type journalClient struct {
	d *device
	v *translog.Verifier
}

func newJournalClient(t testing.TB, d *device) *journalClient {
	t.Helper()
	var k api.AccessKey
	d.call("GET", api.PathJournalKey, nil, &k)
	pub, err := os.ReadFile(filepath.Join(d.e.data.Dir, FileJournalPub))
	if err != nil {
		t.Fatal(err)
	}
	if k.Key != strings.TrimSpace(string(pub)) {
		t.Fatalf("served key %q, %s holds %q", k.Key, FileJournalPub, pub)
	}
	verifier, err := note.NewVerifier(k.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(verifier.Name(), journalOriginSuffix) {
		t.Fatalf("the journal-heads log is named %q", verifier.Name())
	}
	v, err := translog.NewVerifier(translog.VerifierConfig{Key: verifier})
	if err != nil {
		t.Fatal(err)
	}
	return &journalClient{d: d, v: v}
}

// head fetches group's latest signed head, moving the client's trusted
// checkpoint to the one it comes with. It returns the head, or the
// server's error code.
func (c *journalClient) head(t testing.TB, group candor.GroupID) (journal.Head, api.Code, error) {
	t.Helper()
	trusted, _ := c.v.Trusted()
	var out api.JournalHead
	st, ae := c.d.try("GET", fmt.Sprintf("%s?group=%s&since=%d", api.PathJournalHeads, hex.EncodeToString([]byte(group)), trusted.Size), nil, &out)
	if ae != nil {
		return journal.Head{}, ae.Code, nil
	}
	if st != 200 {
		t.Fatalf("status %d", st)
	}
	var cp translog.ConsistencyProof
	if err := cp.UnmarshalText(out.Consistency); err != nil {
		t.Fatal(err)
	}
	if _, err := c.v.Update(out.Checkpoint, cp); err != nil {
		return journal.Head{}, "", err
	}
	var p translog.InclusionProof
	if err := p.UnmarshalText(out.Proof); err != nil {
		t.Fatal(err)
	}
	if p.Index != out.Index {
		t.Fatalf("record %d with the proof of %d", out.Index, p.Index)
	}
	if err := c.v.VerifyInclusion(out.Record, p); err != nil {
		return journal.Head{}, "", err
	}
	h, err := journal.ParseHead(out.Record)
	if err != nil {
		t.Fatal(err)
	}
	if h.Group != group {
		t.Fatalf("asked for the head of %s, got %s's", group, h.Group)
	}
	return h, "", nil
}

// waitHead polls until group's signed head reaches seq.
func (c *journalClient) waitHead(t testing.TB, group candor.GroupID, seq uint64) journal.Head {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, code, err := c.head(t, group)
		if err != nil {
			t.Fatalf("head of %s: %v", group, err)
		}
		if code == "" && h.Seq >= seq {
			return h
		}
		if code != "" && code != api.CodeNotFound {
			t.Fatalf("head of %s: %s", group, code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no signed head of %s at %d after 10s (at %d, code %q)", group, seq, h.Seq, code)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// storeHash returns the chain hash the store keeps for entry seq of group.
func storeHash(t testing.TB, e *env, group candor.GroupID, seq uint64) journal.Hash {
	t.Helper()
	es, err := e.data.Store.Log(e.ctx, group, seq-1, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("entry %d of %s: %v", seq, group, err)
	}
	return es[0].Hash
}

// TestJournalHeads: while two groups' messages flow, the server appends
// their heads, and a device fetches each group's head with its proofs,
// checks them against the checkpoint it trusts, and finds the chain hash
// the store keeps for that entry.
func TestJournalHeads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.JournalInterval = 10 * time.Millisecond })
	alice := e.enrol("alice", "laptop")
	bob := e.enrol("bob", "phone")
	carol := e.enrol("carol", "desk")
	c := newJournalClient(t, carol)

	if _, code, err := c.head(t, "no-such-group"); err != nil || code != api.CodeNotFound {
		t.Fatalf("head of an unknown group: code %q, %v", code, err)
	}
	if st, ae := carol.try("GET", api.PathJournalHeads+"?group=zz", nil, nil); ae == nil || ae.Code != api.CodeBadRequest {
		t.Fatalf("a group id not in hex: %d %+v", st, ae)
	}

	groups := []candor.GroupID{"journal-1", "journal-2"}
	for _, g := range groups {
		pair(t, alice, bob, g)
	}
	var wg sync.WaitGroup
	last := make([]uint64, len(groups))
	for i, g := range groups {
		wg.Go(func() {
			for n := range 15 {
				_, resp := alice.send(g, fmt.Sprintf("message %d", n))
				last[i] = resp.Seq
			}
		})
	}
	// The device reads heads while messages are appended.
	for range 10 {
		for _, g := range groups {
			if h, code, err := c.head(t, g); err != nil {
				t.Fatalf("head of %s while messages flow: %v", g, err)
			} else if code == "" && !h.Hash.Equal(storeHash(t, e, g, h.Seq)) {
				t.Fatalf("signed head of %s at %d is not the store's chain hash", g, h.Seq)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	for i, g := range groups {
		h := c.waitHead(t, g, last[i])
		if h.Seq != last[i] || !h.Hash.Equal(storeHash(t, e, g, h.Seq)) {
			t.Fatalf("signed head of %s: %d %v; the store's head is %d %v", g, h.Seq, h.Hash, last[i], storeHash(t, e, g, last[i]))
		}
	}
	// A head already logged is not logged again: at most one record per
	// entry, however often the appender ran.
	trusted, _ := c.v.Trusted()
	if trusted.Size > int64(last[0]+last[1]) {
		t.Fatalf("%d records for %d entries", trusted.Size, last[0]+last[1])
	}
}

// TestJournalRollback: a journal-heads log cut back behind what a device
// trusts is caught by the device, and by the server when it next opens
// the log.
func TestJournalRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.JournalInterval = 10 * time.Millisecond })
	alice := e.enrol("alice", "laptop")
	bob := e.enrol("bob", "phone")
	c := newJournalClient(t, bob)
	const g = candor.GroupID("rollback")
	pair(t, alice, bob, g)
	_, resp := alice.send(g, "one")
	c.waitHead(t, g, resp.Seq)
	_, resp = alice.send(g, "two")
	c.waitHead(t, g, resp.Seq)
	trusted, _ := c.v.Trusted()
	if trusted.Size < 2 {
		t.Fatalf("log of %d records", trusted.Size)
	}

	// Cut the last record off, as a restore from an older backup would.
	db, err := sqldb.OpenSQLite(e.ctx, filepath.Join(e.data.Dir, FileJournalDB), sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.W.ExecContext(e.ctx, `UPDATE logs SET size = size - 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.ExecContext(e.ctx, `DELETE FROM records WHERE idx >= (SELECT size FROM logs)`); err != nil {
		t.Fatal(err)
	}
	var cp api.AccessCheckpoint
	bob.call("GET", fmt.Sprintf("%s?since=%d", api.PathJournalCheckpoint, trusted.Size), nil, &cp)
	var p translog.ConsistencyProof
	if err := p.UnmarshalText(cp.Proof); err != nil {
		t.Fatal(err)
	}
	if _, err := c.v.Update(cp.Checkpoint, p); !errors.Is(err, translog.ErrInconsistent) {
		t.Fatalf("checkpoint of a rolled-back log: %v; want ErrInconsistent", err)
	}
	// The group's head, which the log lost, is not served as missing.
	if st, ae := bob.try("GET", fmt.Sprintf("%s?group=%s", api.PathJournalHeads, hex.EncodeToString([]byte(g))), nil, nil); ae == nil || ae.Code != api.CodeInternal {
		t.Fatalf("head lost by the log: %d %+v, want internal", st, ae)
	}
	if j, err := OpenJournalLog(e.ctx, e.data.Dir); !errors.Is(err, candor.ErrInvalid) {
		if err == nil {
			j.Close()
		}
		t.Fatalf("opening a rolled-back log: %v, want ErrInvalid", err)
	}
}

// TestJournalFlushOnClose: heads that moved since the last batch are
// appended when the log is closed, not lost.
func TestJournalFlushOnClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.JournalInterval = time.Hour })
	alice := e.enrol("alice", "laptop")
	bob := e.enrol("bob", "phone")
	const g = candor.GroupID("flush")
	pair(t, alice, bob, g)
	_, resp := alice.send(g, "one")
	if _, _, err := e.data.Journal.latest(e.ctx, g); !errors.Is(err, candor.ErrNotFound) {
		t.Fatalf("a head was appended before the interval: %v", err)
	}
	want := storeHash(t, e, g, resp.Seq)
	if err := e.data.Journal.Close(); err != nil {
		t.Fatal(err)
	}
	j, err := OpenJournalLog(e.ctx, e.data.Dir)
	if err != nil {
		t.Fatal(err)
	}
	e.data.Journal = j // closed with the folder
	h, _, err := j.latest(e.ctx, g)
	if err != nil || h.Seq != resp.Seq || !h.Hash.Equal(want) {
		t.Fatalf("head after close: %+v, %v; want %d %v", h, err, resp.Seq, want)
	}
}

// BenchmarkJournalHeads measures appends to 100 groups of the server's
// store from many goroutines, each marking its group for the heads
// appender as handleSend does, with the appender off and on (at the
// default interval and at 100 ms): the cost the appender's batches, which
// read the store and write journal.db, put on the append path.
func BenchmarkJournalHeads(b *testing.B) {
	for _, bc := range []struct {
		name     string
		interval time.Duration // 0: off
	}{{"appender=off", 0}, {"appender=2s", DefaultJournalInterval}, {"appender=100ms", 100 * time.Millisecond}} {
		b.Run(bc.name, func(b *testing.B) { journalHeadsBench(b, bc.interval) })
	}
}

func journalHeadsBench(b *testing.B, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := b.TempDir()
	if err := Init(ctx, dir, InitOptions{Org: "Example Bank", OpenStore: openSQL}); err != nil {
		b.Fatal(err)
	}
	d, err := Open(ctx, dir, openSQL)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	t0 := time.Now()
	hash := sha256.Sum256([]byte("secret"))
	if err := d.Store.CreateInvitation(ctx, store.Invitation{ID: "inv", User: "alice", SecretHash: hash[:], Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	fp := sha256.Sum256([]byte("cert"))
	if err := d.Store.Enrol(ctx, "inv", hash[:], t0, store.Device{ID: "dev", User: "alice", Certificate: []byte("cert"), Fingerprint: fp[:], EnrolledAt: t0}); err != nil {
		b.Fatal(err)
	}
	if interval > 0 {
		if err := d.Journal.start(ctx, d.Store, interval, slog.New(slog.DiscardHandler)); err != nil {
			b.Fatal(err)
		}
	}
	type group struct {
		sync.Mutex
		id   candor.GroupID
		head uint64
	}
	const groups = 100
	gs := make([]*group, groups)
	for i := range gs {
		gs[i] = &group{id: candor.GroupID(fmt.Sprintf("group %03d", i))}
		if err := d.Store.CreateGroup(ctx, store.Group{ID: gs[i].id, Roster: make([]byte, 2048), Created: t0}, "dev"); err != nil {
			b.Fatal(err)
		}
	}
	var counter, next atomic.Uint64
	start := time.Now()
	b.SetParallelism(groups)
	b.RunParallel(func(pb *testing.PB) {
		g := gs[next.Add(1)%groups]
		for pb.Next() {
			msg := make([]byte, 300)
			copy(msg, strconv.FormatUint(counter.Add(1), 10))
			g.Lock()
			seq, err := d.Store.Append(ctx, store.AppendRequest{Group: g.id, PrevHead: g.head,
				Entry: store.Entry{Sender: "dev", Time: t0, Message: msg}})
			if err == nil {
				g.head = seq
				d.Journal.mark(g.id)
			}
			g.Unlock()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(counter.Load())/time.Since(start).Seconds(), "entries/s")
	b.StopTimer()
	if interval > 0 {
		// The last batch covers every group's head.
		if err := d.Journal.Close(); err != nil {
			b.Fatal(err)
		}
		j, err := OpenJournalLog(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		d.Journal = j
		for _, g := range gs {
			if h, _, err := j.latest(ctx, g.id); g.head > 0 && (err != nil || h.Seq != g.head) {
				b.Fatalf("%s: signed head %d, %v; the store's is %d", g.id, h.Seq, err, g.head)
			}
		}
	}
}

// Heads marked but not logged when the server stopped (a crash) are logged
// by the next server's first batch, which looks at every group.
func TestJournalHeadsAfterCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.JournalInterval = time.Hour })
	alice := e.enrol("alice", "laptop")
	bob := e.enrol("bob", "phone")
	const g = candor.GroupID("crash")
	pair(t, alice, bob, g)
	_, resp := alice.send(g, "one")
	j := e.data.Journal
	j.mu.Lock()
	clear(j.dirty) // the marks a crash loses
	j.mu.Unlock()
	if err := j.flush(e.ctx, e.data.Store); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.latest(e.ctx, g); !errors.Is(err, candor.ErrNotFound) {
		t.Fatalf("a head was logged without a mark: %v", err)
	}
	if err := j.markAll(e.ctx, e.data.Store); err != nil {
		t.Fatal(err)
	}
	if err := j.flush(e.ctx, e.data.Store); err != nil {
		t.Fatal(err)
	}
	want := storeHash(t, e, g, resp.Seq)
	if h, _, err := j.latest(e.ctx, g); err != nil || h.Seq != resp.Seq || !h.Hash.Equal(want) {
		t.Fatalf("head after the first batch: %+v, %v; want %d %v", h, err, resp.Seq, want)
	}
}
