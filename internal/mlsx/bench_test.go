package mlsx_test

// Benchmarks of the adapter with durable state (devstore, SQLite in a
// temporary directory), and of the bare MLS library doing the same
// operations with no persistence and no policy: the BenchmarkBare* functions,
// with the same sub-benchmark names, so that benchstat can set them side by
// side.
//
// This file imports github.com/thomas-vilte/mls-go, which only package mlsx
// may do in production code. The baseline cannot be measured otherwise; it is
// a _test file of package mlsx_test, so nothing of it is linked into candor.
//
// Groups are of 2, 10, 100 and 1,000 members, ciphersuite 0x0002 (P-256,
// candor's). Only the committer ("alice", leaf 0) and one receiver ("bob",
// leaf 1) are real members; the others exist as the KeyPackages alice added.
// Each group is built once per process, in one commit of all its members, and
// kept in memory as the serialised states of alice and bob; each benchmark
// starts from copies of them (for the adapter: written into fresh SQLite files
// in b.TempDir). A tree built that way has blank parent nodes except on
// alice's path, so alice's commits encrypt to nearly every leaf: the worst case
// for commit cost, the same for the adapter and the baseline.
//
// A group's state grows with every epoch: mls-go v1.6.0 keeps the resumption
// PSK of every past epoch in its state, and the adapter's snapshot carries
// them a second time (about 210 bytes an epoch in all). So that results do
// not depend on -benchtime, the commit benchmarks take the group back to the
// fixture every rewindEvery commits, with the timer stopped: they measure a
// group in its first rewindEvery epochs.
//
// Run:
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/mlsx/   # CI: does it run (~25 s)
//	go test -run '^$' -bench . -benchtime 1.5s -count 3 -timeout 30m ./internal/mlsx/ | tee bench.txt
//
// To set adapter and baseline side by side, split the file and strip "Bare"
// from the baseline's names:
//
//	grep -v '^BenchmarkBare' bench.txt > adapter.txt
//	grep -v '^Benchmark[^B]' bench.txt | sed 's/^BenchmarkBare/Benchmark/' > bare.txt
//	benchstat bare.txt adapter.txt

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"candor"
	"candor/internal/devkey"
	"candor/internal/devstore"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"

	"github.com/thomas-vilte/mls-go/ciphersuite"
	"github.com/thomas-vilte/mls-go/credentials"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/group"
	"github.com/thomas-vilte/mls-go/keypackages"
)

var (
	benchSizes   = []int{2, 10, 100, 1000}
	benchSuite   = ciphersuite.CipherSuite(mlsx.DefaultSuite) // 0x0002
	benchGroupID = candor.GroupID("benchmark-group!")
	benchMessage = make([]byte, 200)
)

const (
	// addBatch is how many members BenchmarkAdd50 adds in one commit.
	addBatch = 50
	// rewindEvery is how many commits the commit benchmarks make before
	// they take the group back to the fixture.
	rewindEvery = 64
)

// benchFixture is one group of n members, built once per process.
type benchFixture struct {
	n  int
	ca *mlsxtest.CA

	// Identities: alice commits and sends, bob receives, members are the
	// other n-2, joiners are the addBatch devices BenchmarkAdd50 adds.
	alice, bob mlsx.Identity
	members    []mlsx.Identity
	joiners    [][]byte // their KeyPackages, MLSMessage-wrapped

	// The adapter's group: alice's and bob's snapshots at epoch.
	epoch                candor.Epoch
	aliceState, bobState []byte
	// The bare library's group: alice's and bob's MarshalState.
	bareAlice, bareBob []byte
	bareAliceSig       *ciphersuite.SignaturePrivateKey
}

var (
	benchMu       sync.Mutex
	benchCA       *mlsxtest.CA
	benchFixtures = map[int]*benchFixture{}
)

// fixture returns the group of n members, building it the first time.
func fixture(b *testing.B, n int) *benchFixture {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if fx := benchFixtures[n]; fx != nil {
		return fx
	}
	if benchCA == nil {
		benchCA = mlsxtest.NewCA(b, "Example Bank")
	}
	fx := &benchFixture{n: n, ca: benchCA}
	issue := func(user string) mlsx.Identity {
		id, err := fx.ca.Issue(user, "laptop")
		if err != nil {
			b.Fatal(err)
		}
		return id
	}
	fx.alice, fx.bob = issue("alice"), issue("bob")
	for i := range n - 2 {
		fx.members = append(fx.members, issue(fmt.Sprintf("member%d", i)))
	}
	for i := range addBatch {
		fx.joiners = append(fx.joiners, keyPackageOf(b, fx.ca, issue(fmt.Sprintf("joiner%d", i))))
	}
	fx.buildAdapter(b)
	fx.buildBare(b)
	benchFixtures[n] = fx
	return fx
}

