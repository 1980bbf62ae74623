package mlsx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"candor"

	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/group"
	"github.com/thomas-vilte/mls-go/treesync"
)

// WireFormat is an MLSMessage's wire_format (RFC 9420 §6).
type WireFormat uint16

const (
	WirePublic     WireFormat = 1
	WirePrivate    WireFormat = 2
	WireWelcome    WireFormat = 3
	WireGroupInfo  WireFormat = 4
	WireKeyPackage WireFormat = 5
)

// ContentType is a group message's content_type (RFC 9420 §6).
type ContentType uint8

const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

// Info is what anyone can read from an MLSMessage without a key.
type Info struct {
	Wire WireFormat
	// Public and private messages.
	GroupID candor.GroupID
	Epoch   candor.Epoch
	Content ContentType
	// Public messages only: a private message's sender is encrypted.
	Sender Sender
	// Welcomes: the KeyPackageRefs of the devices it is for.
	NewMembers [][]byte
	// KeyPackages: its KeyPackageRef.
	KeyPackageRef []byte
	// Suite of a Welcome or KeyPackage.
	Suite Suite
}

// Inspect reads the public header of any MLSMessage. It verifies nothing:
// it is for routing and for deciding which check to apply next. Input that
// is not exactly one well-formed MLSMessage is refused with ErrMalformed.
func Inspect(msg []byte) (Info, error) {
	m, err := framing.UnmarshalMLSMessage(msg)
	if err != nil {
		return Info{}, fmt.Errorf("inspect: %w", ErrMalformed)
	}
	// Refuse trailing bytes and non-canonical encodings: what is read must
	// be what is stored and relayed. For Welcomes, GroupInfos and
	// KeyPackages the library keeps the payload as given, so each case
	// below re-encodes the decoded payload too.
	if !bytes.Equal(m.Marshal(), msg) {
		return Info{}, fmt.Errorf("inspect: not a canonical MLSMessage: %w", ErrMalformed)
	}
	switch {
	case m.PublicMessage != nil:
		c := m.PublicMessage.Content
		return Info{Wire: WirePublic, GroupID: candor.GroupID(c.GroupID), Epoch: candor.Epoch(c.Epoch),
			Content: ContentType(c.ContentType()), Sender: senderOf(c.Sender)}, nil
	case m.PrivateMessage != nil:
		p := m.PrivateMessage
		// The library does not check a PrivateMessage's cleartext
		// content_type; RFC 9420 §6 defines three.
		if p.ContentType < framing.ContentTypeApplication || p.ContentType > framing.ContentTypeCommit {
			return Info{}, fmt.Errorf("inspect: content type %d: %w", p.ContentType, ErrMalformed)
		}
		return Info{Wire: WirePrivate, GroupID: candor.GroupID(p.GroupID), Epoch: candor.Epoch(p.Epoch),
			Content: ContentType(p.ContentType)}, nil
	case m.Welcome != nil:
		w, err := group.UnmarshalWelcome(m.Welcome)
		if err != nil || !bytes.Equal(w.Marshal(), m.Welcome) {
			return Info{}, fmt.Errorf("inspect: welcome: %w", ErrMalformed)
		}
		info := Info{Wire: WireWelcome, Suite: Suite(w.CipherSuite)}
		for _, s := range w.Secrets {
			info.NewMembers = append(info.NewMembers, bytes.Clone(s.NewMember))
		}
		return info, nil
	case m.GroupInfo != nil:
		gi, err := group.UnmarshalGroupInfo(m.GroupInfo)
		if err != nil || gi.GroupContext == nil || !bytes.Equal(gi.Marshal(), m.GroupInfo) {
			return Info{}, fmt.Errorf("inspect: group info: %w", ErrMalformed)
		}
		return Info{Wire: WireGroupInfo, GroupID: candor.GroupID(gi.GroupContext.GroupID.AsSlice()),
			Epoch: candor.Epoch(gi.GroupContext.Epoch.AsUint64()), Suite: Suite(gi.GroupContext.CipherSuite)}, nil
	case m.KeyPackage != nil:
		kp, err := decodeKeyPackage(msg)
		if err != nil {
			return Info{}, fmt.Errorf("inspect: %w", err)
		}
		return Info{Wire: WireKeyPackage, KeyPackageRef: keyPackageRef(kp), Suite: Suite(kp.CipherSuite)}, nil
	}
	return Info{}, fmt.Errorf("inspect: %w", ErrMalformed)
}

