package client_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/client"
	"candor/internal/testenv"
)

// runner is a Run in the background.
type runner struct {
	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

// wait waits for Run to end by itself.
func (r *runner) wait(t *testing.T) error {
	t.Helper()
	if !r.ended {
		select {
		case r.err = <-r.done:
			r.ended = true
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not end within 20s")
		}
	}
	return r.err
}

// stop ends Run and returns its error.
func (r *runner) stop() error {
	r.cancel()
	if !r.ended {
		r.err, r.ended = <-r.done, true
	}
	return r.err
}

// run starts c.Run for the rest of the test and waits until its stream is
// connected.
func run(t *testing.T, c *client.Client) *runner {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &runner{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	waitEvent(t, c, func(ev client.Event) bool { return ev.Kind == client.EventConnected })
	t.Cleanup(func() { r.stop() })
	return r
}

// waitEvent reads c's events until one satisfies ok.
func waitEvent(t *testing.T, c *client.Client, ok func(client.Event) bool) client.Event {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev := <-c.Events():
			if ok(ev) {
				return ev
			}
		case <-timeout.C:
			t.Fatalf("%s: no such event within 20s", c.User())
			return client.Event{}
		}
	}
}

// waitText waits until c's history of g holds a message with text.
func waitText(t *testing.T, c *client.Client, g candor.GroupID, text string) client.Message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ms, err := c.Messages(t.Context(), g)
		if err == nil {
			for _, m := range ms {
				if m.Text == text {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never got %q (history %v, err %v)", c.User(), text, texts(ms), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func texts(ms []client.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

func users(ms []client.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.User))
	}
	slices.Sort(out)
	return out
}

func mustSync(t *testing.T, cs ...*client.Client) {
	t.Helper()
	for _, c := range cs {
		if err := c.Sync(t.Context()); err != nil {
			t.Fatalf("%s: sync: %v", c.User(), err)
		}
	}
}

func TestConversation(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "laptop")
	carol := env.Enrol(t, "carol", "desk")
	ctx := t.Context()

	g, err := alice.CreateGroup(ctx, "trading desk", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)
	for _, c := range []*client.Client{alice, bob, carol} {
		ms, err := c.Members(ctx, g)
		if err != nil {
			t.Fatalf("%s: members: %v", c.User(), err)
		}
		if diff := cmp.Diff([]string{"alice", "archive", "bob", "carol"}, users(ms)); diff != "" {
			t.Errorf("%s: members (-want +got):\n%s", c.User(), diff)
		}
	}
	groups, err := alice.Groups(ctx)
	if err != nil || len(groups) != 1 || groups[0].Name != "trading desk" || groups[0].ID != g {
		t.Errorf("alice's groups = %+v, %v", groups, err)
	}

	// Through Sync.
	sent, err := alice.Send(ctx, g, "good morning")
	if err != nil {
		t.Fatal(err)
	}
	if sent.State != client.Sent || sent.Seq == 0 {
		t.Errorf("sent message = %+v", sent)
	}
	mustSync(t, bob, carol)
	got := waitText(t, bob, g, "good morning")
	if got.User != "alice" || got.Device != alice.Device() || got.State != client.Received || got.Seq != sent.Seq {
		t.Errorf("bob got %+v", got)
	}

	// Over the live stream, both ways.
	run(t, bob)
	run(t, carol)
	run(t, alice)
	if _, err := carol.Send(ctx, g, "hello from carol"); err != nil {
		t.Fatal(err)
	}
	waitText(t, alice, g, "hello from carol")
	waitText(t, bob, g, "hello from carol")
	for i := range 5 {
		if _, err := bob.Send(ctx, g, fmt.Sprint("bob ", i)); err != nil {
			t.Fatal(err)
		}
		// Catching up by hand while streaming processes nothing twice.
		mustSync(t, alice)
	}
	waitText(t, alice, g, "bob 4")
	waitText(t, carol, g, "bob 4")

	// Everyone's history is the same, in the same order, each once.
	var want []string
	for _, c := range []*client.Client{alice, bob, carol} {
		ms, err := c.Messages(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		got := texts(ms)
		if want == nil {
			want = got
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s's history differs (-alice +%s):\n%s", c.User(), c.User(), diff)
		}
	}
	if len(want) != 7 {
		t.Errorf("history = %q, want 7 messages", want)
	}
}