// keyPackageOf makes one KeyPackage of id through the adapter.
func keyPackageOf(b *testing.B, ca *mlsxtest.CA, id mlsx.Identity) []byte {
	b.Helper()
	dev, err := mlsx.NewDevice(context.Background(), mlsx.Config{Identity: id, Store: mlsxtest.NewStore(), Validator: ca.Validator()})
	if err != nil {
		b.Fatal(err)
	}
	kps, err := dev.KeyPackages(context.Background(), 1)
	if err != nil {
		b.Fatal(err)
	}
	return kps[0]
}

// buildAdapter makes the group through the adapter, in memory: alice
// creates it and adds everybody in one commit; bob joins from the Welcome.
func (fx *benchFixture) buildAdapter(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	aliceStore, bobStore := mlsxtest.NewStore(), mlsxtest.NewStore()
	alice := benchDevice(b, fx.ca, fx.alice, aliceStore)
	bob := benchDevice(b, fx.ca, fx.bob, bobStore)
	ag, err := alice.CreateGroup(ctx, benchGroupID, mlsx.GroupOptions{})
	if err != nil {
		b.Fatal(err)
	}
	bobKPs, err := bob.KeyPackages(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	add := bobKPs
	for _, id := range fx.members {
		add = append(add, keyPackageOf(b, fx.ca, id))
	}
	c, err := ag.Commit(ctx, mlsx.CommitOptions{Add: add})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ag.Confirm(ctx); err != nil {
		b.Fatal(err)
	}
	bg, err := bob.Join(ctx, c.Welcome)
	if err != nil {
		b.Fatal(err)
	}
	if got := len(bg.Members()); got != fx.n {
		b.Fatalf("built a group of %d members, want %d", got, fx.n)
	}
	fx.epoch = ag.Epoch()
	as, err := aliceStore.LoadGroup(ctx, benchGroupID)
	if err != nil {
		b.Fatal(err)
	}
	bs, err := bobStore.LoadGroup(ctx, benchGroupID)
	if err != nil {
		b.Fatal(err)
	}
	fx.aliceState, fx.bobState = as.State, bs.State
}

func benchDevice(b *testing.B, ca *mlsxtest.CA, id mlsx.Identity, store mlsx.Store) *mlsx.Device {
	b.Helper()
	dev, err := mlsx.NewDevice(context.Background(), mlsx.Config{Identity: id, Store: store, Validator: ca.Validator()})
	if err != nil {
		b.Fatal(err)
	}
	return dev
}

// benchStorageKey encrypts the benchmarks' device databases.
var benchStorageKey = devkey.Key{1}

// adapterPair is alice and bob on durable stores, at the fixture's epoch.
type adapterPair struct {
	fx                   *benchFixture
	aliceStore, bobStore *devstore.Store
	aliceDev, bobDev     *mlsx.Device
	alice, bob           *mlsx.Group
}

// open writes the fixture's snapshots into two new SQLite files and loads
// the group from them.
func (fx *benchFixture) open(b *testing.B) *adapterPair {
	b.Helper()
	ctx := context.Background()
	p := &adapterPair{fx: fx}
	dir := b.TempDir()
	var err error
	if p.aliceStore, err = devstore.Open(ctx, dir+"/alice.db", benchStorageKey); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.aliceStore.Close() })
	if p.bobStore, err = devstore.Open(ctx, dir+"/bob.db", benchStorageKey); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.bobStore.Close() })
	p.aliceDev = benchDevice(b, fx.ca, fx.alice, p.aliceStore)
	p.bobDev = benchDevice(b, fx.ca, fx.bob, p.bobStore)
	p.rewindAlice(b)
	p.rewindBob(b)
	return p
}

// rewindAlice puts alice back to the fixture's snapshot. Only benchmarks do
// this: a real device never goes back to an epoch.
func (p *adapterPair) rewindAlice(b *testing.B) {
	b.Helper()
	p.alice = rewind(b, p.aliceStore, p.aliceDev, p.fx.epoch, p.fx.aliceState)
}

func (p *adapterPair) rewindBob(b *testing.B) {
	b.Helper()
	p.bob = rewind(b, p.bobStore, p.bobDev, p.fx.epoch, p.fx.bobState)
}

