package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/client"
)

// identity is the backend of the model tests that feed Update with
// messages: it names the device, and fails the test on any I/O, which
// Update and View must never do themselves (only the commands they
// return do, and these tests do not run them).
type identity struct {
	t      testing.TB
	user   candor.UserID
	device candor.DeviceID
}

func (b identity) User() candor.UserID     { return b.user }
func (b identity) Device() candor.DeviceID { return b.device }

func (b identity) Groups(context.Context) ([]client.Group, error) {
	b.t.Error("Groups called from Update or View")
	return nil, errors.ErrUnsupported
}

func (b identity) Messages(context.Context, candor.GroupID) ([]client.Message, error) {
	b.t.Error("Messages called from Update or View")
	return nil, errors.ErrUnsupported
}

func (b identity) Members(context.Context, candor.GroupID) ([]client.Member, error) {
	b.t.Error("Members called from Update or View")
	return nil, errors.ErrUnsupported
}

func (b identity) Send(context.Context, candor.GroupID, string) (client.Message, error) {
	b.t.Error("Send called from Update or View")
	return client.Message{}, errors.ErrUnsupported
}

func (b identity) MarkRead(context.Context, candor.GroupID, uint64) error {
	b.t.Error("MarkRead called from Update or View")
	return errors.ErrUnsupported
}

// Fixtures: alice on her laptop is this device; bob and carol write.
var (
	t0      = time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	gRisk   = candor.GroupID("risk-desk-group-")
	gLunch  = candor.GroupID("lunch-group-id--")
	aliceL  = client.Member{User: "alice", Device: "laptop", Leaf: 0}
	alicePh = client.Member{User: "alice", Device: "phone", Leaf: 1}
	bobD    = client.Member{User: "bob", Device: "desk", Leaf: 2}
	carolT  = client.Member{User: "carol", Device: "tablet", Leaf: 3}
)

func newTestModel(t *testing.T, width, height int) *model {
	t.Helper()
	m := newModel(t.Context(), identity{t: t, user: "alice", device: "laptop"}, "", func() time.Time { return t0.Add(time.Hour) }, time.UTC)
	m.Update(tea.WindowSizeMsg{Width: width, Height: height})
	return m
}

// withGroups gives the model two conversations, risk-desk open with its
// history and members, and lunch, unnamed (joined), with bob.
func withGroups(t *testing.T, m *model) {
	t.Helper()
	m.Update(groupsLoaded{groups: []client.Group{{ID: gRisk, Name: "risk-desk"}, {ID: gLunch}}})
	m.Update(membersLoaded{group: gRisk, members: []client.Member{aliceL, alicePh, bobD, carolT}})
	m.Update(membersLoaded{group: gLunch, members: []client.Member{aliceL, bobD}})
	m.Update(historyLoaded{group: gRisk, msgs: []client.Message{
		{Group: gRisk, Seq: 2, User: "bob", Device: "desk", Time: t0, Text: "morning all", State: client.Received},
		{Group: gRisk, Seq: 3, User: "alice", Device: "laptop", Time: t0.Add(time.Minute), Text: "morning bob", State: client.Sent},
	}})
}

func view(m *model) string { return m.View().Content }

func press(m *model, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		_, cmd = m.Update(keyMsg(k))
	}
	return cmd
}

// keyMsg makes the key press a terminal would report for k, named as
// Bubble Tea names keys.
func keyMsg(k string) tea.KeyPressMsg {
	special := map[string]tea.KeyPressMsg{
		"enter":     {Code: tea.KeyEnter},
		"tab":       {Code: tea.KeyTab},
		"shift+tab": {Code: tea.KeyTab, Mod: tea.ModShift},
		"up":        {Code: tea.KeyUp},
		"down":      {Code: tea.KeyDown},
		"pgup":      {Code: tea.KeyPgUp},
		"pgdown":    {Code: tea.KeyPgDown},
		"esc":       {Code: tea.KeyEscape},
		"ctrl+c":    {Code: 'c', Mod: tea.ModCtrl},
		"ctrl+n":    {Code: 'n', Mod: tea.ModCtrl},
		"ctrl+p":    {Code: 'p', Mod: tea.ModCtrl},
	}
	if msg, ok := special[k]; ok {
		return msg
	}
	r, _ := utf8.DecodeRuneInString(k)
	return tea.KeyPressMsg{Code: r, Text: k}
}

