package access_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor/internal/access"
	"candor/internal/translog"
	"candor/internal/translog/sqllog"
)

// logWithRequest appends three records to a fresh access log, the request
// of sampleRequest second, and returns the bundle for it and the log's
// verifier.
func logWithRequest(t *testing.T) (*access.Bundle, note.Verifier) {
	t.Helper()
	ctx := t.Context()
	skey, vkey, err := note.GenerateKey(bytes.NewReader(make([]byte, 32)), "bank.example/candor/access")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqllog.Open(ctx, filepath.Join(t.TempDir(), "access.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := db.Storage(ctx, signer.Name())
	if err != nil {
		t.Fatal(err)
	}
	l, err := translog.New(ctx, translog.Config{Origin: signer.Name(), Signer: signer, Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	q := sampleRequest(t)
	other := *q
	other.Case = "another case"
	third := *q
	third.Case = "a third case"
	var recs [][]byte
	for _, r := range []*access.Request{&other, q, &third} {
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, enc)
	}
	if _, err := l.Append(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	proof, err := l.ProveInclusion(ctx, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &access.Bundle{Record: recs[1], Proof: proof, Checkpoint: cp}, verifier
}

func TestBundleVerifies(t *testing.T) {
	t.Parallel()
	b, key := logWithRequest(t)
	enc, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := access.ParseBundle(enc)
	if err != nil {
		t.Fatal(err)
	}
	r, c, err := parsed.Verify(key)
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != 3 {
		t.Errorf("checkpoint of %d records, want 3", c.Size)
	}
	if r.Request == nil || r.Request.Case != sampleRequest(t).Case {
		t.Fatalf("bundle gave %+v, want the sample request", r)
	}
}

// TestBundleTampered changes each part of a bundle and checks that Verify
// names the part that fails.
func TestBundleTampered(t *testing.T) {
	t.Parallel()
	_, otherKey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{1}, 32)), "bank.example/candor/access")
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, err := note.NewVerifier(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*access.Bundle)
		key    note.Verifier
		part   string
		is     error
	}{
		{"record byte", func(b *access.Bundle) { b.Record[len(b.Record)-1] ^= 1 }, nil, "inclusion proof", translog.ErrNotIncluded},
		{"proof hash", func(b *access.Bundle) { b.Proof.Hashes[0][0] ^= 1 }, nil, "inclusion proof", translog.ErrNotIncluded},
		{"index", func(b *access.Bundle) { b.Proof.Index = 2 }, nil, "inclusion proof", translog.ErrNotIncluded},
		{"checkpoint text", func(b *access.Bundle) {
			b.Checkpoint = bytes.Replace(b.Checkpoint, []byte("\n3\n"), []byte("\n4\n"), 1)
		}, nil, "checkpoint", translog.ErrBadSignature},
		{"another log's key", func(*access.Bundle) {}, wrongKey, "checkpoint", translog.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, key := logWithRequest(t)
			tt.change(b)
			if tt.key != nil {
				key = tt.key
			}
			_, _, err := b.Verify(key)
			var be *access.BundleError
			if !errors.As(err, &be) || be.Part != tt.part {
				t.Fatalf("Verify = %v, want a failure of the %s", err, tt.part)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("Verify = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.part) {
				t.Errorf("error %q does not name the %s", err, tt.part)
			}
		})
	}
}

// TestBundleBytes pins the encoding against bytes written out by hand.
func TestBundleBytes(t *testing.T) {
	t.Parallel()
	var h tlog.Hash
	for i := range h {
		h[i] = byte(i)
	}
	b := &access.Bundle{
		Record:     []byte("rec"),
		Proof:      translog.InclusionProof{Index: 1, Size: 2, Hashes: []tlog.Hash{h}},
		Checkpoint: []byte("cp\n"),
	}
	want := strings.Join([]string{
		hex.EncodeToString([]byte("cabn")), "01", // magic, version
		"0000000000000001",                           // index
		"0000000000000002",                           // size
		"000003" + hex.EncodeToString([]byte("rec")), // record<uint24>
		"01", hex.EncodeToString(h[:]), // one proof hash
		"0003" + hex.EncodeToString([]byte("cp\n")), // checkpoint<uint16>
	}, "")
	got, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != want {
		t.Fatalf("encoding\n got %x\nwant %s", got, want)
	}
	back, err := access.ParseBundle(got)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := back.MarshalBinary()
	if !bytes.Equal(again, got) {
		t.Fatalf("round trip changed the bundle")
	}
}

func TestBundleRefusesBadShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		b    access.Bundle
	}{
		{"no record", access.Bundle{Proof: translog.InclusionProof{Index: 0, Size: 1}, Checkpoint: []byte("x")}},
		{"index past size", access.Bundle{Record: []byte("r"), Proof: translog.InclusionProof{Index: 1, Size: 1}, Checkpoint: []byte("x")}},
		{"no checkpoint", access.Bundle{Record: []byte("r"), Proof: translog.InclusionProof{Index: 0, Size: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tt.b.MarshalBinary(); err == nil {
				t.Fatal("encoded a malformed bundle")
			}
		})
	}
}

func FuzzParseBundle(f *testing.F) {
	f.Add([]byte("cabn\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x03rec\x00\x00\x03cp\n"))
	f.Add([]byte("cabn\x02"))
	f.Add([]byte{})
	_, vkey, err := note.GenerateKey(bytes.NewReader(make([]byte, 32)), "bank.example/candor/access")
	if err != nil {
		f.Fatal(err)
	}
	key, err := note.NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, access.ParseBundle)
		if parsed, err := access.ParseBundle(b); err == nil {
			// The fuzzer cannot forge the log's signature.
			if _, _, err := parsed.Verify(key); err == nil {
				t.Fatal("a fuzzed bundle verified")
			}
		}
	})
}
