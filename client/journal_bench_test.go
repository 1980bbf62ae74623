package client

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"candor"
	"candor/api"
	"candor/internal/devkey"
	"candor/internal/devstore"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
)

// BenchmarkReceiveChain measures what chaining each received entry adds to
// the receive path: bob decrypts alice's 200-byte message (MLS, with its
// replay window fsynced in his device database, as processEntry does) and
// records it with the cursor (devstore.Advance, fsynced), without and then
// with the journal hash (journalEntry, journal.EntryHash, and the chain
// columns written in the same transaction). chain=only is the hashing
// alone.
func BenchmarkReceiveChain(b *testing.B) {
	ctx := context.Background()
	const gid = candor.GroupID("bench-group-0001")
	ca := mlsxtest.NewCA(b, "Example Bank")
	open := func(name string) (*mlsx.Device, *devstore.Store) {
		id, err := ca.Issue(name, name+"-laptop")
		if err != nil {
			b.Fatal(err)
		}
		st, err := devstore.Open(ctx, filepath.Join(b.TempDir(), name+".db"), devkey.Key{1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		dev, err := mlsx.NewDevice(ctx, mlsx.Config{Identity: id, Store: st, Validator: ca.Validator()})
		if err != nil {
			b.Fatal(err)
		}
		return dev, st
	}
	alice, _ := open("alice")
	bob, bobStore := open("bob")
	ag, err := alice.CreateGroup(ctx, gid, mlsx.GroupOptions{})
	if err != nil {
		b.Fatal(err)
	}
	kps, err := bob.KeyPackages(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	cm, err := ag.Commit(ctx, mlsx.CommitOptions{Add: kps})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ag.Confirm(ctx); err != nil {
		b.Fatal(err)
	}
	bg, err := bob.Join(ctx, cm.Welcome)
	if err != nil {
		b.Fatal(err)
	}
	plaintext := make([]byte, 200)
	seq := uint64(1)
	link := chainLink{seq: seq, ok: true}
	// next is alice's next message as the server delivers it.
	next := func(b *testing.B) api.Entry {
		b.StopTimer()
		ct, err := ag.Encrypt(ctx, plaintext)
		if err != nil {
			b.Fatal(err)
		}
		seq++
		b.StartTimer()
		return api.Entry{Seq: seq, Epoch: uint64(ag.Epoch()), Sender: "alice-laptop", Time: time.Now().UTC(), Message: ct}
	}
	receive := func(b *testing.B, chain bool) {
		for b.Loop() {
			e := next(b)
			ev, err := bg.Process(ctx, e.Message)
			if err != nil || ev.Kind != mlsx.EventApplication {
				b.Fatalf("processing entry %d: %v, %v", e.Seq, ev.Kind, err)
			}
			p := devstore.Progress{Group: gid, Seq: e.Seq, Time: e.Time,
				Message: &devstore.Message{SenderUser: "alice", SenderDevice: "alice-laptop", Time: e.Time, Text: string(ev.Plaintext)}}
			if chain {
				p.Chain = link.next(gid, e)
				if p.Chain == nil {
					b.Fatalf("entry %d does not follow %d", e.Seq, link.seq)
				}
			}
			if err := bobStore.Advance(ctx, p, e.Time); err != nil {
				b.Fatal(err)
			}
		}
	}
	// The two are interleaved, so that drifts of the machine's load fall
	// on both.
	for range 3 {
		b.Run("chain=no", func(b *testing.B) { receive(b, false) })
		b.Run("chain=yes", func(b *testing.B) {
			link = chainLink{seq: seq, ok: true}
			receive(b, true)
		})
	}
	b.Run("chain=only", func(b *testing.B) {
		e := next(b)
		for b.Loop() {
			link = chainLink{seq: e.Seq - 1, ok: true}
			link.next(gid, e)
		}
	})
}
