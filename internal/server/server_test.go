package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/api"
	"candor/internal/journal"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

var _ CA = (*pki.CA)(nil) // the pki package's CA serves too

// TestConversation runs the whole path: enrolment by invitation, the key
// directory, a group, a commit that adds a device with its Welcome,
// messages both ways, cursors and member lists.
func TestConversation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.enrol("alice", "laptop")
	bob := e.enrol("bob", "phone")

	var me api.Me
	bob.call("GET", api.PathMe, nil, &me)
	if diff := cmp.Diff(api.Me{User: "bob", Device: string(bob.id), Name: "phone"}, me); diff != "" {
		t.Fatalf("me (-want +got):\n%s", diff)
	}
	if len(bob.id) != 16 {
		t.Fatalf("device id %q, want 16 hex characters", bob.id)
	}
	var devs api.DeviceList
	alice.call("GET", userPath(api.PathDevices, "bob"), nil, &devs)
	if len(devs.Devices) != 1 || devs.Devices[0].ID != string(bob.id) || !bytes.Equal(devs.Devices[0].Certificate, bob.cert) {
		t.Fatalf("bob's devices: %+v", devs)
	}

	if got := bob.uploadKeyPackages(3, true); got != (api.KeyPackageCount{Available: 3, LastResort: true}) {
		t.Fatalf("after upload: %+v", got)
	}
	id := candor.GroupID("conversation-1")
	alice.createGroup(id)
	kps := alice.claim("bob")
	if len(kps) != 1 {
		t.Fatalf("claimed %d key packages, want 1", len(kps))
	}
	var count api.KeyPackageCount
	bob.call("GET", api.PathKeyPackages, nil, &count)
	if count.Available != 2 {
		t.Fatalf("after a claim: %+v, want 2 left", count)
	}

	_, resp := alice.commit(id, mlsx.CommitOptions{Add: kps})
	if resp.Seq != 1 || resp.Epoch != 1 || resp.Time.IsZero() {
		t.Fatalf("commit: %+v", resp)
	}
	if joined := bob.joinWelcomes(); len(joined) != 1 || joined[0].ID() != id {
		t.Fatalf("bob joined %v", joined)
	}
	var head api.GroupHead
	bob.call("GET", groupPath(api.PathGroup, id), nil, &head)
	wantMembers := []api.Member{{Leaf: 0, User: "alice", Device: string(alice.id)}, {Leaf: 1, User: "bob", Device: string(bob.id)}, e.archiveMember(2)}
	if diff := cmp.Diff(wantMembers, head.Members); diff != "" {
		t.Fatalf("members (-want +got):\n%s", diff)
	}
	if head.Epoch != 1 || head.Head != 1 || head.Cursor != 0 {
		t.Fatalf("bob's view of the group: %+v", head)
	}

	alice.send(id, "hello bob")
	_, resp = alice.send(id, "are you there?")
	if resp.Seq != 3 || resp.Epoch != 1 {
		t.Fatalf("second message: %+v", resp)
	}
	// The time answered is the entry's, as the log keeps it and hashes it.
	if es, err := e.data.Store.Log(e.ctx, id, 2, 1); err != nil || len(es) != 1 || es[0].Time.UnixMilli() != resp.Time.UnixMilli() {
		t.Fatalf("entry 3: %+v, %v; the answer's time %v", es, err, resp.Time)
	}
	if diff := cmp.Diff([]string{"hello bob", "are you there?"}, bob.catchUp(id)); diff != "" {
		t.Fatalf("bob read (-want +got):\n%s", diff)
	}
	bob.send(id, "yes")
	if diff := cmp.Diff([]string{"yes"}, alice.catchUp(id)); diff != "" {
		t.Fatalf("alice read (-want +got):\n%s", diff)
	}
	bob.call("GET", groupPath(api.PathGroup, id), nil, &head)
	if head.Cursor != 3 || head.Head != 4 {
		t.Fatalf("bob's cursor %d, head %d; want 3, 4", head.Cursor, head.Head)
	}
	var list api.GroupList
	bob.call("GET", api.PathGroups, nil, &list)
	if len(list.Groups) != 1 || !bytes.Equal(list.Groups[0].GroupID, []byte(id)) || list.Groups[0].Cursor != 3 {
		t.Fatalf("bob's groups: %+v", list)
	}

	// A page of the log.
	var page api.Log
	alice.call("GET", groupPath(api.PathMessages, id)+"?after=1&limit=2", nil, &page)
	if len(page.Entries) != 2 || page.Entries[0].Seq != 2 || !page.More || page.Entries[0].Sender != string(alice.id) {
		t.Fatalf("page: %+v", page)
	}
	// Each page names the chain hash its first entry follows: entry 1's
	// here, the genesis hash before entry 1.
	stored, err := e.data.Store.Log(e.ctx, id, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(page.Prev, stored[0].Hash[:]) {
		t.Errorf("page after 1: prev %x, want entry 1's hash %x", page.Prev, stored[0].Hash)
	}
	var first api.Log
	alice.call("GET", groupPath(api.PathMessages, id)+"?limit=1", nil, &first)
	if len(first.Entries) != 1 || first.Entries[0].Seq != 1 || !bytes.Equal(first.Prev, journal.Genesis[:]) || !first.More {
		t.Errorf("first page: %+v, want entry 1 after the genesis hash", first)
	}
	var last api.Log
	alice.call("GET", groupPath(api.PathMessages, id)+"?after=3", nil, &last)
	if len(last.Entries) != 1 || last.More || !bytes.Equal(last.Prev, stored[2].Hash[:]) {
		t.Errorf("last page: %+v, want entry 4 after entry 3's hash", last)
	}
	var none api.Log
	alice.call("GET", groupPath(api.PathMessages, id)+"?after=4", nil, &none)
	if len(none.Entries) != 0 || none.Prev != nil {
		t.Errorf("past the head: %+v, want nothing", none)
	}
	// Cut before entry 3: a page from before the start begins there, after
	// the hash the log now starts from.
	if _, err := e.data.Store.DeleteBefore(e.ctx, id, 3); err != nil {
		t.Fatal(err)
	}
	var cut api.Log
	alice.call("GET", groupPath(api.PathMessages, id)+"?after=0", nil, &cut)
	if len(cut.Entries) != 2 || cut.Entries[0].Seq != 3 || !bytes.Equal(cut.Prev, stored[1].Hash[:]) {
		t.Errorf("cut log: %+v, want entries 3 and 4 after entry 2's hash", cut)
	}

	// Nothing secret reached the logs.
	logs := e.logs.String()
	for _, entry := range page.Entries {
		if strings.Contains(logs, base64.StdEncoding.EncodeToString(entry.Message)[:40]) {
			t.Fatal("a message body is in the server's logs")
		}
	}
}

