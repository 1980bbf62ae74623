package tui

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"candor/client"
)

// Styles. Colours are the 16 ANSI ones, which every terminal has and
// whose exact shade the person's theme chooses.
var (
	styleTitle    = lipgloss.NewStyle().Bold(true)
	styleDim      = lipgloss.NewStyle().Faint(true)
	styleSender   = lipgloss.NewStyle().Bold(true)
	styleOpen     = lipgloss.NewStyle().Reverse(true)
	styleUnread   = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Cyan)
	styleOnline   = lipgloss.NewStyle().Foreground(lipgloss.Green)
	styleWarn     = lipgloss.NewStyle().Foreground(lipgloss.Yellow)
	styleError    = lipgloss.NewStyle().Foreground(lipgloss.Red)
	styleNotice   = lipgloss.NewStyle().Faint(true).Italic(true)
	styleNonHuman = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Magenta)
)

const helpLine = "Tab/↑↓/ctrl+n/p: conversation · PgUp/PgDn: scroll · Enter: send · Esc: quit"

// archivedNotice heads the history of every conversation: the archive is
// in all of them.
const archivedNotice = "This conversation is archived: the organisation's archive is a member and keeps its record. Only its custodians together can open it, and each opening is logged (candor audit)."

// joinedNotice heads the history of a conversation this device joined
// after it began.
const joinedNotice = "Messages sent before this device joined cannot be read on it: it was not a member when they were encrypted."

// panes is the width of each column of the screen; 0 hides one.
type panes struct{ list, center, members int }

// layout splits the width: the conversation always shows; the list and
// then the member list appear as the terminal is wide enough for them.
func (m *model) layout() panes {
	p := panes{center: m.width}
	if m.width >= 50 {
		p.list = min(max(m.width/6, 16), 28)
		p.center -= p.list + 1
	}
	if m.width >= 90 {
		p.members = min(max(m.width*2/7, 18), 34)
		p.center -= p.members + 1
	}
	p.center = max(p.center, 1)
	return p
}

// bodyRows is the height of the panes: the screen less the header, the
// status line, the input line and the help line.
func (m *model) bodyRows() int { return max(m.height-4, 2) }

// timelineRows is the height of the conversation under its title.
func (m *model) timelineRows() int { return m.bodyRows() - 1 }

func (m *model) View() tea.View {
	p := m.layout()
	rows := m.bodyRows()
	var columns [][]string
	var widths []int
	if p.list > 0 {
		columns, widths = append(columns, m.listPane(p.list, rows)), append(widths, p.list)
	}
	columns, widths = append(columns, m.conversationPane(p.center, rows)), append(widths, p.center)
	if p.members > 0 {
		columns, widths = append(columns, m.memberPane(p.members, rows)), append(widths, p.members)
	}

	var b strings.Builder
	b.WriteString(m.header())
	for r := range rows {
		b.WriteByte('\n')
		for i, col := range columns {
			if i > 0 {
				b.WriteString(styleDim.Render("│"))
			}
			line := ""
			if r < len(col) {
				line = col[r]
			}
			b.WriteString(fit(line, widths[i]))
		}
	}
	b.WriteByte('\n')
	b.WriteString(fit(m.statusLine(), m.width))
	b.WriteByte('\n')
	b.WriteString(fit(m.input.View(), m.width))
	b.WriteByte('\n')
	b.WriteString(fit(styleDim.Render(helpLine), m.width))

	v := tea.NewView(b.String())
	v.AltScreen = true
	v.WindowTitle = "candor chat"
	return v
}

// fit truncates or pads a styled line to exactly w cells.
func fit(s string, w int) string {
	s = ansi.Truncate(s, w, "…")
	if n := ansi.StringWidth(s); n < w {
		s += strings.Repeat(" ", w-n)
	}
	return s
}

// header names the device and says how the connection is.
func (m *model) header() string {
	left := styleTitle.Render("candor") + "  " + clean(string(m.me)) + "/" + clean(string(m.device))
	var right string
	switch m.conn {
	case connecting:
		right = styleWarn.Render("◌ connecting, catching up…")
	case online:
		right = styleOnline.Render("● online")
	case offline:
		right = styleWarn.Render("○ offline, reconnecting…")
		if m.connErr != nil {
			right += " " + styleDim.Render(clean(m.connErr.Error()))
		}
	case stopped:
		right = styleError.Render("✕ disconnected for good: " + clean(m.connErr.Error()))
	}
	gap := m.width - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 1 {
		return fit(left+" "+right, m.width)
	}
	return left + strings.Repeat(" ", gap) + right
}

// statusLine is the line above the input: the open conversation's last
// failure to send, else a notice for the whole chat, else where the
// scroll is.
func (m *model) statusLine() string {
	c := m.current()
	switch {
	case c != nil && c.sendErr != "":
		return styleError.Render(clean(c.sendErr))
	case m.listErr != nil:
		return styleError.Render("conversations could not be listed: " + clean(m.listErr.Error()))
	case m.notice != "":
		return styleWarn.Render(clean(m.notice))
	case c != nil && c.scroll > 0:
		return styleDim.Render(fmt.Sprintf("scrolled up %d lines; PgDn goes back down", c.scroll))
	}
	return ""
}

