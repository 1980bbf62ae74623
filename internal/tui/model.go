package tui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"candor"
	"candor/client"
)

// connState is what the chat knows of the live stream.
type connState int

const (
	// connecting: the stream is starting and catching up; nothing from
	// the server has been confirmed yet.
	connecting connState = iota
	// online: the stream is up and caught up (EventConnected).
	online
	// offline: the stream broke (EventDisconnected); the client is
	// reconnecting and will catch up before it reports online again.
	offline
	// stopped: the client gave up for good (a revoked device).
	stopped
)

// entry is one line of a conversation's timeline: a message, or a notice
// from this device (a change of members, an entry that could not be read).
type entry struct {
	msg client.Message
	// local numbers a message typed in this session while its Send has
	// not settled it: 0 for everything read from the history or events.
	local int
	// pending is true while Send has not returned for a local message.
	pending bool
	// failed says why a local message was not sent; it is not in the
	// history.
	failed string
	// notice, when not "", makes the entry a line from this device rather
	// than a message; it sits after the log entry msg.Seq.
	notice string
}

// order places an entry in the timeline: by position in the group's log,
// with what has none yet (messages still sending) last.
func (e entry) order() uint64 {
	if e.msg.Seq == 0 {
		return ^uint64(0)
	}
	return e.msg.Seq
}

// conversation is the chat's view of one group.
type conversation struct {
	info client.Group
	// entries is the timeline, ordered by entry.order, stable.
	entries []entry
	// loaded is true once the history was read since the last
	// (re)connection; until then what events brought is shown.
	loaded     bool
	historyErr error
	members    []client.Member
	membersErr error
	// unread counts messages from other people the person has not seen:
	// the history's count when the list was read, and those that arrived
	// since while the conversation was not open.
	unread int
	// scroll is how many lines the timeline is scrolled up from its end.
	scroll int
	// sendErr is the last failure to send, shown above the input line
	// until the next send.
	sendErr string
}

// model is the chat's state. Its Update and View do no I/O: the commands
// in tui.go do, through b.
type model struct {
	ctx    context.Context
	b      backend
	me     candor.UserID
	device candor.DeviceID
	now    func() time.Time
	loc    *time.Location
	events <-chan client.Event // nil in tests that feed events to Update
	stream *stream             // nil in tests

	width, height int
	convs         []*conversation // in the order Groups lists them
	open          int             // index in convs; -1 while there are none
	want          candor.GroupID  // the group to open once listed
	listErr       error

	conn    connState
	connErr error
	// notice is a line for the whole chat (an event for no particular
	// conversation); it stays until replaced.
	notice string

	input     textinput.Model
	nextLocal int
}

func newModel(ctx context.Context, b backend, open candor.GroupID, now func() time.Time, loc *time.Location) *model {
	in := textinput.New()
	in.Prompt = "> "
	in.Placeholder = "type a message, Enter to send"
	in.Focus()
	return &model{
		ctx:    ctx,
		b:      b,
		me:     b.User(),
		device: b.Device(),
		now:    now,
		loc:    loc,
		open:   -1,
		want:   open,
		input:  in,
		width:  80,
		height: 24,
	}
}

func (m *model) Init() tea.Cmd {
	cmds := []tea.Cmd{loadGroups(m.ctx, m.b)}
	if m.events != nil {
		cmds = append(cmds, waitEvent(m.ctx, m.events))
	}
	if m.stream != nil {
		cmds = append(cmds, waitStream(m.ctx, m.stream))
	}
	return tea.Batch(cmds...)
}

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.input.SetWidth(max(m.width-len(m.input.Prompt)-1, 1))
		m.clampScroll()
		return m, nil
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case groupsLoaded:
		return m, m.groupsLoaded(msg)
	case historyLoaded:
		var cmd tea.Cmd
		if c := m.conv(msg.group); c != nil {
			c.historyErr = msg.err
			if msg.err == nil {
				c.mergeHistory(msg.msgs)
				c.loaded = true
				if c == m.current() {
					cmd = m.seen(c, msg.msgs)
				}
			}
			m.clampScroll()
		}
		return m, cmd
	case membersLoaded:
		if c := m.conv(msg.group); c != nil {
			c.membersErr = msg.err
			if msg.err == nil {
				c.members = msg.members
			}
		}
		return m, nil
	case sendDone:
		m.sendDone(msg)
		return m, nil
	case eventMsg:
		cmd := m.event(client.Event(msg))
		if m.events != nil {
			cmd = tea.Batch(cmd, waitEvent(m.ctx, m.events))
		}
		return m, cmd
	case streamEnded:
		if msg.err != nil && !errors.Is(msg.err, context.Canceled) {
			m.conn, m.connErr = stopped, msg.err
		}
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