// TestCommitConflict: two commits for one epoch; the second gets the
// winner's seq, and a message for the old epoch is stale.
func TestCommitConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	// A group id as candor makes them: 16 random bytes, not text.
	raw := make([]byte, 16)
	rand.Read(raw)
	raw[0] = 0xff // never valid UTF-8
	id := candor.GroupID(raw)
	pair(t, alice, bob, id)

	ac, err := alice.groups[id].Commit(e.ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bob.groups[id].Commit(e.ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var won api.SendResponse
	alice.call("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: ac.Message}, &won)
	if won.Epoch != 2 {
		t.Fatalf("winning commit: %+v", won)
	}
	st, ae := bob.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: bc.Message}, nil)
	wantCode(t, st, ae, api.CodeCommitConflict)
	if ae.Seq != won.Seq || ae.Epoch != 2 {
		t.Fatalf("conflict names seq %d epoch %d, want %d, 2", ae.Seq, ae.Epoch, won.Seq)
	}
	// The winner sent again is a replay, not a conflict.
	st, ae = alice.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: ac.Message}, nil)
	wantCode(t, st, ae, api.CodeReplay)
	if ae.Seq != won.Seq {
		t.Fatalf("replay names seq %d, want %d", ae.Seq, won.Seq)
	}
	if _, err := alice.groups[id].Confirm(e.ctx); err != nil {
		t.Fatal(err)
	}

	// Bob drops his commit; a message he encrypts before catching up is
	// for the old epoch.
	if err := bob.groups[id].Discard(e.ctx); err != nil {
		t.Fatal(err)
	}
	old, err := bob.groups[id].Encrypt(e.ctx, []byte("too late"))
	if err != nil {
		t.Fatal(err)
	}
	st, ae = bob.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: old}, nil)
	wantCode(t, st, ae, api.CodeStaleEpoch)
	if ae.Epoch != 2 {
		t.Fatalf("stale_epoch names epoch %d, want 2", ae.Epoch)
	}
	bob.catchUp(id)
	bob.send(id, "caught up")
	if diff := cmp.Diff([]string{"caught up"}, alice.catchUp(id)); diff != "" {
		t.Fatalf("alice read (-want +got):\n%s", diff)
	}
}

