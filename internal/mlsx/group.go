package mlsx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"candor"

	"github.com/thomas-vilte/mls-go/ciphersuite"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/group"
	"github.com/thomas-vilte/mls-go/keypackages"
	"github.com/thomas-vilte/mls-go/treesync"
)

// More errors of group operations.
var (
	// ErrOwnMessage: the message was sent by this device. Senders know what
	// they sent; the ratchet that protected it is not for reading.
	ErrOwnMessage = fmt.Errorf("mlsx: message was sent by this device: %w", candor.ErrInvalid)
	// ErrReplay: this application message was already received.
	ErrReplay = fmt.Errorf("mlsx: message was already received: %w", candor.ErrConflict)
	// ErrMustCommit: proposals are pending, and RFC 9420 §12.4 forbids
	// sending application data before they are committed.
	ErrMustCommit = fmt.Errorf("mlsx: proposals are pending; commit them first: %w", candor.ErrConflict)
	// ErrCommitPending: this device's own commit awaits Confirm or Discard.
	ErrCommitPending = fmt.Errorf("mlsx: a commit of this device awaits the server's answer: %w", candor.ErrConflict)
)

// Group is one MLS group as this device (or a passive member) holds it. It
// is safe for concurrent use; operations on one group are serialised.
type Group struct {
	mu        sync.Mutex
	lg        *group.Group
	id        candor.GroupID
	store     Store
	validator Validator
	dev       *Device            // nil for a passive member
	ratchets  map[uint32]ratchet // this epoch's ratchet records, by leaf
	pending   *Commit            // this device's commit, merged in memory only
	stored    *PendingState      // a pending commit found in the Store at load
	gone      bool               // removed from the group and forgotten
}

func newGroup(lg *group.Group, store Store, v Validator, dev *Device) *Group {
	return &Group{
		lg:        lg,
		id:        candor.GroupID(lg.ID().AsSlice()),
		store:     store,
		validator: v,
		dev:       dev,
		ratchets:  make(map[uint32]ratchet),
	}
}

// load restores a group from its snapshot and the ratchet records since.
func load(ctx context.Context, id candor.GroupID, store Store, v Validator, dev *Device) (*Group, error) {
	sg, err := store.LoadGroup(ctx, id)
	if errors.Is(err, candor.ErrNotFound) {
		return nil, fmt.Errorf("loading group %s: %w", id, ErrGroupNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("mlsx: loading group %s: %w", id, err)
	}
	lg, err := unmarshalGroup(sg.State)
	if err != nil {
		return nil, fmt.Errorf("mlsx: group %s: stored state: %w: %v", id, candor.ErrInvalid, err)
	}
	if candor.Epoch(lg.Epoch().AsUint64()) != sg.Epoch {
		return nil, fmt.Errorf("mlsx: group %s: stored state is not of its epoch: %w", id, candor.ErrInvalid)
	}
	var g *Group
	if dev != nil {
		g = dev.wrap(lg)
	} else {
		g = newGroup(lg, store, v, nil)
	}
	g.stored = sg.Pending
	for leaf, rec := range sg.Ratchets {
		if rec.Epoch != sg.Epoch {
			continue
		}
		r, err := decodeRatchet(rec.Record)
		if err != nil {
			return nil, fmt.Errorf("mlsx: group %s leaf %d: %w", id, leaf, err)
		}
		g.ratchets[leaf] = r
	}
	// Never reuse a generation reserved before a crash.
	own := uint32(lg.OwnLeafIndex())
	if r, ok := g.ratchets[own]; ok {
		leaf, err := lg.SecretTree().LeafForIndex(own)
		if err != nil {
			return nil, fmt.Errorf("mlsx: group %s: %w: %v", id, candor.ErrInvalid, err)
		}
		if next := leaf.NextSequenceNumber(); next > r.next {
			r.next = next
		}
		leaf.SetSequenceNumber(r.next)
	}
	return g, nil
}

// restore throws away what is in memory and reloads the durable state: the
// one way back from a failed or refused operation.
func (g *Group) restore(ctx context.Context) error {
	fresh, err := load(ctx, g.id, g.store, g.validator, g.dev)
	if err != nil {
		return err
	}
	g.lg, g.ratchets, g.pending, g.stored = fresh.lg, fresh.ratchets, nil, fresh.stored
	return nil
}

func (g *Group) saveSnapshot(ctx context.Context) error {
	state, err := g.marshal()
	if err != nil {
		return err
	}
	return g.saveState(ctx, state)
}

// saveState saves state, a snapshot of the group as it is now.
func (g *Group) saveState(ctx context.Context, state []byte) error {
	if err := g.store.SaveGroup(ctx, g.id, g.epoch(), state); err != nil {
		return fmt.Errorf("mlsx: saving group %s: %w", g.id, err)
	}
	g.ratchets = make(map[uint32]ratchet)
	g.stored = nil
	return nil
}

// ID returns the group's id.
func (g *Group) ID() candor.GroupID { return g.id }

// Suite returns the group's ciphersuite.
func (g *Group) Suite() Suite {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Suite(g.lg.CipherSuite())
}

// Epoch returns the group's current epoch.
func (g *Group) Epoch() candor.Epoch {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.epoch()
}

func (g *Group) epoch() candor.Epoch { return candor.Epoch(g.lg.Epoch().AsUint64()) }

// OwnLeaf returns this member's leaf index.
func (g *Group) OwnLeaf() uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return uint32(g.lg.OwnLeafIndex())
}

