// Package demo runs candor's demonstration: an organisation, its people and
// their devices, and one conversation, narrated step by step in plain words.
// Everything is real (certificates, MLS groups, encryption, durable state)
// but in memory and in one process; the server comes with a later version.
package demo

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"candor"
	"candor/internal/devstore"
	"candor/internal/mlsx"
	"candor/internal/pki"
)

// Config configures a demonstration run.
type Config struct {
	Out io.Writer // where the narration goes
	// Dir is a folder for the devices' databases; it must exist.
	Dir string
	// Corpus is the multilingual snippet file (udhr-snippets.tsv); when it
	// cannot be read, built-in sentences are used.
	Corpus string
}

// device is one enrolled device in the demonstration.
type device struct {
	name  pki.Device
	dev   *mlsx.Device
	store *devstore.Store
	group *mlsx.Group
}

// Run narrates the demonstration to cfg.Out.
func Run(ctx context.Context, cfg Config) (err error) {
	out := &narrator{w: cfg.Out}
	now := time.Now()

	out.step("An organisation and its certificate authority")
	ca, err := pki.NewCA("Example Bank", now)
	if err != nil {
		return err
	}
	out.say("Example Bank runs its own CA. Every device that joins a conversation holds a certificate from it;")
	out.say("a device without one cannot be a member, and every member can see who the others are.")

	validator := mlsx.ValidatorFunc(func(ctx context.Context, _ candor.GroupID, m mlsx.Member) error {
		if m.Credential.Kind != mlsx.CredentialX509 {
			return errors.New("not a device certificate")
		}
		_, err := ca.Verify(m.Credential.Chain[0], time.Now())
		return err
	})

	out.step("Enrolling devices")
	var devices []*device
	for _, who := range []pki.Device{{User: "alice", Device: "laptop"}, {User: "bob", Device: "laptop"}, {User: "bob", Device: "phone"}, {User: "carol", Device: "desk"}} {
		d, err := enrol(ctx, ca, who, validator, cfg.Dir, now)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, d.store.Close()) }()
		devices = append(devices, d)
		out.say("%-13s made its own key and received a certificate; its MLS state lives in its own database.", who)
	}
	alice, bobLaptop, bobPhone, carol := devices[0], devices[1], devices[2], devices[3]

	out.step("Alice starts a conversation with Bob and Carol")
	g, err := alice.dev.CreateGroup(ctx, candor.GroupID("trading-desk"), mlsx.GroupOptions{})
	if err != nil {
		return err
	}
	alice.group = g
	var kps [][]byte
	for _, d := range devices[1:] {
		kp, err := d.dev.KeyPackages(ctx, 1)
		if err != nil {
			return err
		}
		kps = append(kps, kp[0])
	}
	c, err := g.Commit(ctx, mlsx.CommitOptions{Add: kps})
	if err != nil {
		return err
	}
	if _, err := g.Confirm(ctx); err != nil {
		return err
	}
	for _, d := range devices[1:] {
		if d.group, err = d.dev.Join(ctx, c.Welcome); err != nil {
			return fmt.Errorf("%s joining: %w", d.name, err)
		}
	}
	out.say("One commit added all three of Bob's and Carol's devices (%d bytes); each joined from the Welcome (%d bytes).", len(c.Message), len(c.Welcome))
	out.members(g)

	out.step("Messages in several languages")
	for i, text := range sentences(cfg.Corpus) {
		from := devices[i%len(devices)]
		if err := deliver(ctx, out, from, devices, text); err != nil {
			return err
		}
	}

	out.step("Carol rotates her keys")
	if err := commitAll(ctx, carol, mlsx.CommitOptions{}, devices); err != nil {
		return err
	}
	out.say("An empty commit gives the group fresh keys (post-compromise security). The group is at epoch %d.", carol.group.Epoch())
	if err := deliver(ctx, out, bobPhone, devices, "Keys rotated; all still here."); err != nil {
		return err
	}

	out.step("Bob loses his phone")
	phoneLeaf := bobPhone.group.OwnLeaf()
	if err := commitAll(ctx, bobLaptop, mlsx.CommitOptions{Remove: []uint32{phoneLeaf}}, devices); err != nil {
		return err
	}
	out.say("From his laptop, Bob removes the phone. The phone forgot the conversation's keys when it saw its removal.")
	devices = []*device{alice, bobLaptop, carol}
	secret, err := alice.group.Encrypt(ctx, []byte("The phone must not read this."))
	if err != nil {
		return err
	}
	if _, err := bobPhone.group.Process(ctx, secret); err == nil {
		return errors.New("the removed phone could read a new message")
	} else {
		out.say("A new message reaches the old phone and it cannot read it: %v.", err)
	}
	for _, d := range devices[1:] {
		if _, err := d.group.Process(ctx, secret); err != nil {
			return err
		}
	}
	out.members(alice.group)

	out.step("Everyone agrees on the state of the conversation")
	auth := alice.group.EpochAuthenticator()
	for _, d := range devices {
		if string(d.group.EpochAuthenticator()) != string(auth) {
			return fmt.Errorf("%s disagrees about the group", d.name)
		}
	}
	out.say("All %d devices derive the same epoch authenticator, %x…, which they could compare in person.", len(devices), auth[:8])

	out.step("Still to come")
	out.say("The server that carries these messages, the archive member that keeps the organisation's record —")
	out.say("visible in every member list, opened only by k of n custodians and only with an entry in a public log —")
	out.say("and the terminal chat come next. See README.md.")
	return out.err
}

