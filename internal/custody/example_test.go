package custody_test

import (
	"crypto/sha256"
	"fmt"
	"log"

	"candor/internal/custody"
)

// The ceremony splits a new archive seed 2-of-3; later two custodians
// approve one opening and the opener rebuilds the seed.
func Example() {
	var keys []*custody.CustodianKey
	cfg := custody.PolicyConfig{Organisation: "Example Bank", ArchiveKeyID: "archive-2026", K: 2}
	for _, name := range []string{"Ana", "Bea", "Cid"} {
		k, err := custody.GenerateCustodianKey() // each on their own machine
		if err != nil {
			log.Fatal(err)
		}
		keys = append(keys, k)
		cfg.Custodians = append(cfg.Custodians, custody.Custodian{Name: name, PublicKey: k.PublicKey()})
	}
	policy, err := custody.NewPolicy(cfg)
	if err != nil {
		log.Fatal(err)
	}

	// The ceremony.
	seed, err := custody.NewSeed()
	if err != nil {
		log.Fatal(err)
	}
	archiveKey, err := seed.SignatureKey() // certified as the archive's credential
	if err != nil {
		log.Fatal(err)
	}
	commitments, sealed, err := custody.Split(policy, seed)
	if err != nil {
		log.Fatal(err)
	}
	seed.Destroy()

	// An opening: a one-time key, a logged request, two approvals.
	opening, err := custody.NewOpeningKey()
	if err != nil {
		log.Fatal(err)
	}
	// The request as entered in the access log; it names opening.PublicKey().
	request := custody.RequestID(sha256.Sum256([]byte("case 2026-17, groups …, opening key …")))
	var approvals []*custody.Approval
	for _, i := range []int{1, 3} {
		a, err := keys[i-1].Approve(policy, commitments, sealed[i-1], request, opening.PublicKey())
		if err != nil {
			log.Fatal(err)
		}
		approvals = append(approvals, a)
	}
	rebuilt, err := custody.Reconstruct(policy, commitments, request, opening, approvals)
	if err != nil {
		log.Fatal(err)
	}
	defer rebuilt.Destroy()
	again, err := rebuilt.SignatureKey()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("archive key rebuilt:", again.Equal(archiveKey))

	// One approval is not enough.
	_, err = custody.Reconstruct(policy, commitments, request, opening, approvals[:1])
	fmt.Println(err)
	// Output:
	// archive key rebuilt: true
	// custody: fewer approvals than the policy's threshold: 1 of the 2 needed
}