func (m *model) key(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "esc", "ctrl+c":
		return tea.Quit
	case "tab", "down", "ctrl+n":
		return m.switchTo(m.open + 1)
	case "shift+tab", "up", "ctrl+p":
		return m.switchTo(m.open - 1)
	case "pgup":
		m.scrollBy(max(m.timelineRows()-1, 1))
		return nil
	case "pgdown":
		m.scrollBy(-max(m.timelineRows()-1, 1))
		return nil
	case "enter":
		return m.submit()
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return cmd
}

// conv returns the conversation of a group, or nil.
func (m *model) conv(gid candor.GroupID) *conversation {
	for _, c := range m.convs {
		if c.info.ID == gid {
			return c
		}
	}
	return nil
}

func (m *model) current() *conversation {
	if m.open < 0 || m.open >= len(m.convs) {
		return nil
	}
	return m.convs[m.open]
}

// groupsLoaded takes a new list of conversations, keeping what is known of
// those already listed, and loads what the new ones need.
func (m *model) groupsLoaded(msg groupsLoaded) tea.Cmd {
	m.listErr = msg.err
	if msg.err != nil {
		return nil
	}
	var openID candor.GroupID
	if c := m.current(); c != nil {
		openID = c.info.ID
	}
	var cmds []tea.Cmd
	convs := make([]*conversation, 0, len(msg.groups))
	for _, g := range msg.groups {
		c := m.conv(g.ID)
		if c == nil {
			c = &conversation{}
		}
		if c.members == nil && c.membersErr == nil {
			// Members name a conversation in the list when it has no
			// local name, so they are read for every new one.
			cmds = append(cmds, loadMembers(m.ctx, m.b, g.ID))
		}
		// A removal the list was read too early to have stays: only a
		// new Welcome (EventJoined) undoes it.
		removed := c.info.Removed
		c.info = g
		c.info.Removed = g.Removed || removed
		if c != m.current() {
			c.unread = g.Unread
		}
		convs = append(convs, c)
	}
	m.convs = convs
	m.open = -1
	for i, c := range m.convs {
		if c.info.ID == openID {
			m.open = i
		}
	}
	if m.want != "" {
		for i, c := range m.convs {
			if c.info.ID == m.want {
				m.open, m.want = i, ""
			}
		}
	}
	if m.open < 0 && len(m.convs) > 0 {
		m.open = 0
	}
	if c := m.current(); c != nil && c.info.ID != openID {
		cmds = append(cmds, m.opened(c))
	}
	return tea.Batch(cmds...)
}

// switchTo opens the conversation at index i, wrapping around.
func (m *model) switchTo(i int) tea.Cmd {
	if len(m.convs) == 0 {
		return nil
	}
	m.open = (i%len(m.convs) + len(m.convs)) % len(m.convs)
	return m.opened(m.current())
}

// seen marks the open conversation read up to the last of msgs in the
// log.
func (m *model) seen(c *conversation, msgs []client.Message) tea.Cmd {
	var last uint64
	for _, msg := range msgs {
		last = max(last, msg.Seq)
	}
	if last == 0 || last <= c.info.ReadSeq {
		return nil
	}
	c.info.ReadSeq = last
	return markRead(m.ctx, m.b, c.info.ID, last)
}

// opened marks a conversation as viewed and loads what it lacks.
func (m *model) opened(c *conversation) tea.Cmd {
	c.unread = 0
	c.scroll = 0
	return m.refresh(c)
}