// listPane is the list of conversations, the open one highlighted, with
// unread counts; it scrolls to keep the open one in sight, and the last
// line counts those out of sight and their unread messages.
func (m *model) listPane(w, rows int) []string {
	lines := []string{styleTitle.Render(fit("conversations", w))}
	if len(m.convs) == 0 {
		return append(lines, styleDim.Render("none yet"))
	}
	shown := min(len(m.convs), rows-1)
	if shown < len(m.convs) {
		shown-- // for the line that counts the others
	}
	first := 0
	if m.open >= shown {
		first = m.open - shown + 1
	}
	hidden, unread := 0, 0
	for i, c := range m.convs {
		if i < first || i >= first+shown {
			hidden++
			unread += c.unread
		}
	}
	for i := first; i < first+shown; i++ {
		c := m.convs[i]
		label := m.label(c)
		suffix := ""
		switch {
		case c.info.Removed:
			suffix = " (left)"
		case c.unread > 0:
			suffix = fmt.Sprintf(" (%d)", c.unread)
		}
		// The count stays in sight however long the label.
		line := fit(label, max(w-ansi.StringWidth(suffix), 1))
		line = strings.TrimRight(line, " ") + suffix
		switch {
		case i == m.open:
			line = styleOpen.Render(fit(line, w))
		case c.unread > 0:
			line = styleUnread.Render(line)
		case c.info.Removed:
			line = styleDim.Render(line)
		}
		lines = append(lines, line)
	}
	switch {
	case unread > 0:
		lines = append(lines, styleUnread.Render(fmt.Sprintf("%d more, %d unread", hidden, unread)))
	case hidden > 0:
		lines = append(lines, styleDim.Render(fmt.Sprintf("%d more", hidden)))
	}
	return lines
}

// label names a conversation: its local name, or else who is in it.
func (m *model) label(c *conversation) string {
	if c.info.Name != "" {
		return clean(c.info.Name)
	}
	var people []string
	for _, d := range c.members {
		if d.User != "" && !d.Archive && d.User != m.me && !slices.Contains(people, clean(string(d.User))) {
			people = append(people, clean(string(d.User)))
		}
	}
	slices.Sort(people)
	switch {
	case len(people) > 0 && client.IsDirect(c.info.ID):
		return "@" + strings.Join(people, ", ")
	case len(people) > 0:
		return "with " + strings.Join(people, ", ")
	}
	id := hex.EncodeToString([]byte(c.info.ID))
	return "#" + id[:min(len(id), 8)]
}

// conversationPane is the open conversation's title and the end of its
// timeline, or as far up as it is scrolled.
func (m *model) conversationPane(w, rows int) []string {
	c := m.current()
	if c == nil {
		msg := "No conversations yet. Start one with `candor create` or `candor direct`."
		if m.listErr != nil {
			msg = "Conversations could not be listed."
		}
		return append([]string{styleTitle.Render("candor")}, wrap(msg, w)...)
	}
	title := m.label(c)
	if c.info.Removed {
		title += " · this device is no longer a member"
	}
	lines, _ := m.timeline(c, w, c.scroll+rows-1)
	end := max(len(lines)-c.scroll, 0)
	start := max(end-(rows-1), 0)
	pane := []string{styleTitle.Render(title)}
	// The newest message sits just above the input line, however few
	// there are, as in every messenger.
	for range rows - 1 - (end - start) {
		pane = append(pane, "")
	}
	return append(pane, lines[start:end]...)
}

// timeline renders the last need lines of a conversation's timeline at
// width w, or a few more (a message is not cut), and reports whether that
// is all of it. Only what can be seen is rendered: a frame costs the
// same with ten messages or ten thousand (BenchmarkView).
func (m *model) timeline(c *conversation, w, need int) (lines []string, all bool) {
	var chunks [][]string
	n := 0
	for i := len(c.entries) - 1; i >= 0 && n < need; i-- {
		chunk := m.entryLines(c.entries[i], w)
		chunks = append(chunks, chunk)
		n += len(chunk)
	}
	all = n < need
	if all {
		chunks = append(chunks, m.timelineHead(c, w))
	}
	lines = make([]string, 0, n)
	for i := len(chunks) - 1; i >= 0; i-- {
		lines = append(lines, chunks[i]...)
	}
	return lines, all
}

// timelineHead is what goes above a conversation's first entry.
func (m *model) timelineHead(c *conversation, w int) []string {
	var lines []string
	// The Welcome that added this device marks where its history starts;
	// the group's first commit is entry 1, so nothing came before a
	// Welcome there.
	if slices.ContainsFunc(c.members, func(d client.Member) bool { return d.Archive }) {
		for _, l := range wrap("ⓘ "+archivedNotice, w) {
			lines = append(lines, styleNotice.Render(l))
		}
	}
	if c.info.JoinedSeq > 1 {
		for _, l := range wrap("ⓘ "+joinedNotice, w) {
			lines = append(lines, styleNotice.Render(l))
		}
	}
	if c.historyErr != nil {
		for _, l := range wrap("The history could not be read: "+clean(c.historyErr.Error()), w) {
			lines = append(lines, styleError.Render(l))
		}
	}
	if len(c.entries) == 0 && c.loaded {
		lines = append(lines, styleDim.Render("No messages yet."))
	}
	return lines
}