func rewind(b *testing.B, store *devstore.Store, dev *mlsx.Device, epoch candor.Epoch, state []byte) *mlsx.Group {
	b.Helper()
	ctx := context.Background()
	if err := store.SaveGroup(ctx, benchGroupID, epoch, state); err != nil {
		b.Fatal(err)
	}
	g, err := dev.Group(ctx, benchGroupID)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// buildBare makes a group of the same members with the library alone.
func (fx *benchFixture) buildBare(b *testing.B) {
	b.Helper()
	aliceKP, alicePriv := bareKeyPackage(b, fx.alice)
	bobKP, bobPriv := bareKeyPackage(b, fx.bob)
	g, err := group.NewGroup(group.NewGroupID([]byte(benchGroupID)), benchSuite, aliceKP, alicePriv)
	if err != nil {
		b.Fatal(err)
	}
	fx.bareAliceSig = ciphersuite.NewSignaturePrivateKey(fx.alice.Key)
	if _, err := g.AddMember(bobKP); err != nil {
		b.Fatal(err)
	}
	for _, id := range fx.members {
		kp, _ := bareKeyPackage(b, id)
		if _, err := g.AddMember(kp); err != nil {
			b.Fatal(err)
		}
	}
	staged, err := g.Commit(fx.bareAliceSig, fx.bareAliceSig.PublicKey(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := g.MergeCommit(staged); err != nil {
		b.Fatal(err)
	}
	w, err := bareWelcome(g, staged, fx.bareAliceSig)
	if err != nil {
		b.Fatal(err)
	}
	bg, err := group.JoinFromWelcome(w, bobKP, bobPriv, nil)
	if err != nil {
		b.Fatal(err)
	}
	if got := bg.MemberCount(); got != fx.n {
		b.Fatalf("bare group of %d members, want %d", got, fx.n)
	}
	if fx.bareAlice, err = g.MarshalState(); err != nil {
		b.Fatal(err)
	}
	if fx.bareBob, err = bg.MarshalState(); err != nil {
		b.Fatal(err)
	}
}

func bareCredential(b *testing.B, id mlsx.Identity) *credentials.CredentialWithKey {
	b.Helper()
	pub, err := id.Key.PublicKey.ECDH()
	if err != nil {
		b.Fatal(err)
	}
	return &credentials.CredentialWithKey{
		Credential:        credentials.NewX509Credential(id.Chain),
		SignatureKey:      &id.Key.PublicKey,
		PrivateKey:        id.Key,
		SignatureKeyBytes: pub.Bytes(),
	}
}

func bareKeyPackage(b *testing.B, id mlsx.Identity) (*keypackages.KeyPackage, *keypackages.KeyPackagePrivateKeys) {
	b.Helper()
	kp, priv, err := keypackages.Generate(bareCredential(b, id), benchSuite)
	if err != nil {
		b.Fatal(err)
	}
	return kp, priv
}

// bareWelcome makes the Welcome of a merged commit, as the adapter does.
func bareWelcome(g *group.Group, staged *group.StagedCommit, sig *ciphersuite.SignaturePrivateKey) (*group.Welcome, error) {
	var joiners []*keypackages.KeyPackage
	for _, p := range staged.Proposals() {
		if p.Type == group.ProposalTypeAdd && p.Add != nil {
			joiners = append(joiners, p.Add.KeyPackage)
		}
	}
	return g.CreateWelcomeWithOpts(joiners, sig,
		group.WithJoinerSecret(staged.JoinerSecret()),
		group.WithPSKIDs(staged.PskIDs()),
		group.WithPSKSecret(staged.RawPskSecret()),
		group.WithStagedCommit(staged))
}

// barePair is alice's and bob's library groups, fresh from the fixture.
type barePair struct {
	fx         *benchFixture
	alice, bob *group.Group
}

func (fx *benchFixture) openBare(b *testing.B) *barePair {
	b.Helper()
	p := &barePair{fx: fx}
	p.rewindAlice(b)
	p.rewindBob(b)
	return p
}

func (p *barePair) rewindAlice(b *testing.B) {
	b.Helper()
	p.alice = bareRewind(b, p.fx.bareAlice)
}

func (p *barePair) rewindBob(b *testing.B) {
	b.Helper()
	p.bob = bareRewind(b, p.fx.bareBob)
}

func bareRewind(b *testing.B, state []byte) *group.Group {
	b.Helper()
	g, err := group.UnmarshalGroupState(state)
	if err != nil {
		b.Fatal(err)
	}
	g.SetPaddingSize(mlsx.DefaultPadding)
	return g
}

// bareEncrypt is what the adapter's Encrypt does, without the reservation:
// protect, and wrap as an MLSMessage.
func (p *barePair) encrypt(b *testing.B) []byte {
	pm, err := p.alice.SendMessage(benchMessage, p.fx.bareAliceSig)
	if err != nil {
		b.Fatal(err)
	}
	return framing.NewMLSMessagePrivate(pm).Marshal()
}

// decrypt is what the adapter's Process does with an application message,
// without the replay check and the ratchet record.
func (p *barePair) decrypt(b *testing.B, msg []byte) {
	m, err := framing.UnmarshalMLSMessage(msg)
	if err != nil {
		b.Fatal(err)
	}
	pm, ok := m.AsPrivate()
	if !ok {
		b.Fatal("not a private message")
	}
	plain, _, _, err := p.bob.ReceiveApplicationMessage(pm)
	if err != nil {
		b.Fatal(err)
	}
	if len(plain) != len(benchMessage) {
		b.Fatalf("decrypted %d bytes, want %d", len(plain), len(benchMessage))
	}
}

// commit is an empty commit (UpdatePath only), merged, as wire bytes.
func (p *barePair) commit(b *testing.B) []byte {
	msg, _ := p.commitStaged(b)
	return msg
}

// commitStaged commits the proposals made so far, merges the commit and
// returns it as wire bytes, and staged for the Welcome.
func (p *barePair) commitStaged(b *testing.B) ([]byte, *group.StagedCommit) {
	staged, err := p.alice.Commit(p.fx.bareAliceSig, p.fx.bareAliceSig.PublicKey(), nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := framing.NewMLSMessagePublic(&framing.PublicMessage{
		Content:       staged.AuthenticatedContent().Content,
		Auth:          staged.AuthenticatedContent().Auth,
		MembershipTag: staged.MembershipTag(),
	}).Marshal()
	if err := p.alice.MergeCommit(staged); err != nil {
		b.Fatal(err)
	}
	return msg, staged
}

func (p *barePair) processCommit(b *testing.B, msg []byte) {
	m, err := framing.UnmarshalMLSMessage(msg)
	if err != nil {
		b.Fatal(err)
	}
	pm, ok := m.AsPublic()
	if !ok {
		b.Fatal("not a public message")
	}
	if err := p.bob.ProcessPublicMessage(pm); err != nil {
		b.Fatal(err)
	}
}

// forSizes runs f as one sub-benchmark per group size.
func forSizes(b *testing.B, f func(b *testing.B, fx *benchFixture)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			f(b, fixture(b, n))
		})
	}
}

// queue hands out ciphertexts made in batches with the timer stopped, for
// benchmarks of decryption alone.
type queue struct {
	next func() []byte
	msgs [][]byte
}

const queueBatch = 256

func (q *queue) pop(b *testing.B) []byte {
	if len(q.msgs) == 0 {
		b.StopTimer()
		for range queueBatch {
			q.msgs = append(q.msgs, q.next())
		}
		b.StartTimer()
	}
	m := q.msgs[0]
	q.msgs = q.msgs[1:]
	return m
}

// BenchmarkEncryptDecrypt is one 200-byte message: alice encrypts it (and
// first reserves its generation in her store) and bob decrypts it (and
// records it in his).
func BenchmarkEncryptDecrypt(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		ctx := context.Background()
		p := fx.open(b)
		for b.Loop() {
			ct, err := p.alice.Encrypt(ctx, benchMessage)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.bob.Process(ctx, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkBareEncryptDecrypt(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		p := fx.openBare(b)
		for b.Loop() {
			p.decrypt(b, p.encrypt(b))
		}
	})
}

// BenchmarkEncrypt is alice's half of BenchmarkEncryptDecrypt.
func BenchmarkEncrypt(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		ctx := context.Background()
		p := fx.open(b)
		for b.Loop() {
			if _, err := p.alice.Encrypt(ctx, benchMessage); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkBareEncrypt(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		p := fx.openBare(b)
		for b.Loop() {
			p.encrypt(b)
		}
	})
}

// BenchmarkDecrypt is bob's half of BenchmarkEncryptDecrypt. Alice's
// ciphertexts are made in batches with the timer stopped.
func BenchmarkDecrypt(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		ctx := context.Background()
		p := fx.open(b)
		q := &queue{next: func() []byte {
			ct, err := p.alice.Encrypt(ctx, benchMessage)
			if err != nil {
				b.Fatal(err)
			}
			return ct
		}}
		for b.Loop() {
			if _, err := p.bob.Process(ctx, q.pop(b)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkBareDecrypt(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		p := fx.openBare(b)
		q := &queue{next: func() []byte { return p.encrypt(b) }}
		for b.Loop() {
			p.decrypt(b, q.pop(b))
		}
	})
}

// BenchmarkCommit is a key rotation: an empty commit, which carries an
// UpdatePath, then Confirm, which makes the new epoch durable. Bob does not
// follow; each sub-benchmark starts from the fixture again.
func BenchmarkCommit(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		ctx := context.Background()
		p := fx.open(b)
		var size int
		for i := 0; b.Loop(); i++ {
			if i > 0 && i%rewindEvery == 0 {
				b.StopTimer()
				p.rewindAlice(b)
				b.StartTimer()
			}
			c, err := p.alice.Commit(ctx, mlsx.CommitOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.alice.Confirm(ctx); err != nil {
				b.Fatal(err)
			}
			size = len(c.Message)
		}
		b.ReportMetric(float64(size), "commit-bytes")
		b.ReportMetric(float64(len(fx.aliceState)), "snapshot-bytes")
	})
}

func BenchmarkBareCommit(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		p := fx.openBare(b)
		var size int
		for i := 0; b.Loop(); i++ {
			if i > 0 && i%rewindEvery == 0 {
				b.StopTimer()
				p.rewindAlice(b)
				b.StartTimer()
			}
			size = len(p.commit(b))
		}
		b.ReportMetric(float64(size), "commit-bytes")
		b.ReportMetric(float64(len(fx.bareAlice)), "snapshot-bytes")
	})
}

