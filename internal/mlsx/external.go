package mlsx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"

	"candor"

	"github.com/thomas-vilte/mls-go/ciphersuite"
	"github.com/thomas-vilte/mls-go/framing"
	"github.com/thomas-vilte/mls-go/group"
)

// ProposeRemoval makes a Remove proposal (RFC 9420 §12.1.3) for leaf, sent
// by an external sender (§12.1.8): candor's server, named at index sender
// in the group's external_senders extension, removing a revoked device. It
// needs no group state: an external sender's signature does not cover the
// GroupContext. The proposal is valid in epoch only; the next member to
// commit includes it.
func ProposeRemoval(key *ecdsa.PrivateKey, sender uint32, id candor.GroupID, epoch candor.Epoch, leaf uint32) ([]byte, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("mlsx: external sender key must be ECDSA P-256: %w", candor.ErrInvalid)
	}
	content := framing.FramedContent{
		GroupID:           []byte(id),
		Epoch:             uint64(epoch),
		Sender:            framing.Sender{Type: framing.SenderTypeExternal, SenderIndex: sender},
		AuthenticatedData: []byte{},
		Body:              framing.ProposalBody{Data: group.ProposalMarshal(group.NewRemoveProposal(group.LeafNodeIndex(leaf)))},
	}
	pm, err := framing.NewPublicMessage(content, ciphersuite.NewSignaturePrivateKey(key), nil, nil, DefaultSuite.lib())
	if err != nil {
		return nil, fmt.Errorf("mlsx: signing removal: %v", err)
	}
	return framing.NewMLSMessagePublic(pm).Marshal(), nil
}