// pair makes a group id of a and b, a having created it.
func pair(t *testing.T, a, b *device, id candor.GroupID) {
	t.Helper()
	b.uploadKeyPackages(1, false)
	a.createGroup(id)
	a.commit(id, mlsx.CommitOptions{Add: a.claim(b.user)})
	b.joinWelcomes()
}

// TestReplay: the same application message twice is refused with its seq.
func TestReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	id := candor.GroupID("replay")
	pair(t, alice, bob, id)
	ct, resp := alice.send(id, "once")
	st, ae := alice.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: ct}, nil)
	wantCode(t, st, ae, api.CodeReplay)
	if ae.Seq != resp.Seq {
		t.Fatalf("replay names seq %d, want %d", ae.Seq, resp.Seq)
	}
	// Bob cannot upload it either: it is in the log already.
	st, ae = bob.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: ct}, nil)
	wantCode(t, st, ae, api.CodeReplay)
}

// TestRevocation: a revoked device is refused at once, its groups get a
// Remove proposal from the server that members process, a commit that
// ignores it is refused, and one that includes it is accepted.
func TestRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	carol := e.enrol("carol", "desk")
	id := candor.GroupID("revocation")
	bob.uploadKeyPackages(1, false)
	carol.uploadKeyPackages(1, false)
	alice.createGroup(id)
	alice.commit(id, mlsx.CommitOptions{Add: append(alice.claim("bob"), alice.claim("carol")...)})
	bob.joinWelcomes()
	carol.joinWelcomes()

	// Bob makes a commit before he hears of the revocation.
	stale, err := bob.groups[id].Commit(e.ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}

	if err := e.srv.Revoke(e.ctx, carol.id); err != nil {
		t.Fatal(err)
	}
	st, ae := carol.try("GET", api.PathMe, nil, nil)
	wantCode(t, st, ae, api.CodeRevokedDevice)

	// The proposal is in the log, from the server.
	var page api.Log
	alice.call("GET", groupPath(api.PathMessages, id)+"?after=1", nil, &page)
	if len(page.Entries) != 1 || page.Entries[0].Sender != "" {
		t.Fatalf("log after revocation: %+v", page.Entries)
	}
	// Revoking again proposes nothing more.
	if err := e.srv.Revoke(e.ctx, carol.id); err != nil {
		t.Fatal(err)
	}
	alice.call("GET", groupPath(api.PathMessages, id)+"?after=1", nil, &page)
	if len(page.Entries) != 1 {
		t.Fatalf("second revocation appended again: %d entries", len(page.Entries))
	}

	st, ae = bob.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: stale.Message}, nil)
	wantCode(t, st, ae, api.CodePolicy)
	if err := bob.groups[id].Discard(e.ctx); err != nil {
		t.Fatal(err)
	}

	for _, d := range []*device{alice, bob} {
		ev, err := d.groups[id].Process(e.ctx, page.Entries[0].Message)
		if err != nil || ev.Kind != mlsx.EventProposal || !ev.Sender.External {
			t.Fatalf("%s processing the server's proposal: %+v, %v", d.name, ev, err)
		}
	}
	c, _ := alice.commit(id, mlsx.CommitOptions{})
	if len(c.Removed) != 1 {
		t.Fatalf("alice's commit removed %+v", c.Removed)
	}
	bob.catchUp(id)
	var head api.GroupHead
	bob.call("GET", groupPath(api.PathGroup, id), nil, &head)
	want := []api.Member{{Leaf: 0, User: "alice", Device: string(alice.id)}, {Leaf: 1, User: "bob", Device: string(bob.id)}, e.archiveMember(3)}
	if diff := cmp.Diff(want, head.Members); diff != "" {
		t.Fatalf("members after the removal (-want +got):\n%s", diff)
	}
	bob.send(id, "carol's desk is gone")
	if diff := cmp.Diff([]string{"carol's desk is gone"}, alice.catchUp(id)); diff != "" {
		t.Fatalf("alice read (-want +got):\n%s", diff)
	}

	// A user revokes their own device through the API; others' are not
	// theirs to revoke.
	bob2 := e.enrol("bob", "tablet")
	st, ae = alice.try("DELETE", strings.Replace(api.PathDevice, "{id}", string(bob2.id), 1), nil, nil)
	wantCode(t, st, ae, api.CodeNotFound)
	bob.call("DELETE", strings.Replace(api.PathDevice, "{id}", string(bob2.id), 1), nil, nil)
	st, ae = bob2.try("GET", api.PathMe, nil, nil)
	wantCode(t, st, ae, api.CodeRevokedDevice)
	var devs api.DeviceList
	alice.call("GET", userPath(api.PathDevices, "bob"), nil, &devs)
	if len(devs.Devices) != 2 || devs.Devices[1].RevokedAt == nil {
		t.Fatalf("bob's devices: %+v", devs)
	}
}

