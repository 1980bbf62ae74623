// Command candor-load measures candor's delivery server under load, beside
// a bare WebSocket relay as a baseline, on loopback. It enrols devices,
// makes groups of them with real MLS, connects every device's live stream
// and sends real encrypted application messages at the given rates; it
// reports messages accepted per second, deliveries per second, delivery
// latency and the server's memory. See package internal/loadtest for what
// is measured and how.
//
//	candor-load [-devices 1000] [-group-size 10] [-rate 1000,2500,5000] [-duration 30s] [-out results.json]
//
// It starts its targets itself, as child processes of this program, on
// 127.0.0.1, in a temporary folder it removes, and stops by itself.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"candor/internal/loadtest"
)

func main() {
	if loadtest.IsChild() {
		loadtest.ChildMain()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "candor-load:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("candor-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadtest.Config
	fs.IntVar(&cfg.Devices, "devices", 1000, "connected devices")
	fs.IntVar(&cfg.GroupSize, "group-size", 10, "devices per group")
	fs.IntVar(&cfg.SendersPerGroup, "senders-per-group", 0, "members of each group that send (0: all); each holds a second connection")
	rates := fs.String("rate", "1000", "offered load in messages per second; a comma-separated list measures each in turn")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long each rate is offered (default 10s)")
	fs.DurationVar(&cfg.Drain, "drain", 0, "longest wait for outstanding answers and deliveries after each rate (default 15s)")
	fs.IntVar(&cfg.MessageBytes, "message-bytes", 100, "plaintext bytes per message")
	ack := fs.String("ack", "every", "how devices acknowledge entries: every (as the client library), none, or a period such as 1s")
	baseline := fs.Bool("baseline", true, "also measure the bare WebSocket relay")
	serverToo := fs.Bool("server", true, "measure candor's server")
	fs.DurationVar(&cfg.QuietWait, "quiet-wait", 2*time.Minute, "before each rate, wait up to this long for other processes to use under 0.2 cores (0: do not wait)")
	fs.IntVar(&cfg.Workers, "workers", 0, "setup and connection parallelism (default 32)")
	fs.StringVar(&cfg.ProfileDir, "profile", "", "write CPU profiles of the target and the generator, per rate, to this folder")
	fs.StringVar(&cfg.Dir, "dir", "", "work folder (default: a temporary one)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the temporary work folder")
	targetEnv := fs.String("target-env", "", "comma-separated KEY=VALUE settings for the targets' environment only (GOGC=50,GOMEMLIMIT=800MiB)")
	out := fs.String("out", "", "also write the results as JSON to this file")
	quiet := fs.Bool("q", false, "no progress lines on standard error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil {
			fmt.Fprintf(stderr, "-rate: %q is not a number\n", r)
			return errUsage
		}
		cfg.Rates = append(cfg.Rates, n)
	}
	switch *ack {
	case "every":
		cfg.Ack = loadtest.AckEvery
	case "none":
		cfg.Ack = loadtest.AckNone
	default:
		d, err := parseDuration(*ack)
		if err != nil {
			fmt.Fprintf(stderr, "-ack: %q is not every, none or a period\n", *ack)
			return errUsage
		}
		cfg.Ack, cfg.AckInterval = loadtest.AckInterval, d
	}
	if *targetEnv != "" {
		for _, kv := range strings.Split(*targetEnv, ",") {
			if !strings.Contains(kv, "=") {
				fmt.Fprintf(stderr, "-target-env: %q is not KEY=VALUE\n", kv)
				return errUsage
			}
			cfg.TargetEnv = append(cfg.TargetEnv, strings.TrimSpace(kv))
		}
	}
	if *serverToo {
		cfg.Targets = append(cfg.Targets, loadtest.TargetServer)
	}
	if *baseline {
		cfg.Targets = append(cfg.Targets, loadtest.TargetBaseline)
	}
	if len(cfg.Targets) == 0 {
		fmt.Fprintln(stderr, "nothing to measure: -server=false and -baseline=false")
		return errUsage
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if *out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