func typeText(m *model, text string) {
	for _, r := range text {
		m.Update(keyMsg(string(r)))
	}
}

// lines returns the view without styling, as a terminal shows it.
func lines(m *model) []string {
	return strings.Split(ansi.Strip(view(m)), "\n")
}

func mustContain(t *testing.T, m *model, want ...string) {
	t.Helper()
	screen := ansi.Strip(view(m))
	for _, w := range want {
		if !strings.Contains(screen, w) {
			t.Errorf("the screen lacks %q:\n%s", w, screen)
		}
	}
}

func mustNotContain(t *testing.T, m *model, unwanted ...string) {
	t.Helper()
	screen := ansi.Strip(view(m))
	for _, w := range unwanted {
		if strings.Contains(screen, w) {
			t.Errorf("the screen shows %q:\n%s", w, screen)
		}
	}
}

func TestConversationView(t *testing.T) {
	m := newTestModel(t, 120, 20)
	withGroups(t, m)
	mustContain(t, m,
		"candor  alice/laptop", "◌ connecting, catching up…",
		"conversations", "risk-desk", "with bob",
		"09:30 bob/desk: morning all",
		"09:31 alice/laptop ✓ sent: morning bob",
		"members", "alice (you)", "· laptop (this device)", "· phone", "bob", "· desk", "carol", "· tablet",
		helpLine,
	)
	// A conversation this device created has its whole history.
	mustNotContain(t, m, joinedNotice[:30])
	// The newest message sits just above the status, input and help
	// lines.
	got := lines(m)
	if last := got[len(got)-4]; !strings.Contains(last, "morning bob") {
		t.Errorf("the line above the input is %q, not the newest message", last)
	}
}

func TestEveryLineFitsTheWidth(t *testing.T) {
	for _, tc := range []struct {
		name          string
		width, height int
		panes         []string // the pane titles shown
		hidden        []string
	}{
		{name: "wide", width: 130, height: 20, panes: []string{"conversations", "members"}},
		{name: "medium", width: 70, height: 12, panes: []string{"conversations"}, hidden: []string{"members"}},
		{name: "narrow", width: 40, height: 8, hidden: []string{"conversations", "members"}},
		{name: "tiny", width: 8, height: 3, hidden: []string{"conversations", "members"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModel(t, 100, 30)
			withGroups(t, m)
			m.Update(eventMsg{Kind: client.EventMessage, Group: gRisk, Seq: 4, Message: client.Message{
				Group: gRisk, Seq: 4, User: "carol", Device: "tablet", Time: t0.Add(2 * time.Minute),
				Text: strings.Repeat("a long message that wraps ", 12),
			}})
			m.Update(tea.WindowSizeMsg{Width: tc.width, Height: tc.height})
			got := lines(m)
			if len(got) != max(tc.height, 6) {
				t.Errorf("%d lines for a height of %d", len(got), tc.height)
			}
			for i, l := range got {
				if w := ansi.StringWidth(l); w != tc.width {
					t.Errorf("line %d is %d wide, not %d: %q", i, w, tc.width, l)
				}
			}
			mustContain(t, m, tc.panes...)
			mustNotContain(t, m, tc.hidden...)
		})
	}
}