// entryLines renders one entry of the timeline.
func (m *model) entryLines(e entry, w int) []string {
	if e.notice == "" {
		return m.messageLines(e, w)
	}
	var lines []string
	for _, l := range wrap("· "+clean(e.notice), w) {
		lines = append(lines, styleNotice.Render(l))
	}
	return lines
}

// messageLines renders one message: time, sender person/device, then the
// text; for this device's own messages, their delivery state.
func (m *model) messageLines(e entry, w int) []string {
	msg := e.msg
	head := m.when(msg.Time) + " " + styleSender.Render(clean(string(msg.User))+"/"+clean(string(msg.Device)))
	if msg.User == m.me && msg.Device == m.device {
		switch {
		case e.failed != "":
			head += " " + styleError.Render("✗ not sent")
		case msg.State == client.Sending:
			head += " " + styleWarn.Render("… sending")
		case msg.State == client.Sent:
			head += " " + styleOnline.Render("✓ sent")
		}
	}
	// Every line after the first is indented, so that where a message
	// starts stands out.
	var lines []string
	for i, para := range strings.Split(cleanText(msg.Text), "\n") {
		if i == 0 {
			para = head + ": " + para
		}
		for j, l := range wrap(para, w-2) {
			if i > 0 || j > 0 {
				l = "  " + l
			}
			lines = append(lines, l)
		}
	}
	return lines
}

// when formats a message's time: the hour today, the date too before.
func (m *model) when(t time.Time) string {
	t, now := t.In(m.loc), m.now().In(m.loc)
	switch {
	case t.Year() == now.Year() && t.YearDay() == now.YearDay():
		return styleDim.Render(t.Format("15:04"))
	case t.Year() == now.Year():
		return styleDim.Render(t.Format("2 Jan 15:04"))
	}
	return styleDim.Render(t.Format("2 Jan 2006 15:04"))
}

// memberPane lists the open conversation's members by person, with each
// one's devices. The archive, and any member that is not a device of a
// person, come first, marked, and are never cut off however short the
// pane: nobody may be in a conversation unseen.
func (m *model) memberPane(w, rows int) []string {
	c := m.current()
	lines := []string{styleTitle.Render("members")}
	if c == nil {
		return lines
	}
	if c.membersErr != nil {
		return append(lines, wrap(styleError.Render(clean(c.membersErr.Error())), w)...)
	}
	var pinned, people []string
	var users []string
	devices := map[string][]client.Member{}
	for _, d := range c.members {
		switch {
		case d.Archive:
			pinned = append(pinned, styleNonHuman.Render("⚑ archive · keeps the record"))
			continue
		case d.User == "":
			pinned = append(pinned, styleNonHuman.Render(fmt.Sprintf("⚑ not a device · leaf %d", d.Leaf)))
			continue
		}
		u := clean(string(d.User))
		if _, ok := devices[u]; !ok {
			users = append(users, u)
		}
		devices[u] = append(devices[u], d)
	}
	slices.SortStableFunc(users, func(a, b string) int {
		// This person first, then by name.
		switch me := clean(string(m.me)); {
		case a == me:
			return -1
		case b == me:
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, u := range users {
		name := u
		if u == clean(string(m.me)) {
			name += " (you)"
		}
		people = append(people, styleSender.Render(name))
		for _, d := range devices[u] {
			dev := "  · " + clean(string(d.Device))
			if d.User == m.me && d.Device == m.device {
				// Device ids are long: the mark is shortened rather
				// than cut.
				if ansi.StringWidth(dev+" (this device)") <= w {
					dev += " (this device)"
				} else {
					dev += " (this)"
				}
			}
			people = append(people, dev)
		}
	}
	lines = append(lines, pinned...)
	room := rows - len(lines)
	if len(people) > room {
		hidden := len(people) - room + 1
		people = append(people[:max(room-1, 0)], styleDim.Render(fmt.Sprintf("… %d more lines", hidden)))
	}
	return append(lines, people...)
}

// wrap breaks a styled line into lines of at most w cells.
func wrap(s string, w int) []string {
	return strings.Split(ansi.Wrap(s, max(w, 1), ""), "\n")
}

// clean makes text from others safe to put on a terminal, on one line:
// see cleanText; line breaks become spaces.
func clean(s string) string {
	return strings.ReplaceAll(cleanText(s), "\n", " ")
}

// cleanText makes text from others safe to put on a terminal. A message
// is written by another person and only decrypted here: left raw, its
// escape sequences would drive the terminal (move the cursor, redraw other
// lines, retitle the window) and bidirectional overrides would make it
// read other than it is. Control and bidi formatting characters become
// U+FFFD, tabs spaces, and invalid UTF-8 U+FFFD; line breaks stay.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return r
		case r == '\t':
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			return '\uFFFD'
		}
		return r
	}, s)
}
