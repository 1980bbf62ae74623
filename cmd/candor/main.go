// Command candor is candor's command line for people: the demonstration,
// and enrolling this device with an organisation's server. Conversations
// and chat in the terminal come next (see README.md).
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

	"candor/client"
	"candor/internal/demo"
)

const usage = `usage:
  candor demo   [-corpus FILE]
  candor enroll [-home DIR] -name NAME CODE
  candor whoami [-home DIR]

  demo     narrate a conversation between devices of an organisation:
           certificates, an MLS group, messages in several languages, key
           rotation and the removal of a lost device. Nothing is kept.
  enroll   enrol this device with the invitation CODE that
           'candord invite' printed; NAME names the device ("laptop")
  whoami   show who this device is enrolled as

The profile folder (-home) defaults to $CANDOR_HOME, else the user
configuration folder's candor/ subfolder; several devices on one machine
use several folders.

Exit status: 0 done, 1 failed, 2 wrong usage, 3 the invitation is wrong,
used or expired, 4 the server cannot be reached or is not the
organisation's, 5 this folder is already enrolled or not enrolled.
`

// Exit codes, as the usage text documents them.
const (
	exitFailed     = 1
	exitUsage      = 2
	exitInvitation = 3
	exitServer     = 4
	exitProfile    = 5
)

var errUsage = errors.New("wrong usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "candor:", err)
		}
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	switch {
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(err, client.ErrBadInvitation):
		return exitInvitation
	case errors.Is(err, client.ErrUnreachable), errors.Is(err, client.ErrServerIdentity):
		return exitServer
	case errors.Is(err, client.ErrAlreadyEnrolled), errors.Is(err, client.ErrNotEnrolled):
		return exitProfile
	}
	return exitFailed
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	fs := flag.NewFlagSet("candor "+args[0], flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	home := fs.String("home", defaultHome(), "the device's profile folder")
	switch args[0] {
	case "demo":
		corpus := fs.String("corpus", filepath.Join("..", "shared", "corpus", "udhr-snippets.tsv"), "multilingual sentences (tab-separated: lang, script, snippet)")
		if err := parse(fs, args[1:], 0); err != nil {
			return err
		}
		return runDemo(ctx, out, *corpus)
	case "enroll":
		name := fs.String("name", "", "this device's name, such as laptop or phone")
		if err := parse(fs, args[1:], 1); err != nil {
			return err
		}
		if *name == "" {
			fmt.Fprintln(os.Stderr, "candor enroll: -name is required")
			return errUsage
		}
		c, err := client.Enrol(ctx, *home, fs.Arg(0), *name)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(out, "Enrolled as %s, device %s (%s). Profile: %s\n", c.User(), c.Device(), *name, c.Home())
		return nil
	case "whoami":
		if err := parse(fs, args[1:], 0); err != nil {
			return err
		}
		c, err := client.Open(ctx, *home, client.Config{})
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(out, "%s, device %s. Profile: %s\n", c.User(), c.Device(), c.Home())
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return errUsage
}

// parse parses flags and requires exactly n arguments after them.
func parse(fs *flag.FlagSet, args []string, n int) error {
	if err := fs.Parse(args); err != nil || fs.NArg() != n {
		if err == nil {
			fs.Usage()
		}
		return errUsage
	}
	return nil
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

func runDemo(ctx context.Context, out io.Writer, corpus string) error {
	dir, err := os.MkdirTemp("", "candor-demo-")
	if err != nil {
		return err
	}
	err = demo.Run(ctx, demo.Config{Out: out, Dir: dir, Corpus: corpus})
	return errors.Join(err, os.RemoveAll(dir))
}