// EpochAuthenticator returns the epoch_authenticator (RFC 9420 §8.7): equal
// for every member in the same epoch, so members can compare it out of band.
func (g *Group) EpochAuthenticator() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return bytes.Clone(g.lg.EpochAuthenticator())
}

// Members returns the group's members in leaf order.
func (g *Group) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.members()
}

func (g *Group) members() []Member {
	var out []Member
	for i := uint32(0); ; i++ {
		n := g.lg.GetTreeLeaf(group.LeafNodeIndex(i))
		if n == nil {
			break
		}
		if n.LeafData == nil || n.State != treesync.NodeStatePresent {
			continue
		}
		out = append(out, memberFromLeaf(i, n.LeafData))
	}
	return out
}

// leafSignatures maps each present leaf to its LeafNode signature, which
// changes whenever anything in the leaf does.
func (g *Group) leafSignatures() map[uint32]string {
	out := make(map[uint32]string)
	for i := uint32(0); ; i++ {
		n := g.lg.GetTreeLeaf(group.LeafNodeIndex(i))
		if n == nil {
			return out
		}
		if n.LeafData != nil && n.State == treesync.NodeStatePresent {
			out[i] = string(n.LeafData.Signature)
		}
	}
}

// validateLeaves checks every present leaf that is not in before unchanged:
// its credential must certify its key and the Validator must admit it.
func (g *Group) validateLeaves(ctx context.Context, before map[uint32]string) error {
	for i := uint32(0); ; i++ {
		n := g.lg.GetTreeLeaf(group.LeafNodeIndex(i))
		if n == nil {
			return nil
		}
		if n.LeafData == nil || n.State != treesync.NodeStatePresent {
			continue
		}
		if sig, ok := before[i]; ok && sig == string(n.LeafData.Signature) {
			continue
		}
		if err := g.admit(ctx, memberFromLeaf(i, n.LeafData)); err != nil {
			return err
		}
	}
}

func (g *Group) admit(ctx context.Context, m Member) error {
	if err := m.bindingError(); err != nil {
		return &PolicyError{Leaf: m.Leaf, Reason: err}
	}
	if err := g.validator.ValidateMember(ctx, g.id, m); err != nil {
		return &PolicyError{Leaf: m.Leaf, Reason: err}
	}
	return nil
}