func TestSwitchingAndUnread(t *testing.T) {
	m := newTestModel(t, 120, 20)
	withGroups(t, m)
	// Bob writes in lunch, which is not open; alice's phone writes there
	// too, which is not news to alice.
	m.Update(eventMsg{Kind: client.EventMessage, Group: gLunch, Seq: 5, Message: client.Message{Group: gLunch, Seq: 5, User: "bob", Device: "desk", Time: t0, Text: "noon?"}})
	m.Update(eventMsg{Kind: client.EventMessage, Group: gLunch, Seq: 6, Message: client.Message{Group: gLunch, Seq: 6, User: "alice", Device: "phone", Time: t0, Text: "sure"}})
	m.Update(eventMsg{Kind: client.EventMessage, Group: gLunch, Seq: 7, Message: client.Message{Group: gLunch, Seq: 7, User: "bob", Device: "desk", Time: t0, Text: "great"}})
	// The same entry again (a catch-up repeating an event) counts once.
	m.Update(eventMsg{Kind: client.EventMessage, Group: gLunch, Seq: 7, Message: client.Message{Group: gLunch, Seq: 7, User: "bob", Device: "desk", Time: t0, Text: "great"}})
	mustContain(t, m, "with bob (2)")

	// A message in the open conversation is read as it arrives.
	m.Update(eventMsg{Kind: client.EventMessage, Group: gRisk, Seq: 8, Message: client.Message{Group: gRisk, Seq: 8, User: "bob", Device: "desk", Time: t0, Text: "seen"}})
	mustContain(t, m, "bob/desk: seen")
	mustNotContain(t, m, "risk-desk (1)")

	for _, tc := range []struct {
		key  string
		open candor.GroupID
	}{
		{"tab", gLunch}, {"tab", gRisk}, {"down", gLunch}, {"down", gRisk},
		{"ctrl+n", gLunch}, {"ctrl+p", gRisk}, {"up", gLunch}, {"shift+tab", gRisk},
	} {
		if cmd := press(m, tc.key); m.current().info.ID != tc.open {
			t.Fatalf("after %s the open conversation is %q, want %q", tc.key, m.current().info.ID, tc.open)
		} else if tc.open == gLunch && !m.current().loaded && cmd == nil {
			t.Errorf("opening lunch, whose history was not read, reads nothing")
		}
	}
	// Opening lunch read it: the count is gone for good.
	mustNotContain(t, m, "(2)", "(1)")
	press(m, "tab")
	mustContain(t, m, "bob/desk: noon?", "alice/phone: sure", "bob/desk: great")
}

func TestLongList(t *testing.T) {
	m := newTestModel(t, 100, 9) // the title and 4 lines of conversations
	var groups []client.Group
	for i := range 10 {
		groups = append(groups, client.Group{ID: candor.GroupID(fmt.Sprintf("group-%02d--------", i)), Name: fmt.Sprintf("desk %02d", i)})
	}
	m.Update(groupsLoaded{groups: groups})
	seq := uint64(10)
	for i, n := range map[int]int{1: 1, 5: 2, 9: 4} {
		for range n {
			seq++
			m.Update(eventMsg{Kind: client.EventMessage, Group: groups[i].ID, Seq: seq, Message: client.Message{Seq: seq, User: "bob", Device: "desk", Time: t0}})
		}
	}
	mustContain(t, m, "desk 00", "desk 01 (1)", "desk 02", "7 more, 6 unread")
	mustNotContain(t, m, "desk 03")
	press(m, "up") // wraps around to the last
	mustContain(t, m, "desk 07", "desk 08", "desk 09", "7 more, 3 unread")
	mustNotContain(t, m, "desk 06", "desk 09 (")
	press(m, "up", "up", "up")
	mustContain(t, m, "desk 04", "desk 05 (2)", "desk 06", "7 more, 1 unread")
}