func enrol(ctx context.Context, ca *pki.CA, who pki.Device, v mlsx.Validator, dir string, now time.Time) (*device, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(who.User, who.Device, &key.PublicKey, now)
	if err != nil {
		return nil, err
	}
	store, err := devstore.Open(ctx, fmt.Sprintf("%s/%s-%s.db", dir, who.User, who.Device))
	if err != nil {
		return nil, err
	}
	dev, err := mlsx.NewDevice(ctx, mlsx.Config{Identity: mlsx.Identity{Key: key, Chain: [][]byte{cert}}, Store: store, Validator: v})
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	return &device{name: who, dev: dev, store: store}, nil
}

// commitAll has d commit opts, confirms it and delivers it to the others.
func commitAll(ctx context.Context, d *device, opts mlsx.CommitOptions, all []*device) error {
	c, err := d.group.Commit(ctx, opts)
	if err != nil {
		return err
	}
	if _, err := d.group.Confirm(ctx); err != nil {
		return err
	}
	for _, o := range all {
		if o != d {
			if _, err := o.group.Process(ctx, c.Message); err != nil {
				return fmt.Errorf("%s processing a commit: %w", o.name, err)
			}
		}
	}
	return nil
}

func deliver(ctx context.Context, out *narrator, from *device, all []*device, text string) error {
	ct, err := from.group.Encrypt(ctx, []byte(text))
	if err != nil {
		return err
	}
	read := 0
	for _, d := range all {
		if d == from {
			continue
		}
		ev, err := d.group.Process(ctx, ct)
		if err != nil {
			return fmt.Errorf("%s reading from %s: %w", d.name, from.name, err)
		}
		if string(ev.Plaintext) != text {
			return fmt.Errorf("%s read something else than %s wrote", d.name, from.name)
		}
		read++
	}
	out.say("%-13s » %s", from.name, text)
	out.say("%13s   (%d bytes encrypted, read by %d devices)", "", len(ct), read)
	return nil
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

func (n *narrator) members(g *mlsx.Group) {
	n.say("Members of the conversation, as every device sees them (epoch %d):", g.Epoch())
	for _, m := range g.Members() {
		name := "unknown"
		issuer := ""
		if cert, err := m.Credential.Certificate(); err == nil {
			if d, err := pki.DeviceOf(cert); err == nil {
				name = d.String()
			}
			issuer = issuerOf(cert)
		}
		n.say("  leaf %d  %-13s certified by %s", m.Leaf, name, issuer)
	}
}

func issuerOf(cert *x509.Certificate) string { return cert.Issuer.CommonName }
