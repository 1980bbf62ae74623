// Package journalgen writes a realistic archive journal into a server
// store: an organisation of enrolled devices with certificates from its
// CA, groups of varying sizes that add the organisation's archive in their
// first commit, real MLS messages in several languages, and, along the
// way, commits that rotate keys, add and remove members, and, when asked,
// replay anchors (the archive removed and added back). Every entry goes
// through store.Store's Append as the server's delivery path makes it
// (roster, member list, Welcomes queued for each added device, the
// archive's kept as replay starting points).
//
// It serves the archive's tests and the replay benchmark
// (cmd/candor-replay-bench). The devices' MLS state lives in memory and
// dies with the generation.
package journalgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"candor"
	"candor/internal/mlsx"
	"candor/internal/pki"
	"candor/internal/store"
)

// Config configures a generation.
type Config struct {
	// Store receives the journal. Required.
	Store store.Store
	// CA issues the devices' certificates. Required.
	CA *pki.CA
	// ArchiveKeyPackage is the archive's KeyPackage, which every group
	// adds in its first commit, and ArchiveCertificate its certificate
	// (DER), under which the archive is enrolled in Store as
	// ArchiveDevice. Required.
	ArchiveKeyPackage  []byte
	ArchiveCertificate []byte
	// ArchiveDevice is the archive's device id in Store; empty means
	// "archive".
	ArchiveDevice candor.DeviceID
	// Groups is how many groups to make; at least 1.
	Groups int
	// Messages is how many application messages to send in all, spread
	// unevenly over the groups (every group gets at least one).
	Messages int
	// People is the organisation's size; zero means enough for the
	// largest group. Every fifth person has a second device.
	People int
	// MaxGroupSize bounds a group's initial size (creator included, the
	// archive not); zero means 40. Sizes are skewed small: most groups
	// have two to five members.
	MaxGroupSize int
	// CommitEvery is the mean number of messages between two commits of
	// a group after its first; zero means 1,000.
	CommitEvery int
	// AnchorEvery, when not zero, is the mean number of messages between
	// two replay anchors of a group: a commit that removes the archive's
	// leaf, then one that adds its KeyPackage again, which gives the
	// archive a fresh Welcome, as the server's anchors do (there the
	// server proposes the removal; the commits are the same).
	AnchorEvery int
	// Texts are the messages' texts, picked at random; nil means Builtin.
	Texts []Text
	// Start is the server time of the first entry of every group, and Step
	// the time between two entries of a group; zero means the time
	// Generate starts and one second.
	Start time.Time
	Step  time.Duration
	// Seed makes the choices (sizes, senders, texts, commits) repeatable;
	// keys and ciphertexts are fresh each run.
	Seed uint64
	// Workers is how many groups are made at once; zero means GOMAXPROCS.
	Workers int
	// Sent, when not nil, is told of every application message appended.
	// It is called from several goroutines.
	Sent func(Sent)
	// Progress, when not nil, is told how many messages were just
	// appended, every few hundred. It is called from several goroutines.
	Progress func(n int)
}

// Sent is one application message as the generator sent it.
type Sent struct {
	Group  candor.GroupID
	Seq    uint64
	Epoch  candor.Epoch
	User   candor.UserID
	Device candor.DeviceID
	Time   time.Time
	Text   string
}

// Result is what a generation made.
type Result struct {
	Groups   []candor.GroupID
	Devices  int // enrolled, the archive not counted
	Messages int
	Commits  int // anchors' two commits included
	Anchors  int
}

// content is what candor's clients encrypt (client/content.go).
type content struct {
	Text string `json:"text"`
}

type device struct {
	id     candor.DeviceID
	user   candor.UserID
	cert   []byte
	mls    *mlsx.Device
	person int
}

