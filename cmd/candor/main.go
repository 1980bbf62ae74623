// Command candor is candor's command line for people: enrolling a device,
// managing one's devices, conversations and their members, sending,
// reading and listening, and the demonstration. It is built on package
// client; main wires flags, output and signals, and turns errors into
// sentences that say what happened and what to do next (people.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"candor/client"
	"candor/internal/demo"
)

const usage = `usage: candor COMMAND [-home DIR] [ARGUMENTS]

Start:
  demo    [-corpus FILE]     narrate a conversation through a real server
                             started in a temporary folder; nothing is kept
  enroll  -name NAME CODE    enrol this device with the invitation CODE
                             that 'candord invite' printed; NAME names the
                             device ("laptop")
  whoami                     show who this device is enrolled as

Your devices:
  devices                    list your devices; this one is marked
  devices remove ID          remove one of your devices (a lost phone): the
                             server refuses it and it is taken out of your
                             conversations

Conversations:
  groups                     list the conversations on this device and who
                             is in each
  create NAME [USER...]      start a conversation named NAME (the name stays
                             on this device) with every device of each USER
                             and of you
  direct USER                start, or show again, your conversation with USER
  add GROUP USER...          add people (every device of each)
  remove GROUP USER...       take people out (every device of each)
  leave GROUP                leave with all your devices; the history stays
  members GROUP              show each person in GROUP and their devices
  rename GROUP NAME          name a conversation on this device

Messages:
  send GROUP [TEXT | -]      send TEXT, or standard input when TEXT is
                             absent or -
  read GROUP                 catch up, then show the history with sender,
                             time and state (sending, sent, received);
                             offline, show what this device has
  listen [-count N] [-for D] print every conversation's messages and events
                             as they come, until interrupted, N messages
                             have come or D (such as 10m) has passed
  chat [GROUP]               the full-screen chat: conversations with unread
                             counts, the open one, its members, an input
                             line; Esc or Ctrl-C quits

The archive:
  audit                      list every request to open the organisation's
                             archive that covers you or a conversation you
                             are or were in: case, reason, requester,
                             period, the custodians who approved, and
                             whether it was opened; the access log is
                             checked against what this device saw before.
                             Then it checks that the archive's journal of
                             each conversation holds what this device
                             received, against the server's signed heads

GROUP is a conversation's name on this device, or the first characters of
its id, as 'candor groups' shows them, or @USER for your direct
conversation with USER. USER is a person's user id.

The profile folder (-home) defaults to $CANDOR_HOME, else the user
configuration folder's candor/ subfolder; several devices on one machine
use several folders.

Exit status:
  0  done
  1  failed
  2  wrong usage
  3  the invitation is wrong, used or expired
  4  the server cannot be reached or is not the organisation's
  5  this folder is already enrolled, or not enrolled
  6  this device was removed (revoked) or the server does not know it
  7  you are not a member of that conversation (any more)
  8  no such conversation, person or device
  9  the access log, or the archive's journal, contradicts what this
     device saw (altered)
`

// Exit codes, as the usage text documents them. The numbers are kept
// forever: scripts test them.
const (
	exitFailed     = 1
	exitUsage      = 2
	exitInvitation = 3
	exitServer     = 4
	exitProfile    = 5
	exitRevoked    = 6
	exitNotMember  = 7
	exitNotFound   = 8
	exitAltered    = 9
)

var errUsage = errors.New("wrong usage")

// stdio is where a command reads and writes.
type stdio struct {
	in  io.Reader
	out io.Writer // results
	err io.Writer // warnings, progress and errors
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			explain(os.Stderr, err)
		}
		os.Exit(exitCode(err))
	}
}

// command is one sub-command: its flags are added to fs before parsing,
// and run gets the arguments left after them.
type command struct {
	// min and max bound how many arguments it takes after its flags
	// (max -1: any number).
	min, max int
	// flags adds the command's own flags; nil for none.
	flags func(fs *flag.FlagSet) any
	// open says whether it needs the enrolled device.
	open bool
	run  func(ctx context.Context, e *env, args []string) error
}

// env is what a running command has at hand.
type env struct {
	stdio
	home  string
	c     *client.Client // nil unless the command opens the device
	flags any            // what command.flags returned
}