func TestSend(t *testing.T) {
	m := newTestModel(t, 120, 20)
	withGroups(t, m)
	typeText(m, "  numbers at 3  ")
	mustContain(t, m, ">   numbers at 3")
	cmd := press(m, "enter")
	if cmd == nil {
		t.Fatal("Enter sends nothing")
	}
	mustContain(t, m, "10:30 alice/laptop … sending: numbers at 3")
	if v := m.input.Value(); v != "" {
		t.Errorf("the input line keeps %q after sending", v)
	}
	// An empty line is not sent.
	if cmd := press(m, " ", "enter"); cmd != nil {
		t.Error("Enter on a blank line sends")
	}

	typeText(m, "too big")
	press(m, "enter")
	typeText(m, "lost answer")
	press(m, "enter")

	// The server takes the first: it shows as sent at the server's time.
	m.Update(sendDone{group: gRisk, local: 1, msg: client.Message{Group: gRisk, Seq: 9, User: "alice", Device: "laptop", Time: t0.Add(2 * time.Minute), Text: "numbers at 3", State: client.Sent}})
	mustContain(t, m, "09:32 alice/laptop ✓ sent: numbers at 3")
	// The second is refused: marked, and the reason is shown.
	m.Update(sendDone{group: gRisk, local: 2, err: fmt.Errorf("sending: %w", client.ErrTooLarge)})
	mustContain(t, m, "alice/laptop ✗ not sent: too big", "not sent: sending: the message is too large")
	// The third's answer was lost: it stays as sending, as in the history.
	m.Update(sendDone{group: gRisk, local: 3, err: fmt.Errorf("sending: %w", client.ErrUnreachable)})
	mustContain(t, m, "alice/laptop … sending: lost answer", "not confirmed yet, will be retried when back online")

	// The history read again after reconnecting has the lost one sent:
	// it replaces the entry, and the refused one stays marked.
	m.Update(eventMsg{Kind: client.EventConnected})
	m.Update(historyLoaded{group: gRisk, msgs: []client.Message{
		{Group: gRisk, Seq: 2, User: "bob", Device: "desk", Time: t0, Text: "morning all", State: client.Received},
		{Group: gRisk, Seq: 3, User: "alice", Device: "laptop", Time: t0.Add(time.Minute), Text: "morning bob", State: client.Sent},
		{Group: gRisk, Seq: 9, User: "alice", Device: "laptop", Time: t0.Add(2 * time.Minute), Text: "numbers at 3", State: client.Sent},
		{Group: gRisk, Seq: 10, User: "alice", Device: "laptop", Time: t0.Add(3 * time.Minute), Text: "lost answer", State: client.Sent},
	}})
	mustContain(t, m, "09:33 alice/laptop ✓ sent: lost answer", "✗ not sent: too big")
	mustNotContain(t, m, "… sending")
}

func TestSendToARemovedConversation(t *testing.T) {
	m := newTestModel(t, 120, 20)
	withGroups(t, m)
	m.Update(eventMsg{Kind: client.EventRemoved, Group: gRisk, Seq: 11})
	typeText(m, "anyone?")
	if cmd := press(m, "enter"); cmd != nil {
		t.Error("a message is sent to a conversation this device left")
	}
	mustContain(t, m, "this device is no longer a member", "this device was removed from the conversation", "not sent: you are not a member", "> anyone?")
}