// Encrypt protects an application message as a PrivateMessage and returns
// it MLSMessage-wrapped. Generations are reserved in the Store before they
// are used, reserveBlock at a time: if that write fails, nothing is
// encrypted; if the process dies, or the machine loses power, after it, the
// restarted device starts past the reservation and never uses a generation
// twice. A crash skips at most reserveBlock-1 generations, which receivers
// step over.
func (g *Group) Encrypt(ctx context.Context, plaintext []byte) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone {
		return nil, ErrGroupNotFound
	}
	if g.dev == nil {
		return nil, ErrReadOnly
	}
	if g.pending != nil {
		return nil, ErrCommitPending
	}
	if len(g.lg.StoredProposals()) > 0 {
		return nil, ErrMustCommit
	}
	own := uint32(g.lg.OwnLeafIndex())
	leaf, err := g.lg.SecretTree().LeafForIndex(own)
	if err != nil {
		return nil, fmt.Errorf("mlsx: encrypt: %v", err)
	}
	n := leaf.NextSequenceNumber()
	leaf.SetSequenceNumber(n)
	if r := g.ratchets[own]; n >= r.next {
		r.next = n + reserveBlock
		if err := g.store.SaveRatchet(ctx, g.id, g.epoch(), own, r.encode()); err != nil {
			return nil, fmt.Errorf("mlsx: reserving generations from %d: %w", n, err)
		}
		g.ratchets[own] = r
	}
	pm, err := g.lg.SendMessage(plaintext, g.dev.signer)
	if err != nil {
		return nil, translate("encrypt", err)
	}
	return framing.NewMLSMessagePrivate(pm).Marshal(), nil
}

// EventKind says what a processed message was.
type EventKind int

const (
	EventApplication EventKind = iota + 1
	EventProposal
	EventCommit
)

// Sender is who sent a message: a member's leaf, or an external sender
// (the server) by its index in the group's external_senders extension.
type Sender struct {
	External bool
	Index    uint32 // leaf index, or external sender index
}

// Event is the result of processing one message of the group's log.
type Event struct {
	Kind   EventKind
	Epoch  candor.Epoch // the epoch the message was sent in
	Sender Sender

	// Application messages.
	Plaintext  []byte
	Generation uint32

	// Commits: who joined and who left, and the epoch the group is now in.
	Added    []Member
	Removed  []Member
	NewEpoch candor.Epoch
	// SelfRemoved: the commit removed this member. The group is forgotten
	// and every later operation on it fails with ErrGroupNotFound.
	SelfRemoved bool
}

// Process applies the next message of the group's log: it decrypts an
// application message, stores a proposal, or applies a commit. A commit
// that would admit a member the Validator refuses is rejected as a whole
// with a [PolicyError], and the group stays as it was. Processing this
// device's own pending commit confirms it.
func (g *Group) Process(ctx context.Context, msg []byte) (Event, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone {
		return Event{}, ErrGroupNotFound
	}
	m, err := framing.UnmarshalMLSMessage(msg)
	if err != nil {
		return Event{}, fmt.Errorf("process: %w", ErrMalformed)
	}
	if pm, ok := m.AsPrivate(); ok {
		if !bytes.Equal(pm.GroupID, []byte(g.id)) {
			return Event{}, fmt.Errorf("process: message for another group: %w", ErrMalformed)
		}
		if pm.ContentType < framing.ContentTypeApplication || pm.ContentType > framing.ContentTypeCommit {
			return Event{}, fmt.Errorf("process: content type %d: %w", pm.ContentType, ErrMalformed)
		}
		if pm.ContentType != framing.ContentTypeApplication {
			return g.processPrivateHandshake(ctx, pm)
		}
		return g.processApplication(ctx, pm)
	}
	pm, ok := m.AsPublic()
	if !ok {
		return Event{}, fmt.Errorf("process: not a group message: %w", ErrMalformed)
	}
	if !bytes.Equal(pm.Content.GroupID, []byte(g.id)) {
		return Event{}, fmt.Errorf("process: message for another group: %w", ErrMalformed)
	}
	switch pm.Content.ContentType() {
	case framing.ContentTypeCommit:
		return g.processCommit(ctx, msg, pm)
	case framing.ContentTypeProposal:
		return g.processProposal(ctx, pm)
	default:
		return Event{}, fmt.Errorf("process: application data must be encrypted: %w", ErrMalformed)
	}
}

func (g *Group) checkEpoch(epoch uint64) error {
	if current := g.epoch(); candor.Epoch(epoch) != current {
		return &EpochError{Got: candor.Epoch(epoch), Current: current}
	}
	return nil
}

func senderOf(s framing.Sender) Sender {
	if s.Type == framing.SenderTypeExternal {
		return Sender{External: true, Index: s.SenderIndex}
	}
	return Sender{Index: s.LeafIndex}
}

