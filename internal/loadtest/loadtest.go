// Package loadtest drives candor's delivery server with many devices over
// real connections on loopback and measures it against a baseline, for
// cmd/candor-load.
//
// One run:
//
//  1. Setup, not measured. A fresh organisation (server.Init) in a work
//     folder. Devices are enrolled through the server's Store directly
//     (an invitation and Store.Enrol per device, a certificate from the
//     organisation's CA, one KeyPackage checked as the server checks
//     uploads), because thousands of enrolments over HTTP only measure
//     enrolment. Groups are made over the real API of the running server:
//     the creator registers the group (POST /v1/groups) and commits the Add
//     of the other members with its Welcome (POST …/messages), so the
//     server follows every member list from real MLS commits. The devices
//     that send join from the Welcome; the others only receive, and never
//     decrypt (which is not what is measured). MLS state lives in memory
//     (mlsxtest.Store), one per device. Every application message of the
//     run is encrypted before the clock starts, so that encryption on the
//     load generator is not what limits it.
//  2. The target runs as a child process (this program started again, see
//     [ChildMain]), so its memory is its own resident set, read from
//     /proc. Target "server" is candord's delivery server wired as
//     `candord serve` wires it: server.Open, server.New, net/http with TLS
//     1.3 and mutual TLS, SQLite with synchronous=FULL. Target "baseline"
//     is a bare WebSocket relay (relay.go) with the same TLS configuration
//     and the same endpoints: it fans each POSTed message out to the live
//     streams of its group, with no storage and no checks.
//  3. Every device holds a live stream (a WebSocket over its own mutual-TLS
//     connection), and each sending device a keep-alive connection for its
//     POSTs, one request at a time, as the client library does. Messages
//     are sent open loop at the target rate, round robin over the groups;
//     latency counts from the time a message was due, so a server that
//     falls behind is charged for the queue it causes.
//  4. Measured: messages accepted (200) per second, entries received over
//     the streams per second, delivery latency (receipt at each member,
//     the sender included, minus the time the message was due) at p50, p99
//     and max, errors, and the child's resident memory and CPU.
//
// Everything is bounded: a run lasts Duration per rate plus a bounded
// drain, listens on 127.0.0.1 only, and removes its work folder.
package loadtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"

	"candor"
)

// AckMode says how devices acknowledge what their streams deliver.
type AckMode string

const (
	// AckEvery acknowledges every entry with an ack frame, as the client
	// library does (one PUT-cursor equivalent per entry and device).
	AckEvery AckMode = "every"
	// AckNone never acknowledges.
	AckNone AckMode = "none"
	// AckInterval acknowledges the latest entry at most once per
	// Config.AckInterval.
	AckInterval AckMode = "interval"
)

// Target names.
const (
	TargetServer   = "server"
	TargetBaseline = "baseline"
)

// Config configures a Run.
type Config struct {
	// Devices is the number of connected devices. Required; a multiple of
	// GroupSize.
	Devices int
	// GroupSize is the number of devices per group. Zero means 10.
	GroupSize int
	// SendersPerGroup is how many members of each group send. Zero means
	// all of them. Each sender holds a second connection, so with many
	// devices the open-file limit may require fewer.
	SendersPerGroup int
	// Rates are the offered loads to measure, in messages per second, in
	// order. Required.
	Rates []int
	// Duration is how long each rate is offered. Zero means 10s.
	Duration time.Duration
	// Drain bounds the wait, after the last message of a rate is due, for
	// answers and deliveries still outstanding. Zero means 15s.
	Drain time.Duration
	// MessageBytes is the size of each message's plaintext. Zero means 100.
	MessageBytes int
	// Ack is how devices acknowledge. Empty means AckEvery.
	Ack AckMode
	// AckInterval is the period of AckInterval. Zero means 1s.
	AckInterval time.Duration
	// Targets are what to measure, in order: TargetServer and/or
	// TargetBaseline. Nil means both.
	Targets []string
	// Dir is the work folder; empty means a new temporary one. The folder
	// Run makes is removed at the end unless Keep is set.
	Dir  string
	Keep bool
	// TargetEnv is added to the targets' environment (GOGC=50,
	// GOMEMLIMIT=800MiB…), not to the load generator's.
	TargetEnv []string
	// QuietWait bounds the wait, before each rate, for other processes on
	// the machine to use under 0.2 cores; zero does not wait. The CPU they
	// used during each window is reported either way.
	QuietWait time.Duration
	// Workers bounds setup and connection parallelism. Zero means 32.
	Workers int
	// ProfileDir, when set, receives CPU profiles of the target (from the
	// child) and of the load generator for each rate's window.
	ProfileDir string
	// Progress receives progress lines. Nil discards them.
	Progress io.Writer
}