// refresh reads a conversation's history and members again unless they
// were read since the last (re)connection.
func (m *model) refresh(c *conversation) tea.Cmd {
	if c.loaded {
		return nil
	}
	return tea.Batch(loadHistory(m.ctx, m.b, c.info.ID), loadMembers(m.ctx, m.b, c.info.ID))
}

// submit sends what the input line holds to the open conversation.
func (m *model) submit() tea.Cmd {
	text := strings.TrimSpace(m.input.Value())
	c := m.current()
	if text == "" || c == nil {
		return nil
	}
	if c.info.Removed {
		c.sendErr = "not sent: " + client.ErrRemoved.Error()
		return nil
	}
	m.input.Reset()
	c.sendErr = ""
	c.scroll = 0
	m.nextLocal++
	c.insert(entry{
		msg:     client.Message{Group: c.info.ID, User: m.me, Device: m.device, Time: m.now(), Text: text, State: client.Sending},
		local:   m.nextLocal,
		pending: true,
	})
	return send(m.ctx, m.b, c.info.ID, m.nextLocal, text)
}

// sendDone settles a local message with Send's answer.
func (m *model) sendDone(d sendDone) {
	c := m.conv(d.group)
	if c == nil {
		return
	}
	i := slices.IndexFunc(c.entries, func(e entry) bool { return e.local == d.local })
	if i < 0 {
		return
	}
	e := c.entries[i]
	c.entries = slices.Delete(c.entries, i, i+1)
	switch {
	case d.err == nil:
		e.msg, e.local, e.pending = d.msg, 0, false
		if !slices.ContainsFunc(c.entries, func(x entry) bool { return x.notice == "" && x.msg.Seq == e.msg.Seq }) {
			c.insert(e)
		}
	case fateUnknown(d.err):
		// The client keeps the message as sending in its history and
		// settles it when it next catches up: show it as it is there.
		e.local, e.pending = 0, false
		c.insert(e)
		c.sendErr = "not confirmed yet, will be retried when back online: " + d.err.Error()
	default:
		e.pending, e.failed = false, d.err.Error()
		c.insert(e)
		c.sendErr = "not sent: " + d.err.Error()
	}
}

