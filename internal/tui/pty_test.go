package tui_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"

	"candor"
	"candor/client"
	"candor/internal/testenv"
	"candor/internal/tui"
)

// waitLimit bounds every wait on the screen or a client.
const waitLimit = 30 * time.Second

// screen is a terminal emulator attached to the controlling side of a
// pseudo-terminal. It keeps every state the screen passed through, so that
// a test can find a state that did not last (the offline indicator).
type screen struct {
	emu *vt.SafeEmulator
	pty *os.File

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every new state
	frames  []string
}

func newScreen(t *testing.T, cols, rows int) (s *screen, tty *os.File) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		t.Fatalf("sizing the pseudo-terminal: %v", err)
	}
	s = &screen{emu: vt.NewSafeEmulator(cols, rows), pty: ptmx, changed: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		// What the program writes goes to the emulator.
		defer close(copied)
		buf := make([]byte, 32<<10)
		for {
			n, err := ptmx.Read(buf)
			if n > 0 {
				_, _ = s.emu.Write(buf[:n])
				s.record()
			}
			if err != nil {
				return
			}
		}
	}()
	// The emulator's answers to the program's queries go back to it.
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		_, _ = io.Copy(ptmx, s.emu)
	}()
	t.Cleanup(func() {
		_ = tty.Close()
		_ = ptmx.Close()
		<-copied
		// The emulator's Close sets a flag its Read reads without a lock;
		// closing the pipe its answers go through ends the copy the same
		// way, safely.
		if pw, ok := s.emu.InputPipe().(io.Closer); ok {
			_ = pw.Close()
			<-answered
		}
	})
	return s, tty
}

func (s *screen) record() {
	text := s.emu.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.frames); n > 0 && s.frames[n-1] == text {
		return
	}
	s.frames = append(s.frames, text)
	close(s.changed)
	s.changed = make(chan struct{})
}

// frame returns the i-th state of the screen.
func (s *screen) frame(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames[i]
}

// waitFor waits for a state of the screen, from the from-th on, that
// holds every one of want, and returns its index.
func (s *screen) waitFor(t *testing.T, from int, want ...string) int {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for i := from; i < len(s.frames); i++ {
			if containsAll(s.frames[i], want) {
				s.mu.Unlock()
				return i
			}
		}
		from = max(from, len(s.frames))
		changed := s.changed
		last := ""
		if len(s.frames) > 0 {
			last = s.frames[len(s.frames)-1]
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("the screen never showed %q; it shows:\n%s", want, last)
		}
	}
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

func (s *screen) typeKeys(t *testing.T, keys string) {
	t.Helper()
	if _, err := s.pty.Write([]byte(keys)); err != nil {
		t.Fatalf("typing: %v", err)
	}
}

