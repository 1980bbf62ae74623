package translog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
	"candor/internal/sqldb"
	"candor/internal/translog"
	"candor/internal/translog/sqllog"
)

const origin = "candor.test/access"

// key returns the test log's signer and verifier, from a fixed seed.
func key(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)), origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// openLog opens (creating) the log file at path with the test key, and
// closes it when the test ends.
func openLog(t testing.TB, path string) *translog.Log {
	t.Helper()
	l, db, err := openLogFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return l
}

// openLogFile opens (creating) the log file at path with the test key.
func openLogFile(ctx context.Context, path string) (*translog.Log, *sqllog.DB, error) {
	db, err := sqllog.Open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	st, err := db.Storage(ctx, origin)
	if err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	skey, _, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)), origin)
	if err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	l, err := translog.New(ctx, translog.Config{Origin: origin, Signer: signer, Storage: st})
	if err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	return l, db, nil
}

func newVerifier(t testing.TB, trusted []byte) *translog.Verifier {
	t.Helper()
	_, v := key(t)
	ver, err := translog.NewVerifier(translog.VerifierConfig{Key: v, Trusted: trusted})
	if err != nil {
		t.Fatal(err)
	}
	return ver
}

// refRoot computes the Merkle tree hash of records as RFC 6962 §2.1
// defines it, recursively and without tlog, as the oracle the log's
// checkpoints are checked against.
func refRoot(records [][]byte) tlog.Hash {
	switch len(records) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0x00}, records[0]...))
	}
	k := 1
	for k*2 < len(records) {
		k *= 2
	}
	l, r := refRoot(records[:k]), refRoot(records[k:])
	return sha256.Sum256(append(append([]byte{0x01}, l[:]...), r[:]...))
}

func record(prefix string, i int) []byte { return fmt.Appendf(nil, "%s %d", prefix, i) }

// update moves v to the log's current checkpoint, as a client does: it
// asks for the checkpoint and a proof from the size it trusts.
func update(t testing.TB, l *translog.Log, v *translog.Verifier) (translog.Checkpoint, []byte, error) {
	t.Helper()
	trusted, _ := v.Trusted()
	signed, p, err := l.CheckpointSince(context.Background(), trusted.Size)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Update(signed, p)
	return got, signed, err
}

func mustVerifier(t testing.TB) note.Verifier {
	_, v := key(t)
	return v
}

