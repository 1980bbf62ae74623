package ceremony

import (
	"fmt"

	"candor/internal/custody"
)

// Rehearse holds a whole ceremony in one process, custodians included:
// it makes a key pair for each name in custodians, runs the ceremony
// with cfg (whose Custodians it fills in) and has every custodian endorse
// the statement. It is for demonstrations and tests. In a real ceremony
// each custodian makes their key pair on their own machine
// (cmd/candor-custody keygen), and nobody ever holds all of them.
func Rehearse(cfg Config, custodians []string) (*Statement, []*custody.CustodianKey, []*Endorsement, error) {
	keys := make([]*custody.CustodianKey, len(custodians))
	cfg.Custodians = make([]custody.Custodian, len(custodians))
	for i, name := range custodians {
		k, err := custody.GenerateCustodianKey()
		if err != nil {
			return nil, nil, nil, err
		}
		keys[i], cfg.Custodians[i] = k, custody.Custodian{Name: name, PublicKey: k.PublicKey()}
	}
	st, err := Run(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	es := make([]*Endorsement, len(keys))
	for i, k := range keys {
		if es[i], err = Endorse(st, k); err != nil {
			return nil, nil, nil, fmt.Errorf("ceremony: custodian %q endorsing: %w", custodians[i], err)
		}
	}
	return st, keys, es, nil
}