var commands = map[string]command{
	"demo":    {min: 0, max: 0, flags: demoFlags, run: runDemo},
	"enroll":  {min: 1, max: 1, flags: enrollFlags, run: runEnroll},
	"whoami":  {min: 0, max: 0, open: true, run: runWhoami},
	"devices": {min: 0, max: 2, open: true, run: runDevices},
	"groups":  {min: 0, max: 0, open: true, run: runGroups},
	"create":  {min: 1, max: -1, open: true, run: runCreate},
	"direct":  {min: 1, max: 1, open: true, run: runDirect},
	"add":     {min: 2, max: -1, open: true, run: runAdd},
	"remove":  {min: 2, max: -1, open: true, run: runRemove},
	"leave":   {min: 1, max: 1, open: true, run: runLeave},
	"members": {min: 1, max: 1, open: true, run: runMembers},
	"rename":  {min: 2, max: 2, open: true, run: runRename},
	"send":    {min: 1, max: 2, open: true, run: runSend},
	"read":    {min: 1, max: 1, open: true, run: runRead},
	"listen":  {min: 0, max: 0, flags: listenFlags, open: true, run: runListen},
	"chat":    {min: 0, max: 1, open: true, run: runChat},
	"audit":   {min: 0, max: 0, open: true, run: runAudit},
}

func run(ctx context.Context, args []string, std stdio) error {
	if len(args) == 0 {
		fmt.Fprint(std.err, usage)
		return errUsage
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(std.out, usage)
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(std.err, "candor: no command %q\n\n", args[0])
		fmt.Fprint(std.err, usage)
		return errUsage
	}
	fs := flag.NewFlagSet("candor "+args[0], flag.ContinueOnError)
	fs.SetOutput(std.err)
	fs.Usage = func() { fmt.Fprint(std.err, usage) }
	home := fs.String("home", defaultHome(), "the device's profile folder")
	e := &env{stdio: std}
	if cmd.flags != nil {
		e.flags = cmd.flags(fs)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if n := fs.NArg(); n < cmd.min || (cmd.max >= 0 && n > cmd.max) {
		fmt.Fprintf(std.err, "candor %s: wrong number of arguments\n\n", args[0])
		fs.Usage()
		return errUsage
	}
	e.home = *home
	if cmd.open {
		c, err := client.Open(ctx, e.home, client.Config{})
		if err != nil {
			return profileError{home: e.home, err: err}
		}
		defer c.Close()
		e.c = c
	}
	return cmd.run(ctx, e, fs.Args())
}

func defaultHome() string {
	if h := os.Getenv("CANDOR_HOME"); h != "" {
		return h
	}
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "candor")
	}
	return ".candor"
}

func enrollFlags(fs *flag.FlagSet) any {
	return fs.String("name", "", "this device's name, such as laptop or phone")
}

func runEnroll(ctx context.Context, e *env, args []string) error {
	name := *e.flags.(*string)
	if name == "" {
		fmt.Fprintln(e.err, "candor enroll: -name is required (the device's name, such as laptop)")
		return errUsage
	}
	c, err := client.Enrol(ctx, e.home, args[0], name)
	if err != nil {
		return profileError{home: e.home, err: err}
	}
	defer c.Close()
	fmt.Fprintf(e.out, "Enrolled as %s, device %s (%s). Profile: %s\n", c.User(), c.Device(), name, c.Home())
	return nil
}

func runWhoami(_ context.Context, e *env, _ []string) error {
	fmt.Fprintf(e.out, "%s, device %s. Profile: %s\n", e.c.User(), e.c.Device(), e.c.Home())
	return nil
}

// listenOptions are listen's flags.
type listenOptions struct {
	count *int
	wait  *time.Duration
}

func listenFlags(fs *flag.FlagSet) any {
	return listenOptions{
		count: fs.Int("count", 0, "stop after this many messages (0: no limit)"),
		wait:  fs.Duration("for", 0, "stop after this long (0: until interrupted)"),
	}
}

func demoFlags(fs *flag.FlagSet) any {
	return fs.String("corpus", filepath.Join("..", "shared", "corpus", "udhr-snippets.tsv"), "multilingual sentences (tab-separated: lang, script, snippet)")
}

func runDemo(ctx context.Context, e *env, _ []string) error {
	dir, err := os.MkdirTemp("", "candor-demo-")
	if err != nil {
		return err
	}
	err = demo.Run(ctx, demo.Config{Out: e.out, Dir: dir, Corpus: *e.flags.(*string)})
	return errors.Join(err, os.RemoveAll(dir))
}