// Roster is a group's member list as the server follows it without any key:
// the leaves of the ratchet tree, changed by each PublicMessage commit's
// proposals and UpdatePath (RFC 9420 §12.3). It cannot check a commit's
// signature, which covers the GroupContext the server does not hold; it
// checks what it can (the epoch, that the sender is a member, the signatures
// of new KeyPackages and of the committer's new LeafNode) and leaves the rest
// to the members, whose own member lists it must match. A Roster is a value:
// Apply returns a new one.
type Roster struct {
	GroupID candor.GroupID `json:"group_id"`
	Suite   Suite          `json:"suite"`
	Epoch   candor.Epoch   `json:"epoch"`
	// Leaves holds one entry per leaf; a blank leaf has a nil entry.
	Leaves []*Member `json:"leaves"`
	// Proposals are the current epoch's proposals, waiting for a commit to
	// reference them.
	Proposals []RosterProposal `json:"proposals,omitempty"`
}

// RosterProposal is a proposal the roster keeps until the epoch's commit.
type RosterProposal struct {
	Ref      []byte `json:"ref"`      // its ProposalRef (RFC 9420 §5.2)
	Proposal []byte `json:"proposal"` // the Proposal, encoded
	// External marks a proposal from an external sender (§12.1.8): in
	// candor, the server; otherwise a member sent it.
	External bool `json:"external,omitempty"`
}

// NewRoster starts following a group at epoch 0, when it holds only its
// creator at leaf 0. The creator tells the server its own leaf (see
// [Group.Members]); the first commit of a one-member group carries no
// UpdatePath, so the server could not learn it from the log.
func NewRoster(id candor.GroupID, suite Suite, creator Member) *Roster {
	creator.Leaf = 0
	return &Roster{GroupID: id, Suite: suite, Leaves: []*Member{&creator}}
}

// Members returns the present members in leaf order.
func (r *Roster) Members() []Member {
	var out []Member
	for _, m := range r.Leaves {
		if m != nil {
			out = append(out, *m)
		}
	}
	return out
}

func (r *Roster) clone() *Roster {
	c := *r
	c.Leaves = slices.Clone(r.Leaves)
	c.Proposals = slices.Clone(r.Proposals)
	return &c
}

// UnmarshalRoster reads a Roster stored with json.Marshal. It refuses a
// roster with no member, a leaf out of place, or trailing blank leaves.
func UnmarshalRoster(b []byte) (*Roster, error) {
	var r Roster
	if err := json.Unmarshal(b, &r); err != nil || !r.Suite.Supported() || len(r.Leaves) == 0 || r.Leaves[len(r.Leaves)-1] == nil {
		return nil, fmt.Errorf("mlsx: stored roster: %w", candor.ErrInvalid)
	}
	for i, m := range r.Leaves {
		if m != nil && m.Leaf != uint32(i) {
			return nil, fmt.Errorf("mlsx: stored roster: leaf %d out of place: %w", i, candor.ErrInvalid)
		}
	}
	return &r, nil
}

func (r *Roster) isMember(s Sender) bool {
	return !s.External && int(s.Index) < len(r.Leaves) && r.Leaves[s.Index] != nil
}

// Apply follows one PublicMessage of the group: a proposal is remembered
// for the epoch's commit, a commit yields the roster of the next epoch.
// Handshake messages sent encrypted are refused: candor's server must be
// able to follow the member list.
func (r *Roster) Apply(msg []byte) (*Roster, Info, error) {
	info, err := Inspect(msg)
	if err != nil {
		return nil, Info{}, err
	}
	if info.Wire != WirePublic {
		return nil, info, fmt.Errorf("roster: handshake messages must be public: %w", ErrPolicy)
	}
	if info.GroupID != r.GroupID {
		return nil, info, fmt.Errorf("roster: message for another group: %w", ErrMalformed)
	}
	if info.Epoch != r.Epoch {
		return nil, info, &EpochError{Got: info.Epoch, Current: r.Epoch}
	}
	m, _ := framing.UnmarshalMLSMessage(msg)
	pm := m.PublicMessage
	switch info.Content {
	case ContentProposal:
		if !info.Sender.External && !r.isMember(info.Sender) {
			return nil, info, fmt.Errorf("roster: proposal from leaf %d, not a member: %w", info.Sender.Index, ErrPolicy)
		}
		body, _ := pm.Content.ProposalData()
		if _, err := group.UnmarshalProposal(body); err != nil {
			return nil, info, fmt.Errorf("roster: proposal: %w", ErrMalformed)
		}
		ac := &framing.AuthenticatedContent{WireFormat: framing.WireFormatPublicMessage, Content: pm.Content, Auth: pm.Auth}
		next := r.clone()
		next.Proposals = append(next.Proposals, RosterProposal{
			Ref:      group.ComputeProposalRef(ac.Marshal(), r.Suite.lib()),
			Proposal: bytes.Clone(body),
			External: info.Sender.External,
		})
		return next, info, nil
	case ContentCommit:
		if !r.isMember(info.Sender) {
			return nil, info, fmt.Errorf("roster: commit from leaf %d, not a member: %w", info.Sender.Index, ErrPolicy)
		}
		next, err := r.applyCommit(pm, info.Sender.Index)
		return next, info, err
	}
	return nil, info, fmt.Errorf("roster: application data must be encrypted: %w", ErrMalformed)
}

