package archive_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"candor"
	"candor/internal/archive"
	"candor/internal/archive/journalgen"
	"candor/internal/mlsx"
	"candor/internal/pki"
	"candor/internal/store/sqlstore"
)

// org is an organisation with its CA and archive key, and a journal the
// generator wrote into a real server store.
type org struct {
	ca    *pki.CA
	key   archive.Key
	store *sqlstore.Store
	db    string // the store's file
	gen   journalgen.Result
	sent  []journalgen.Sent // in (group, seq) order
	start time.Time
}

// newArchiveKey makes an archive key certified by ca: what the custody
// ceremony derives from the archive's secret.
func newArchiveKey(t testing.TB, ca *pki.CA, now time.Time) (archive.Key, []byte) {
	t.Helper()
	var keys [2][]byte
	for i := range keys {
		k, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k.Bytes()
	}
	secrets := mlsx.KeyPackageSecrets{Init: keys[0], Encryption: keys[1]}
	sig, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueArchive("k1", &sig.PublicKey, now, now.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := mlsx.ArchiveKeyPackage(mlsx.Identity{Key: sig, Chain: [][]byte{cert}}, secrets, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return archive.Key{KeyPackage: kp, Secrets: secrets}, cert
}

func newOrg(t testing.TB, groups, messages, commitEvery int) *org {
	t.Helper()
	return newOrgWith(t, orgConfig{groups: groups, messages: messages, commitEvery: commitEvery})
}

// orgConfig is what newOrgWith has the generator make.
type orgConfig struct {
	groups, messages, commitEvery int
	anchorEvery                   int // 0: no anchors
}

func newOrgWith(t testing.TB, c orgConfig) *org {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	ca, err := pki.NewCA("Example Bank", now)
	if err != nil {
		t.Fatal(err)
	}
	key, cert := newArchiveKey(t, ca, now)
	db := filepath.Join(t.TempDir(), "server.db")
	st, err := sqlstore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o := &org{ca: ca, key: key, store: st, db: db, start: now.Truncate(time.Second)}
	var mu sync.Mutex
	o.gen, err = journalgen.Generate(ctx, journalgen.Config{
		Store: st, CA: ca, ArchiveKeyPackage: key.KeyPackage, ArchiveCertificate: cert,
		Groups: c.groups, Messages: c.messages, People: 30, MaxGroupSize: 8, CommitEvery: c.commitEvery, AnchorEvery: c.anchorEvery,
		Start: o.start, Seed: 7,
		Sent: func(s journalgen.Sent) {
			mu.Lock()
			defer mu.Unlock()
			o.sent = append(o.sent, s)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(o.sent, func(a, b journalgen.Sent) int {
		if a.Group != b.Group {
			if a.Group < b.Group {
				return -1
			}
			return 1
		}
		return int(a.Seq) - int(b.Seq)
	})
	return o
}

func (o *org) config(t testing.TB, review *archive.Review) archive.Config {
	return archive.Config{
		Keys:   []archive.Key{o.key},
		CA:     o.ca.Certificate(),
		Source: archive.NewStoreSource(o.store, "archive"),
		Review: review,
	}
}

func openReview(t testing.TB) (*archive.Review, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "review.db")
	r, err := archive.OpenReview(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, path
}

// messages returns the message records of every group, in (group, seq)
// order.
func messages(t testing.TB, r *archive.Review, groups []candor.GroupID) []archive.Record {
	t.Helper()
	var out []archive.Record
	for _, g := range groups {
		for _, rec := range allRecords(t, r, g) {
			if rec.Kind == archive.KindMessage {
				out = append(out, rec)
			}
		}
	}
	return out
}

func allRecords(t testing.TB, r *archive.Review, g candor.GroupID) []archive.Record {
	t.Helper()
	var out []archive.Record
	for after := uint64(0); ; {
		recs, err := r.Records(context.Background(), g, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}