// fateUnknown reports whether a failed Send left its message in the
// history as sending, to be settled by a later catch-up (see client.Send).
func fateUnknown(err error) bool {
	return errors.Is(err, client.ErrUnreachable) || errors.Is(err, client.ErrServer) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// event applies one of the client's events.
func (m *model) event(ev client.Event) tea.Cmd {
	switch ev.Kind {
	case client.EventConnected:
		m.conn, m.connErr = online, nil
		// Whatever the catch-up brought is in the history; events may
		// have been dropped while nobody read them, so read it again.
		for _, c := range m.convs {
			c.loaded = false
		}
		cmds := []tea.Cmd{loadGroups(m.ctx, m.b)}
		if c := m.current(); c != nil {
			cmds = append(cmds, m.refresh(c))
		}
		return tea.Batch(cmds...)
	case client.EventDisconnected:
		if m.conn != stopped {
			m.conn, m.connErr = offline, ev.Err
		}
		return nil
	case client.EventError:
		if ev.Group == "" {
			m.notice = "error: an invitation or entry could not be used"
			if ev.Err != nil {
				m.notice = "error: " + ev.Err.Error()
			}
			return nil
		}
	}
	c := m.conv(ev.Group)
	var relist tea.Cmd
	if c == nil {
		// A conversation this device has just joined, or one the list
		// was read before: list again, and keep the event's news.
		c = &conversation{info: client.Group{ID: ev.Group}}
		m.convs = append(m.convs, c)
		relist = loadGroups(m.ctx, m.b)
	}
	return tea.Batch(relist, m.conversationEvent(c, ev))
}

// conversationEvent applies an event about one conversation.
func (m *model) conversationEvent(c *conversation, ev client.Event) tea.Cmd {
	switch ev.Kind {
	case client.EventMessage:
		if slices.ContainsFunc(c.entries, func(e entry) bool { return e.notice == "" && e.msg.Seq == ev.Message.Seq }) {
			return nil
		}
		e := entry{msg: ev.Message}
		c.insert(e)
		if c != m.current() {
			if ev.Message.User != m.me {
				c.unread++
			}
			return nil
		}
		if c.scroll > 0 {
			// Someone reading further up keeps their place.
			c.scroll += len(m.entryLines(e, m.layout().center))
		}
		return m.seen(c, []client.Message{ev.Message})
	case client.EventMembers:
		for _, d := range ev.Added {
			c.insert(entry{msg: client.Message{Seq: ev.Seq}, notice: memberName(d) + " joined"})
		}
		for _, d := range ev.Removed {
			c.insert(entry{msg: client.Message{Seq: ev.Seq}, notice: memberName(d) + " left"})
		}
		return loadMembers(m.ctx, m.b, ev.Group)
	case client.EventJoined:
		c.info.JoinedSeq = ev.Seq
		c.members = ev.Added
		c.info.Removed = false
		c.insert(entry{msg: client.Message{Seq: ev.Seq}, notice: "this device was added to the conversation"})
		return loadGroups(m.ctx, m.b)
	case client.EventRemoved:
		c.info.Removed = true
		c.insert(entry{msg: client.Message{Seq: ev.Seq}, notice: "this device was removed from the conversation; its history stays here"})
		return nil
	case client.EventError:
		text := "an entry could not be read"
		if ev.Err != nil {
			text = ev.Err.Error()
		}
		c.insert(entry{msg: client.Message{Seq: ev.Seq}, notice: text})
		return nil
	}
	return nil
}

// insert places e in the timeline after everything of the same order or
// lower.
func (c *conversation) insert(e entry) {
	i, _ := slices.BinarySearchFunc(c.entries, e.order(), func(x entry, o uint64) int {
		if x.order() <= o {
			return -1
		}
		return 1
	})
	c.entries = slices.Insert(c.entries, i, e)
}

// mergeHistory replaces the timeline's messages with the history just read,
// keeping what the history cannot have: notices, messages that events
// brought after it was read, and local messages Send has not settled. A
// message being sent is in the history as sending from before Send
// returns: the local entry stands for it until then.
func (c *conversation) mergeHistory(history []client.Message) {
	seen := make(map[uint64]bool, len(history))
	loaded := make([]entry, 0, len(history))
	for _, msg := range history {
		if msg.Seq != 0 {
			seen[msg.Seq] = true
		}
		loaded = append(loaded, entry{msg: msg})
	}
	var kept []entry
	for _, e := range c.entries {
		switch {
		case e.notice != "", e.failed != "":
			kept = append(kept, e)
		case e.pending:
			i := slices.IndexFunc(loaded, func(x entry) bool {
				return x.msg.State == client.Sending && x.msg.Text == e.msg.Text
			})
			if i >= 0 {
				loaded = slices.Delete(loaded, i, i+1)
			}
			kept = append(kept, e)
		case e.msg.Seq != 0 && !seen[e.msg.Seq]:
			kept = append(kept, e)
		}
	}
	c.entries = loaded
	for _, e := range kept {
		c.insert(e)
	}
}

// scrollBy moves the open conversation's timeline n lines up (down if
// negative).
func (m *model) scrollBy(n int) {
	if c := m.current(); c != nil {
		c.scroll += n
		m.clampScroll()
	}
}

// clampScroll keeps the scroll position within the timeline.
func (m *model) clampScroll() {
	c := m.current()
	if c == nil {
		return
	}
	rows := m.timelineRows()
	if lines, all := m.timeline(c, m.layout().center, c.scroll+rows); all {
		c.scroll = min(c.scroll, len(lines)-rows)
	}
	c.scroll = max(c.scroll, 0)
}

// memberName names a device for people: person/device.
func memberName(d client.Member) string {
	if d.Archive {
		return "the archive"
	}
	if d.User == "" {
		return fmt.Sprintf("leaf %d (not a device)", d.Leaf)
	}
	return clean(string(d.User)) + "/" + clean(string(d.Device))
}
