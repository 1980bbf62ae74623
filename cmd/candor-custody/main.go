// Command candor-custody is the tool of an organisation's archive
// custodians and of the ceremony that creates the archive
// (docs/design/custody.md, "Ceremony and endorsement"):
//
//	candor-custody keygen -name NAME -out FILE
//	candor-custody ceremony -data DIR -key-id ID -k K -custodian NAME=FILE.pub ... [-previous OLDID]
//	candor-custody endorse -statement FILE -key KEYFILE -ca CA.pem
//	candor-custody succeed -data DIR -previous OLDID -next NEWID -key KEYFILE
//	candor-custody verify -statement FILE -ca CA.pem
//	candor-custody approve -bundle FILE -access-key access.pub -statement FILE -key KEYFILE -out APPROVAL [-yes]
//
// It is a separate binary from the server on purpose: the server never
// links the custody code. Passphrases come from the terminal, or from
// CANDOR_CUSTODY_PASSPHRASE for scripts, never from a flag (flags show in
// process lists and shell history).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// Exit codes.
const (
	exitOK         = 0
	exitFailure    = 1 // something is wrong: bad input, a failed check, a file
	exitUsage      = 2 // the command line is wrong
	exitUnendorsed = 3 // verify: sound, but not every custodian has endorsed it yet
)

// envPassphrase is where scripts put a custodian's passphrase.
const envPassphrase = "CANDOR_CUSTODY_PASSPHRASE"

const usage = `candor-custody: the archive custodians' tool

Usage:
  candor-custody keygen -name NAME -out FILE
      Make a custodian key pair. FILE gets the private keys, protected by a
      passphrase you choose (keep both to yourself); FILE.pub gets the public
      key to hand to the ceremony. Prints the key's fingerprint.

  candor-custody ceremony -data DIR -key-id ID -k K -custodian NAME=FILE.pub ... [-previous OLDID] [-lifetime D]
      Create the organisation's archive key ID with the CA in DIR (ca.pem,
      ca.key): k of the n custodians named will be needed to open it. Writes
      the public archive statement to DIR/archive/ID/statement. Refuses an
      ID that already exists. In a folder that already has an archive key,
      -previous names the key this one succeeds (moving to a new key).

  candor-custody endorse -statement FILE -key KEYFILE -ca CA.pem
      As a custodian: check the statement against the organisation's CA,
      open your sealed share, check it against the published commitments,
      and sign the statement. Writes FILE.endorsement.NAME.

  candor-custody succeed -data DIR -previous OLDID -next NEWID -key KEYFILE
      As a custodian of archive key OLDID: check the new key NEWID against
      the organisation's CA and that it names OLDID as its predecessor, and
      endorse it as OLDID's successor with your OLDID custodian key. Writes
      DIR/archive/NEWID/statement.succession.NAME. Devices move to NEWID
      once K of OLDID's custodians have done so and all of NEWID's have
      endorsed it.

  candor-custody verify -statement FILE -ca CA.pem
      Check the statement and every FILE.endorsement.* beside it; print the
      policy, the custodians and who has endorsed. For a key that succeeds
      another, check every FILE.succession.* too and who has signed one.

  candor-custody approve -bundle FILE -access-key access.pub -statement FILE -key KEYFILE -out APPROVAL [-yes]
      As a custodian: check an opening request (the bundle candord access
      show wrote) against the access log's key you were given, show it, and
      on your yes release your share sealed to the request's one-time
      opening key. The administrator logs APPROVAL with candord access
      approve.

Passphrases are read from the terminal, or from the environment variable
CANDOR_CUSTODY_PASSPHRASE when it is set (for scripts).

Exit status:
  0  success
  1  failure: bad input, a failed check, a wrong passphrase
  2  bad command line
  3  verify: the statement is sound but not yet endorsed by every custodian
     (or, for a successor, by K of the previous key's custodians)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// app is one run of the tool.
type app struct {
	stdin          *os.File // a terminal, for passphrases, or not
	stdout, stderr io.Writer
	now            func() time.Time
}

func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	commands := map[string]func([]string) error{
		"keygen":   a.keygen,
		"ceremony": a.ceremony,
		"endorse":  a.endorse,
		"succeed":  a.succeed,
		"verify":   a.verify,
		"approve":  a.approve,
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "candor-custody: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	err := cmd(args[1:])
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "candor-custody %s: %v\n", args[0], err)
		return exitUsage
	case errors.Is(err, errUnendorsed):
		return exitUnendorsed
	default:
		fmt.Fprintf(stderr, "candor-custody %s: %v\n", args[0], err)
		return exitFailure
	}
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errUnendorsed is verify's result for a sound statement that lacks
// endorsements; it has already said so.
var errUnendorsed = errors.New("not endorsed by every custodian")

// flags makes a subcommand's flag set, which reports its own errors and
// usage on stderr.
func (a *app) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "Usage: candor-custody %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, turning flag errors into usage errors and refusing
// stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// require reports the first of the string flags, given as name, value
// pairs, left empty.
func require(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return usagef("-%s is required", pairs[i])
		}
	}
	return nil
}