func (c *Config) fill() error {
	if c.GroupSize == 0 {
		c.GroupSize = 10
	}
	if c.Devices <= 0 || c.GroupSize < 2 || c.Devices%c.GroupSize != 0 {
		return fmt.Errorf("loadtest: devices (%d) must be a positive multiple of the group size (%d, at least 2): %w", c.Devices, c.GroupSize, candor.ErrInvalid)
	}
	if c.SendersPerGroup == 0 || c.SendersPerGroup > c.GroupSize {
		c.SendersPerGroup = c.GroupSize
	}
	if c.SendersPerGroup < 0 {
		return fmt.Errorf("loadtest: negative senders per group: %w", candor.ErrInvalid)
	}
	if len(c.Rates) == 0 {
		return fmt.Errorf("loadtest: no rate: %w", candor.ErrInvalid)
	}
	for _, r := range c.Rates {
		if r <= 0 || r > 1_000_000 {
			return fmt.Errorf("loadtest: rate %d out of range: %w", r, candor.ErrInvalid)
		}
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Duration < 100*time.Millisecond || c.Duration > time.Hour {
		return fmt.Errorf("loadtest: duration %v out of range: %w", c.Duration, candor.ErrInvalid)
	}
	if c.Drain == 0 {
		c.Drain = 15 * time.Second
	}
	if c.MessageBytes == 0 {
		c.MessageBytes = 100
	}
	if c.MessageBytes < 16 || c.MessageBytes > 64<<10 {
		return fmt.Errorf("loadtest: message size %d out of range: %w", c.MessageBytes, candor.ErrInvalid)
	}
	switch c.Ack {
	case "":
		c.Ack = AckEvery
	case AckEvery, AckNone, AckInterval:
	default:
		return fmt.Errorf("loadtest: ack mode %q: %w", c.Ack, candor.ErrInvalid)
	}
	if c.AckInterval <= 0 {
		c.AckInterval = time.Second
	}
	if c.Targets == nil {
		c.Targets = []string{TargetServer, TargetBaseline}
	}
	for _, t := range c.Targets {
		if t != TargetServer && t != TargetBaseline {
			return fmt.Errorf("loadtest: target %q: %w", t, candor.ErrInvalid)
		}
	}
	if c.Workers <= 0 {
		c.Workers = 32
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	// Each device holds a stream, each sender one more connection, on both
	// ends; the target's process and this one each need that many files.
	need := uint64(c.Devices + c.Devices/c.GroupSize*c.SendersPerGroup + 256)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && need > lim.Max {
		return fmt.Errorf("loadtest: %d devices and %d senders need about %d open files per process, over the limit of %d; use fewer senders per group: %w",
			c.Devices, c.Devices/c.GroupSize*c.SendersPerGroup, need, lim.Max, candor.ErrInvalid)
	}
	return nil
}

// Run sets up an organisation, measures each target at each rate, and
// reports. It stops by itself; cancelling ctx stops it early.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	raiseFileLimit()
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "candor-load-")
		if err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		dir = d
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
	}
	rep := &Report{Machine: machineFacts(), Config: reportConfig(cfg), Dir: dir}
	progress(cfg.Progress, "machine: %s", rep.Machine)

	start := time.Now()
	org, err := setupOrg(ctx, cfg, dir)
	if err != nil {
		return nil, err
	}
	rep.Setup.EnrolSeconds = time.Since(start).Seconds()
	progress(cfg.Progress, "enrolled %d devices through the store in %.1fs", cfg.Devices, rep.Setup.EnrolSeconds)

	// Groups are made through the real server, which is then stopped; each
	// target starts afresh on the same folder.
	start = time.Now()
	if err := makeGroups(ctx, cfg, org); err != nil {
		return nil, err
	}
	rep.Setup.GroupsSeconds = time.Since(start).Seconds()
	progress(cfg.Progress, "made %d groups of %d over the API in %.1fs", len(org.groups), cfg.GroupSize, rep.Setup.GroupsSeconds)

	start = time.Now()
	msgs, err := encryptAll(ctx, cfg, org)
	if err != nil {
		return nil, err
	}
	rep.Setup.EncryptSeconds = time.Since(start).Seconds()
	rep.Setup.Messages = msgs.total()
	rep.Setup.CiphertextBytes = msgs.ciphertextBytes
	progress(cfg.Progress, "encrypted %d messages (%d-byte plaintexts, %d-byte MLSMessages) in %.1fs; %d decrypted by another member as a check",
		rep.Setup.Messages, cfg.MessageBytes, msgs.ciphertextBytes, rep.Setup.EncryptSeconds, msgs.checked)
	org.dropMLS()
	runtime.GC()

	for _, target := range cfg.Targets {
		tr, err := measureTarget(ctx, cfg, org, msgs, target)
		if err != nil {
			return nil, fmt.Errorf("loadtest: %s: %w", target, err)
		}
		rep.Targets = append(rep.Targets, *tr)
	}
	rep.evaluate()
	return rep, nil
}

func progress(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// raiseFileLimit lifts this process's soft open-file limit to its hard
// limit (the Go runtime does so too, since Go 1.19; children inherit it).
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
