// Command candor-replay-bench measures the archive's journal replay. It
// generates a journal into a real server store (internal/store/sqlstore):
// an organisation of enrolled devices with certificates from its CA, groups
// of varying sizes that add the archive in their first commit, real MLS
// messages in several languages, and commits that rotate keys, add and
// remove members along the way. Then, in the same run, it measures:
//
//   - the baseline: the MLS adapter's bare decrypt-and-verify cost, a
//     passive member per group with an in-memory store processing every
//     entry after the archive's Welcome, reading the log from the store
//     and writing nothing;
//   - the replay: internal/archive's opening engine over the same log,
//     with the chain, certificates, records into its SQLite review store,
//     resumable progress, and a JSON Lines export after it.
//
// It reports entries per second for both and their ratio. Usage:
//
//	go run ./cmd/candor-replay-bench -messages 1000000 -groups 300
//
// The journal and review store go in a new directory under -dir (by
// default /dev/shm when it exists, so that generation is not bound by the
// server store's fsync per append), removed at the end unless -keep.
package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"candor"
	"candor/internal/archive"
	"candor/internal/archive/journalgen"
	"candor/internal/mlsx"
	"candor/internal/pki"
	"candor/internal/store/sqlstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "candor-replay-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	messages, groups, people, maxSize, commitEvery, workers, genWorkers, batch, rounds int
	dir, corpus, cpuprofile                                                            string
	keep, export                                                                       bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("candor-replay-bench", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.messages, "messages", 1_000_000, "application messages in the journal (the target is 27000000)")
	fs.IntVar(&o.groups, "groups", 300, "groups in the journal")
	fs.IntVar(&o.people, "people", 400, "people in the organisation (every fifth has two devices)")
	fs.IntVar(&o.maxSize, "max-group-size", 40, "largest initial group")
	fs.IntVar(&o.commitEvery, "commit-every", 1000, "mean messages between two commits of a group")
	fs.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "groups replayed at once, by the baseline and by the replay")
	fs.IntVar(&o.genWorkers, "gen-workers", 8*runtime.GOMAXPROCS(0), "groups generated at once: more than the cores, so that the store can put many groups' appends in one transaction")
	fs.IntVar(&o.rounds, "rounds", 10, "rounds of baseline and replay, each over a slice of the groups")
	fs.IntVar(&o.batch, "batch", archive.DefaultBatch, "entries per review store transaction")
	fs.StringVar(&o.dir, "dir", defaultDir(), "directory for the run's files")
	fs.StringVar(&o.corpus, "corpus", "../shared/corpus/udhr-snippets.tsv", "message texts (lang, script, snippet TSV); built-in texts if absent")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the journal, review store and export")
	fs.BoolVar(&o.export, "export", true, "write and time the JSON Lines export")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.groups < 1 || o.messages < o.groups || o.workers < 1 || o.genWorkers < 1 || o.rounds < 1 {
		return fmt.Errorf("need -groups >= 1, -messages >= -groups and -workers, -gen-workers, -rounds >= 1: %w", candor.ErrInvalid)
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp(o.dir, "candor-replay-bench-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(out, "candor-replay-bench: %d messages, %d groups, %d workers, GOMAXPROCS %d, files in %s\n",
		o.messages, o.groups, o.workers, runtime.GOMAXPROCS(0), dir)

	texts, source := journalgen.Builtin, "built-in texts"
	if f, err := os.Open(o.corpus); err == nil {
		texts, err = journalgen.ReadCorpus(f)
		f.Close()
		if err != nil {
			return err
		}
		source = o.corpus
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	langs := map[string]bool{}
	for _, t := range texts {
		langs[t.Lang] = true
	}
	fmt.Fprintf(out, "texts: %d in %d languages from %s\n", len(texts), len(langs), source)

	now := time.Now()
	ca, err := pki.NewCA("Replay Bench Bank", now)
	if err != nil {
		return err
	}
	key, cert, err := archiveKey(ca, now)
	if err != nil {
		return err
	}
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "journal.db"))
	if err != nil {
		return err
	}
	defer st.Close()

	// Generation.
	var made atomic.Int64
	tick := ticker(out, "generating", &made, int64(o.messages))
	start := time.Now()
	gen, err := journalgen.Generate(ctx, journalgen.Config{
		Store: st, CA: ca, ArchiveKeyPackage: key.KeyPackage, ArchiveCertificate: cert,
		Groups: o.groups, Messages: o.messages, People: o.people, MaxGroupSize: o.maxSize,
		CommitEvery: o.commitEvery, Texts: texts, Start: now, Seed: 1, Workers: o.genWorkers,
		Progress: func(n int) { made.Add(int64(n)) },
	})
	tick()
	if err != nil {
		return err
	}
	genTime := time.Since(start)
	entries := gen.Messages + gen.Commits
	fmt.Fprintf(out, "generated: %d messages and %d commits (%d entries) by %d devices in %s: %.0f entries/s\n",
		gen.Messages, gen.Commits, entries, gen.Devices, genTime.Round(time.Millisecond), float64(entries)/genTime.Seconds())

	src := archive.NewStoreSource(st, "archive")
	// The generation's garbage (every device's MLS state) is collected
	// now, not during the first measurements.
	runtime.GC()

	// The baseline and the replay run in rounds over slices of the groups,
	// taking turns to go first, so that both meet the same noise of a
	// shared machine and neither always has the warmer cache.
	review, err := archive.OpenReview(ctx, filepath.Join(dir, "review.db"))
	if err != nil {
		return err
	}
	defer review.Close()
	var (
		baseTime, replayTime time.Duration // wall clock
		baseCPU, replayCPU   time.Duration // this process's CPU time, user and system
		base                 int64
		sum                  archive.Summary
	)
	rounds := min(o.rounds, len(gen.Groups))
	for r := range rounds {
		chunk := gen.Groups[r*len(gen.Groups)/rounds : (r+1)*len(gen.Groups)/rounds]
		var bt, rt, bc, rc time.Duration
		var bn int64
		var rs archive.Summary
		measureBase := func() error {
			start, cpu0 := time.Now(), cpuTime()
			n, err := baseline(ctx, src, key, chunk, o.workers, o.batch)
			bt, bc, bn = time.Since(start), cpuTime()-cpu0, n
			return err
		}
		measureReplay := func() error {
			start, cpu0 := time.Now(), cpuTime()
			s, err := archive.Replay(ctx, archive.Config{
				Keys: []archive.Key{key}, CA: ca.Certificate(), Source: chunkSource{src, chunk}, Review: review,
				Workers: o.workers, Batch: o.batch,
			})
			rt, rc, rs = time.Since(start), cpuTime()-cpu0, s
			return err
		}
		first, second := measureBase, measureReplay
		if r%2 == 1 {
			first, second = measureReplay, measureBase
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		fmt.Fprintf(out, "  round %d/%d: %d groups, %d entries: baseline %s wall, %s CPU; replay %s wall, %s CPU; ratio %.2fx wall, %.2fx CPU\n",
			r+1, rounds, len(chunk), bn, bt.Round(time.Millisecond), bc.Round(time.Millisecond),
			rt.Round(time.Millisecond), rc.Round(time.Millisecond), rt.Seconds()/bt.Seconds(), rc.Seconds()/bc.Seconds())
		baseTime += bt
		replayTime += rt
		baseCPU += bc
		replayCPU += rc
		base += bn
		sum.Entries += rs.Entries
		sum.Records += rs.Records
		sum.Failed += rs.Failed
	}
	baseRate := float64(base) / baseTime.Seconds()
	fmt.Fprintf(out, "baseline (passive member, in-memory store, no records): %d entries in %s: %.0f entries/s; CPU %s: %.0f entries per CPU-second\n",
		base, baseTime.Round(time.Millisecond), baseRate, baseCPU.Round(time.Millisecond), float64(base)/baseCPU.Seconds())
	replayRate := float64(sum.Entries) / replayTime.Seconds()
	fmt.Fprintf(out, "replay (chain, certificates, records, progress): %d entries, %d records (%d failed) in %s: %.0f entries/s; CPU %s: %.0f entries per CPU-second\n",
		sum.Entries, sum.Records, sum.Failed, replayTime.Round(time.Millisecond), replayRate, replayCPU.Round(time.Millisecond), float64(sum.Entries)/replayCPU.Seconds())
	if sum.Records != entries || sum.Failed != 0 || base != int64(entries) {
		return fmt.Errorf("the replay wrote %d records (%d failed), the baseline read %d entries, of %d", sum.Records, sum.Failed, base, entries)
	}

	if o.export {
		start = time.Now()
		f, err := os.Create(filepath.Join(dir, "records.jsonl"))
		if err != nil {
			return err
		}
		err = review.Export(ctx, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		info, err := os.Stat(f.Name())
		if err != nil {
			return err
		}
		t := time.Since(start)
		fmt.Fprintf(out, "export: %d records, %.1f MiB of JSON Lines in %s: %.0f records/s\n",
			sum.Records, float64(info.Size())/(1<<20), t.Round(time.Millisecond), float64(sum.Records)/t.Seconds())
	}

	verdict := func(r float64) string {
		if r > 1.4 {
			return "missed"
		}
		return "met"
	}
	wall, cpu := baseRate/replayRate, replayCPU.Seconds()/baseCPU.Seconds()
	fmt.Fprintf(out, "ratio: replay takes %.2fx the baseline's wall time (target <= 1.4x: %s) and %.2fx its CPU time (%s)\n",
		wall, verdict(wall), cpu, verdict(cpu))
	const target = 27_000_000
	fmt.Fprintf(out, "extrapolated from the measured rates, not measured: %d entries would take %s to replay at this run's wall rate (baseline %s); %s with all %d cores to itself at its CPU cost (baseline %s); target 40m\n",
		target, perRate(target, replayRate), perRate(target, baseRate),
		perRate(target, float64(sum.Entries)/replayCPU.Seconds()*float64(o.workers)), o.workers,
		perRate(target, float64(base)/baseCPU.Seconds()*float64(o.workers)))
	return nil
}

// perRate is how long n entries take at rate entries per second.
func perRate(n int, rate float64) time.Duration {
	return (time.Duration(float64(n)/rate) * time.Second).Round(time.Second)
}

// cpuTime is the CPU time this process has used, user and system: on a
// machine others share, the cost that wall time blurs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func defaultDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// archiveKey makes an archive key and its certificate: what the custody
// ceremony derives from the archive's secret. It exists only in memory.
func archiveKey(ca *pki.CA, now time.Time) (archive.Key, []byte, error) {
	var keys [2][]byte
	for i := range keys {
		k, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			return archive.Key{}, nil, err
		}
		keys[i] = k.Bytes()
	}
	secrets := mlsx.KeyPackageSecrets{Init: keys[0], Encryption: keys[1]}
	sig, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return archive.Key{}, nil, err
	}
	notAfter := now.Add(365 * 24 * time.Hour)
	cert, err := ca.IssueArchive("bench", &sig.PublicKey, now, notAfter)
	if err != nil {
		return archive.Key{}, nil, err
	}
	kp, err := mlsx.ArchiveKeyPackage(mlsx.Identity{Key: sig, Chain: [][]byte{cert}}, secrets, now.Add(-time.Hour), notAfter)
	if err != nil {
		return archive.Key{}, nil, err
	}
	return archive.Key{KeyPackage: kp, Secrets: secrets}, cert, nil
}

