package translog_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"candor/internal/translog"
	"candor/internal/translog/sqllog"
)

// benchSize is the number of records the benchmarks' log holds before
// they start: the size docs/design/journal.md reports figures at.
const benchSize = 1_000_000

// benchBatch is how many records one append writes while the log is
// built.
const benchBatch = 10_000

var (
	benchOnce sync.Once
	benchLog  *translog.Log
	benchDB   *sqllog.DB
	benchDir  string
	benchErr  error
	// benchMid is the log's signed checkpoint at half its size.
	benchMid []byte
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDB != nil {
		benchDB.Close()
	}
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// bigLog returns a log of benchSize records in a SQLite file, built once
// for all the benchmarks of a run.
func bigLog(b *testing.B) *translog.Log {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "translog-bench")
		if benchErr != nil {
			return
		}
		ctx := context.Background()
		if benchLog, benchDB, benchErr = openLogFile(ctx, filepath.Join(benchDir, "log.db")); benchErr != nil {
			return
		}
		recs := make([][]byte, benchBatch)
		for start := 0; start < benchSize; start += benchBatch {
			for i := range recs {
				recs[i] = benchRecord(start + i)
			}
			if _, benchErr = benchLog.Append(ctx, recs...); benchErr != nil {
				return
			}
			if start+benchBatch == benchSize/2 {
				if benchMid, benchErr = benchLog.Checkpoint(ctx); benchErr != nil {
					return
				}
			}
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchLog
}

// benchRecord is a record the size of a journal head entry: a group id,
// a sequence number and a hash, about 100 bytes.
func benchRecord(i int) []byte {
	return fmt.Appendf(nil, "group %032x seq %d head %064x", i%300, i, i)
}

// BenchmarkAppend appends one record per operation, each its own durable
// (fsynced) transaction, to a log of a million records.
func BenchmarkAppend(b *testing.B) {
	l := bigLog(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := l.Append(ctx, benchRecord(benchSize+i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendBatch appends batches of records per operation, as a
// server coalescing the journal heads of a busy second would, and reports
// the records appended per second and the file's size per record.
func BenchmarkAppendBatch(b *testing.B) {
	l := bigLog(b)
	ctx := context.Background()
	next := 2 * benchSize
	for _, batch := range []int{100, 1000, 10_000} {
		b.Run(fmt.Sprintf("records=%d", batch), func(b *testing.B) {
			recs := make([][]byte, batch)
			for b.Loop() {
				for i := range recs {
					recs[i] = benchRecord(next)
					next++
				}
				if _, err := l.Append(ctx, recs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
	}
	size, err := l.Size(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var disk int64
	for _, name := range []string{"log.db", "log.db-wal"} {
		if fi, err := os.Stat(filepath.Join(benchDir, name)); err == nil {
			disk += fi.Size()
		}
	}
	b.Logf("%d records, %d bytes on disk, %.0f bytes a record", size, disk, float64(disk)/float64(size))
}

// BenchmarkProveInclusion proves a random record's inclusion in the tree
// of a million records or more.
func BenchmarkProveInclusion(b *testing.B) {
	l := bigLog(b)
	ctx := context.Background()
	size, err := l.Size(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.ProveInclusion(ctx, rng.Int64N(size), size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProveConsistency proves a random earlier size a prefix of the
// tree of a million records or more.
func BenchmarkProveConsistency(b *testing.B) {
	l := bigLog(b)
	ctx := context.Background()
	size, err := l.Size(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.ProveConsistency(ctx, 1+rng.Int64N(size-1), size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpoint computes the root of a million records or more and
// signs it.
func BenchmarkCheckpoint(b *testing.B) {
	l := bigLog(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientVerify is a client's side: open a checkpoint, check it
// consistent with the one at half the size, and check an inclusion proof,
// at a million records.
func BenchmarkClientVerify(b *testing.B) {
	l := bigLog(b)
	ctx := context.Background()
	signed, err := l.Checkpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	_, vkey := key(b)
	c, err := translog.Open(signed, vkey)
	if err != nil {
		b.Fatal(err)
	}
	mid, err := translog.Open(benchMid, vkey)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := l.ProveConsistency(ctx, mid.Size, c.Size)
	if err != nil {
		b.Fatal(err)
	}
	index := c.Size / 2
	rec, err := l.Record(ctx, index)
	if err != nil {
		b.Fatal(err)
	}
	incl, err := l.ProveInclusion(ctx, index, c.Size)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := translog.Open(signed, vkey); err != nil {
			b.Fatal(err)
		}
		if err := translog.VerifyConsistency(mid, c, cons); err != nil {
			b.Fatal(err)
		}
		if err := translog.VerifyInclusion(c, rec, incl); err != nil {
			b.Fatal(err)
		}
	}
}