// TestEnrolment covers the invitation's refusals: one code for them all.
func TestEnrolment(t *testing.T) {
	t.Parallel()
	// A clock the test moves, from the real time: the CA made by Init
	// and the archive certified by it are valid from then.
	now := time.Now().UTC()
	clock := &now
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return *clock } })
	code, err := e.srv.Invite(e.ctx, "dave", time.Hour, e.addr)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(e.data.CA.Certificate().Raw); !bytes.Equal(code.CAFingerprint, want[:]) {
		t.Fatal("the invitation does not carry the CA's fingerprint")
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	anon := e.client(nil)
	enrol := func(req api.EnrolRequest) (int, *api.Error, api.EnrolResponse) {
		var resp api.EnrolResponse
		st, ae := e.do(anon, "POST", api.PathEnrol, req, &resp)
		return st, ae, resp
	}
	good := api.EnrolRequest{Invitation: code.ID, Secret: code.Secret, Name: "phone", CSR: csr(t, key)}

	wrong := good
	wrong.Secret = bytes.Repeat([]byte{1}, 32)
	st, ae, _ := enrol(wrong)
	wantCode(t, st, ae, api.CodeBadInvitation)
	unknown := good
	unknown.Invitation = "0000000000000000"
	st, ae, _ = enrol(unknown)
	wantCode(t, st, ae, api.CodeBadInvitation)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	badCSR := good
	badCSR.CSR = csr(t, otherKey)
	badCSR.CSR[len(badCSR.CSR)-1] ^= 1
	st, ae, _ = enrol(badCSR)
	wantCode(t, st, ae, api.CodeBadRequest)
	noName := good
	noName.Name = "a\nb"
	st, ae, _ = enrol(noName)
	wantCode(t, st, ae, api.CodeBadRequest)

	st, ae, resp := enrol(good)
	if ae != nil || st != http.StatusCreated {
		t.Fatalf("enrol: %d %+v", st, ae)
	}
	dev, err := pki.DeviceOf(mustParse(t, resp.Certificate))
	if err != nil || dev.User != "dave" || string(dev.Device) != resp.Device {
		t.Fatalf("certificate names %v, %v", dev, err)
	}
	if !bytes.Equal(resp.CA, e.data.CA.Certificate().Raw) {
		t.Fatal("the response does not carry the CA")
	}
	st, ae, _ = enrol(good)
	wantCode(t, st, ae, api.CodeBadInvitation) // used

	late, err := e.srv.Invite(e.ctx, "dave", time.Hour, e.addr)
	if err != nil {
		t.Fatal(err)
	}
	*clock = now.Add(2 * time.Hour)
	st, ae, _ = enrol(api.EnrolRequest{Invitation: late.ID, Secret: late.Secret, Name: "tablet", CSR: csr(t, key)})
	wantCode(t, st, ae, api.CodeBadInvitation) // expired

	for _, user := range []candor.UserID{"not a user!", "archive", "Archive"} {
		if _, err := e.srv.Invite(e.ctx, user, 0, e.addr); !errors.Is(err, candor.ErrInvalid) {
			t.Fatalf("inviting %q: %v, want ErrInvalid", user, err)
		}
	}
	// No secret in the logs.
	for _, s := range [][]byte{code.Secret, late.Secret} {
		if logs := e.logs.String(); strings.Contains(logs, base64.StdEncoding.EncodeToString(s)) || strings.Contains(logs, hex.EncodeToString(s)) {
			t.Fatal("an invitation secret is in the logs")
		}
	}
}

