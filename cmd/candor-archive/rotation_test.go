package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor/internal/archive"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/testenv"
)

// A conversation that lived through a move to a new archive key is
// opened with each key's custodians: the old key reads what was said
// before the commit that replaced it, the new key what was said after
// (its Welcome is that commit's), and each sees the other's part as
// unreadable, not missing. Both openings pass the signed journal heads.
func TestOpenAcrossRotation(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := t.Context()
	alice := env.Enrol(t, "alice", "laptop")
	bob := env.Enrol(t, "bob", "phone")
	g, err := alice.CreateGroup(ctx, "desk", "bob")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob)
	if _, err := alice.Send(ctx, g, "before the rotation"); err != nil {
		t.Fatal(err)
	}
	old := env.Archive
	next := env.Succeed(t, old, 2, ceremonytest.Threshold)
	env.Restart(t)
	if n, err := env.Server.ProposeAnchors(ctx); err != nil || n != 1 {
		t.Fatalf("proposing the old key's removal: %d, %v", n, err)
	}
	mustSync(t, bob)
	m, err := bob.Send(ctx, g, "after the rotation")
	if err != nil {
		t.Fatal(err)
	}
	waitSignedHead(t, env, g, m.Seq)

	for _, tc := range []struct {
		arch ceremonytest.Archive
		want []sent
	}{
		{old, []sent{{"alice", "before the rotation"}}},
		{next, []sent{{"bob", "after the rotation"}}},
	} {
		key := tc.arch.Statement.KeyID()
		o := newOpener(t, env)
		o.use(tc.arch)
		keyFile, id, index := o.request("case-"+key, g)
		o.open(0, keyFile, id, o.approve(index, 0), o.approve(index, 1))
		review, err := archive.OpenReview(ctx, o.path("review.db"))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := review.Records(ctx, g, 0, 1000)
		review.Close()
		if err != nil {
			t.Fatal(err)
		}
		var got []sent
		unreadable := 0
		for _, r := range recs {
			switch {
			case r.Kind == archive.KindMessage && r.Status == archive.Verified:
				got = append(got, sent{r.Sender.User, r.Text})
			case r.Kind == archive.KindMessage && r.Status == archive.Unreadable:
				unreadable++
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("key %s: messages read (-want +got):\n%s", key, diff)
		}
		if unreadable != 1 {
			t.Errorf("key %s: %d messages recorded as unreadable, want the other key's one", key, unreadable)
		}
	}
}