func (r *Roster) applyCommit(pm *framing.PublicMessage, committer uint32) (*Roster, error) {
	body, _ := pm.Content.CommitData()
	c, err := group.UnmarshalCommit(body)
	if err != nil {
		return nil, fmt.Errorf("roster: commit: %w", ErrMalformed)
	}
	var proposals []*group.Proposal
	for _, por := range c.Proposals {
		switch {
		case por.Proposal != nil:
			proposals = append(proposals, por.Proposal)
		default:
			i := slices.IndexFunc(r.Proposals, func(p RosterProposal) bool { return bytes.Equal(p.Ref, por.ProposalRef) })
			if i < 0 {
				return nil, fmt.Errorf("roster: commit names a proposal the server has not seen: %w", ErrMalformed)
			}
			p, err := group.UnmarshalProposal(r.Proposals[i].Proposal)
			if err != nil {
				return nil, fmt.Errorf("roster: proposal: %w", ErrMalformed)
			}
			proposals = append(proposals, p)
		}
	}
	next := r.clone()
	next.Proposals = nil
	// Candor devices change membership only by Add and Remove, and rotate
	// keys by UpdatePath; the server refuses every other kind, Update
	// proposals included. RFC 9420 §12.3 applies removes before adds.
	for _, p := range proposals {
		if p.Type != group.ProposalTypeAdd && p.Type != group.ProposalTypeRemove {
			return nil, fmt.Errorf("roster: proposal type %d is not used by candor: %w", p.Type, ErrPolicy)
		}
	}
	for _, p := range proposals {
		if p.Type == group.ProposalTypeRemove && p.Remove != nil {
			leaf := uint32(p.Remove.Removed)
			if int(leaf) >= len(next.Leaves) || next.Leaves[leaf] == nil || leaf == committer {
				return nil, fmt.Errorf("roster: remove of leaf %d, not another member: %w", leaf, ErrMalformed)
			}
			next.Leaves[leaf] = nil
		}
	}
	for len(next.Leaves) > 1 && next.Leaves[len(next.Leaves)-1] == nil {
		next.Leaves = next.Leaves[:len(next.Leaves)-1]
	}
	for _, p := range proposals {
		if p.Type != group.ProposalTypeAdd || p.Add == nil || p.Add.KeyPackage == nil || p.Add.KeyPackage.LeafNode == nil {
			continue
		}
		kp := p.Add.KeyPackage
		if Suite(kp.CipherSuite) != r.Suite || kp.Verify(kp.CipherSuite) != nil {
			return nil, fmt.Errorf("roster: added key package does not verify: %w", ErrBadSignature)
		}
		m := &Member{Credential: credentialFromLib(kp.LeafNode.Credential), SignatureKey: bytes.Clone(kp.LeafNode.SignatureKeyBytes)}
		slot := slices.Index(next.Leaves, nil)
		if slot < 0 {
			slot = len(next.Leaves)
			next.Leaves = append(next.Leaves, nil)
		}
		m.Leaf = uint32(slot)
		next.Leaves[slot] = m
	}
	// An UpdatePath replaces the committer's leaf. Only a commit by the
	// group's one member may leave it out (RFC 9420 §12.4: a path is
	// required unless every proposal is an Add, PSK or ReInit).
	if c.Path != nil && c.Path.LeafNode != nil {
		if err := treesync.ValidateLeafNodeWithContext(c.Path.LeafNode, r.Suite.lib(), []byte(r.GroupID), committer); err != nil {
			return nil, fmt.Errorf("roster: committer's leaf node: %w", ErrBadSignature)
		}
		m := memberFromLeaf(committer, c.Path.LeafNode)
		next.Leaves[committer] = &m
	} else if len(r.Members()) > 1 || len(proposals) == 0 {
		return nil, fmt.Errorf("roster: commit without an UpdatePath: %w", ErrPolicy)
	}
	next.Epoch++
	return next, nil
}