func TestMergeHistory(t *testing.T) {
	c := &conversation{}
	c.insert(entry{msg: client.Message{Seq: 4, Text: "from an event after the read"}})
	c.insert(entry{msg: client.Message{Seq: 2}, notice: "bob/desk joined"})
	c.insert(entry{msg: client.Message{Text: "in flight", State: client.Sending}, local: 1, pending: true})
	c.insert(entry{msg: client.Message{Text: "refused", State: client.Sending}, local: 2, failed: "too large"})
	c.insert(entry{msg: client.Message{Seq: 3, Text: "stale copy"}})
	c.mergeHistory([]client.Message{
		{Seq: 1, Text: "first"},
		{Seq: 3, Text: "as recorded"},
		{Text: "in flight", State: client.Sending},
		{Text: "older, unsettled", State: client.Sending},
	})
	var got []string
	for _, e := range c.entries {
		got = append(got, fmt.Sprintf("%d %s%s", e.msg.Seq, e.notice, e.msg.Text))
	}
	want := []string{
		"1 first",
		"2 bob/desk joined",
		"3 as recorded",
		"4 from an event after the read",
		"0 older, unsettled",
		"0 in flight",
		"0 refused",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

func TestConnectionIndicator(t *testing.T) {
	m := newTestModel(t, 120, 12)
	withGroups(t, m)
	mustContain(t, m, "◌ connecting, catching up…")
	m.Update(eventMsg{Kind: client.EventConnected})
	mustContain(t, m, "● online")
	m.Update(eventMsg{Kind: client.EventDisconnected, Err: client.ErrUnreachable})
	mustContain(t, m, "○ offline, reconnecting… the server cannot be reached")
	mustNotContain(t, m, "● online")
	m.Update(eventMsg{Kind: client.EventConnected})
	mustContain(t, m, "● online")
	m.Update(streamEnded{err: client.ErrRevoked})
	mustContain(t, m, "✕ disconnected for good: this device has been revoked")
	// Run reports its last disconnection after giving up: it must not
	// look as if it were reconnecting.
	m.Update(eventMsg{Kind: client.EventDisconnected, Err: client.ErrRevoked})
	mustNotContain(t, m, "reconnecting")
}

func TestJoinedNotice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group client.Group
		want  bool
	}{
		{name: "created here", group: client.Group{ID: gRisk, Name: "risk-desk"}},
		{name: "joined with the first commit", group: client.Group{ID: gRisk, JoinedSeq: 1}},
		{name: "joined later", group: client.Group{ID: gRisk, JoinedSeq: 12, Joined: t0}, want: true},
		{name: "joined later, named since", group: client.Group{ID: gRisk, Name: "renamed", JoinedSeq: 12, Joined: t0}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModel(t, 120, 20)
			m.Update(groupsLoaded{groups: []client.Group{tc.group}})
			m.Update(historyLoaded{group: gRisk})
			notice := strings.Contains(strings.Join(lines(m), " "), "before this device joined cannot be read")
			if notice != tc.want {
				t.Errorf("notice shown: %v, want %v:\n%s", notice, tc.want, ansi.Strip(view(m)))
			}
		})
	}
	// A Welcome that arrives during the session says where the history
	// starts before the list is read again.
	m := newTestModel(t, 120, 20)
	m.Update(eventMsg{Kind: client.EventJoined, Group: gRisk, Seq: 12, Added: []client.Member{aliceL, bobD}})
	if c := m.conv(gRisk); c == nil || c.info.JoinedSeq != 12 {
		t.Errorf("after EventJoined at 12: %+v", c)
	}
}

// Unread counts come from the history, and what the open conversation
// shows is marked read.
func TestStoredUnreadCounts(t *testing.T) {
	m := newTestModel(t, 120, 20)
	m.Update(groupsLoaded{groups: []client.Group{{ID: gRisk, Name: "risk-desk"}, {ID: gLunch, Name: "lunch", Unread: 3}}})
	mustContain(t, m, "lunch (3)")
	_, cmd := m.Update(historyLoaded{group: gRisk, msgs: []client.Message{
		{Group: gRisk, Seq: 4, User: "bob", Device: "desk", Time: t0, Text: "read now", State: client.Received},
	}})
	if cmd == nil {
		t.Error("showing the open conversation's history marks nothing read")
	}
	// Already marked: no second write.
	if _, cmd := m.Update(historyLoaded{group: gRisk, msgs: []client.Message{{Group: gRisk, Seq: 4, User: "bob", Device: "desk", Time: t0, Text: "read now", State: client.Received}}}); cmd != nil {
		t.Error("the same history marked read twice")
	}
}

