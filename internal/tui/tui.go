// Package tui is candor's full-screen terminal chat (`candor chat`): the
// list of conversations with unread counts, the open conversation with each
// message's sender, time and delivery state, its member list, an input
// line, and the state of the connection to the server.
//
// It is built on Bubble Tea: the model (model.go, view.go) is pure, so that
// Update and View can be tested with messages alone; everything that does
// I/O runs in commands (this file) that call the client and report back
// with a message. Run starts the client's live stream itself and feeds its
// events to the model.
//
// Choices a reader may wonder about:
//
//   - Unread counts come from the device's history (client.Group.Unread):
//     what the open conversation shows is marked read (client.MarkRead),
//     so the counts survive a restart of the chat.
//   - A device added to a conversation after it began reads it from the
//     Welcome that added it (client.Group.JoinedSeq): the chat says, at
//     the top of the history, that earlier messages cannot be read here.
//   - Members that are not devices of people come first in the member
//     list, marked, and are never cut off for lack of room: in candor the
//     only such member is the archive, and nobody may be in a
//     conversation unseen.
//   - Text from others is cleaned before it reaches the terminal (see
//     cleanText): escape sequences in a message must not drive it.
//
// Nothing here writes to disk or logs message content: the history is the
// client's, and the screen is the only place text goes.
package tui

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"candor"
	"candor/client"
)

// backend is what the chat needs from a device: the subset of
// *client.Client it calls from its commands. Every method may block on the
// network or on the group's lock, so it is only ever called from a
// command, never from Update or View. Implementations must be safe for
// concurrent use (*client.Client is).
type backend interface {
	User() candor.UserID
	Device() candor.DeviceID
	Groups(ctx context.Context) ([]client.Group, error)
	Messages(ctx context.Context, gid candor.GroupID) ([]client.Message, error)
	Members(ctx context.Context, gid candor.GroupID) ([]client.Member, error)
	Send(ctx context.Context, gid candor.GroupID, text string) (client.Message, error)
	MarkRead(ctx context.Context, gid candor.GroupID, seq uint64) error
}

// Run shows the chat of device c on the terminal behind in and out until
// the person quits (Esc, ctrl+c) or ctx is done. group names the
// conversation to open first, by its local name or a prefix of its id in
// hex; "" opens the first one. Run starts c.Run for the live stream and
// stops it before returning; the caller must not run it as well. It
// returns nil when the person quit, ctx's error when ctx ended it.
func Run(ctx context.Context, c *client.Client, group string, in io.Reader, out io.Writer) error {
	groups, err := c.Groups(ctx)
	if err != nil {
		return fmt.Errorf("listing conversations: %w", err)
	}
	var open candor.GroupID
	if group != "" {
		if open, err = findGroup(groups, group); err != nil {
			return err
		}
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := &stream{done: make(chan struct{})}
	go func() {
		defer close(st.done)
		st.err = c.Run(ctx)
	}()

	m := newModel(ctx, c, open, time.Now, time.Local)
	m.events = c.Events()
	m.stream = st
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(out))
	// The end of ctx quits the program as Esc does, not with
	// tea.WithContext: that kills it, and a killed program closes its
	// input while its reader may still be using it.
	stop := context.AfterFunc(parent, p.Quit)
	_, err = p.Run()
	stop()
	cancel()
	<-st.done
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	return parent.Err()
}

// findGroup resolves what the person typed to open: a local name, exactly,
// or else a unique prefix of a conversation's id in hex.
func findGroup(groups []client.Group, name string) (candor.GroupID, error) {
	for _, g := range groups {
		if g.Name == name {
			return g.ID, nil
		}
	}
	prefix := strings.ToLower(name)
	var found []candor.GroupID
	for _, g := range groups {
		if strings.HasPrefix(hex.EncodeToString([]byte(g.ID)), prefix) {
			found = append(found, g.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no conversation is named %q or has an id starting with it: %w", name, client.ErrUnknownGroup)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d conversations have an id starting with %q; type more of it: %w", len(found), name, candor.ErrInvalid)
}

// ioTimeout bounds each command's call to the client, so that a stuck
// request shows as an error instead of a message that never leaves
// "sending". Send keeps a message whose fate is unknown as sending in the
// history, and the next catch-up settles it.
const ioTimeout = 30 * time.Second

// Messages the commands report with.
type (
	// groupsLoaded: the list of conversations (Groups).
	groupsLoaded struct {
		groups []client.Group
		err    error
	}
	// historyLoaded: one conversation's history (Messages).
	historyLoaded struct {
		group candor.GroupID
		msgs  []client.Message
		err   error
	}
	// membersLoaded: one conversation's member list (Members).
	membersLoaded struct {
		group   candor.GroupID
		members []client.Member
		err     error
	}
	// sendDone: Send returned for the message the model tracks as local.
	sendDone struct {
		group candor.GroupID
		local int
		msg   client.Message
		err   error
	}
	// eventMsg: an event from the client.
	eventMsg client.Event
	// streamEnded: the client's Run returned while the chat was open: it
	// met an error that reconnecting cannot cure (a revoked device).
	streamEnded struct{ err error }
)

func loadGroups(ctx context.Context, b backend) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, ioTimeout)
		defer cancel()
		gs, err := b.Groups(ctx)
		return groupsLoaded{groups: gs, err: err}
	}
}

// markRead records that the person has seen a conversation up to seq. A
// failure only leaves the count higher the next time: it is not shown.
func markRead(ctx context.Context, b backend, gid candor.GroupID, seq uint64) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, ioTimeout)
		defer cancel()
		_ = b.MarkRead(ctx, gid, seq)
		return nil
	}
}

func loadHistory(ctx context.Context, b backend, gid candor.GroupID) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, ioTimeout)
		defer cancel()
		ms, err := b.Messages(ctx, gid)
		return historyLoaded{group: gid, msgs: ms, err: err}
	}
}

func loadMembers(ctx context.Context, b backend, gid candor.GroupID) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, ioTimeout)
		defer cancel()
		ms, err := b.Members(ctx, gid)
		return membersLoaded{group: gid, members: ms, err: err}
	}
}

func send(ctx context.Context, b backend, gid candor.GroupID, local int, text string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, ioTimeout)
		defer cancel()
		m, err := b.Send(ctx, gid, text)
		return sendDone{group: gid, local: local, msg: m, err: err}
	}
}

// waitEvent reads the next event; Update issues it again after each, so
// events are handled one at a time, in order.
func waitEvent(ctx context.Context, events <-chan client.Event) tea.Cmd {
	return func() tea.Msg {
		select {
		case ev := <-events:
			return eventMsg(ev)
		case <-ctx.Done():
			return nil
		}
	}
}

// stream is the client's Run in the background: err is set before done
// is closed.
type stream struct {
	done chan struct{}
	err  error
}

// waitStream reports the end of the client's Run.
func waitStream(ctx context.Context, st *stream) tea.Cmd {
	return func() tea.Msg {
		select {
		case <-st.done:
			return streamEnded{err: st.err}
		case <-ctx.Done():
			return nil
		}
	}
}
