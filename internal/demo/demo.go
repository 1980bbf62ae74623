// Package demo runs candor's demonstration: an organisation's server
// started in this process, people enrolling their devices with
// invitations, and one conversation, narrated step by step in plain words.
// Nothing is simulated: the devices are package client talking HTTPS with
// mutual TLS to package server, with MLS groups, SQLite files and
// certificates from the organisation's CA, all in a temporary folder.
package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"candor"
	"candor/client"
	"candor/internal/access"
	"candor/internal/archive"
	"candor/internal/custody"
	"candor/internal/opening"
)

// Config configures a demonstration run.
type Config struct {
	Out io.Writer // where the narration goes
	// Dir is a folder for the server's data and the devices' profiles; it
	// must exist. The caller removes it.
	Dir string
	// Corpus is the multilingual snippet file (udhr-snippets.tsv); when it
	// cannot be read, built-in sentences are used.
	Corpus string
}

// device is one enrolled device in the demonstration.
type device struct {
	label string // alice/laptop
	c     *client.Client
}

// Run narrates the demonstration to cfg.Out.
func Run(ctx context.Context, cfg Config) (err error) {
	out := &narrator{w: cfg.Out}

	out.step("An organisation and its server")
	srv, err := StartServer(ctx, filepath.Join(cfg.Dir, "server"), "Example Bank")
	if err != nil {
		return fmt.Errorf("starting the server: %w", err)
	}
	defer func() { err = errors.Join(err, srv.Close()) }()
	out.say("Example Bank runs its own certificate authority and a candor server, here at %s.", srv.Addr)
	out.say("The server carries encrypted messages and never holds a key that opens them.")
	p := srv.Archive.Policy()
	out.say("Its archive, the member that keeps the record of every conversation, was made at a custody")
	out.say("ceremony: its key was split between %s;", strings.Join(CustodianNames, "; "))
	out.say("any %d of the %d together can open it, and each opening is written to a public log first.", p.K(), p.N())
	out.say("Each custodian checked their share and endorsed the result; every device pins it at enrolment.")

	out.step("Enrolling devices with invitations")
	var devices, enrolled []*device
	defer func() {
		for _, d := range enrolled {
			err = errors.Join(err, d.c.Close())
		}
	}()
	for _, who := range []struct{ user, name string }{{"alice", "laptop"}, {"bob", "laptop"}, {"bob", "phone"}, {"carol", "desk"}} {
		code, err := srv.Invite(ctx, candor.UserID(who.user), time.Hour)
		if err != nil {
			return err
		}
		home := filepath.Join(cfg.Dir, who.user+"-"+who.name)
		c, err := client.Enrol(ctx, home, code, who.name)
		if err != nil {
			return fmt.Errorf("enrolling %s's %s: %w", who.user, who.name, err)
		}
		d := &device{label: who.user + "/" + who.name, c: c}
		enrolled = append(enrolled, d)
		devices = append(devices, d)
		out.say("%-13s used a one-time invitation, made its own key, checked that the server is Example Bank's,", d.label)
		out.say("%-13s and received a certificate as device %s.", "", c.Device())
	}
	alice, bobLaptop, bobPhone, carol := devices[0], devices[1], devices[2], devices[3]

	out.step("Alice starts a conversation with Bob and Carol")
	gid, err := alice.c.CreateGroup(ctx, "trading desk", "bob", "carol")
	if err != nil {
		return err
	}
	if err := syncAll(ctx, devices); err != nil {
		return err
	}
	out.say("Alice named the people, not their devices: one commit added every device of Bob and of Carol,")
	out.say("and the organisation's archive, and each joined from its own encrypted Welcome. The server and")
	out.say("every device refuse a conversation without the archive, and every device shows it.")
	if err := out.members(ctx, alice.c, gid); err != nil {
		return err
	}

	out.step("Messages in several languages")
	for i, text := range sentences(cfg.Corpus) {
		if err := deliver(ctx, out, devices[i%len(devices)], devices, gid, text); err != nil {
			return err
		}
	}

	out.step("Carol rotates her keys")
	if err := carol.c.UpdateKeys(ctx, gid); err != nil {
		return err
	}
	out.say("An empty commit gives the conversation fresh keys: whoever stole Carol's old ones reads nothing from now on.")
	if err := deliver(ctx, out, bobPhone, devices, gid, "Keys rotated; all still here."); err != nil {
		return err
	}

	out.step("Bob loses his phone")
	if err := bobLaptop.c.RemoveDevice(ctx, bobPhone.c.Device()); err != nil {
		return err
	}
	out.say("From his laptop, Bob removes the phone. The server refuses it from now on, and the laptop")
	out.say("committed its removal: the conversation moved to keys the phone never had.")
	devices = []*device{alice, bobLaptop, carol}
	if err := deliver(ctx, out, alice, devices, gid, "The phone must not read this."); err != nil {
		return err
	}
	if err := bobPhone.c.Sync(ctx); !errors.Is(err, client.ErrRevoked) {
		return fmt.Errorf("the removed phone was not refused: %v", err)
	}
	if ms, err := bobPhone.c.Messages(ctx, gid); err != nil || slices.ContainsFunc(ms, func(m client.Message) bool { return m.Text == "The phone must not read this." }) {
		return fmt.Errorf("the removed phone holds the message written after its removal (%v)", err)
	}
	out.say("The phone asks for news and the server says: %q.", firstSentence(client.ErrRevoked))
	out.say("Its history stops before Alice's last message.")
	if err := out.members(ctx, alice.c, gid); err != nil {
		return err
	}

	out.step("Carol leaves")
	if err := carol.c.Leave(ctx, gid); err != nil {
		return err
	}
	out.say("A member cannot remove itself in MLS, so the server proposes the removal of Carol's devices")
	out.say("and the next member to write commits it. Carol's device forgot the keys at once; her history stays.")
	devices = []*device{alice, bobLaptop}
	if err := deliver(ctx, out, bobLaptop, devices, gid, "Carol has moved to another desk."); err != nil {
		return err
	}
	if err := out.members(ctx, bobLaptop.c, gid); err != nil {
		return err
	}

	out.step("Opening a case")
	if err := openCase(ctx, out, srv, cfg.Dir, gid, alice, []*device{alice, bobLaptop, carol}); err != nil {
		return fmt.Errorf("opening a case: %w", err)
	}
	return out.err
}