func TestScroll(t *testing.T) {
	m := newTestModel(t, 100, 10) // 5 lines of timeline
	m.Update(groupsLoaded{groups: []client.Group{{ID: gRisk, Name: "risk-desk"}}})
	var msgs []client.Message
	for i := 1; i <= 20; i++ {
		msgs = append(msgs, client.Message{Group: gRisk, Seq: uint64(i), User: "bob", Device: "desk", Time: t0, Text: fmt.Sprintf("message %02d", i)})
	}
	m.Update(historyLoaded{group: gRisk, msgs: msgs})
	mustContain(t, m, "message 16", "message 20")
	mustNotContain(t, m, "message 15", "scrolled up")

	press(m, "pgup")
	mustContain(t, m, "message 12", "message 16", "scrolled up 4 lines")
	mustNotContain(t, m, "message 11", "message 17")
	press(m, "pgup", "pgup", "pgup", "pgup", "pgup", "pgup")
	mustContain(t, m, "message 01", "message 05", "scrolled up 15 lines")
	// What arrives meanwhile does not move what is being read.
	m.Update(eventMsg{Kind: client.EventMessage, Group: gRisk, Seq: 21, Message: client.Message{Group: gRisk, Seq: 21, User: "bob", Device: "desk", Time: t0, Text: "message 21"}})
	mustContain(t, m, "message 01", "message 05", "scrolled up 16 lines")
	press(m, "pgdown", "pgdown", "pgdown", "pgdown", "pgdown", "pgdown", "pgdown")
	mustContain(t, m, "message 17", "message 21")
	mustNotContain(t, m, "scrolled up")

	// Sending brings the end back into sight.
	press(m, "pgup")
	typeText(m, "hello")
	press(m, "enter")
	mustContain(t, m, "sending: hello")
}

func TestMemberPane(t *testing.T) {
	m := newTestModel(t, 120, 9) // 4 lines of members under the title
	m.Update(groupsLoaded{groups: []client.Group{{ID: gRisk, Name: "risk-desk"}}})
	m.Update(membersLoaded{group: gRisk, members: []client.Member{aliceL, alicePh, bobD, carolT, {Leaf: 4}}})
	// The member that is not a device of a person shows first, marked,
	// though the pane has no room for everyone.
	mustContain(t, m, "⚑ not a device · leaf 4", "alice (you)", "· laptop (this device)", "… 5 more lines")
	// So does the archive, which also marks the conversation archived.
	m.Update(membersLoaded{group: gRisk, members: []client.Member{aliceL, alicePh, bobD, carolT, {Leaf: 4, User: "archive", Archive: true}}})
	mustContain(t, m, "⚑ archive · keeps the record", "alice (you)")
	mustNotContain(t, m, "not a device")
	tall := newTestModel(t, 120, 20)
	tall.Update(groupsLoaded{groups: []client.Group{{ID: gRisk, Name: "risk-desk"}}})
	tall.Update(membersLoaded{group: gRisk, members: []client.Member{aliceL, bobD, {Leaf: 2, User: "archive", Archive: true}}})
	tall.Update(historyLoaded{group: gRisk})
	mustContain(t, tall, "This conversation is archived")
	m.Update(membersLoaded{group: gRisk, err: client.ErrRemoved})
	mustContain(t, m, "you are not a member")
}

func TestMembershipEvents(t *testing.T) {
	m := newTestModel(t, 120, 20)
	withGroups(t, m)
	cmd := func() tea.Cmd {
		_, cmd := m.Update(eventMsg{Kind: client.EventMembers, Group: gRisk, Seq: 5, Added: []client.Member{{User: "dave", Device: "pc"}}, Removed: []client.Member{carolT}})
		return cmd
	}()
	if cmd == nil {
		t.Error("a change of members does not read the member list again")
	}
	mustContain(t, m, "· dave/pc joined", "· carol/tablet left")

	// A conversation the list does not have yet comes with its news.
	gNew := candor.GroupID("a-new-group-----")
	m.Update(eventMsg{Kind: client.EventJoined, Group: gNew, Seq: 7, Added: []client.Member{aliceL, carolT}})
	mustContain(t, m, "with carol")
	m.Update(eventMsg{Kind: client.EventError, Group: gNew, Seq: 8, Err: errors.New("entry 8 does not decrypt")})
	m.Update(eventMsg{Kind: client.EventError, Err: errors.New("invitation refused")})
	mustContain(t, m, "error: invitation refused")
	press(m, "tab", "tab")
	mustContain(t, m, "this device was added to the conversation", "entry 8 does not decrypt")
}

