package sqllog

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
)

// hashesFor returns the stored hashes of records appended to a log that
// holds them alone, computed with tlog.
func hashesFor(t *testing.T, records [][]byte) []tlog.Hash {
	t.Helper()
	var all []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = all[x]
		}
		return out, nil
	})
	for i, rec := range records {
		h, err := tlog.StoredHashes(int64(i), rec, r)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, h...)
	}
	return all
}

func TestStorage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "logs.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := db.Storage(ctx, "candor.test/a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.Storage(ctx, "candor.test/b")
	if err != nil {
		t.Fatal(err)
	}
	recs := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	hashes := hashesFor(t, recs)
	if err := a.Append(ctx, 0, recs[:2], hashes[:tlog.StoredHashCount(2)]); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(ctx, 2, recs[2:], hashes[tlog.StoredHashCount(2):]); err != nil {
		t.Fatal(err)
	}

	// An append at a stale size is a conflict and stores nothing, as when
	// a writer in another process got there first.
	if err := a.Append(ctx, 2, recs[2:], hashes[tlog.StoredHashCount(2):]); !errors.Is(err, candor.ErrConflict) {
		t.Errorf("append at a stale size: %v, want ErrConflict", err)
	}
	if err := a.Append(ctx, 1, recs[1:2], hashes[:1]); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("append with the wrong number of hashes: %v, want ErrInvalid", err)
	}
	if err := a.Append(ctx, 3, nil, nil); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("append of nothing: %v, want ErrInvalid", err)
	}

	// The other log of the file is untouched.
	if n, err := b.Size(ctx); err != nil || n != 0 {
		t.Errorf("log b has %d records (%v), want 0", n, err)
	}
	if _, err := b.Record(ctx, 0); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("log b record 0: %v, want ErrNotFound", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Everything is there after reopening.
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err = db.Storage(ctx, "candor.test/a")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := a.Size(ctx); err != nil || n != 3 {
		t.Fatalf("size after reopening %d (%v), want 3", n, err)
	}
	for i, want := range recs {
		if got, err := a.Record(ctx, int64(i)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("record %d = %q (%v), want %q", i, got, err, want)
		}
	}
	// Hashes come back in the order asked, whatever it is.
	idx := []int64{3, 0, 2, 1, 3}
	got, err := a.ReadHashes(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	want := []tlog.Hash{hashes[3], hashes[0], hashes[2], hashes[1], hashes[3]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadHashes(%v) (-want +got):\n%s", idx, diff)
	}
	if _, err := a.ReadHashes(ctx, []int64{0, int64(len(hashes))}); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("reading a hash not stored: %v, want ErrNotFound", err)
	}
	if _, err := db.Storage(ctx, ""); !errors.Is(err, candor.ErrInvalid) {
		t.Errorf("a log without an origin: %v, want ErrInvalid", err)
	}
}
