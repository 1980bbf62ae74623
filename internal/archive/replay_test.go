package archive_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor/internal/archive"
)

// A replay of a journal made by real devices through the real store gives
// back exactly the messages sent, each once, with the senders their
// certificates name, and records every commit.
func TestReplayGivesWhatWasSent(t *testing.T) {
	t.Parallel()
	o := newOrg(t, 4, 240, 20)
	review, _ := openReview(t)
	sum, err := archive.Replay(context.Background(), o.config(t, review))
	if err != nil {
		t.Fatal(err)
	}
	got := messages(t, review, o.gen.Groups)
	if len(got) != len(o.sent) {
		t.Fatalf("%d message records, %d messages sent", len(got), len(o.sent))
	}
	for i, s := range o.sent {
		want := archive.Record{
			Group: s.Group, Seq: s.Seq, Epoch: s.Epoch, Kind: archive.KindMessage,
			Sender: archive.Sender{User: s.User, Device: s.Device},
			Time:   s.Time.UTC(), Text: s.Text, Status: archive.Verified, Chain: archive.ChainVerified,
		}
		if diff := cmp.Diff(want, got[i]); diff != "" {
			t.Fatalf("message %d (-sent +recorded):\n%s", i, diff)
		}
	}
	var commits, joined int
	for _, g := range o.gen.Groups {
		for _, rec := range allRecords(t, review, g) {
			switch {
			case rec.Status == archive.Joined:
				joined++
				if rec.Seq != 1 || !slices.ContainsFunc(rec.Added, func(s archive.Sender) bool { return s.User == "archive" }) {
					t.Errorf("group %s: joined at %d, members %v", g, rec.Seq, rec.Added)
				}
			case rec.Kind == archive.KindCommit:
				commits++
				if rec.Status != archive.Verified || rec.Sender.User == "" {
					t.Errorf("group %s commit %d: %+v", g, rec.Seq, rec)
				}
			}
		}
	}
	if joined != len(o.gen.Groups) || commits+joined != o.gen.Commits {
		t.Errorf("%d joins and %d other commits recorded; %d groups and %d commits made", joined, commits, len(o.gen.Groups), o.gen.Commits)
	}
	if sum.Failed != 0 || sum.Records != len(o.sent)+o.gen.Commits {
		t.Errorf("summary %+v", sum)
	}
	for _, p := range sum.Groups {
		if !p.Done {
			t.Errorf("group %s not done: %+v", p.Group, p)
		}
	}
	// A second replay into the same review store finds everything done.
	again, err := archive.Replay(context.Background(), o.config(t, review))
	if err != nil || again.Entries != 0 {
		t.Fatalf("second replay: %d entries, %v", again.Entries, err)
	}
}
