package archive_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"candor"
	"candor/internal/archive"
	"candor/internal/archive/journalgen"
	"candor/internal/journal"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
	"candor/internal/pki"
)

// sliceSource is a journal held in memory, with its hashes.
type sliceSource struct {
	group    candor.GroupID
	welcomes []archive.Welcome
	entries  []archive.Entry
}

func (s *sliceSource) Groups(context.Context) ([]candor.GroupID, error) {
	return []candor.GroupID{s.group}, nil
}

func (s *sliceSource) Welcomes(context.Context, candor.GroupID) ([]archive.Welcome, error) {
	return s.welcomes, nil
}

func (s *sliceSource) Entries(_ context.Context, _ candor.GroupID, after uint64, limit int) ([]archive.Entry, error) {
	var out []archive.Entry
	for _, e := range s.entries {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *sliceSource) Head(context.Context, candor.GroupID) (uint64, error) {
	return uint64(len(s.entries)), nil
}

// LogStart: a log never cut.
func (s *sliceSource) LogStart(context.Context, candor.GroupID) (archive.LogStart, error) {
	return archive.LogStart{Seq: 1, Prev: journal.Genesis}, nil
}

func (s *sliceSource) append(sender candor.DeviceID, epoch candor.Epoch, commit bool, at time.Time, msg []byte) {
	prev := journal.Genesis
	if n := len(s.entries); n > 0 {
		prev = s.entries[n-1].Hash
	}
	e := journal.Entry{Seq: uint64(len(s.entries) + 1), Epoch: epoch, Commit: commit, Sender: sender, Time: at, Message: msg}
	s.entries = append(s.entries, archive.Entry{Entry: e, Hash: journal.EntryHash(s.group, e, prev), Hashed: true})
}

type member struct {
	id    candor.DeviceID
	key   *ecdsa.PrivateKey
	cert  []byte
	store *mlsxtest.Store
	dev   *mlsx.Device
	group *mlsx.Group
}

func newMember(t *testing.T, ca *pki.CA, user candor.UserID, id candor.DeviceID, st *mlsxtest.Store) *member {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(user, id, &key.PublicKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st == nil {
		st = mlsxtest.NewStore()
	}
	v := mlsx.ValidatorFunc(func(context.Context, candor.GroupID, mlsx.Member) error { return nil })
	dev, err := mlsx.NewDevice(context.Background(), mlsx.Config{Identity: mlsx.Identity{Key: key, Chain: [][]byte{cert}}, Store: st, Validator: v})
	if err != nil {
		t.Fatal(err)
	}
	return &member{id: id, key: key, cert: cert, store: st, dev: dev}
}

func text(t *testing.T, s string) []byte {
	b, err := json.Marshal(map[string]string{"text": s})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A message whose signature does not verify (a device that holds alice's
// group state but not her signing key) is recorded as failed, and the
// replay goes on.
func TestForgedSignatureIsRecordedAsFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	ca, err := pki.NewCA("Example Bank", now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := newArchiveKey(t, ca, now)
	alice := newMember(t, ca, "alice", "alice.laptop", nil)
	bob := newMember(t, ca, "bob", "bob.phone", nil)
	src := &sliceSource{group: "desk"}
	if alice.group, err = alice.dev.CreateGroup(ctx, src.group, mlsx.GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	kps, err := bob.dev.KeyPackages(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := alice.group.Commit(ctx, mlsx.CommitOptions{Add: [][]byte{kps[0], key.KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.group.Confirm(ctx); err != nil {
		t.Fatal(err)
	}
	if bob.group, err = bob.dev.Join(ctx, c.Welcome); err != nil {
		t.Fatal(err)
	}
	src.append(alice.id, 0, true, now, c.Message)
	src.welcomes = []archive.Welcome{{Seq: 1, Data: c.Welcome}}

	send := func(m *member, g *mlsx.Group, s string) {
		t.Helper()
		msg, err := g.Encrypt(ctx, text(t, s))
		if err != nil {
			t.Fatal(err)
		}
		src.append(m.id, 1, false, now.Add(time.Duration(len(src.entries))*time.Second), msg)
	}
	send(alice, alice.group, "hello")
	// Mallory holds a copy of alice's device state and her own certified
	// key, and sends from alice's leaf.
	mallory := newMember(t, ca, "mallory", "mallory.desk", alice.store.Clone())
	forged, err := mallory.dev.Group(ctx, src.group)
	if err != nil {
		t.Fatal(err)
	}
	send(alice, forged, "transfer approved")
	send(bob, bob.group, "after")

	review, _ := openReview(t)
	sum, err := archive.Replay(ctx, archive.Config{Keys: []archive.Key{key}, CA: ca.Certificate(), Source: src, Review: review})
	if err != nil {
		t.Fatal(err)
	}
	recs := allRecords(t, review, src.group)
	want := []struct {
		status archive.Status
		text   string
		device candor.DeviceID
	}{
		{archive.Joined, "", alice.id},
		{archive.Verified, "hello", alice.id},
		{archive.Failed, "", alice.id},
		{archive.Verified, "after", bob.id},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	for i, w := range want {
		r := recs[i]
		if r.Status != w.status || r.Text != w.text || r.Sender.Device != w.device || r.Chain != archive.ChainVerified {
			t.Errorf("record %d: %+v, want %+v", i+1, r, w)
		}
	}
	if recs[2].Kind != archive.KindMessage || recs[2].Reason != mlsx.ErrBadSignature.Error() && !strings.Contains(recs[2].Reason, mlsx.ErrBadSignature.Error()) {
		t.Errorf("failed record: %+v", recs[2])
	}
	if sum.Failed != 1 {
		t.Errorf("summary: %+v", sum)
	}
}

// Keys that are not the archive's fail the replay with a clear error and
// write no record.
func TestWrongKeys(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 2, 20, 100)
	other, _ := newArchiveKey(t, o.ca, time.Now())
	review, _ := openReview(t)
	cfg := o.config(t, review)
	cfg.Keys = []archive.Key{other}
	sum, err := archive.Replay(context.Background(), cfg)
	if !errors.Is(err, archive.ErrKeys) || !errors.Is(err, candor.ErrPermission) {
		t.Fatalf("Replay with other keys: %v", err)
	}
	var ge *archive.GroupError
	if !errors.As(err, &ge) || ge.Seq != 1 {
		t.Fatalf("error does not name the group and seq: %v", err)
	}
	if sum.Records != 0 {
		t.Fatalf("%d records written with the wrong keys", sum.Records)
	}
	for _, g := range o.gen.Groups {
		if recs := allRecords(t, review, g); len(recs) != 0 {
			t.Fatalf("group %s: %d records", g, len(recs))
		}
	}
	// The review store remembers the keys it was begun with.
	cfg.Keys = []archive.Key{o.key}
	if _, err := archive.Replay(context.Background(), cfg); !errors.Is(err, candor.ErrConflict) {
		t.Fatalf("resuming with other keys: %v", err)
	}
}

// Records outside the time range are not written; the messages inside it
// all are, though every entry before them was processed.
func TestTimeRange(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 3, 150, 15)
	from, to := o.start.Add(20*time.Second), o.start.Add(40*time.Second)
	review, _ := openReview(t)
	cfg := o.config(t, review)
	cfg.Scope = archive.Scope{Groups: o.gen.Groups[1:], From: from, To: to}
	if _, err := archive.Replay(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if recs := allRecords(t, review, o.gen.Groups[0]); len(recs) != 0 {
		t.Fatalf("a group out of scope has %d records", len(recs))
	}
	var want []journalgen.Sent
	for _, s := range o.sent {
		if s.Group != o.gen.Groups[0] && !s.Time.Before(from) && s.Time.Before(to) {
			want = append(want, s)
		}
	}
	got := messages(t, review, o.gen.Groups[1:])
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("%d messages recorded in range, %d sent", len(got), len(want))
	}
	for i, s := range want {
		if got[i].Seq != s.Seq || got[i].Text != s.Text || got[i].Status != archive.Verified {
			t.Errorf("message %d: %+v, sent %+v", i, got[i], s)
		}
	}
	for _, g := range o.gen.Groups[1:] {
		for _, r := range allRecords(t, review, g) {
			if r.Time.Before(from) || !r.Time.Before(to) {
				t.Errorf("record out of range: %+v", r)
			}
		}
	}
}