func (g *Group) processApplication(ctx context.Context, pm *framing.PrivateMessage) (Event, error) {
	if g.pending != nil {
		if err := g.restore(ctx); err != nil {
			return Event{}, err
		}
	}
	if err := g.checkEpoch(pm.Epoch); err != nil {
		return Event{}, fmt.Errorf("process: %w", err)
	}
	leaf, gen, err := g.senderData(pm)
	if err != nil {
		return Event{}, fmt.Errorf("process: %w", err)
	}
	if leaf == uint32(g.lg.OwnLeafIndex()) {
		return Event{}, ErrOwnMessage
	}
	r := g.ratchets[leaf]
	if !r.fresh(uint64(gen)) {
		return Event{}, fmt.Errorf("process: leaf %d generation %d: %w", leaf, gen, ErrReplay)
	}
	plaintext, _, _, err := g.lg.ReceiveApplicationMessage(pm)
	if err != nil {
		return Event{}, translate("process", err)
	}
	r = r.receive(uint64(gen))
	if err := g.store.SaveRatchet(ctx, g.id, g.epoch(), leaf, r.encode()); err != nil {
		// The library has marked the generation used in memory; reload so a
		// retry can decrypt the message again.
		if rerr := g.restore(ctx); rerr != nil {
			return Event{}, errors.Join(err, rerr)
		}
		return Event{}, fmt.Errorf("mlsx: saving ratchet: %w", err)
	}
	g.ratchets[leaf] = r
	return Event{
		Kind:       EventApplication,
		Epoch:      candor.Epoch(pm.Epoch),
		Sender:     Sender{Index: leaf},
		Plaintext:  plaintext,
		Generation: gen,
	}, nil
}

// senderData opens a PrivateMessage's sender data (RFC 9420 §6.3.2) to learn
// the sender's leaf and generation before the content is decrypted, so a
// replay is refused without touching the ratchet.
func (g *Group) senderData(pm *framing.PrivateMessage) (leaf, generation uint32, err error) {
	cs := g.lg.CipherSuite()
	secrets := g.lg.EpochSecrets()
	if secrets == nil || secrets.SenderDataSecret == nil {
		return 0, 0, ErrDecrypt
	}
	sample := pm.Ciphertext
	if len(sample) > cs.HashLength() {
		sample = sample[:cs.HashLength()]
	}
	key, err := secrets.SenderDataSecret.KdfExpandLabel("key", sample, cs.AEADKeyLength())
	if err != nil {
		return 0, 0, ErrDecrypt
	}
	defer key.SecureZero()
	nonce, err := secrets.SenderDataSecret.KdfExpandLabel("nonce", sample, cs.AEADNonceLength())
	if err != nil {
		return 0, 0, ErrDecrypt
	}
	defer nonce.SecureZero()
	aad := appendVarBytes(nil, pm.GroupID)
	aad = appendUint64(aad, pm.Epoch)
	aad = append(aad, byte(pm.ContentType))
	plain, err := ciphersuite.DecryptWithCipherSuite(key.AsSlice(), nonce.AsSlice(), pm.EncryptedSenderData, aad, cs)
	if err != nil {
		return 0, 0, ErrDecrypt
	}
	sd, err := framing.UnmarshalSenderData(plain)
	if err != nil {
		return 0, 0, ErrDecrypt
	}
	return sd.LeafIndex, sd.Generation, nil
}

// processPrivateHandshake handles a proposal or commit sent encrypted. Candor
// devices send handshake messages only in public, so the server can follow
// the member list, and refuse encrypted ones. Passive members follow whatever
// valid history they are given.
func (g *Group) processPrivateHandshake(ctx context.Context, pm *framing.PrivateMessage) (Event, error) {
	if g.dev != nil {
		return Event{}, fmt.Errorf("process: handshake messages must be public: %w", ErrPolicy)
	}
	if err := g.checkEpoch(pm.Epoch); err != nil {
		return Event{}, fmt.Errorf("process: %w", err)
	}
	before := g.leafSignatures()
	oldMembers := g.members()
	if err := g.lg.ProcessPrivateMessage(pm); err != nil {
		return Event{}, errors.Join(translate("process", err), g.restore(ctx))
	}
	kind := EventProposal
	if pm.ContentType == framing.ContentTypeCommit {
		kind = EventCommit
	}
	return g.afterHandshake(ctx, kind, candor.Epoch(pm.Epoch), Sender{}, before, oldMembers)
}

