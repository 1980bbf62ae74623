package server

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/api"
	"candor/internal/mlsx"
)

// TestLeave: leaving has the server propose, as the external sender, the
// removal of every device of the caller's person in the group, once; the
// next commit removes them all, the server stops counting them as members,
// and what is sent afterwards does not open with their keys.
func TestLeave(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, carol := e.enrol("alice", "laptop"), e.enrol("carol", "desk")
	bob, bobPhone := e.enrol("bob", "laptop"), e.enrol("bob", "phone")
	id := candor.GroupID("leave")
	for _, d := range []*device{bob, bobPhone, carol} {
		d.uploadKeyPackages(1, false)
	}
	alice.createGroup(id)
	alice.commit(id, mlsx.CommitOptions{Add: append(alice.claim("bob"), alice.claim("carol")...)})
	for _, d := range []*device{bob, bobPhone, carol} {
		d.joinWelcomes()
	}
	leave := groupPath(api.PathLeave, id)

	// Refusals: no such group, not a member, a body where none belongs.
	st, ae := bob.try("POST", groupPath(api.PathLeave, candor.GroupID("nosuch")), nil, nil)
	wantCode(t, st, ae, api.CodeUnknownGroup)
	dave := e.enrol("dave", "desk")
	st, ae = dave.try("POST", leave, nil, nil)
	wantCode(t, st, ae, api.CodeNotMember)
	st, ae = bob.try("POST", leave, map[string]int{"devices": 1}, nil)
	wantCode(t, st, ae, api.CodeBadRequest)
	st, ae = bob.try("GET", leave, nil, nil)
	wantCode(t, st, ae, api.CodeMethodNotAllowed)

	bob.call("POST", leave, nil, nil)
	var page api.Log
	alice.call("GET", groupPath(api.PathMessages, id)+"?after=1", nil, &page)
	if len(page.Entries) != 2 {
		t.Fatalf("%d entries after bob left, want a proposal for each of his 2 devices", len(page.Entries))
	}
	// Leaving again, from his other device, proposes nothing more.
	bobPhone.call("POST", leave, nil, nil)
	var again api.Log
	alice.call("GET", groupPath(api.PathMessages, id)+"?after=1", nil, &again)
	if len(again.Entries) != 2 {
		t.Fatalf("leaving twice appended again: %d entries", len(again.Entries))
	}

	for _, d := range []*device{alice, carol, bobPhone} {
		for _, en := range page.Entries {
			if en.Sender != "" {
				t.Fatalf("entry %d is from %q, want the server", en.Seq, en.Sender)
			}
			ev, err := d.groups[id].Process(e.ctx, en.Message)
			if err != nil || ev.Kind != mlsx.EventProposal || !ev.Sender.External {
				t.Fatalf("%s processing the server's proposal: %+v, %v", d.name, ev, err)
			}
		}
	}
	// Bob's phone heard the proposals, but its own removal is not its to
	// commit: the server refuses it as no longer a member.
	own, err := bobPhone.groups[id].Commit(e.ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, ae = bobPhone.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: own.Message}, nil)
	wantCode(t, st, ae, api.CodeNotMember)
	if err := bobPhone.groups[id].Discard(e.ctx); err != nil {
		t.Fatal(err)
	}

	commit, _ := alice.commit(id, mlsx.CommitOptions{})
	if len(commit.Removed) != 2 {
		t.Fatalf("alice's commit removed %d devices, want bob's 2", len(commit.Removed))
	}
	carol.catchUp(id)
	var head api.GroupHead
	carol.call("GET", groupPath(api.PathGroup, id), nil, &head)
	want := []api.Member{{Leaf: 0, User: "alice", Device: string(alice.id)}, {Leaf: 3, User: "carol", Device: string(carol.id)}, e.archiveMember(4)}
	if diff := cmp.Diff(want, head.Members); diff != "" {
		t.Fatalf("members after bob left (-want +got):\n%s", diff)
	}
	for _, d := range []*device{bob, bobPhone} {
		st, ae := d.try("GET", groupPath(api.PathGroup, id), nil, nil)
		wantCode(t, st, ae, api.CodeNotMember)
	}

	ct, _ := alice.send(id, "bob has left")
	if diff := cmp.Diff([]string{"bob has left"}, carol.catchUp(id)); diff != "" {
		t.Fatalf("carol read (-want +got):\n%s", diff)
	}
	// Even with the commit and the message in hand, bob's phone cannot
	// read it: the commit removed it, and the new epoch's keys were never
	// its own.
	ev, err := bobPhone.groups[id].Process(e.ctx, commit.Message)
	if err != nil || !ev.SelfRemoved {
		t.Fatalf("bob's phone processing its removal: %+v, %v", ev, err)
	}
	if ev, err := bobPhone.groups[id].Process(e.ctx, ct); err == nil {
		t.Fatalf("bob's phone read a message sent after it left: %q", ev.Plaintext)
	}
}
