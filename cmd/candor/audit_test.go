package main

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
	"candor/client"
	"candor/internal/access"
	"candor/internal/journal"
	"candor/internal/server"
	"candor/internal/sqldb"
	"candor/internal/translog"
)

// cmdAccess writes the script server's access log, as the administrators'
// candord access commands do:
//
//	access request VAR CASE HOME PREFIX   log a request for the conversation
//	                                      whose id starts with PREFIX on the
//	                                      device in HOME; $VAR is its id
//	access request VAR CASE - USER        log a request for a person
//	access approve ID SLOT NAME           log custodian SLOT's approval
//	access opened ID HOME PREFIX COUNT    log the opening of that conversation
//	access hold VAR CASE HOME PREFIX      set a legal hold on the conversation;
//	                                      $VAR is its id
//	access hold VAR CASE - USER           set a legal hold on a person
//	access lift ID REASON                 lift hold ID
//	access deleted HOME PREFIX FIRST LAST log the deletion of that conversation's
//	                                      entries FIRST to LAST, under a
//	                                      retention period of 365 days
//	access truncate N                     cut the log back to N records in the
//	                                      server's file, as a server hiding
//	                                      openings would
func cmdAccess(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: access request|approve|opened|hold|lift|deleted|truncate ...")
	}
	ctx := context.Background()
	dir := filepath.Join(ts.Getenv("WORK"), ".candord")
	if args[0] == "truncate" {
		if len(args) != 2 {
			ts.Fatalf("usage: access truncate N")
		}
		n, err := strconv.ParseInt(args[1], 10, 64)
		ts.Check(err)
		ts.Check(truncateAccessLog(ctx, filepath.Join(dir, server.FileAccessDB), n))
		return
	}
	l, err := server.OpenAccessLog(ctx, dir)
	ts.Check(err)
	defer l.Close()
	switch {
	case args[0] == "request" && len(args) == 5:
		k, err := ecdh.P256().GenerateKey(rand.Reader)
		ts.Check(err)
		now := time.Now().UTC().Truncate(time.Second)
		q := &access.Request{
			Case: args[2], Reason: "Inquiry " + args[2] + " by the regulator.", Requester: "Compliance office", Created: now,
			Scope:      access.Scope{From: now.AddDate(0, -1, 0), To: now},
			OpeningKey: k.PublicKey().Bytes(),
		}
		if args[3] == "-" {
			q.Scope.Users = []candor.UserID{candor.UserID(args[4])}
		} else {
			q.Scope.Groups = []candor.GroupID{scriptGroup(ts, args[3], args[4])}
		}
		id, _, err := l.LogRequest(ctx, q)
		ts.Check(err)
		ts.Setenv(args[1], id.String())
	case args[0] == "approve" && len(args) == 4:
		id, err := access.ParseRequestID(args[1])
		ts.Check(err)
		slot, err := strconv.Atoi(args[2])
		ts.Check(err)
		// The custodian's approval as far as the log reads it: its header.
		custody := append(append(append([]byte("capp\x01"), make([]byte, 32)...), id[:]...), byte(slot), 0xee)
		_, err = l.LogApproval(ctx, &access.Approval{Request: id, Custodian: slot, CustodianName: args[3], Custody: custody})
		ts.Check(err)
	case args[0] == "opened" && len(args) == 5:
		id, err := access.ParseRequestID(args[1])
		ts.Check(err)
		n, err := strconv.ParseUint(args[4], 10, 64)
		ts.Check(err)
		_, err = l.LogOpening(ctx, &access.Opening{Request: id, Completed: time.Now().UTC().Truncate(time.Second),
			Groups: []access.Replayed{{Group: scriptGroup(ts, args[2], args[3]), Records: n}}})
		ts.Check(err)
	case args[0] == "hold" && len(args) == 5:
		h := &access.Hold{Case: args[2], Reason: "Litigation " + args[2] + ": keep everything.", By: "Legal office",
			Set: time.Now().UTC().Truncate(time.Second)}
		if args[3] == "-" {
			h.Users = []candor.UserID{candor.UserID(args[4])}
		} else {
			h.Groups = []candor.GroupID{scriptGroup(ts, args[3], args[4])}
		}
		id, _, err := l.LogHold(ctx, h)
		ts.Check(err)
		ts.Setenv(args[1], id.String())
	case args[0] == "lift" && len(args) == 3:
		id, err := access.ParseHoldID(args[1])
		ts.Check(err)
		_, err = l.LogRelease(ctx, &access.Release{Hold: id, Reason: args[2], By: "Legal office", At: time.Now().UTC().Truncate(time.Second)})
		ts.Check(err)
	case args[0] == "deleted" && len(args) == 5:
		first, err := strconv.ParseUint(args[3], 10, 64)
		ts.Check(err)
		last, err := strconv.ParseUint(args[4], 10, 64)
		ts.Check(err)
		// The chain hash is the record's to carry; the device does not
		// check it, so any non-zero value does here.
		_, err = l.LogDeletion(ctx, &access.Deletion{Group: scriptGroup(ts, args[1], args[2]), First: first, Last: last,
			LastHash: journal.Hash{0xcd}, At: time.Now().UTC().Truncate(time.Second), Retention: 365 * 24 * time.Hour})
		ts.Check(err)
	default:
		ts.Fatalf("usage: access request|approve|opened|hold|lift|deleted|truncate ...")
	}
}