func (g *Group) processProposal(ctx context.Context, pm *framing.PublicMessage) (Event, error) {
	if g.pending != nil {
		if err := g.restore(ctx); err != nil {
			return Event{}, err
		}
	}
	if err := g.checkEpoch(pm.Content.Epoch); err != nil {
		return Event{}, fmt.Errorf("process: %w", err)
	}
	body, _ := pm.Content.ProposalData()
	p, err := group.UnmarshalProposal(body)
	if err != nil {
		return Event{}, fmt.Errorf("process: proposal: %w", ErrMalformed)
	}
	if err := g.allowProposal(ctx, p); err != nil {
		return Event{}, err
	}
	if err := g.lg.ProcessPublicMessage(pm); err != nil {
		return Event{}, errors.Join(translate("process", err), g.restore(ctx))
	}
	// A commit this device sent before the proposal arrived may still be
	// accepted after it: keep its durable state across the new snapshot.
	stored := g.stored
	if err := g.saveSnapshot(ctx); err != nil {
		return Event{}, err
	}
	if stored != nil {
		if err := g.store.SavePending(ctx, g.id, stored.Commit, stored.State); err != nil {
			return Event{}, fmt.Errorf("mlsx: keeping pending commit: %w", err)
		}
		g.stored = stored
	}
	return Event{Kind: EventProposal, Epoch: candor.Epoch(pm.Content.Epoch), Sender: senderOf(pm.Content.Sender)}, nil
}

// allowProposal applies candor's rules to a proposal. A device accepts only
// Add, Remove and Update, and admits a new member only if the Validator
// does; a passive member replays history and applies no rule of kind.
func (g *Group) allowProposal(ctx context.Context, p *group.Proposal) error {
	switch p.Type {
	case group.ProposalTypeAdd:
		if p.Add == nil || p.Add.KeyPackage == nil || p.Add.KeyPackage.LeafNode == nil {
			return fmt.Errorf("process: add proposal: %w", ErrMalformed)
		}
		ln := p.Add.KeyPackage.LeafNode
		return g.admit(ctx, Member{Leaf: ^uint32(0), Credential: credentialFromLib(ln.Credential), SignatureKey: ln.SignatureKeyBytes})
	case group.ProposalTypeRemove, group.ProposalTypeUpdate:
		return nil
	}
	if g.dev != nil {
		return fmt.Errorf("process: proposal type %d: %w", p.Type, ErrPolicy)
	}
	return nil
}

func (g *Group) processCommit(ctx context.Context, msg []byte, pm *framing.PublicMessage) (Event, error) {
	if g.pending != nil {
		if bytes.Equal(msg, g.pending.Message) {
			return g.confirm(ctx)
		}
		if err := g.restore(ctx); err != nil {
			return Event{}, err
		}
	}
	if g.stored != nil && bytes.Equal(msg, g.stored.Commit) {
		return g.adoptStored(ctx)
	}
	if err := g.checkEpoch(pm.Content.Epoch); err != nil {
		return Event{}, fmt.Errorf("process: %w", err)
	}
	if g.removesSelf(pm) {
		return g.removed(ctx, pm)
	}
	before := g.leafSignatures()
	oldMembers := g.members()
	if err := g.lg.ProcessPublicMessage(pm); err != nil {
		return Event{}, errors.Join(translate("process", err), g.restore(ctx))
	}
	return g.afterHandshake(ctx, EventCommit, candor.Epoch(pm.Content.Epoch), senderOf(pm.Content.Sender), before, oldMembers)
}