// TestRefusals: the edge of the API refuses what it must, with the code
// the catalogue gives.
func TestRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	carol := e.enrol("carol", "desk")
	id := candor.GroupID("refusals")
	pair(t, alice, bob, id)
	other := candor.GroupID("other")
	alice.createGroup(other)
	ct, err := alice.groups[id].Encrypt(e.ctx, []byte("for the first group"))
	if err != nil {
		t.Fatal(err)
	}

	// A certificate from the CA that names no enrolled device.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stray, err := e.data.CA.Issue("mallory", "0123456789abcdef", &key.PublicKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	strayClient := e.client(&tls.Certificate{Certificate: [][]byte{stray}, PrivateKey: key})

	big := make([]byte, api.MaxBodyBytes+1)
	for _, tc := range []struct {
		name         string
		as           *device
		client       *http.Client // instead of as
		method, path string
		body         any
		want         api.Code
	}{
		{"no certificate", nil, e.client(nil), "GET", api.PathMe, nil, api.CodeNoCertificate},
		{"unknown device", nil, strayClient, "GET", api.PathMe, nil, api.CodeUnknownDevice},
		{"unknown group", alice, nil, "GET", groupPath(api.PathGroup, "nope"), nil, api.CodeUnknownGroup},
		{"bad group id", alice, nil, "GET", "/v1/groups/xyz", nil, api.CodeBadRequest},
		{"not a member", carol, nil, "GET", groupPath(api.PathGroup, id), nil, api.CodeNotMember},
		{"not a member sends", carol, nil, "POST", groupPath(api.PathMessages, id), api.SendRequest{Message: ct}, api.CodeNotMember},
		{"oversized body", alice, nil, "POST", groupPath(api.PathMessages, id), big, api.CodeTooLarge},
		{"garbage JSON", alice, nil, "POST", groupPath(api.PathMessages, id), []byte("{not json"), api.CodeBadRequest},
		{"two JSON values", alice, nil, "POST", api.PathGroups, []byte(`{"group_id":"AQ=="}{}`), api.CodeBadRequest},
		{"unknown field", alice, nil, "POST", api.PathGroups, []byte(`{"group_id":"AQ==","x":1}`), api.CodeBadRequest},
		{"bad base64", alice, nil, "POST", api.PathGroups, []byte(`{"group_id":"!!"}`), api.CodeBadRequest},
		{"empty message", alice, nil, "POST", groupPath(api.PathMessages, id), api.SendRequest{}, api.CodeBadRequest},
		{"not MLS", alice, nil, "POST", groupPath(api.PathMessages, id), api.SendRequest{Message: []byte("hello")}, api.CodeMalformedMLS},
		{"wrong group", alice, nil, "POST", groupPath(api.PathMessages, other), api.SendRequest{Message: ct}, api.CodeMalformedMLS},
		{"welcome without commit", alice, nil, "POST", groupPath(api.PathMessages, id), api.SendRequest{Message: ct, Welcome: ct}, api.CodeBadRequest},
		{"group exists", alice, nil, "POST", api.PathGroups, api.CreateGroup{GroupID: []byte(id)}, api.CodeGroupExists},
		{"unknown user", alice, nil, "POST", userPath(api.PathClaim, "zed"), nil, api.CodeUnknownUser},
		{"unknown user's devices", alice, nil, "GET", userPath(api.PathDevices, "zed"), nil, api.CodeUnknownUser},
		{"no key packages", alice, nil, "POST", userPath(api.PathClaim, "carol"), nil, api.CodeNoKeyPackages},
		{"claim with a body", alice, nil, "POST", userPath(api.PathClaim, "bob"), []byte(`{"x":1}`), api.CodeBadRequest},
		{"cursor past head", alice, nil, "PUT", groupPath(api.PathCursor, id), api.Cursor{Seq: 99}, api.CodeBadRequest},
		{"unknown welcome", alice, nil, "DELETE", strings.Replace(api.PathWelcome, "{id}", "abc", 1), nil, api.CodeNotFound},
		{"method not allowed", alice, nil, "PUT", api.PathMe, nil, api.CodeMethodNotAllowed},
		{"no such endpoint", alice, nil, "GET", "/v1/nothing", nil, api.CodeNotFound},
		{"bad log query", alice, nil, "GET", groupPath(api.PathMessages, id) + "?after=-1", nil, api.CodeBadRequest},
		{"empty upload", bob, nil, "POST", api.PathKeyPackages, api.UploadKeyPackages{}, api.CodeBadRequest},
		{"someone else's key package", carol, nil, "POST", api.PathKeyPackages, api.UploadKeyPackages{KeyPackages: keyPackages(t, bob, 1)}, api.CodePolicy},
		{"one-time as last resort", bob, nil, "POST", api.PathKeyPackages, api.UploadKeyPackages{LastResort: keyPackages(t, bob, 1)[0]}, api.CodeMalformedMLS},
		{"too many key packages", bob, nil, "POST", api.PathKeyPackages, api.UploadKeyPackages{KeyPackages: make([][]byte, api.MaxKeyPackages+1)}, api.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := tc.client
			if c == nil {
				c = tc.as.http
			}
			st, ae := e.do(c, tc.method, tc.path, tc.body, nil)
			wantCode(t, st, ae, tc.want)
		})
	}
	t.Cleanup(func() {
		if !strings.Contains(e.logs.String(), `"code":"not_member"`) {
			t.Error("refusals are not logged with their code")
		}
	})
}