// scriptGroup finds the conversation whose id starts with prefix on the
// device enrolled in home.
func scriptGroup(ts *testscript.TestScript, home, prefix string) candor.GroupID {
	c, err := client.Open(context.Background(), ts.MkAbs(home), client.Config{})
	ts.Check(err)
	defer c.Close()
	gs, err := c.Groups(context.Background())
	ts.Check(err)
	for _, g := range gs {
		if strings.HasPrefix(g.ID.String(), prefix) {
			return g.ID
		}
	}
	ts.Fatalf("no conversation %s on the device in %s", prefix, home)
	return ""
}

// truncateAccessLog cuts the log in the file at path back to n records,
// with the stored hashes that go with them, so that the server presents a
// smaller tree, validly signed.
func truncateAccessLog(ctx context.Context, path string, n int64) error {
	db, err := sqldb.OpenSQLite(ctx, path, sqldb.Full)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []struct {
		sql string
		arg int64
	}{
		{`DELETE FROM records WHERE idx >= ?`, n},
		{`DELETE FROM hashes WHERE idx >= ?`, tlog.StoredHashCount(n)},
		{`UPDATE logs SET size = ?`, n},
	} {
		if _, err := db.W.ExecContext(ctx, q.sql, q.arg); err != nil {
			return fmt.Errorf("%s: %w", q.sql, err)
		}
	}
	return nil
}

// TestAuditExitCode checks that an altered access log has its own exit
// status, documented, and an explanation that says so plainly.
func TestAuditExitCode(t *testing.T) {
	t.Parallel()
	if !regexp.MustCompile(`(?m)^  ` + strconv.Itoa(exitAltered) + `  \S`).MatchString(usage) {
		t.Errorf("the usage text does not document exit status %d", exitAltered)
	}
	err := fmt.Errorf("audit: %w", &translog.InconsistentError{Kind: translog.Rollback,
		Trusted: translog.Checkpoint{Size: 5}, Presented: translog.Checkpoint{Size: 2}})
	if got := exitCode(err); got != exitAltered {
		t.Errorf("exit status %d for an inconsistent log, want %d", got, exitAltered)
	}
	x := explanationOf(err)
	if !strings.Contains(x.what, "ALTERED") || !strings.Contains(x.what, "shows 2 records, after showing 5") {
		t.Errorf("explanation of a rollback: %q", x.what)
	}
	mismatch := errors.Join(&client.JournalMismatchError{Group: "g", From: 3, To: 4, Detail: "differs"})
	if got := exitCode(journalError{mismatch}); got != exitAltered {
		t.Errorf("exit status %d for a journal mismatch, want %d", got, exitAltered)
	}
	if x := explanationOf(journalError{mismatch}); !strings.Contains(x.what, "JOURNAL OF A CONVERSATION DIFFERS") {
		t.Errorf("explanation of a journal mismatch: %q", x.what)
	}
	fork := journalError{fmt.Errorf("journal check: %w", &translog.InconsistentError{Kind: translog.Fork,
		Trusted: translog.Checkpoint{Size: 5}, Presented: translog.Checkpoint{Size: 5}})}
	if got := exitCode(fork); got != exitAltered {
		t.Errorf("exit status %d for an inconsistent journal-heads log, want %d", got, exitAltered)
	}
	if x := explanationOf(fork); !strings.Contains(x.what, "ARCHIVE'S JOURNAL HAS BEEN ALTERED") || !strings.Contains(x.next, "journal.presented") {
		t.Errorf("explanation of a forked journal-heads log: %+v", x)
	}
	if got := exitCode(fmt.Errorf("audit: %w", client.ErrAccessKeyChanged)); got != exitFailed {
		t.Errorf("exit status %d for a changed key, want %d", got, exitFailed)
	}
}