// BenchmarkProcessCommit is bob processing alice's key rotation, durably.
// Each iteration alice commits and confirms with the timer stopped, then bob
// processes the commit with it running.
func BenchmarkProcessCommit(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		ctx := context.Background()
		p := fx.open(b)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			if i > 0 && i%rewindEvery == 0 {
				p.rewindAlice(b)
				p.rewindBob(b)
			}
			c, err := p.alice.Commit(ctx, mlsx.CommitOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.alice.Confirm(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := p.bob.Process(ctx, c.Message); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkBareProcessCommit(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		p := fx.openBare(b)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			if i > 0 && i%rewindEvery == 0 {
				p.rewindAlice(b)
				p.rewindBob(b)
			}
			msg := p.commit(b)
			b.StartTimer()
			p.processCommit(b, msg)
		}
	})
}

// BenchmarkAdd50 is alice adding 50 devices in one commit to a group of n
// members: checking their KeyPackages and credentials, the commit with its
// UpdatePath, the Welcome, and Confirm. After each iteration alice goes back
// to the fixture's epoch with the timer stopped, so every iteration adds to a
// group of n.
func BenchmarkAdd50(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		ctx := context.Background()
		p := fx.open(b)
		var commitSize, welcomeSize int
		for b.Loop() {
			c, err := p.alice.Commit(ctx, mlsx.CommitOptions{Add: fx.joiners})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.alice.Confirm(ctx); err != nil {
				b.Fatal(err)
			}
			commitSize, welcomeSize = len(c.Message), len(c.Welcome)
			b.StopTimer()
			if len(c.Added) != addBatch {
				b.Fatalf("added %d, want %d", len(c.Added), addBatch)
			}
			p.rewindAlice(b)
			b.StartTimer()
		}
		b.ReportMetric(float64(commitSize), "commit-bytes")
		b.ReportMetric(float64(welcomeSize), "welcome-bytes")
	})
}

func BenchmarkBareAdd50(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		p := fx.openBare(b)
		var commitSize, welcomeSize int
		for b.Loop() {
			// The KeyPackages arrive as bytes, as they do for the adapter.
			for _, raw := range fx.joiners {
				m, err := framing.UnmarshalMLSMessage(raw)
				if err != nil {
					b.Fatal(err)
				}
				kp, err := keypackages.UnmarshalKeyPackage(m.KeyPackage)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.alice.AddMember(kp); err != nil {
					b.Fatal(err)
				}
			}
			msg, staged := p.commitStaged(b)
			w, err := bareWelcome(p.alice, staged, fx.bareAliceSig)
			if err != nil {
				b.Fatal(err)
			}
			welcome := (&framing.MLSMessage{Welcome: w.Marshal()}).Marshal()
			commitSize, welcomeSize = len(msg), len(welcome)
			b.StopTimer()
			p.rewindAlice(b)
			b.StartTimer()
		}
		b.ReportMetric(float64(commitSize), "commit-bytes")
		b.ReportMetric(float64(welcomeSize), "welcome-bytes")
	})
}