// reopen closes a test environment's client and opens its profile again
// with slow reconnections: an outage then lasts long enough to be seen.
func reopen(t *testing.T, env *testenv.Env, c *client.Client) *client.Client {
	t.Helper()
	home := c.Home()
	cfg := env.ClientConfig(c.User(), string(c.Device()))
	cfg.MinBackoff, cfg.MaxBackoff = time.Second, 2*time.Second
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := client.Open(t.Context(), home, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// live runs c's stream in the background until the test ends.
func live(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitMessage reads c's events until a message with text arrives.
func waitMessage(t *testing.T, c *client.Client, gid candor.GroupID, text string) client.Message {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		select {
		case ev := <-c.Events():
			if ev.Kind == client.EventMessage && ev.Group == gid && ev.Message.Text == text {
				return ev.Message
			}
		case <-deadline.C:
			t.Fatalf("%s never received %q", c.User(), text)
		}
	}
}

// chat runs tui.Run for c on the terminal tty in the background. The chat
// ends before the terminal is closed, however the test ends.
func chat(t *testing.T, c *client.Client, group string, tty *os.File) (cancel context.CancelFunc, ended <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	result := make(chan error, 1)
	go func() {
		err := tui.Run(ctx, c, group, tty, tty)
		done <- err
		result <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel, result
}

// TestChat runs the chat on a pseudo-terminal against a real server, with
// a second person on a real client, and reads the screen as a terminal
// would draw it.
func TestChat(t *testing.T) {
	env := testenv.New(t)
	alice := reopen(t, env, env.Enrol(t, "alice", "laptop"))
	bob := env.Enrol(t, "bob", "desk")
	gid, err := alice.CreateGroup(t.Context(), "risk-desk", "bob")
	if err != nil {
		t.Fatal(err)
	}
	lunch, err := alice.CreateGroup(t.Context(), "lunch", "bob")
	if err != nil {
		t.Fatal(err)
	}
	live(t, bob)
	bobSays := "bob/" + string(bob.Device()) + ": "

	scr, tty := newScreen(t, 120, 30)
	_, ended := chat(t, alice, "risk-desk", tty)

	// The conversation opens with its member list, and the stream comes
	// up.
	at := scr.waitFor(t, 0, "conversations", "risk-desk", "lunch", "members", "alice (you)", string(alice.Device())+" (this device)", "bob", string(bob.Device()), "● online")

	// A message typed and sent shows as sent, and reaches bob.
	scr.typeKeys(t, "hello from alice")
	at = scr.waitFor(t, at, "> hello from alice")
	scr.typeKeys(t, "\r")
	at = scr.waitFor(t, at, "alice/"+string(alice.Device())+" ✓ sent: hello from alice")
	waitMessage(t, bob, gid, "hello from alice")

	// Bob's answer shows up live.
	if _, err := bob.Send(t.Context(), gid, "hi alice, bob here"); err != nil {
		t.Fatal(err)
	}
	at = scr.waitFor(t, at, bobSays+"hi alice, bob here")

	// A message to the conversation that is not open counts as unread
	// there until it is opened.
	if _, err := bob.Send(t.Context(), lunch, "noon?"); err != nil {
		t.Fatal(err)
	}
	at = scr.waitFor(t, at, "lunch (1)")
	scr.typeKeys(t, "\t")
	at = scr.waitFor(t, at, bobSays+"noon?")
	if f := scr.frame(at); strings.Contains(f, "lunch (1)") {
		t.Errorf("the unread count stays on the open conversation:\n%s", f)
	}
	scr.typeKeys(t, "\t")
	at = scr.waitFor(t, at, "hi alice, bob here")

	// The server drops every connection: the chat says it is offline,
	// then catches up and is back online with what was sent meanwhile.
	env.DropConnections()
	at = scr.waitFor(t, at, "○ offline, reconnecting")
	if _, err := bob.Send(t.Context(), gid, "sent while you were away"); err != nil {
		t.Fatal(err)
	}
	scr.waitFor(t, at, "● online", bobSays+"sent while you were away")

	// Esc quits, and Run returns without error.
	scr.typeKeys(t, "\x1b")
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after Esc")
	}
}

// TestChatJoinedLate opens the chat of a device added to a conversation
// after messages were sent in it: it says those cannot be read here, shows
// what came after, and ends when its context does.
func TestChatJoinedLate(t *testing.T) {
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	env.Enrol(t, "bob", "desk")
	carol := env.Enrol(t, "carol", "tablet")
	gid, err := alice.CreateGroup(t.Context(), "risk-desk", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(t.Context(), gid, "before carol"); err != nil {
		t.Fatal(err)
	}

	scr, tty := newScreen(t, 100, 24)
	cancel, ended := chat(t, carol, "", tty)
	at := scr.waitFor(t, 0, "No conversations yet", "● online")

	if err := alice.AddUsers(t.Context(), gid, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(t.Context(), gid, "welcome carol"); err != nil {
		t.Fatal(err)
	}
	at = scr.waitFor(t, at, "with alice, bob", "Messages sent before this device joined cannot be", "alice/"+string(alice.Device())+": welcome carol", "carol (you)", string(carol.Device())+" (this)")
	if f := scr.frame(at); strings.Contains(f, "before carol") {
		t.Errorf("a message from before the join shows:\n%s", f)
	}

	cancel()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run ended by its context returned %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return when its context ended")
	}
}

// TestChatUnknownGroup: asking for a conversation the device does not
// have is an error before anything is drawn.
func TestChatUnknownGroup(t *testing.T) {
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	var out strings.Builder
	err := tui.Run(t.Context(), alice, "nowhere", strings.NewReader(""), &out)
	if !errors.Is(err, client.ErrUnknownGroup) {
		t.Errorf("Run with an unknown conversation: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("Run drew %q before failing", out.String())
	}
}