// openCase shows an opening of the archive for one case, as the
// administrators, custodians and opener do it with candord access,
// candor-custody approve and candor-archive open (docs/design/archive.md,
// "Opening a case"), then what the members' devices show of it, Carol's,
// who has left, too. It checks that the records hold alice's history of
// the conversation, and that every member's device lists the opening.
func openCase(ctx context.Context, out *narrator, srv *Server, dir string, gid candor.GroupID, alice *device, members []*device) error {
	log := srv.data.Access
	okey, err := custody.NewOpeningKey()
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	q := &access.Request{
		Case: "CASE-2026-014", Reason: "A regulator asks for the trading desk's conversations of today.",
		Requester: "Gil Moreau, Compliance", Created: now,
		Scope:      access.Scope{Groups: []candor.GroupID{gid}, From: now.Add(-time.Hour), To: now.Add(time.Hour)},
		OpeningKey: okey.PublicKey().Bytes(),
	}
	id, index, err := log.LogRequest(ctx, q)
	if err != nil {
		return err
	}
	out.say("Compliance made a one-time opening key and logged a request in the public access log (record %d):", index)
	out.say("case %s, %q, the trading desk, the last hour.", q.Case, q.Reason)

	verifier, err := note.NewVerifier(log.VerifierKey())
	if err != nil {
		return err
	}
	var approvals []opening.Approval
	for _, slot := range []int{1, 3} {
		// Each custodian receives the request with its proof of
		// inclusion and checks it against the log's key they keep.
		b, err := log.Bundle(ctx, index)
		if err != nil {
			return err
		}
		rec, cp, err := b.Verify(verifier)
		if err != nil {
			return err
		}
		pub, err := custody.ParseOpeningPublicKey(rec.Request.OpeningKey)
		if err != nil {
			return err
		}
		st := srv.Archive
		a, err := srv.Custodians[slot-1].Approve(st.Policy(), st.Commitments(), st.SealedShares()[slot-1], custody.RequestID(id), pub)
		if err != nil {
			return err
		}
		name := CustodianNames[slot-1]
		if _, err := log.LogApproval(ctx, &access.Approval{Request: id, Custodian: slot, CustodianName: name, Custody: a.Bytes()}); err != nil {
			return err
		}
		approvals = append(approvals, opening.Approval{Name: name + "'s approval", Data: a.Bytes()})
		out.say("%s checked the request under the log's signed checkpoint (%d records), compared the", name, cp.Size)
		out.say("opening key's fingerprint (%s), and approved: their share, sealed to that key, is logged.", pub.Fingerprint())
	}

	o, err := opening.Prepare(ctx, opening.Config{Access: log, Statement: srv.Archive, Request: id, OpeningKey: okey, Approvals: approvals})
	if err != nil {
		return err
	}
	defer o.Close()
	review, err := archive.OpenReview(ctx, filepath.Join(dir, "review.db"))
	if err != nil {
		return err
	}
	defer review.Close()
	sum, err := o.Replay(ctx, srv.data.Store, srv.data.CA.Certificate(), review, nil)
	if err != nil {
		return err
	}
	if _, _, err := o.Log(ctx, sum, time.Now()); err != nil {
		return err
	}
	recs, err := review.Records(ctx, gid, 0, 10000)
	if err != nil {
		return err
	}
	var texts []string
	for _, r := range recs {
		if r.Kind == archive.KindMessage && r.Status == archive.Verified {
			texts = append(texts, r.Text)
		}
	}
	history, err := alice.c.Messages(ctx, gid)
	if err != nil {
		return err
	}
	var want []string
	for _, m := range history {
		want = append(want, m.Text)
	}
	if !slices.Equal(texts, want) {
		return fmt.Errorf("the review holds %d messages, alice's history %d", len(texts), len(want))
	}
	out.say("The opening tool checked both approvals in the log, rebuilt the archive's key in memory only,")
	out.say("and replayed the conversation's log: %d entries, every signature and the hash chain checked,", len(recs))
	out.say("into a review file of its own. Some of its records:")
	var messages []archive.Record
	for _, r := range recs {
		if r.Kind == archive.KindMessage {
			messages = append(messages, r)
		}
	}
	// The first two and the last, enough to see who said what.
	shown := messages
	if len(messages) > 3 {
		shown = append(slices.Clip(messages[:2]), messages[len(messages)-1])
	}
	for _, r := range shown {
		out.say("  entry %-3d %-6s %s  » %s", r.Seq, r.Sender.User, r.Status, r.Text)
	}
	out.say("Then it logged the completed opening. What each member's device shows ('candor audit'), Carol's too:")
	for _, d := range members {
		report, err := d.c.Audit(ctx)
		if err != nil {
			return err
		}
		entries := report.Openings
		i := slices.IndexFunc(entries, func(e client.AuditEntry) bool { return e.Case == q.Case && e.Completed() })
		if i < 0 {
			return fmt.Errorf("%s's audit does not list the opening", d.label)
		}
		e := entries[i]
		var names []string
		for _, a := range e.Approvals {
			names = append(names, a.Name)
		}
		out.say("  %-13s %s by %s: %q, approved by %s; opened %s, %d records read.", d.label, e.Case, e.Requester, e.Reason,
			strings.Join(names, " and "), e.Openings[0].Completed.Format("15:04:05 UTC"), e.Openings[0].Groups[0].Records)
	}
	return nil
}