// Generate writes the journal. It stops at the first error.
func Generate(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Store == nil || cfg.CA == nil || cfg.ArchiveKeyPackage == nil || cfg.ArchiveCertificate == nil {
		return Result{}, fmt.Errorf("journalgen: a store, a CA and the archive's key package and certificate are required: %w", candor.ErrInvalid)
	}
	if cfg.Groups < 1 || cfg.Messages < cfg.Groups {
		return Result{}, fmt.Errorf("journalgen: need at least one group and one message per group: %w", candor.ErrInvalid)
	}
	if cfg.ArchiveDevice == "" {
		cfg.ArchiveDevice = "archive"
	}
	if cfg.MaxGroupSize == 0 {
		cfg.MaxGroupSize = 40
	}
	if cfg.MaxGroupSize < 2 {
		return Result{}, fmt.Errorf("journalgen: groups need at least two members: %w", candor.ErrInvalid)
	}
	if cfg.People == 0 {
		cfg.People = max(cfg.MaxGroupSize+10, 50)
	}
	if cfg.People < cfg.MaxGroupSize+1 {
		return Result{}, fmt.Errorf("journalgen: %d people cannot fill a group of %d and add to it: %w", cfg.People, cfg.MaxGroupSize, candor.ErrInvalid)
	}
	if cfg.CommitEvery == 0 {
		cfg.CommitEvery = 1000
	}
	if cfg.Texts == nil {
		cfg.Texts = Builtin
	}
	now := time.Now()
	if cfg.Start.IsZero() {
		cfg.Start = now
	}
	if cfg.Step == 0 {
		cfg.Step = time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}

	g := &generator{cfg: cfg, byPrint: make(map[[32]byte]candor.DeviceID)}
	if err := g.enrol(ctx, now); err != nil {
		return Result{}, err
	}
	counts := spread(cfg.Messages, cfg.Groups, cfg.Seed)
	res := Result{Devices: len(g.devices), Groups: make([]candor.GroupID, cfg.Groups)}
	for i := range res.Groups {
		res.Groups[i] = candor.GroupID(fmt.Sprintf("group-%05d", i))
	}
	var (
		mu       sync.Mutex
		errs     []error
		wg       sync.WaitGroup
		next     = make(chan int)
		cctx, cf = context.WithCancel(ctx)
	)
	defer cf()
	for range min(cfg.Workers, cfg.Groups) {
		wg.Go(func() {
			for i := range next {
				gr := &groupGen{gen: g, id: res.Groups[i], rng: mathrand.New(mathrand.NewPCG(cfg.Seed, uint64(i)+1)), members: make(map[*device]*mlsx.Group)}
				err := gr.run(cctx, counts[i])
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("journalgen: group %s: %w", gr.id, err))
					cf()
				}
				res.Messages += gr.messages
				res.Commits += gr.commits
				res.Anchors += gr.anchors
				mu.Unlock()
			}
		})
	}