// baseline has a passive member with an in-memory store process each
// group's entries after the archive's Welcome, as many groups at once as
// the replay: the adapter's own cost of decrypting and verifying the
// journal, with the same reads from the store and nothing written. It
// returns the entries it read, the Welcome's commit included.
func baseline(ctx context.Context, src archive.Source, key archive.Key, groups []candor.GroupID, workers, batch int) (int64, error) {
	accept := mlsx.ValidatorFunc(func(context.Context, candor.GroupID, mlsx.Member) error { return nil })
	var (
		total atomic.Int64
		mu    sync.Mutex
		errs  []error
		wg    sync.WaitGroup
		next  = make(chan candor.GroupID)
	)
	for range min(workers, len(groups)) {
		wg.Go(func() {
			for g := range next {
				n, err := baselineGroup(ctx, src, key, g, accept, batch)
				total.Add(n)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("group %s: %w", g, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, g := range groups {
		next <- g
	}
	close(next)
	wg.Wait()
	return total.Load(), errors.Join(errs...)
}

func baselineGroup(ctx context.Context, src archive.Source, key archive.Key, id candor.GroupID, v mlsx.Validator, batch int) (int64, error) {
	ws, err := src.Welcomes(ctx, id)
	if err != nil {
		return 0, err
	}
	if len(ws) != 1 {
		return 0, fmt.Errorf("%d welcomes for the archive, the generator sends one", len(ws))
	}
	var n int64
	var g *mlsx.Group
	for after := uint64(0); ; {
		es, err := src.Entries(ctx, id, after, batch)
		if err != nil {
			return n, err
		}
		if len(es) == 0 {
			return n, nil
		}
		for _, e := range es {
			switch {
			case e.Seq == ws[0].Seq:
				g, err = mlsx.JoinPassive(ctx, mlsx.PassiveConfig{Store: journalgen.NewMemStore(), Validator: v}, ws[0].Data, key.KeyPackage, key.Secrets, nil)
			case g != nil:
				_, err = g.Process(ctx, e.Message)
			}
			if err != nil {
				return n, fmt.Errorf("seq %d: %w", e.Seq, err)
			}
			n++
		}
		after = es[len(es)-1].Seq
	}
}

// ticker prints progress every ten seconds until the returned function is
// called.
func ticker(out io.Writer, what string, n *atomic.Int64, total int64) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				done := n.Load()
				fmt.Fprintf(out, "  %s: %d of %d (%.0f%%), %.0f/s\n", what, done, total,
					100*float64(done)/float64(max(total, 1)), float64(done)/time.Since(start).Seconds())
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}

// chunkSource is the journal restricted to some groups: one round's share.
type chunkSource struct {
	archive.Source
	groups []candor.GroupID
}

func (c chunkSource) Groups(context.Context) ([]candor.GroupID, error) { return c.groups, nil }