// syncAll has every device catch up with the server.
func syncAll(ctx context.Context, devices []*device) error {
	for _, d := range devices {
		if err := d.c.Sync(ctx); err != nil {
			return fmt.Errorf("%s catching up: %w", d.label, err)
		}
	}
	return nil
}

// deliver sends text from one device and has the others catch up; it
// narrates how many of them could read it.
func deliver(ctx context.Context, out *narrator, from *device, all []*device, gid candor.GroupID, text string) error {
	// Catching up first lets the sender commit what waits in the group
	// (a removal the server proposed) before it encrypts.
	if err := from.c.Sync(ctx); err != nil {
		return fmt.Errorf("%s catching up: %w", from.label, err)
	}
	m, err := from.c.Send(ctx, gid, text)
	if err != nil {
		return fmt.Errorf("%s sending: %w", from.label, err)
	}
	read := 0
	for _, d := range all {
		if d == from {
			continue
		}
		if err := d.c.Sync(ctx); err != nil {
			return fmt.Errorf("%s catching up: %w", d.label, err)
		}
		ms, err := d.c.Messages(ctx, gid)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ms, func(got client.Message) bool { return got.Seq == m.Seq && got.Text == text }) {
			return fmt.Errorf("%s did not read what %s wrote", d.label, from.label)
		}
		read++
	}
	out.say("%-13s » %s", from.label, text)
	others := "other devices"
	if read == 1 {
		others = "other device"
	}
	out.say("%13s   (entry %d of the conversation's log, read by %d %s)", "", m.Seq, read, others)
	return nil
}