// removesSelf reports whether a commit removes this member, by a proposal
// inline or by reference.
func (g *Group) removesSelf(pm *framing.PublicMessage) bool {
	body, _ := pm.Content.CommitData()
	c, err := group.UnmarshalCommit(body)
	if err != nil {
		return false
	}
	own := g.lg.OwnLeafIndex()
	stored := g.lg.StoredProposals()
	for _, por := range c.Proposals {
		p := por.Proposal
		for _, sp := range stored {
			if p == nil && sp.Ref != nil && bytes.Equal(sp.Ref, por.ProposalRef) {
				p = sp.Proposal
			}
		}
		if p != nil && p.Type == group.ProposalTypeRemove && p.Remove != nil && p.Remove.Removed == own {
			return true
		}
	}
	return false
}

// removed handles the commit that removes this member. A removed member
// cannot follow the group past it (it receives none of the new epoch's
// secrets), so, after checking the commit's signature, it forgets the group:
// the state only holds keys that should no longer exist.
func (g *Group) removed(ctx context.Context, pm *framing.PublicMessage) (Event, error) {
	if err := g.lg.VerifyPublicMessage(pm); err != nil {
		return Event{}, translate("process", err)
	}
	var self []Member
	for _, m := range g.members() {
		if m.Leaf == uint32(g.lg.OwnLeafIndex()) {
			self = append(self, m)
		}
	}
	if err := g.store.DeleteGroup(ctx, g.id); err != nil {
		return Event{}, fmt.Errorf("mlsx: forgetting group %s: %w", g.id, err)
	}
	g.gone = true
	return Event{
		Kind:        EventCommit,
		Epoch:       candor.Epoch(pm.Content.Epoch),
		Sender:      senderOf(pm.Content.Sender),
		Removed:     self,
		SelfRemoved: true,
	}, nil
}

// afterHandshake checks what a handshake message changed and saves it, or
// restores the group as it was.
func (g *Group) afterHandshake(ctx context.Context, kind EventKind, epoch candor.Epoch, sender Sender, before map[uint32]string, oldMembers []Member) (Event, error) {
	ev := Event{Kind: kind, Epoch: epoch, Sender: sender}
	if kind == EventCommit {
		if g.dev != nil {
			for _, p := range g.lg.LastCommittedProposals() {
				if err := g.allowProposal(ctx, p); err != nil {
					return Event{}, errors.Join(err, g.restore(ctx))
				}
			}
		}
		if err := g.validateLeaves(ctx, before); err != nil {
			return Event{}, errors.Join(err, g.restore(ctx))
		}
		ev.Added, ev.Removed = diffMembers(oldMembers, g.members())
		ev.NewEpoch = g.epoch()
	}
	if err := g.saveSnapshot(ctx); err != nil {
		return Event{}, errors.Join(err, g.restore(ctx))
	}
	return ev, nil
}

// diffMembers lists the members in after but not before (joined, or whose
// leaf now holds another credential) and those in before but not after.
func diffMembers(before, after []Member) (added, removed []Member) {
	key := func(m Member) string { return fmt.Sprint(m.Leaf, "/", string(m.SignatureKey)) }
	had := make(map[string]bool, len(before))
	for _, m := range before {
		had[key(m)] = true
	}
	has := make(map[string]bool, len(after))
	for _, m := range after {
		has[key(m)] = true
		if !had[key(m)] {
			added = append(added, m)
		}
	}
	for _, m := range before {
		if !has[key(m)] {
			removed = append(removed, m)
		}
	}
	return added, removed
}

// CommitOptions says what a commit changes. An empty CommitOptions rotates
// this device's keys: the commit carries only an UpdatePath.
type CommitOptions struct {
	Add    [][]byte // MLSMessage-wrapped KeyPackages of the devices to add
	Remove []uint32 // leaves to remove
}

// ProposedRemovals returns the leaves that proposals received and not yet
// committed remove. Commit takes those proposals in by reference, and the
// library refuses a commit that also removes one of their leaves itself.
func (g *Group) ProposedRemovals() []uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []uint32
	for _, sp := range g.lg.StoredProposals() {
		if p := sp.Proposal; p != nil && p.Type == group.ProposalTypeRemove && p.Remove != nil {
			out = append(out, uint32(p.Remove.Removed))
		}
	}
	return out
}

// Commit is a commit this device made, not yet confirmed.
type Commit struct {
	Message []byte       // the commit, a PublicMessage, for the group's log
	Welcome []byte       // for the added devices; nil when nobody is added
	Epoch   candor.Epoch // the epoch the commit ends
	Added   []Member
	Removed []Member

	state []byte // the snapshot of the epoch it leads to, saved as pending
}