feed:
	for i := range res.Groups {
		select {
		case next <- i:
		case <-cctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if len(errs) == 0 && ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return res, errors.Join(errs...)
}

// spread divides n messages over k groups unevenly (weights 1 to 20),
// each getting at least one.
func spread(n, k int, seed uint64) []int {
	rng := mathrand.New(mathrand.NewPCG(seed, 0))
	w := make([]int, k)
	total := 0
	for i := range w {
		w[i] = 1 + rng.IntN(20)
		total += w[i]
	}
	out := make([]int, k)
	given := 0
	for i := range out {
		out[i] = 1 + (n-k)*w[i]/total
		given += out[i]
	}
	for i := 0; given < n; i = (i + 1) % k {
		out[i]++
		given++
	}
	return out
}

type generator struct {
	cfg     Config
	devices []*device
	persons [][]*device                  // person → devices
	byPrint map[[32]byte]candor.DeviceID // certificate fingerprint → device, as the server maps members
}

// enrol creates the organisation's devices and the archive's, each through
// an invitation, as the server's enrolment does.
func (g *generator) enrol(ctx context.Context, now time.Time) error {
	add := func(user candor.UserID, id candor.DeviceID, cert []byte) error {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		hash := sha256.Sum256(secret)
		inv := store.Invitation{ID: "journalgen-" + string(id), User: user, SecretHash: hash[:], Created: now, Expires: now.Add(time.Hour)}
		if err := g.cfg.Store.CreateInvitation(ctx, inv); err != nil {
			return err
		}
		fp := sha256.Sum256(cert)
		g.byPrint[fp] = id
		return g.cfg.Store.Enrol(ctx, inv.ID, hash[:], now, store.Device{
			ID: id, User: user, Name: string(id), Certificate: cert, Fingerprint: fp[:], EnrolledAt: now,
		})
	}
	if err := add(pki.ArchiveName, g.cfg.ArchiveDevice, g.cfg.ArchiveCertificate); err != nil {
		return fmt.Errorf("journalgen: enrolling the archive: %w", err)
	}
	for p := range g.cfg.People {
		user := candor.UserID(fmt.Sprintf("person%04d", p))
		n := 1
		if p%5 == 4 {
			n = 2
		}
		var mine []*device
		for d := range n {
			id := candor.DeviceID(fmt.Sprintf("%s.%c", user, 'a'+d))
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			cert, err := g.cfg.CA.Issue(user, id, &key.PublicKey, now)
			if err != nil {
				return fmt.Errorf("journalgen: certifying %s: %w", id, err)
			}
			v := mlsx.ValidatorFunc(func(context.Context, candor.GroupID, mlsx.Member) error { return nil })
			dev, err := mlsx.NewDevice(ctx, mlsx.Config{Identity: mlsx.Identity{Key: key, Chain: [][]byte{cert}}, Store: NewMemStore(), Validator: v})
			if err != nil {
				return err
			}
			if err := add(user, id, cert); err != nil {
				return fmt.Errorf("journalgen: enrolling %s: %w", id, err)
			}
			d := &device{id: id, user: user, cert: cert, mls: dev, person: p}
			g.devices = append(g.devices, d)
			mine = append(mine, d)
		}
		g.persons = append(g.persons, mine)
	}
	return nil
}

// groupGen makes one group's log. It is run by one goroutine.
type groupGen struct {
	gen      *generator
	id       candor.GroupID
	rng      *mathrand.Rand
	roster   *mlsx.Roster
	head     uint64
	members  map[*device]*mlsx.Group
	order    []*device // members in the order they joined, for picking
	messages int
	commits  int
	anchors  int
}

func (gr *groupGen) time(seq uint64) time.Time {
	return gr.gen.cfg.Start.Add(time.Duration(seq-1) * gr.gen.cfg.Step)
}

func (gr *groupGen) run(ctx context.Context, messages int) error {
	cfg := gr.gen.cfg
	size := groupSize(gr.rng, cfg.MaxGroupSize)
	people := gr.rng.Perm(cfg.People)[:size]
	creator := gr.gen.persons[people[0]][0]
	g, err := creator.mls.CreateGroup(ctx, gr.id, mlsx.GroupOptions{})
	if err != nil {
		return err
	}
	gr.roster = mlsx.NewRoster(gr.id, mlsx.DefaultSuite, g.Members()[0])
	raw, err := json.Marshal(gr.roster)
	if err != nil {
		return err
	}
	if err := cfg.Store.CreateGroup(ctx, store.Group{ID: gr.id, Roster: raw, Created: cfg.Start}, creator.id); err != nil {
		return err
	}
	gr.members[creator] = g
	gr.order = append(gr.order, creator)

	// The first commit adds every other member's devices and the archive.
	var joining []*device
	for _, p := range people[1:] {
		joining = append(joining, gr.gen.persons[p]...)
	}
	joining = append(joining, gr.gen.persons[people[0]][1:]...)
	if err := gr.commit(ctx, creator, joining, nil, addArchive); err != nil {
		return fmt.Errorf("first commit: %w", err)
	}

	until, anchor := gr.nextCommit(), gr.nextAnchor()
	reported := 0
	for sent := 0; sent < messages; sent++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if until == 0 {
			if err := gr.change(ctx); err != nil {
				return err
			}
			until = gr.nextCommit()
		}
		until--
		if anchor == 0 {
			if err := gr.anchor(ctx); err != nil {
				return fmt.Errorf("anchor: %w", err)
			}
			anchor = gr.nextAnchor()
		}
		anchor--
		if err := gr.send(ctx); err != nil {
			return err
		}
		if cfg.Progress != nil && sent-reported >= 500 {
			cfg.Progress(sent - reported)
			reported = sent
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(messages - reported)
	}
	return nil
}

// groupSize is skewed small: 60% of groups have 2 to 5 members, 30% up to
// 20, the rest up to max.
func groupSize(rng *mathrand.Rand, most int) int {
	var n int
	switch r := rng.IntN(10); {
	case r < 6:
		n = 2 + rng.IntN(4)
	case r < 9:
		n = 6 + rng.IntN(15)
	default:
		n = 21 + rng.IntN(max(most-20, 1))
	}
	return min(n, most)
}

func (gr *groupGen) nextCommit() int {
	every := gr.gen.cfg.CommitEvery
	return every/2 + gr.rng.IntN(every+1)
}

// nextAnchor is how many messages until the next anchor; -1 (never) when
// Config.AnchorEvery is zero.
func (gr *groupGen) nextAnchor() int {
	every := gr.gen.cfg.AnchorEvery
	if every == 0 {
		return -1
	}
	return every/2 + gr.rng.IntN(every+1)
}

// anchor has random members remove the archive's leaf and add its
// KeyPackage back, in two commits: the library refuses a Remove and an
// Add of one signature key in one commit.
func (gr *groupGen) anchor(ctx context.Context) error {
	if err := gr.commit(ctx, gr.order[gr.rng.IntN(len(gr.order))], nil, nil, removeArchive); err != nil {
		return err
	}
	if err := gr.commit(ctx, gr.order[gr.rng.IntN(len(gr.order))], nil, nil, addArchive); err != nil {
		return err
	}
	gr.anchors++
	return nil
}

// send has a random member send a random text.
func (gr *groupGen) send(ctx context.Context) error {
	cfg := gr.gen.cfg
	d := gr.order[gr.rng.IntN(len(gr.order))]
	text := cfg.Texts[gr.rng.IntN(len(cfg.Texts))].Text
	plain, err := json.Marshal(content{Text: text})
	if err != nil {
		return err
	}
	g := gr.members[d]
	msg, err := g.Encrypt(ctx, plain)
	if err != nil {
		return fmt.Errorf("%s encrypting: %w", d.id, err)
	}
	seq := gr.head + 1
	e := store.Entry{Epoch: g.Epoch(), Sender: d.id, Time: gr.time(seq), Message: msg}
	if _, err := cfg.Store.Append(ctx, store.AppendRequest{Group: gr.id, PrevHead: gr.head, Entry: e}); err != nil {
		return err
	}
	gr.head = seq
	gr.messages++
	if cfg.Sent != nil {
		cfg.Sent(Sent{Group: gr.id, Seq: seq, Epoch: e.Epoch, User: d.user, Device: d.id, Time: e.Time, Text: text})
	}
	return nil
}

// change makes one commit by a random member: half rotate its keys, a
// quarter add a person's devices, a quarter remove a member device.
func (gr *groupGen) change(ctx context.Context) error {
	committer := gr.order[gr.rng.IntN(len(gr.order))]
	switch r := gr.rng.IntN(4); {
	case r == 2:
		var outside []int
		for p, devs := range gr.gen.persons {
			if !slices.ContainsFunc(devs, func(d *device) bool { return gr.members[d] != nil }) {
				outside = append(outside, p)
			}
		}
		if len(outside) > 0 {
			return gr.commit(ctx, committer, gr.gen.persons[outside[gr.rng.IntN(len(outside))]], nil, keepArchive)
		}
	case r == 3 && len(gr.order) > 2:
		var others []*device
		for _, d := range gr.order {
			if d != committer {
				others = append(others, d)
			}
		}
		return gr.commit(ctx, committer, nil, others[gr.rng.IntN(len(others))], keepArchive)
	}
	return gr.commit(ctx, committer, nil, nil, keepArchive)
}

// archiveChange is what a commit does with the archive's leaf.
type archiveChange int

const (
	keepArchive archiveChange = iota
	addArchive
	removeArchive
)

// commit has committer add the devices in add, or remove one device, or
// neither (a key rotation), and add or remove the archive as archive
// says; appends it
// with the roster, member list and Welcomes the server would store; and
// brings every member device along.
func (gr *groupGen) commit(ctx context.Context, committer *device, add []*device, remove *device, archive archiveChange) error {
	cfg := gr.gen.cfg
	g := gr.members[committer]
	var opts mlsx.CommitOptions
	for _, d := range add {
		kps, err := d.mls.KeyPackages(ctx, 1)
		if err != nil {
			return err
		}
		opts.Add = append(opts.Add, kps[0])
	}
	if archive == addArchive {
		opts.Add = append(opts.Add, cfg.ArchiveKeyPackage)
	}
	var drop []byte
	switch {
	case remove != nil:
		drop = remove.cert
	case archive == removeArchive:
		drop = cfg.ArchiveCertificate
	}
	if drop != nil {
		for _, m := range g.Members() {
			if len(m.Credential.Chain) > 0 && string(m.Credential.Chain[0]) == string(drop) {
				opts.Remove = append(opts.Remove, m.Leaf)
			}
		}
	}
	c, err := g.Commit(ctx, opts)
	if err != nil {
		return fmt.Errorf("%s committing: %w", committer.id, err)
	}
	next, _, err := gr.roster.Apply(c.Message)
	if err != nil {
		return fmt.Errorf("following the commit: %w", err)
	}
	raw, err := json.Marshal(next)
	if err != nil {
		return err
	}
	var devices []candor.DeviceID
	for _, m := range next.Members() {
		id, ok := gr.gen.byPrint[sha256.Sum256(m.Credential.Chain[0])]
		if !ok {
			return fmt.Errorf("leaf %d is no enrolled device", m.Leaf)
		}
		devices = append(devices, id)
	}
	seq := gr.head + 1
	at := gr.time(seq)
	req := store.AppendRequest{
		Group: gr.id, PrevHead: gr.head,
		Entry:  store.Entry{Epoch: c.Epoch, Commit: true, Sender: committer.id, Time: at, Message: c.Message},
		Roster: raw, Epoch: next.Epoch, Members: devices,
	}
	for _, d := range add {
		req.Welcomes = append(req.Welcomes, gr.welcome(d.id, seq, at, c.Welcome))
	}
	if archive == addArchive {
		req.Welcomes = append(req.Welcomes, gr.welcome(cfg.ArchiveDevice, seq, at, c.Welcome))
	}
	if _, err := cfg.Store.Append(ctx, req); err != nil {
		return err
	}
	gr.head, gr.roster = seq, next
	gr.commits++
	if _, err := g.Confirm(ctx); err != nil {
		return err
	}
	for _, d := range gr.order {
		if d == committer {
			continue
		}
		if _, err := gr.members[d].Process(ctx, c.Message); err != nil {
			return fmt.Errorf("%s processing the commit: %w", d.id, err)
		}
	}
	if remove != nil {
		delete(gr.members, remove)
		gr.order = slices.DeleteFunc(gr.order, func(d *device) bool { return d == remove })
	}
	for _, d := range add {
		joined, err := d.mls.Join(ctx, c.Welcome)
		if err != nil {
			return fmt.Errorf("%s joining: %w", d.id, err)
		}
		gr.members[d] = joined
		gr.order = append(gr.order, d)
	}
	return nil
}

func (gr *groupGen) welcome(dev candor.DeviceID, seq uint64, at time.Time, data []byte) store.Welcome {
	return store.Welcome{
		ID:     fmt.Sprintf("%s-%d-%s", hex.EncodeToString([]byte(gr.id)), seq, dev),
		Device: dev, Group: gr.id, Time: at, Data: data,
	}
}