func keyPackages(t *testing.T, d *device, n int) [][]byte {
	t.Helper()
	kps, err := d.mls.KeyPackages(d.e.ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return kps
}

// TestWelcomeRouting: a Welcome goes only to the devices its commit adds.
func TestWelcomeRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	carol := e.enrol("carol", "desk")
	id := candor.GroupID("welcomes")
	bob.uploadKeyPackages(2, false)
	carol.uploadKeyPackages(1, false)
	g := alice.createGroup(id)

	// A commit adding carol, dropped; its Welcome with a commit adding bob.
	forCarol, err := g.Commit(e.ctx, mlsx.CommitOptions{Add: alice.claim("carol")})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Discard(e.ctx); err != nil {
		t.Fatal(err)
	}
	forBob, err := g.Commit(e.ctx, mlsx.CommitOptions{Add: append(alice.claim("bob"), e.archive.Statement.KeyPackage())})
	if err != nil {
		t.Fatal(err)
	}
	path := groupPath(api.PathMessages, id)
	st, ae := alice.try("POST", path, api.SendRequest{Message: forBob.Message, Welcome: forCarol.Welcome}, nil)
	wantCode(t, st, ae, api.CodePolicy)
	st, ae = alice.try("POST", path, api.SendRequest{Message: forBob.Message}, nil)
	wantCode(t, st, ae, api.CodeBadRequest)
	st, ae = alice.try("POST", path, api.SendRequest{Message: forBob.Message, Welcome: forBob.Message}, nil)
	wantCode(t, st, ae, api.CodeMalformedMLS)
	alice.call("POST", path, api.SendRequest{Message: forBob.Message, Welcome: forBob.Welcome}, nil)
	if _, err := g.Confirm(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(bob.joinWelcomes()); n != 1 {
		t.Fatalf("bob has %d welcomes", n)
	}
	if n := len(carol.joinWelcomes()); n != 0 {
		t.Fatalf("carol has %d welcomes", n)
	}

	// A commit by bob uploaded by alice is refused: a device speaks only
	// from its own leaf.
	c, err := bob.groups[id].Commit(e.ctx, mlsx.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, ae = alice.try("POST", path, api.SendRequest{Message: c.Message}, nil)
	wantCode(t, st, ae, api.CodePolicy)
}

// TestPolicyHook: the configured Policy sees every commit's member list.
func TestPolicyHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Policy = PolicyFunc(func(ctx context.Context, _ candor.GroupID, members []mlsx.Member) error {
			if len(members) > 3 {
				return errors.Join(candor.ErrPermission, errors.New("at most two people and the archive"))
			}
			return nil
		})
	})
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	carol := e.enrol("carol", "desk")
	id := candor.GroupID("small")
	pair(t, alice, bob, id)
	carol.uploadKeyPackages(1, false)
	c, err := alice.groups[id].Commit(e.ctx, mlsx.CommitOptions{Add: alice.claim("carol")})
	if err != nil {
		t.Fatal(err)
	}
	st, ae := alice.try("POST", groupPath(api.PathMessages, id), api.SendRequest{Message: c.Message, Welcome: c.Welcome}, nil)
	wantCode(t, st, ae, api.CodePolicy)
}

// TestLastResort: a device with only a last-resort KeyPackage is claimable
// many times; one with none makes the claim fail and consumes nothing.
func TestLastResort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.enrol("alice", "laptop"), e.enrol("bob", "phone")
	bob2 := e.enrol("bob", "tablet")
	bob.uploadKeyPackages(1, true)
	st, ae := alice.try("POST", userPath(api.PathClaim, "bob"), nil, nil)
	wantCode(t, st, ae, api.CodeNoKeyPackages) // the tablet has none
	var count api.KeyPackageCount
	bob.call("GET", api.PathKeyPackages, nil, &count)
	if count.Available != 1 {
		t.Fatalf("a refused claim consumed a key package: %+v", count)
	}
	bob2.uploadKeyPackages(0, true)
	for range 3 {
		if n := len(alice.claim("bob")); n != 2 {
			t.Fatalf("claimed %d, want one per device", n)
		}
	}
	// Claiming for one's own user leaves oneself out.
	if n := len(bob.claim("bob")); n != 1 {
		t.Fatalf("bob claimed %d of his own, want 1 (the tablet)", n)
	}
}