// firstSentence is an error's message up to its first semicolon or colon.
func firstSentence(err error) string {
	s := err.Error()
	if i := strings.IndexAny(s, ";:"); i > 0 {
		s = s[:i]
	}
	return s
}

// sentences picks one snippet in each of a few languages from the corpus,
// or returns built-in ones.
func sentences(corpus string) []string {
	want := []string{"en", "de", "fr", "ja", "ar", "ru", "hi", "zh"}
	found := make(map[string]string)
	if f, err := os.Open(corpus); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			cols := strings.Split(sc.Text(), "\t")
			if len(cols) == 3 && found[cols[0]] == "" && len([]rune(cols[2])) > 40 {
				found[cols[0]] = cols[2]
			}
		}
	}
	var out []string
	for _, lang := range want {
		if s := found[lang]; s != "" {
			out = append(out, s)
		}
	}
	if len(out) < 3 {
		return []string{
			"Good morning, the desk opens at eight.",
			"Guten Morgen, der Handel beginnt um acht.",
			"Bonjour, la salle ouvre à huit heures.",
			"おはようございます。取引は八時に始まります。",
		}
	}
	return out
}

// narrator writes the story and remembers the first write error.
type narrator struct {
	w   io.Writer
	n   int
	err error
}

func (n *narrator) step(title string) {
	n.n++
	n.printf("\n%d. %s\n", n.n, title)
}

func (n *narrator) say(format string, args ...any) { n.printf("   "+format+"\n", args...) }

func (n *narrator) printf(format string, args ...any) {
	if n.err == nil {
		_, n.err = fmt.Fprintf(n.w, format, args...)
	}
}

// members prints the member list as c's device holds it, which is the
// list every member's device holds: each device, by person and name.
func (n *narrator) members(ctx context.Context, c *client.Client, gid candor.GroupID) error {
	ms, err := c.Members(ctx, gid)
	if err != nil {
		return err
	}
	names := map[candor.DeviceID]string{}
	for _, m := range ms {
		if _, ok := names[m.Device]; ok || m.Archive {
			continue
		}
		devs, err := c.Devices(ctx, m.User)
		if err != nil {
			return err
		}
		for _, d := range devs {
			names[d.ID] = d.Name
		}
	}
	a, err := c.Archive(ctx)
	if err != nil {
		return err
	}
	n.say("Members of the conversation, as every member's device sees them:")
	for _, m := range ms {
		if m.Archive {
			n.say("  leaf %d  %-13s keeps %s's record; opened only by %d of %d custodians", m.Leaf, "archive", a.Organisation, a.K, a.N)
			continue
		}
		n.say("  leaf %d  %-13s device %s", m.Leaf, string(m.User)+"/"+names[m.Device], m.Device)
	}
	return nil
}