// Commit makes a commit of opts and of every proposal received and not yet
// committed (removals the server proposed, for instance), all in one. It
// checks every added device with the Validator first. The group moves to the
// new epoch in memory only; the caller sends Message to the server and then
// calls Confirm when the server accepts it, or Discard when another commit
// won the epoch. Until then the group refuses to encrypt.
func (g *Group) Commit(ctx context.Context, opts CommitOptions) (*Commit, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone {
		return nil, ErrGroupNotFound
	}
	if g.dev == nil {
		return nil, ErrReadOnly
	}
	if g.pending != nil {
		return nil, ErrCommitPending
	}
	own := uint32(g.lg.OwnLeafIndex())
	present := g.leafSignatures()
	for _, leaf := range opts.Remove {
		if _, ok := present[leaf]; !ok || leaf == own {
			return nil, fmt.Errorf("mlsx: commit: leaf %d is not another member: %w", leaf, candor.ErrInvalid)
		}
	}
	var kps []*keypackages.KeyPackage
	for _, raw := range opts.Add {
		info, err := ParseKeyPackage(raw, g.dev.now())
		if err != nil {
			return nil, fmt.Errorf("mlsx: commit: %w", err)
		}
		if info.Suite != Suite(g.lg.CipherSuite()) {
			return nil, fmt.Errorf("mlsx: commit: key package of suite %s: %w", info.Suite, candor.ErrInvalid)
		}
		kp, _ := decodeKeyPackage(raw)
		if err := g.admit(ctx, Member{Leaf: ^uint32(0), Credential: info.Credential, SignatureKey: kp.LeafNode.SignatureKeyBytes}); err != nil {
			return nil, err
		}
		kps = append(kps, kp)
	}
	for _, sp := range g.lg.StoredProposals() {
		if err := g.allowProposal(ctx, sp.Proposal); err != nil {
			return nil, err
		}
	}
	c, err := g.commit(ctx, kps, opts.Remove)
	if err != nil {
		return nil, errors.Join(err, g.restore(ctx))
	}
	return c, nil
}

func (g *Group) commit(ctx context.Context, kps []*keypackages.KeyPackage, remove []uint32) (*Commit, error) {
	epoch := g.epoch()
	oldMembers := g.members()
	for _, leaf := range remove {
		if _, err := g.lg.RemoveMember(group.LeafNodeIndex(leaf)); err != nil {
			return nil, translate("commit", err)
		}
	}
	for _, kp := range kps {
		if _, err := g.lg.AddMember(kp); err != nil {
			return nil, translate("commit", err)
		}
	}
	staged, err := g.lg.Commit(g.dev.signer, g.dev.signer.PublicKey(), nil)
	if err != nil {
		return nil, translate("commit", err)
	}
	var joiners []*keypackages.KeyPackage
	for _, p := range staged.Proposals() {
		if p.Type == group.ProposalTypeAdd && p.Add != nil {
			joiners = append(joiners, p.Add.KeyPackage)
		}
	}
	joinerSecret := staged.JoinerSecret()
	message := framing.NewMLSMessagePublic(&framing.PublicMessage{
		Content:       staged.AuthenticatedContent().Content,
		Auth:          staged.AuthenticatedContent().Auth,
		MembershipTag: staged.MembershipTag(),
	}).Marshal()
	if err := g.lg.MergeCommit(staged); err != nil {
		return nil, translate("commit", err)
	}
	c := &Commit{Message: message, Epoch: epoch}
	if len(joiners) > 0 {
		w, err := g.lg.CreateWelcomeWithOpts(joiners, g.dev.signer,
			group.WithJoinerSecret(joinerSecret),
			group.WithPSKIDs(staged.PskIDs()),
			group.WithPSKSecret(staged.RawPskSecret()),
			group.WithStagedCommit(staged))
		if err != nil {
			return nil, translate("commit: welcome", err)
		}
		c.Welcome = (&framing.MLSMessage{Welcome: w.Marshal()}).Marshal()
	}
	c.Added, c.Removed = diffMembers(oldMembers, g.members())
	state, err := g.marshal()
	if err != nil {
		return nil, err
	}
	if err := g.store.SavePending(ctx, g.id, message, state); err != nil {
		return nil, fmt.Errorf("mlsx: saving pending commit: %w", err)
	}
	c.state = state
	g.pending = c
	return c, nil
}

