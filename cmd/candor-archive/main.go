// Command candor-archive opens the organisation's archive for one case
// (docs/design/archive.md, "Opening a case"):
//
//	candor-archive keygen -out KEYFILE
//	candor-archive open -data DIR -request ID -opening-key KEYFILE -approvals FILE,... -statement STATEMENT -out review.db [-jsonl out.jsonl]
//
// keygen makes the opening's one-time key before the request is logged;
// open checks the request and k custodians' approvals in the access log,
// rebuilds the archive's seed in memory, replays the groups in scope (named
// or through the people named) into a review store of its own, and logs
// the completed opening.
//
// It is a separate binary from the server on purpose: candord never links
// the custody or archive code (a test in internal/access checks it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `candor-archive: open the organisation's archive for one case

Usage:
  candor-archive keygen -out KEYFILE
      Make the opening's one-time key. KEYFILE (mode 0600) gets the private
      key; KEYFILE.pub gets the public key, which the request names
      (candord access request --opening-key KEYFILE.pub). Prints its
      fingerprint, which each custodian compares before approving.

  candor-archive open -data DIR -request ID -opening-key KEYFILE
                      -approvals FILE,... -statement STATEMENT
                      -out review.db [-jsonl out.jsonl]
      Check that request ID is in the access log of the data folder DIR
      and that k custodians' approvals of it are logged and are the FILEs
      given; rebuild the archive's key in memory, check it against the
      archive STATEMENT, replay the groups in scope (those it names, and
      those of the people it names, for the time they were members) from
      the server's store into the review store review.db (and JSON Lines),
      and log the opening in the access log, which every member's device
      reads. A group's log whose start was deleted without a Deletion
      record in the access log stops the opening. Nothing is
      written when a check fails. An interrupted open resumes when run
      again with the same review.db. The one-time KEYFILE is deleted once
      the opening is logged. The server may keep running meanwhile.

Exit status: 0 success, 1 failure, 2 bad command line.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage is a mistake on the command line; usage has been printed.
var errUsage = errors.New("bad command line")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "keygen":
		err = keygenCmd(args[1:], stdout, stderr)
	case "open":
		err = openCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "candor-archive: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "candor-archive %s: %v\n", args[0], err)
	return 1
}

// flags makes a subcommand's flag set; parseFlags refuses stray arguments
// and the required flags, named, left empty.
func flags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: candor-archive %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string, required ...string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			fmt.Fprintf(fs.Output(), "-%s is required\n", name)
			fs.Usage()
			return errUsage
		}
	}
	return nil
}