func TestQuit(t *testing.T) {
	for _, k := range []string{"esc", "ctrl+c"} {
		m := newTestModel(t, 80, 24)
		cmd := press(m, k)
		if cmd == nil {
			t.Fatalf("%s does nothing", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", k)
		}
	}
}

func TestHostileText(t *testing.T) {
	m := newTestModel(t, 120, 20)
	withGroups(t, m)
	evil := "see\x1b]0;pwned\x07\x1b[2J\x1b[H\u202Egnp.exe\r\nnext line\x9b31m\xff"
	m.Update(eventMsg{Kind: client.EventMessage, Group: gRisk, Seq: 9, Message: client.Message{Group: gRisk, Seq: 9, User: "bob\x1b[31m", Device: "desk", Time: t0, Text: evil}})
	raw := view(m)
	for _, bad := range []string{"\x1b]0;pwned", "\x1b[2J", "\x1b[H", "\u202E", "\x9b", "\r", "\x1b[31mdesk"} {
		if strings.Contains(raw, bad) {
			t.Errorf("the view passes %q through", bad)
		}
	}
	mustContain(t, m, "bob\uFFFD[31m/desk: see\uFFFD]0;pwned\uFFFD\uFFFD[2J\uFFFD[H\uFFFDgnp.exe", "  next line\uFFFD31m\uFFFD")
}

func TestFindGroup(t *testing.T) {
	groups := []client.Group{
		{ID: candor.GroupID("\xab\xcd\x01"), Name: "risk-desk"},
		{ID: candor.GroupID("\xab\xce\x02")},
		{ID: candor.GroupID("\x12\x34\x56"), Name: "abcd"},
	}
	for _, tc := range []struct {
		name string
		want candor.GroupID
		err  error
	}{
		{name: "risk-desk", want: groups[0].ID},
		{name: "abcd", want: groups[2].ID}, // a name wins over an id prefix
		{name: "ABCE", want: groups[1].ID},
		{name: "1234", want: groups[2].ID},
		{name: "ab", err: candor.ErrInvalid},
		{name: "ff", err: client.ErrUnknownGroup},
		{name: "risk", err: client.ErrUnknownGroup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findGroup(groups, tc.name)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("findGroup(%q) = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
			}
		})
	}
}

// FuzzCleanText checks that no text from another person can put a
// control sequence on the terminal, whatever it holds.
func FuzzCleanText(f *testing.F) {
	for _, seed := range []string{"", "hello", "tab\there", "line\nbreak\r\n", "\x1b[2J", "\x1b]8;;http://x\x07", "\u202Eevil", "\xff\xfe", "日本語 ok", "\x9b1m"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := cleanText(s)
		if !utf8.ValidString(got) {
			t.Fatalf("cleanText(%q) = %q: not UTF-8", s, got)
		}
		for _, r := range got {
			if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) {
				t.Fatalf("cleanText(%q) = %q keeps %U", s, got, r)
			}
		}
		if again := cleanText(got); again != got {
			t.Fatalf("cleanText is not idempotent on %q: %q, then %q", s, got, again)
		}
		if strings.Contains(clean(s), "\n") {
			t.Fatalf("clean(%q) keeps a line break", s)
		}
		// Text with nothing to clean is left as it is.
		if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
			return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
		}) && got != s {
			t.Fatalf("cleanText(%q) = %q changes harmless text", s, got)
		}
	})
}
