package translog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"

	"candor/internal/translog"
	"candor/internal/translog/sqllog"
)

// The operator appends records and signs checkpoints; a client keeps the
// last checkpoint it trusted, moves forward only with a consistency
// proof, and checks records against it.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "translog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The operator's side. A real key comes from note.GenerateKey with
	// crypto/rand and is kept secret; this one is fixed for the example.
	skey, vkey, err := note.GenerateKey(bytes.NewReader(make([]byte, 32)), "candor.example/access")
	if err != nil {
		log.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		log.Fatal(err)
	}
	db, err := sqllog.Open(ctx, filepath.Join(dir, "logs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	storage, err := db.Storage(ctx, "candor.example/access")
	if err != nil {
		log.Fatal(err)
	}
	l, err := translog.New(ctx, translog.Config{Origin: "candor.example/access", Signer: signer, Storage: storage})
	if err != nil {
		log.Fatal(err)
	}

	// The client's side: it knows the log's public key.
	key, err := note.NewVerifier(vkey)
	if err != nil {
		log.Fatal(err)
	}
	client, err := translog.NewVerifier(translog.VerifierConfig{Key: key})
	if err != nil {
		log.Fatal(err)
	}

	for _, batch := range [][]string{{"request case-17", "approval alice"}, {"approval bob", "opening case-17"}} {
		var recs [][]byte
		for _, r := range batch {
			recs = append(recs, []byte(r))
		}
		if _, err := l.Append(ctx, recs...); err != nil {
			log.Fatal(err)
		}
		// The client fetches the checkpoint with a proof from the size it
		// trusts to the new one.
		trusted, _ := client.Trusted()
		signed, proof, err := l.CheckpointSince(ctx, trusted.Size)
		if err != nil {
			log.Fatal(err)
		}
		c, err := client.Update(signed, proof)
		if errors.Is(err, translog.ErrInconsistent) {
			log.Fatalf("the log forked or rolled back: %v", err)
		} else if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("trusting %d records\n", c.Size)
	}

	// Is record 2 in the log the client trusts?
	trusted, _ := client.Trusted()
	proof, err := l.ProveInclusion(ctx, 2, trusted.Size)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.VerifyInclusion([]byte("approval bob"), proof))
	fmt.Println(errors.Is(client.VerifyInclusion([]byte("approval mallory"), proof), translog.ErrNotIncluded))
	// Output:
	// trusting 2 records
	// trusting 4 records
	// <nil>
	// true
}
