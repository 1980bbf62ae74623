package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"candor"
	"candor/internal/access"
	"candor/internal/server"
)

const accessUsage = `usage:
  candord access request  --data DIR --case ID --reason TEXT --requester NAME
                          [--groups HEX,...] [--users USER,...] --from TIME --to TIME
                          --opening-key FILE
  candord access approve  --data DIR --custodian NAME FILE
  candord access opened   --data DIR FILE
  candord access show     --data DIR --index I --out FILE

  request  log a request to open the archive and print its id and index;
           the scope is the groups (hex ids) and people named, between
           --from and --to (RFC 3339, or a date such as 2026-03-01, UTC);
           FILE holds the opening's one-time public key (65 bytes, or
           their hex)
  approve  log a custodian's approval FILE (as the custodians' tool
           writes it) of a request already logged; NAME is the custodian's
           name in the custody policy
  opened   log a completed opening: FILE is the opening record the
           opening tool writes, for a request already logged
  show     write record I with its inclusion proof and the log's current
           signed checkpoint to FILE, for a custodian to check against
           the log's public key (access.pub in DIR) before approving

The access log is public to every enrolled device; nothing secret goes in.
These commands may run while 'candord serve' uses the same folder.
`

// maxInputFile bounds the files the access commands read.
const maxInputFile = 64 << 10

// subcommand makes the flags of one subcommand of access or hold, with
// --data, which they all take, and parse, which parses args and checks
// that --data and every flag in required are set and that nargs
// arguments follow; otherwise it prints usage and returns errUsage.
func subcommand(name, usage string, args []string, stderr io.Writer) (fs *flag.FlagSet, data *string, parse func(nargs int, required ...*string) error) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	data = fs.String("data", "", "the organisation's data folder (required)")
	parse = func(nargs int, required ...*string) error {
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		ok := *data != "" && fs.NArg() == nargs
		for _, r := range required {
			ok = ok && *r != ""
		}
		if !ok {
			fs.Usage()
			return errUsage
		}
		return nil
	}
	return fs, data, parse
}

// runAccess runs one access subcommand.
func runAccess(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, accessUsage)
		return errUsage
	}
	fs, data, parse := subcommand("candord access "+args[0], accessUsage, args[1:], stderr)
	switch args[0] {
	case "request":
		caseID := fs.String("case", "", "the case or matter id (required)")
		reason := fs.String("reason", "", "why, in words the affected people will read (required)")
		requester := fs.String("requester", "", "who asks (required)")
		groups := fs.String("groups", "", "comma-separated hex ids of the conversations in scope")
		users := fs.String("users", "", "comma-separated user ids of the people in scope")
		from := fs.String("from", "", "start of the time range (required)")
		to := fs.String("to", "", "end of the time range, excluded (required)")
		keyFile := fs.String("opening-key", "", "file holding the opening's one-time public key (required)")
		if err := parse(0, caseID, reason, requester, from, to, keyFile); err != nil {
			return err
		}
		q := &access.Request{Case: *caseID, Reason: *reason, Requester: *requester, Created: time.Now().UTC().Truncate(time.Second)}
		var err error
		if q.Scope.From, err = parseTime(*from); err != nil {
			return err
		}
		if q.Scope.To, err = parseTime(*to); err != nil {
			return err
		}
		for _, g := range splitList(*groups) {
			id, err := candor.ParseGroupID(g)
			if err != nil {
				return fmt.Errorf("--groups: %q: %w", g, err)
			}
			q.Scope.Groups = append(q.Scope.Groups, id)
		}
		for _, u := range splitList(*users) {
			q.Scope.Users = append(q.Scope.Users, candor.UserID(u))
		}
		if q.OpeningKey, err = readOpeningKey(*keyFile); err != nil {
			return err
		}
		return withAccessLog(ctx, *data, func(l *server.AccessLog) error {
			id, index, err := l.LogRequest(ctx, q)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "request %s logged at index %d\n", id, index)
			return err
		})
	case "approve":
		name := fs.String("custodian", "", "the approving custodian's name in the custody policy (required)")
		if err := parse(1, name); err != nil {
			return err
		}
		raw, err := readInput(fs.Arg(0))
		if err != nil {
			return err
		}
		id, slot, err := access.ApprovalHeader(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		a := &access.Approval{Request: id, Custodian: slot, CustodianName: *name, Custody: raw}
		return withAccessLog(ctx, *data, func(l *server.AccessLog) error {
			index, err := l.LogApproval(ctx, a)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "approval of request %s by custodian %d (%s) logged at index %d\n", id, slot, *name, index)
			return err
		})
	case "opened":
		if err := parse(1); err != nil {
			return err
		}
		raw, err := readInput(fs.Arg(0))
		if err != nil {
			return err
		}
		o, err := access.ParseOpening(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		return withAccessLog(ctx, *data, func(l *server.AccessLog) error {
			index, err := l.LogOpening(ctx, o)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "opening of request %s logged at index %d\n", o.Request, index)
			return err
		})
	case "show":
		index := fs.Int64("index", -1, "the record's position in the log (required)")
		out := fs.String("out", "", "the bundle file to write (required)")
		if err := parse(0, out); err != nil {
			return err
		}
		if *index < 0 {
			fs.Usage()
			return errUsage
		}
		return withAccessLog(ctx, *data, func(l *server.AccessLog) error {
			b, err := l.Bundle(ctx, *index)
			if err != nil {
				return err
			}
			enc, err := b.MarshalBinary()
			if err != nil {
				return err
			}
			// O_EXCL: a bundle handed to a custodian is not silently
			// replaced by another.
			f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, werr := f.Write(enc)
			if err := errors.Join(werr, f.Close()); err != nil {
				return errors.Join(err, os.Remove(*out))
			}
			_, err = fmt.Fprintf(stdout, "record %d of %d written to %s; the custodian checks it with %s\n", *index, b.Proof.Size, *out, filepath.Join(*data, server.FileAccessPub))
			return err
		})
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, accessUsage)
		return nil
	}
	fmt.Fprint(stderr, accessUsage)
	return errUsage
}

// withAccessLog opens the access log of the data folder dir (making its
// key if the folder predates it) and runs f with it.
func withAccessLog(ctx context.Context, dir string, f func(*server.AccessLog) error) (err error) {
	d, err := server.Open(ctx, dir, openSQL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, d.Close()) }()
	return f(d.Access)
}

// parseTime reads RFC 3339 or a date, which means its midnight in UTC.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-03-01T09:00:00Z) nor a date (2026-03-01): %w", s, candor.ErrInvalid)
	}
	return t, nil
}

func readInput(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxInputFile {
		return nil, fmt.Errorf("%s is over %d bytes: %w", path, maxInputFile, candor.ErrInvalid)
	}
	return b, nil
}

// readOpeningKey reads the opening's public key: the 65 bytes of an
// uncompressed P-256 point, or their hex on one line.
func readOpeningKey(path string) ([]byte, error) {
	b, err := readInput(path)
	if err != nil {
		return nil, err
	}
	if len(b) == access.OpeningKeySize {
		return b, nil
	}
	k, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(k) != access.OpeningKeySize {
		return nil, fmt.Errorf("%s holds neither a %d-byte public key nor its hex: %w", path, access.OpeningKeySize, candor.ErrInvalid)
	}
	return k, nil
}
