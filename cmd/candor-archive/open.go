package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"candor/internal/access"
	"candor/internal/archive"
	"candor/internal/ceremony"
	"candor/internal/opening"
	"candor/internal/server"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// maxApprovalFile and maxStatementFile bound what open reads.
const (
	maxApprovalFile  = access.MaxApproval
	maxStatementFile = 1 << 20
)

// openConfig is one opening, as the command line gives it.
type openConfig struct {
	Data       string   // the organisation's data folder
	Request    string   // the request id, hex
	OpeningKey string   // the one-time key file
	Approvals  []string // the custodians' approval files
	Statement  string   // the archive statement
	Out        string   // the review store
	JSONL      string   // the JSON Lines export, or ""
}

func openCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("open", "-data DIR -request ID -opening-key KEYFILE -approvals FILE,... -statement STATEMENT -out review.db [-jsonl out.jsonl]", stderr)
	var cfg openConfig
	var approvals string
	fs.StringVar(&cfg.Data, "data", "", "the organisation's data folder (candord's)")
	fs.StringVar(&cfg.Request, "request", "", "the id of the logged request, as candord access request printed it")
	fs.StringVar(&cfg.OpeningKey, "opening-key", "", "the one-time key file candor-archive keygen wrote")
	fs.StringVar(&approvals, "approvals", "", "the custodians' approval files, comma-separated")
	fs.StringVar(&cfg.Statement, "statement", "", "the archive statement (DIR/archive/ID/statement)")
	fs.StringVar(&cfg.Out, "out", "", "the review store to write (SQLite); an existing one resumes")
	fs.StringVar(&cfg.JSONL, "jsonl", "", "also write every record as JSON Lines to this new file")
	if err := parseFlags(fs, args, "data", "request", "opening-key", "approvals", "statement", "out"); err != nil {
		return err
	}
	for _, f := range strings.Split(approvals, ",") {
		if f = strings.TrimSpace(f); f != "" {
			cfg.Approvals = append(cfg.Approvals, f)
		}
	}
	res, err := openCase(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Opened request %s (case %s): %d records from %d groups in %s", res.ID, res.Case, res.Records, len(res.Opening.Groups), cfg.Out)
	if res.Failed > 0 {
		fmt.Fprintf(stdout, ", %d of which failed to verify", res.Failed)
	}
	fmt.Fprintln(stdout)
	for _, g := range res.Groups {
		fmt.Fprintf(stdout, "  group %s: %d records, replayed from entry %d: %s\n", g.Group, g.Records, g.Start, g.Why)
	}
	if cfg.JSONL != "" {
		fmt.Fprintf(stdout, "JSON Lines: %s\n", cfg.JSONL)
	}
	fmt.Fprintf(stdout, "The opening is logged at index %d of the access log; every member in scope sees it in candor audit.\n", res.Index)
	return nil
}

// opened is what an opening did.
type opened struct {
	ID      access.RequestID
	Case    string
	Opening *access.Opening
	Index   int64 // of the Opening record in the access log
	Records int
	Failed  int
	// Groups are the groups replayed, with where each replay started
	// and why.
	Groups []archive.GroupProgress
}

// openCase carries out one opening: every check comes before anything is
// written (opening.Prepare); progress goes to progress.
func openCase(ctx context.Context, cfg openConfig, progress io.Writer) (*opened, error) {
	id, err := access.ParseRequestID(cfg.Request)
	if err != nil {
		return nil, err
	}
	if cfg.JSONL != "" {
		if _, err := os.Lstat(cfg.JSONL); err == nil {
			return nil, fmt.Errorf("%s already exists; not overwriting it", cfg.JSONL)
		}
	}
	rawSt, err := readFile(cfg.Statement, maxStatementFile)
	if err != nil {
		return nil, err
	}
	st, err := ceremony.ParseStatement(rawSt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Statement, err)
	}
	rawKey, err := readFile(cfg.OpeningKey, maxKeyFile)
	if err != nil {
		return nil, err
	}
	okey, err := parseOpeningKey(rawKey)
	clear(rawKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.OpeningKey, err)
	}
	var approvals []opening.Approval
	for _, f := range cfg.Approvals {
		raw, err := readFile(f, maxApprovalFile)
		if err != nil {
			return nil, err
		}
		approvals = append(approvals, opening.Approval{Name: f, Data: raw})
	}

	d, err := server.Open(ctx, cfg.Data, func(ctx context.Context, path string) (store.Store, error) {
		return sqlstore.Open(ctx, path)
	})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	o, err := opening.Prepare(ctx, opening.Config{Access: d.Access, Statement: st, Request: id, OpeningKey: okey, Approvals: approvals})
	if err != nil {
		return nil, err
	}
	defer o.Close()

	review, err := archive.OpenReview(ctx, cfg.Out)
	if err != nil {
		return nil, err
	}
	defer review.Close()
	var mu sync.Mutex
	sum, err := o.Replay(ctx, d.Store, d.CA.Certificate(), review, func(u archive.Update) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(progress, "group %s: entry %d of %d, %d records\n", u.Group, u.Seq, u.Head, u.Records)
	})
	if errors.Is(err, opening.ErrUnexplainedCut) {
		// Running again will not help: the store lost entries that the
		// access log says nothing of.
		return nil, fmt.Errorf("THE START OF A GROUP'S LOG IS DELETED WITHOUT A RECORD IN THE ACCESS LOG; the opening is not logged:\n%w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("replay stopped (run again with the same -out to resume): %w", err)
	}
	if err := checkHeads(ctx, cfg.Data, d, o, sum); err != nil {
		return nil, err
	}
	if cfg.JSONL != "" {
		if err := exportJSONL(ctx, review, cfg.JSONL); err != nil {
			return nil, err
		}
	}
	rec, index, err := o.Log(ctx, sum, time.Now())
	if err != nil {
		return nil, fmt.Errorf("the review is written, but logging the opening failed (retry with the same -out): %w", err)
	}
	// The one-time key has served: without it, the approvals in the log
	// open nothing more.
	if err := os.Remove(cfg.OpeningKey); err != nil {
		fmt.Fprintf(progress, "warning: could not delete the one-time key %s: %v; delete it by hand\n", cfg.OpeningKey, err)
	}
	return &opened{ID: id, Case: o.Request().Case, Opening: rec, Index: index, Records: sum.Records, Failed: sum.Failed, Groups: sum.Groups}, nil
}

// checkHeads checks the replayed journal against the heads the server
// signed, with the journal-heads log's key from the data folder.
func checkHeads(ctx context.Context, dir string, d *server.DataDir, o *opening.Opening, sum archive.Summary) error {
	pub, err := os.ReadFile(filepath.Join(dir, server.FileJournalPub))
	if err != nil {
		return err
	}
	key, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		return fmt.Errorf("%s: %w", server.FileJournalPub, err)
	}
	if err := o.CheckHeads(ctx, d.Journal, key, d.Store, sum); err != nil {
		return fmt.Errorf("THE SERVER'S LOGS DO NOT MATCH ITS SIGNED JOURNAL HEADS; the opening is not logged, and the review store is not evidence:\n%w", err)
	}
	return nil
}

// exportJSONL writes the review's records to a new file, removed again if
// the export fails.
func exportJSONL(ctx context.Context, r *archive.Review, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = r.Export(ctx, f)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", path, err), os.Remove(path))
	}
	return nil
}
