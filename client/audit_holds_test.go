package client_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"candor"
	"candor/client"
	"candor/internal/access"
	"candor/internal/journal"
	"candor/internal/server"
	"candor/internal/testenv"
	"candor/internal/translog"
	"candor/internal/translog/sqllog"
)

func (a *accessAdmin) hold(caseID string, groups []candor.GroupID, users ...candor.UserID) access.HoldID {
	a.t.Helper()
	id, _, err := a.l.LogHold(a.t.Context(), &access.Hold{Case: caseID, Reason: "hold for " + caseID, By: "Legal",
		Set: time.Unix(1790000000, 0).UTC(), Groups: groups, Users: users})
	if err != nil {
		a.t.Fatal(err)
	}
	return id
}

func (a *accessAdmin) lift(id access.HoldID, reason string) {
	a.t.Helper()
	if _, err := a.l.LogRelease(a.t.Context(), &access.Release{Hold: id, Reason: reason, By: "Legal", At: time.Unix(1790003600, 0).UTC()}); err != nil {
		a.t.Fatal(err)
	}
}

func (a *accessAdmin) deleted(g candor.GroupID, first, last uint64) {
	a.t.Helper()
	d := &access.Deletion{Group: g, First: first, Last: last, LastHash: journal.Hash{1, byte(last)},
		At: time.Unix(1790007200, 0).UTC(), Retention: 365 * 24 * time.Hour}
	if _, err := a.l.LogDeletion(a.t.Context(), d); err != nil {
		a.t.Fatal(err)
	}
}

// holdSummary is what a test compares of an AuditHold.
type holdSummary struct {
	Case     string
	Groups   []candor.GroupID
	NamesYou bool
	Lifted   string // the release's reason
}

func holdsAndDeletions(t *testing.T, c *client.Client) ([]holdSummary, []client.AuditDeletion) {
	t.Helper()
	report, err := c.Audit(t.Context())
	if err != nil {
		t.Fatalf("%s: audit: %v", c.User(), err)
	}
	var holds []holdSummary
	for _, h := range report.Holds {
		s := holdSummary{Case: h.Case, Groups: h.Groups, NamesYou: h.NamesYou}
		if !h.Active() {
			s.Lifted = h.Lifted.Reason
		}
		holds = append(holds, s)
	}
	return holds, report.Deletions
}

// TestAuditHolds checks that each person sees the holds on them or their
// conversations, in force or lifted, and the deletions of their
// conversations' history, and nobody else's.
func TestAuditHolds(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "laptop")
	carol := env.Enrol(t, "carol", "desk")
	ctx := t.Context()
	deals, err := alice.CreateGroup(ctx, "deals", "bob")
	if err != nil {
		t.Fatal(err)
	}
	ops, err := carol.CreateGroup(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)

	admin := newAccessAdmin(t, env)
	onDeals := admin.hold("LIT-DEALS", []candor.GroupID{deals, "elsewhere"})
	admin.hold("LIT-CAROL", nil, "carol")
	admin.hold("LIT-ALICE", []candor.GroupID{ops}, "alice")
	admin.lift(onDeals, "settled")
	admin.deleted(deals, 1, 4)
	admin.deleted(ops, 1, 2)
	admin.deleted(deals, 5, 9)

	for _, tc := range []struct {
		c         *client.Client
		holds     []holdSummary
		deletions []client.AuditDeletion
	}{
		{alice, []holdSummary{{Case: "LIT-DEALS", Groups: []candor.GroupID{deals}, Lifted: "settled"}, {Case: "LIT-ALICE", NamesYou: true}},
			[]client.AuditDeletion{{Index: 4, Group: deals, First: 1, Last: 4}, {Index: 6, Group: deals, First: 5, Last: 9}}},
		{bob, []holdSummary{{Case: "LIT-DEALS", Groups: []candor.GroupID{deals}, Lifted: "settled"}},
			[]client.AuditDeletion{{Index: 4, Group: deals, First: 1, Last: 4}, {Index: 6, Group: deals, First: 5, Last: 9}}},
		{carol, []holdSummary{{Case: "LIT-CAROL", NamesYou: true}, {Case: "LIT-ALICE", Groups: []candor.GroupID{ops}}},
			[]client.AuditDeletion{{Index: 5, Group: ops, First: 1, Last: 2}}},
	} {
		t.Run(string(tc.c.User()), func(t *testing.T) {
			holds, deletions := holdsAndDeletions(t, tc.c)
			if diff := cmp.Diff(tc.holds, holds); diff != "" {
				t.Errorf("holds (-want +got):\n%s", diff)
			}
			for i := range deletions {
				if !deletions[i].At.Equal(time.Unix(1790007200, 0)) || deletions[i].Retention != 365*24*time.Hour {
					t.Errorf("deletion %d: at %v under %v", i, deletions[i].At, deletions[i].Retention)
				}
				deletions[i].At, deletions[i].Retention = time.Time{}, 0
			}
			if diff := cmp.Diff(tc.deletions, deletions); diff != "" {
				t.Errorf("deletions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAuditUnknownRecord appends, with the log's own key, a record of a
// type this build does not know, as a newer server might: the device must
// refuse the log rather than show the part it understands.
func TestAuditUnknownRecord(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	alice := env.Enrol(t, "alice", "laptop")
	newAccessAdmin(t, env).hold("LIT-1", nil, "alice")
	if holds, _ := holdsAndDeletions(t, alice); len(holds) != 1 {
		t.Fatalf("audit shows %d holds, want 1", len(holds))
	}
	ctx := t.Context()
	raw, err := os.ReadFile(filepath.Join(env.Dir, server.FileAccessKey))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqllog.Open(ctx, filepath.Join(env.Dir, server.FileAccessDB))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := db.Storage(ctx, signer.Name())
	if err != nil {
		t.Fatal(err)
	}
	l, err := translog.New(ctx, translog.Config{Origin: signer.Name(), Signer: signer, Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []byte("cacc\x01\x63a record of a later format")); err != nil {
		t.Fatal(err)
	}
	_, err = alice.Audit(ctx)
	if !errors.Is(err, access.ErrMalformed) || !strings.Contains(err.Error(), "record 1") || !strings.Contains(err.Error(), "unknown record type 99") {
		t.Fatalf("audit of a log with a record of an unknown type: %v, want ErrMalformed naming record 1 and its type", err)
	}
}