// Confirm makes this device's pending commit durable: the server accepted
// it. Processing the commit from the log does the same.
func (g *Group) Confirm(ctx context.Context) (Event, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending == nil {
		// Processing another message since Commit set the in-memory commit
		// aside; its durable state is still there.
		if g.stored != nil {
			return g.adoptStored(ctx)
		}
		return Event{}, fmt.Errorf("mlsx: no pending commit: %w", candor.ErrNotFound)
	}
	return g.confirm(ctx)
}

func (g *Group) confirm(ctx context.Context) (Event, error) {
	c := g.pending
	if err := g.saveState(ctx, c.state); err != nil {
		return Event{}, err
	}
	g.pending = nil
	return Event{
		Kind:     EventCommit,
		Epoch:    c.Epoch,
		Sender:   Sender{Index: uint32(g.lg.OwnLeafIndex())},
		Added:    c.Added,
		Removed:  c.Removed,
		NewEpoch: g.epoch(),
	}, nil
}

// adoptStored confirms a commit this device sent before a restart.
func (g *Group) adoptStored(ctx context.Context) (Event, error) {
	epoch := g.epoch()
	oldMembers := g.members()
	lg, err := unmarshalGroup(g.stored.State)
	if err != nil {
		return Event{}, fmt.Errorf("mlsx: pending commit state: %w: %v", candor.ErrInvalid, err)
	}
	lg.SetPaddingSize(g.lg.PaddingSize())
	g.lg = lg
	if err := g.saveState(ctx, g.stored.State); err != nil {
		return Event{}, errors.Join(err, g.restore(ctx))
	}
	ev := Event{Kind: EventCommit, Epoch: epoch, Sender: Sender{Index: uint32(lg.OwnLeafIndex())}, NewEpoch: g.epoch()}
	ev.Added, ev.Removed = diffMembers(oldMembers, g.members())
	return ev, nil
}

// Discard drops this device's pending commit: another commit won the
// epoch. Proposals received before are kept for the next commit.
func (g *Group) Discard(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending == nil {
		return nil
	}
	return g.restore(ctx)
}

// marshal takes a snapshot of the group for the Store: the library's
// state and, beside it, the group's PSK cache. The library writes that cache
// inside its state as a JSON object keyed by raw PSK ids, and encoding/json
// replaces the bytes of a key that are not UTF-8, so a resumption PSK (keyed
// by the binary group id and epoch) would not survive a reload. Devices use
// no PSKs and keep none; passive members keep them all, since the history
// they replay may use them.
func (g *Group) marshal() ([]byte, error) {
	state, err := g.lg.MarshalState()
	if err != nil {
		return nil, fmt.Errorf("mlsx: group %s: snapshot: %v", g.id, err)
	}
	var psks []PSK
	if g.dev == nil {
		for id, secret := range g.lg.CachedPsks() {
			psks = append(psks, PSK{ID: []byte(id), Secret: secret})
		}
	}
	pskJSON, err := json.Marshal(psks)
	if err != nil {
		return nil, err
	}
	// Written by hand: json.Marshal would re-validate the megabytes of
	// state it was just given.
	out := make([]byte, 0, len(state)+len(pskJSON)+20)
	out = append(out, `{"state":`...)
	out = append(out, state...)
	out = append(out, `,"psks":`...)
	out = append(out, pskJSON...)
	return append(out, '}'), nil
}

// snapshot is what marshal writes.
type snapshot struct {
	State json.RawMessage `json:"state"`
	PSKs  []PSK           `json:"psks"`
}

func unmarshalGroup(b []byte) (*group.Group, error) {
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, err
	}
	lg, err := group.UnmarshalGroupState(snap.State)
	if err != nil {
		return nil, err
	}
	for _, p := range snap.PSKs {
		lg.LoadPsk(p.ID, p.Secret)
	}
	return lg, nil
}
