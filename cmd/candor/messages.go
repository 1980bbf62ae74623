package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"candor"
	"candor/client"
)

// maxStdin bounds what send reads from standard input: more than any
// message may hold, so that a larger one gets the client's clear refusal.
const maxStdin = 1 << 20

func runSend(ctx context.Context, e *env, args []string) error {
	text := ""
	if len(args) == 2 && args[1] != "-" {
		text = args[1]
	} else {
		raw, err := io.ReadAll(io.LimitReader(e.in, maxStdin+1))
		if err != nil {
			return fmt.Errorf("reading the message from standard input: %w", err)
		}
		text = strings.TrimRight(string(raw), "\r\n")
	}
	if strings.TrimSpace(text) == "" {
		fmt.Fprintln(e.err, "candor send: nothing to send (give TEXT, or write it to standard input)")
		return errUsage
	}
	// Catching up first is not only for freshness: proposals waiting in
	// the group (a person who left, a removed device) are committed before
	// the message is encrypted, so that they cannot read it.
	if err := e.c.Sync(ctx); err != nil {
		return err
	}
	g, err := resolveGroup(ctx, e.c, args[0])
	if err != nil {
		return err
	}
	if g.Removed {
		return client.ErrRemoved
	}
	m, err := e.c.Send(ctx, g.ID, text)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "Sent to %s at %s.\n", g.ID.String()[:shortID], m.Time.Local().Format(timeLayout))
	return nil
}

func runRead(ctx context.Context, e *env, args []string) error {
	if err := syncOrWarn(ctx, e); err != nil {
		return err
	}
	g, err := resolveGroup(ctx, e.c, args[0])
	if err != nil {
		return err
	}
	var ms []client.Member
	if !g.Removed {
		if ms, err = e.c.Members(ctx, g.ID); err != nil {
			return err
		}
	}
	msgs, err := e.c.Messages(ctx, g.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "%s (%s)\n", label(g, ms, e.c.User()), g.ID.String()[:shortID])
	// A device reads what was sent while it was a member: the keys of
	// earlier epochs were never its own (RFC 9420 forward secrecy). The
	// group's first commit is entry 1: a device it added missed nothing.
	if g.JoinedSeq > 1 {
		fmt.Fprintf(e.out, "(this device joined on %s; messages sent before then were encrypted before it was a member and cannot be read here)\n",
			g.Joined.Local().Format(timeLayout))
	}
	for _, m := range msgs {
		fmt.Fprintf(e.out, "%s  %-10s %-8s  %s\n", m.Time.Local().Format(timeLayout), m.User, m.State, indent(m.Text))
	}
	if len(msgs) == 0 {
		fmt.Fprintln(e.out, "No messages yet.")
	}
	var last uint64
	for _, m := range msgs {
		last = max(last, m.Seq) // messages still sending have none
	}
	if err := e.c.MarkRead(ctx, g.ID, last); err != nil {
		return err
	}
	if g.Removed {
		fmt.Fprintln(e.out, "(you are no longer a member of this conversation; nothing new reaches this device)")
	}
	return nil
}

// indent shifts the second and later lines of a message right, so that
// every message still starts a line of its own at the left margin.
func indent(text string) string {
	return strings.ReplaceAll(text, "\n", "\n    ")
}

// listener prints events as lines, naming conversations as people know
// them.
type listener struct {
	e      *env
	labels map[candor.GroupID]string
}

func (l *listener) label(ctx context.Context, gid candor.GroupID) string {
	if s, ok := l.labels[gid]; ok {
		return s
	}
	s := "conversation " + gid.String()[:shortID]
	if gs, err := l.e.c.Groups(ctx); err == nil {
		for _, g := range gs {
			if g.ID == gid {
				ms, _ := l.e.c.Members(ctx, gid)
				s = label(g, ms, l.e.c.User())
			}
		}
	}
	l.labels[gid] = s
	return s
}

func devicesText(ms []client.Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmt.Sprintf("%s (device %s)", m.User, m.Device)
	}
	return strings.Join(s, ", ")
}

// print writes one event; it reports whether it was a message.
func (l *listener) print(ctx context.Context, ev client.Event) bool {
	now := time.Now().Local().Format(timeLayout)
	switch ev.Kind {
	case client.EventMessage:
		m := ev.Message
		fmt.Fprintf(l.e.out, "%s  [%s]  %s: %s\n", m.Time.Local().Format(timeLayout), l.label(ctx, ev.Group), m.User, indent(m.Text))
		return true
	case client.EventJoined:
		delete(l.labels, ev.Group)
		fmt.Fprintf(l.e.out, "%s  [%s]  you were added; members: %s\n", now, l.label(ctx, ev.Group), membersText(ev.Added))
	case client.EventMembers:
		delete(l.labels, ev.Group)
		var parts []string
		if len(ev.Added) > 0 {
			parts = append(parts, "joined: "+devicesText(ev.Added))
		}
		if len(ev.Removed) > 0 {
			parts = append(parts, "left: "+devicesText(ev.Removed))
		}
		fmt.Fprintf(l.e.out, "%s  [%s]  %s\n", now, l.label(ctx, ev.Group), strings.Join(parts, "; "))
	case client.EventRemoved:
		fmt.Fprintf(l.e.out, "%s  [%s]  you are no longer a member; the history stays on this device\n", now, l.label(ctx, ev.Group))
	case client.EventConnected:
		fmt.Fprintln(l.e.err, "candor: connected and up to date; listening (Ctrl-C stops)")
	case client.EventDisconnected:
		fmt.Fprintln(l.e.err, "candor: offline; reconnecting…")
	case client.EventError:
		fmt.Fprintf(l.e.err, "candor: warning: %v\n", ev.Err)
	}
	return false
}

// runListen streams every conversation live until interrupted, or until
// -count messages have come or -for has passed.
func runListen(ctx context.Context, e *env, _ []string) error {
	opts := e.flags.(listenOptions)
	if *opts.count < 0 || *opts.wait < 0 {
		fmt.Fprintln(e.err, "candor listen: -count and -for must not be negative")
		return errUsage
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stop <-chan time.Time
	if *opts.wait > 0 {
		t := time.NewTimer(*opts.wait)
		defer t.Stop()
		stop = t.C
	}
	done := make(chan error, 1)
	go func() { done <- e.c.Run(ctx) }()
	l := &listener{e: e, labels: map[candor.GroupID]string{}}
	seen := 0
	for {
		select {
		case ev := <-e.c.Events():
			if l.print(ctx, ev) {
				seen++
				if *opts.count > 0 && seen >= *opts.count {
					cancel()
					<-done
					return nil
				}
			}
		case <-stop:
			cancel()
			<-done
			return nil
		case err := <-done:
			if errors.Is(err, context.Canceled) {
				// Interrupted: the way listening is meant to end.
				return nil
			}
			return err
		}
	}
}