// TestLog appends records in batches of growing size and, after each,
// checks the checkpoint against the oracle, moves a client to it, and
// proves and checks every record.
func TestLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "log.db"))
	v := newVerifier(t, nil)
	var all [][]byte
	for batch := 1; batch <= 12; batch++ {
		var recs [][]byte
		for range batch {
			recs = append(recs, record("entry", len(all)+len(recs)))
		}
		first, err := l.Append(ctx, recs...)
		if err != nil {
			t.Fatal(err)
		}
		if first != int64(len(all)) {
			t.Fatalf("batch %d starts at %d, want %d", batch, first, len(all))
		}
		all = append(all, recs...)
		c, _, err := update(t, l, v)
		if err != nil {
			t.Fatalf("after %d records: %v", len(all), err)
		}
		if c.Size != int64(len(all)) || c.Hash != refRoot(all) {
			t.Fatalf("checkpoint %d %v, want %d %v", c.Size, c.Hash, len(all), refRoot(all))
		}
		for i, r := range all {
			p, err := l.ProveInclusion(ctx, int64(i), c.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.VerifyInclusion(r, p); err != nil {
				t.Fatalf("record %d of %d: %v", i, len(all), err)
			}
			got, err := l.Record(ctx, int64(i))
			if err != nil || !bytes.Equal(got, r) {
				t.Fatalf("Record(%d) = %q, %v; want %q", i, got, err, r)
			}
		}
	}
	// Every earlier size proves consistent with the last, through the
	// text form a client receives.
	last, _ := v.Trusted()
	for older := int64(1); older < last.Size; older++ {
		p, err := l.ProveConsistency(ctx, older, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		text, err := p.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got translog.ConsistencyProof
		if err := got.UnmarshalText(text); err != nil {
			t.Fatal(err)
		}
		old := translog.Checkpoint{Origin: origin, Size: older, Hash: refRoot(all[:older])}
		if err := translog.VerifyConsistency(old, last, got); err != nil {
			t.Fatalf("%d to %d: %v", older, last.Size, err)
		}
	}
}

func TestLogRejects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "log.db"))
	if _, err := l.Append(ctx, []byte("a"), []byte("b"), []byte("c")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"no records", second(l.Append(ctx)), candor.ErrInvalid},
		{"empty record", second(l.Append(ctx, []byte("x"), nil)), candor.ErrInvalid},
		{"record too large", second(l.Append(ctx, make([]byte, translog.DefaultMaxRecordSize+1))), candor.ErrInvalid},
		{"record past the end", second(l.Record(ctx, 3)), candor.ErrNotFound},
		{"negative record", second(l.Record(ctx, -1)), candor.ErrInvalid},
		{"inclusion past the end", second(l.ProveInclusion(ctx, 0, 4)), candor.ErrNotFound},
		{"inclusion at size", second(l.ProveInclusion(ctx, 3, 3)), candor.ErrInvalid},
		{"consistency past the end", second(l.ProveConsistency(ctx, 1, 4)), candor.ErrNotFound},
		{"consistency backwards", second(l.ProveConsistency(ctx, 3, 2)), candor.ErrInvalid},
		{"checkpoint since a negative size", third(l.CheckpointSince(ctx, -1)), candor.ErrInvalid},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	// Nothing refused was appended.
	if n, err := l.Size(ctx); err != nil || n != 3 {
		t.Errorf("size %d (%v), want 3", n, err)
	}

	db, err := sqllog.Open(ctx, filepath.Join(t.TempDir(), "other.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := db.Storage(ctx, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := key(t)
	for name, cfg := range map[string]translog.Config{
		"key named after another log": {Origin: "candor.test/other", Signer: signer, Storage: st},
		"no signer":                   {Origin: origin, Storage: st},
		"no storage":                  {Origin: origin, Signer: signer},
		"negative record size":        {Origin: origin, Signer: signer, Storage: st, MaxRecordSize: -1},
	} {
		if _, err := translog.New(ctx, cfg); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("New with %s: %v, want ErrInvalid", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }

// TestTampering alters the log's file behind its back, as someone with
// access to the server's disk could, and checks that each change is caught
// and named.
func TestTampering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l := openLog(t, path)
	var recs [][]byte
	for i := range 20 {
		recs = append(recs, record("entry", i))
	}
	if _, err := l.Append(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, nil)
	if _, _, err := update(t, l, v); err != nil {
		t.Fatal(err)
	}
	raw, err := sqldb.OpenSQLite(ctx, path, sqldb.Full)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	// A record rewritten in place: the server notices on reading it, and
	// a client given it with its proof refuses it.
	if _, err := raw.W.ExecContext(ctx, `UPDATE records SET data = ? WHERE idx = 4`, []byte("entry 4, rewritten")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(ctx, 4); !errors.Is(err, translog.ErrCorrupt) {
		t.Errorf("Record of a rewritten record: %v, want ErrCorrupt", err)
	}
	p, err := l.ProveInclusion(ctx, 4, 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyInclusion([]byte("entry 4, rewritten"), p); !errors.Is(err, translog.ErrNotIncluded) {
		t.Errorf("client given the rewritten record: %v, want ErrNotIncluded", err)
	}

	// A stored tree hash rewritten (that of records 16 to 19, which the
	// root of 20 records is made from): the log now signs another root for
	// the same size, which a client that kept the old one sees as a fork.
	if _, err := raw.W.ExecContext(ctx, `UPDATE hashes SET hash = zeroblob(32) WHERE idx = ?`, tlog.StoredHashIndex(2, 4)); err != nil {
		t.Fatal(err)
	}
	trustedBefore, _ := v.Trusted()
	_, _, err = update(t, l, v)
	var ie *translog.InconsistentError
	if !errors.As(err, &ie) || !errors.Is(err, translog.ErrInconsistent) || ie.Kind != translog.Fork || ie.Unproven {
		t.Fatalf("after a stored hash was changed: %v, want a proven fork", err)
	}
	if after, _ := v.Trusted(); after.Size != trustedBefore.Size || after.Hash != trustedBefore.Hash {
		t.Errorf("a refused checkpoint replaced the trusted one")
	}

	// A record deleted: not "not found", since the log counts it.
	if _, err := raw.W.ExecContext(ctx, `DELETE FROM records WHERE idx = 7`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(ctx, 7); !errors.Is(err, translog.ErrCorrupt) {
		t.Errorf("Record of a deleted record: %v, want ErrCorrupt", err)
	}

	// Stored hashes deleted: the log cannot compute its tree and says its
	// storage is corrupt rather than signing something.
	if _, err := raw.W.ExecContext(ctx, `DELETE FROM hashes WHERE idx = ?`, tlog.StoredHashIndex(4, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(ctx); !errors.Is(err, translog.ErrCorrupt) {
		t.Errorf("Checkpoint with a stored hash gone: %v, want ErrCorrupt", err)
	}
}

func TestVerifierSignature(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "log.db"))
	v := newVerifier(t, nil)
	if _, err := l.Append(ctx, record("entry", 0), record("entry", 1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := update(t, l, v); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, record("entry", 2)); err != nil {
		t.Fatal(err)
	}
	signed, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.ProveConsistency(ctx, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	sig := bytes.LastIndex(signed, []byte(" ")) + 10
	forged := bytes.Clone(signed)
	forged[sig] ^= 0x04
	if _, err := v.Update(forged, p); !errors.Is(err, translog.ErrBadSignature) {
		t.Fatalf("checkpoint with a changed signature: %v, want ErrBadSignature", err)
	}
	// A checkpoint signed by an impostor's key of the log's name.
	skey, _, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{8}, 32)), origin)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := translog.Open(signed, mustVerifier(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Size = 9
	fake, err := translog.Sign(c, impostor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Update(fake, p); !errors.Is(err, translog.ErrBadSignature) {
		t.Fatalf("checkpoint by an impostor key: %v, want ErrBadSignature", err)
	}
	if trusted, _ := v.Trusted(); trusted.Size != 2 {
		t.Fatalf("refused checkpoints moved the verifier to size %d", trusted.Size)
	}
	if _, err := v.Update(signed, p); err != nil {
		t.Fatalf("the genuine checkpoint: %v", err)
	}

	// The trusted checkpoint survives a restart through its signed form,
	// and a tampered one is refused at start.
	_, note1 := v.Trusted()
	again := newVerifier(t, note1)
	if c, _ := again.Trusted(); c.Size != 3 {
		t.Errorf("restarted verifier trusts size %d, want 3", c.Size)
	}
	_, vkey := key(t)
	if _, err := translog.NewVerifier(translog.VerifierConfig{Key: vkey, Trusted: forged}); !errors.Is(err, translog.ErrBadSignature) {
		t.Errorf("starting from a forged checkpoint: %v, want ErrBadSignature", err)
	}
}

// TestRollback serves a client that trusted 10 records from a copy of the
// log that holds 6: a server restored from an old backup, or one hiding
// the last entries.
func TestRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	full, restored := openLog(t, filepath.Join(dir, "full.db")), openLog(t, filepath.Join(dir, "restored.db"))
	for i := range 10 {
		if _, err := full.Append(ctx, record("entry", i)); err != nil {
			t.Fatal(err)
		}
		if i < 6 {
			if _, err := restored.Append(ctx, record("entry", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	v := newVerifier(t, nil)
	_, trustedNote, err := update(t, full, v)
	if err != nil {
		t.Fatal(err)
	}
	_, presented, err := update(t, restored, v)
	var ie *translog.InconsistentError
	if !errors.As(err, &ie) || !errors.Is(err, translog.ErrInconsistent) || ie.Kind != translog.Rollback {
		t.Fatalf("rolled-back log: %v, want a rollback", err)
	}
	if ie.Trusted.Size != 10 || ie.Presented.Size != 6 || !bytes.Equal(ie.TrustedNote, trustedNote) || !bytes.Equal(ie.PresentedNote, presented) {
		t.Errorf("the error carries %d and %d, notes %q and %q", ie.Trusted.Size, ie.Presented.Size, ie.TrustedNote, ie.PresentedNote)
	}
	if c, _ := v.Trusted(); c.Size != 10 {
		t.Errorf("after the rollback the verifier trusts %d records", c.Size)
	}
}

// TestFork serves one client two histories under one key: the logs agree
// on 5 records and then differ.
func TestFork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openLog(t, filepath.Join(dir, "a.db")), openLog(t, filepath.Join(dir, "b.db"))
	for i := range 12 {
		if _, err := a.Append(ctx, record("entry", i)); err != nil {
			t.Fatal(err)
		}
		prefix := "entry"
		if i >= 5 {
			prefix = "other"
		}
		if _, err := b.Append(ctx, record(prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
	// A client that trusted b at 8 is shown a at 12, with the best proof a
	// can make from 8: a cannot prove b's tree is its prefix.
	bAt8 := openLog(t, filepath.Join(dir, "b8.db"))
	for i := range 8 {
		prefix := "entry"
		if i >= 5 {
			prefix = "other"
		}
		if _, err := bAt8.Append(ctx, record(prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
	v := newVerifier(t, nil)
	if _, _, err := update(t, bAt8, v); err != nil {
		t.Fatal(err)
	}
	_, _, err := update(t, a, v)
	var ie *translog.InconsistentError
	if !errors.As(err, &ie) || ie.Kind != translog.Fork || !ie.Unproven {
		t.Fatalf("a larger tree of another history: %v, want an unproven fork", err)
	}

	// A client that trusted a at 12 is shown b at 12: two signed trees of
	// one size, which the error carries as evidence anyone can check.
	w := newVerifier(t, nil)
	if _, _, err := update(t, a, w); err != nil {
		t.Fatal(err)
	}
	_, _, err = update(t, b, w)
	if !errors.As(err, &ie) || ie.Kind != translog.Fork || ie.Unproven {
		t.Fatalf("same size, other history: %v, want a proven fork", err)
	}
	one, err1 := translog.Open(ie.TrustedNote, mustVerifier(t))
	two, err2 := translog.Open(ie.PresentedNote, mustVerifier(t))
	if err1 != nil || err2 != nil || one.Size != two.Size || one.Hash == two.Hash {
		t.Errorf("the evidence does not show two signed trees of one size: %v %v", err1, err2)
	}
}

// TestConcurrent appends from several goroutines while others read
// checkpoints and proofs; run it with -race.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "log.db"))
	const writers, perWriter = 4, 15
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		byIdx  = make(map[int64][]byte)
		stop   = make(chan struct{})
		errs   = make(chan error, writers+2)
		reader sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				recs := [][]byte{record(fmt.Sprintf("writer %d", w), i)}
				if i%3 == 0 {
					recs = append(recs, record(fmt.Sprintf("writer %d extra", w), i))
				}
				first, err := l.Append(ctx, recs...)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for j, r := range recs {
					if _, dup := byIdx[first+int64(j)]; dup {
						errs <- fmt.Errorf("index %d given twice", first+int64(j))
					}
					byIdx[first+int64(j)] = r
				}
				mu.Unlock()
			}
		})
	}
	for range 2 {
		reader.Go(func() {
			v := newVerifier(t, nil)
			for {
				select {
				case <-stop:
					return
				default:
				}
				trusted, _ := v.Trusted()
				signed, p, err := l.CheckpointSince(ctx, trusted.Size)
				if err != nil {
					errs <- err
					return
				}
				if _, err := v.Update(signed, p); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	reader.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := int64(writers * (perWriter + (perWriter+2)/3))
	if n, err := l.Size(ctx); err != nil || n != want || int64(len(byIdx)) != want {
		t.Fatalf("size %d (%v), %d indexes given, want %d", n, err, len(byIdx), want)
	}
	recs := make([][]byte, want)
	for i, r := range byIdx {
		recs[i] = r
	}
	v := newVerifier(t, nil)
	c, _, err := update(t, l, v)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash != refRoot(recs) {
		t.Errorf("the tree is not that of the records in the order Append gave them")
	}
}
