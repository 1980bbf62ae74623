package mlsxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"candor"
	"candor/internal/mlsx"
)

// TestStore runs the contract of [mlsx.Store] against the stores open
// returns: one fresh, empty store per subtest. open should arrange for the
// store to be closed with t.Cleanup. Every implementation of mlsx.Store runs
// it, so they all behave as the adapter expects.
func TestStore(t *testing.T, open func(t *testing.T) mlsx.Store) {
	t.Helper()
	for _, tc := range storeTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

var storeTests = []struct {
	name string
	run  func(t *testing.T, s mlsx.Store)
}{
	{"GroupRoundTrip", testGroupRoundTrip},
	{"GroupNotFound", testGroupNotFound},
	{"RatchetRoundTrip", testRatchetRoundTrip},
	{"StaleEpochRatchets", testStaleEpochRatchets},
	{"SaveGroupClearsRatchetsAndPending", testSaveGroupClears},
	{"PendingRoundTrip", testPendingRoundTrip},
	{"WritesToMissingGroup", testWritesToMissingGroup},
	{"DeleteGroup", testDeleteGroup},
	{"GroupsAreSeparate", testGroupsAreSeparate},
	{"KeyPackages", testKeyPackages},
	{"InputsNotAliased", testInputsNotAliased},
	{"OutputsNotAliased", testOutputsNotAliased},
	{"Concurrent", testConcurrent},
}

// Group ids are bytes, not text: these have a NUL and invalid UTF-8.
const (
	groupA = candor.GroupID("\x00group-a\xff")
	groupB = candor.GroupID("\x00group-b\xfe")
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, s mlsx.Store, id candor.GroupID) mlsx.StoredGroup {
	t.Helper()
	sg, err := s.LoadGroup(context.Background(), id)
	if err != nil {
		t.Fatalf("LoadGroup(%s): %v", id, err)
	}
	return sg
}

func wantGroup(t *testing.T, s mlsx.Store, id candor.GroupID, want mlsx.StoredGroup) {
	t.Helper()
	if want.Ratchets == nil {
		want.Ratchets = map[uint32]mlsx.RatchetRecord{}
	}
	got := load(t, s, id)
	if got.Ratchets == nil {
		t.Errorf("LoadGroup(%s) returned nil Ratchets, want an empty map", id)
		got.Ratchets = map[uint32]mlsx.RatchetRecord{}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadGroup(%s) (-want +got):\n%s", id, diff)
	}
}

func rec(b byte) []byte { return bytes.Repeat([]byte{b}, 25) }

func testGroupRoundTrip(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	must(t, s.SaveGroup(ctx, groupA, 0, []byte("state at epoch 0")))
	wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: 0, State: []byte("state at epoch 0")})

	// A later snapshot replaces the earlier one.
	must(t, s.SaveGroup(ctx, groupA, 7, []byte("state at epoch 7")))
	wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: 7, State: []byte("state at epoch 7")})

	// Epochs use all 64 bits.
	for _, e := range []candor.Epoch{1 << 31, 1 << 32, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64} {
		must(t, s.SaveGroup(ctx, groupA, e, []byte("far")))
		must(t, s.SaveRatchet(ctx, groupA, e, 1, rec(1)))
		wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: e, State: []byte("far"),
			Ratchets: map[uint32]mlsx.RatchetRecord{1: {Epoch: e, Record: rec(1)}}})
	}

	// A large snapshot, the size of a thousand-member group's.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	must(t, s.SaveGroup(ctx, groupA, 8, big))
	if got := load(t, s, groupA); !bytes.Equal(got.State, big) {
		t.Errorf("a %d-byte snapshot came back as %d bytes", len(big), len(got.State))
	}
}

func testGroupNotFound(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	if _, err := s.LoadGroup(ctx, groupA); !errors.Is(err, candor.ErrNotFound) {
		t.Fatalf("LoadGroup of a missing group: %v, want ErrNotFound", err)
	}
	must(t, s.SaveGroup(ctx, groupA, 1, []byte("a")))
	if _, err := s.LoadGroup(ctx, groupB); !errors.Is(err, candor.ErrNotFound) {
		t.Fatalf("LoadGroup of another group: %v, want ErrNotFound", err)
	}
	// A prefix of an existing id is another id.
	if _, err := s.LoadGroup(ctx, groupA[:3]); !errors.Is(err, candor.ErrNotFound) {
		t.Fatalf("LoadGroup of a prefix of a group id: %v, want ErrNotFound", err)
	}
}

func testRatchetRoundTrip(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	must(t, s.SaveGroup(ctx, groupA, 3, []byte("s")))
	must(t, s.SaveRatchet(ctx, groupA, 3, 0, rec(0)))
	must(t, s.SaveRatchet(ctx, groupA, 3, 1, rec(1)))
	must(t, s.SaveRatchet(ctx, groupA, 3, math.MaxUint32, rec(9)))
	wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: 3, State: []byte("s"), Ratchets: map[uint32]mlsx.RatchetRecord{
		0:              {Epoch: 3, Record: rec(0)},
		1:              {Epoch: 3, Record: rec(1)},
		math.MaxUint32: {Epoch: 3, Record: rec(9)},
	}})

	// A leaf's new record replaces its old one; saving it twice is the same
	// as saving it once.
	must(t, s.SaveRatchet(ctx, groupA, 3, 1, rec(2)))
	must(t, s.SaveRatchet(ctx, groupA, 3, 1, rec(2)))
	wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: 3, State: []byte("s"), Ratchets: map[uint32]mlsx.RatchetRecord{
		0:              {Epoch: 3, Record: rec(0)},
		1:              {Epoch: 3, Record: rec(2)},
		math.MaxUint32: {Epoch: 3, Record: rec(9)},
	}})
}

// testStaleEpochRatchets: a store keeps what it is given, records of other
// epochs than the snapshot's included; sorting them out is the adapter's job.
func testStaleEpochRatchets(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	must(t, s.SaveGroup(ctx, groupA, 5, []byte("s5")))
	must(t, s.SaveRatchet(ctx, groupA, 4, 1, rec(1)))
	must(t, s.SaveRatchet(ctx, groupA, 5, 2, rec(2)))
	must(t, s.SaveRatchet(ctx, groupA, 6, 3, rec(3)))
	wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: 5, State: []byte("s5"), Ratchets: map[uint32]mlsx.RatchetRecord{
		1: {Epoch: 4, Record: rec(1)},
		2: {Epoch: 5, Record: rec(2)},
		3: {Epoch: 6, Record: rec(3)},
	}})
	// A leaf's record moves to the epoch it was last saved in.
	must(t, s.SaveRatchet(ctx, groupA, 5, 1, rec(4)))
	if got := load(t, s, groupA).Ratchets[1]; got.Epoch != 5 || !bytes.Equal(got.Record, rec(4)) {
		t.Errorf("leaf 1 after a save in epoch 5: %+v", got)
	}
}

func testSaveGroupClears(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	must(t, s.SaveGroup(ctx, groupA, 1, []byte("s1")))
	must(t, s.SaveRatchet(ctx, groupA, 1, 0, rec(0)))
	must(t, s.SaveRatchet(ctx, groupA, 1, 4, rec(4)))
	must(t, s.SavePending(ctx, groupA, []byte("commit"), []byte("s2")))
	must(t, s.SaveGroup(ctx, groupA, 2, []byte("s2")))
	wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: 2, State: []byte("s2")})

	// Saving the same epoch again clears too: that is how the adapter
	// saves a received proposal.
	must(t, s.SaveRatchet(ctx, groupA, 2, 4, rec(4)))
	must(t, s.SaveGroup(ctx, groupA, 2, []byte("s2'")))
	wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: 2, State: []byte("s2'")})
}

func testPendingRoundTrip(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	must(t, s.SaveGroup(ctx, groupA, 1, []byte("s1")))
	must(t, s.SaveRatchet(ctx, groupA, 1, 0, rec(0)))
	must(t, s.SavePending(ctx, groupA, []byte("commit 1"), []byte("s2")))
	// The pending commit sits beside the snapshot and its records.
	wantGroup(t, s, groupA, mlsx.StoredGroup{
		Epoch:    1,
		State:    []byte("s1"),
		Ratchets: map[uint32]mlsx.RatchetRecord{0: {Epoch: 1, Record: rec(0)}},
		Pending:  &mlsx.PendingState{Commit: []byte("commit 1"), State: []byte("s2")},
	})
	// A second pending commit (after a Discard) replaces the first.
	must(t, s.SavePending(ctx, groupA, []byte("commit 1'"), []byte("s2'")))
	if got := load(t, s, groupA).Pending; got == nil || string(got.Commit) != "commit 1'" || string(got.State) != "s2'" {
		t.Errorf("pending after a second SavePending: %+v", got)
	}
	// Ratchet records saved after the pending commit keep it.
	must(t, s.SaveRatchet(ctx, groupA, 1, 1, rec(1)))
	if load(t, s, groupA).Pending == nil {
		t.Errorf("SaveRatchet dropped the pending commit")
	}
}

func testWritesToMissingGroup(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	if err := s.SaveRatchet(ctx, groupA, 1, 0, rec(0)); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("SaveRatchet for a missing group: %v, want ErrNotFound", err)
	}
	if err := s.SavePending(ctx, groupA, []byte("c"), []byte("s")); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("SavePending for a missing group: %v, want ErrNotFound", err)
	}
	if _, err := s.LoadGroup(ctx, groupA); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("the failed writes created the group: LoadGroup says %v", err)
	}
}

func testDeleteGroup(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	must(t, s.DeleteGroup(ctx, groupA)) // never existed
	must(t, s.SaveGroup(ctx, groupA, 1, []byte("s1")))
	must(t, s.SaveRatchet(ctx, groupA, 1, 2, rec(2)))
	must(t, s.SavePending(ctx, groupA, []byte("c"), []byte("s2")))
	must(t, s.SaveGroup(ctx, groupB, 1, []byte("b")))
	must(t, s.DeleteGroup(ctx, groupA))
	if _, err := s.LoadGroup(ctx, groupA); !errors.Is(err, candor.ErrNotFound) {
		t.Fatalf("LoadGroup after DeleteGroup: %v, want ErrNotFound", err)
	}
	must(t, s.DeleteGroup(ctx, groupA)) // already gone
	wantGroup(t, s, groupB, mlsx.StoredGroup{Epoch: 1, State: []byte("b")})
	// Nothing of the deleted group comes back with a new group of its id.
	must(t, s.SaveGroup(ctx, groupA, 1, []byte("again")))
	wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: 1, State: []byte("again")})
}

func testGroupsAreSeparate(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	must(t, s.SaveGroup(ctx, groupA, 1, []byte("a")))
	must(t, s.SaveGroup(ctx, groupB, 9, []byte("b")))
	must(t, s.SaveRatchet(ctx, groupA, 1, 0, rec(0xa)))
	must(t, s.SaveRatchet(ctx, groupB, 9, 0, rec(0xb)))
	must(t, s.SavePending(ctx, groupB, []byte("cb"), []byte("sb")))
	// Replacing A's snapshot leaves B's records and pending commit alone.
	must(t, s.SaveGroup(ctx, groupA, 2, []byte("a2")))
	wantGroup(t, s, groupA, mlsx.StoredGroup{Epoch: 2, State: []byte("a2")})
	wantGroup(t, s, groupB, mlsx.StoredGroup{
		Epoch:    9,
		State:    []byte("b"),
		Ratchets: map[uint32]mlsx.RatchetRecord{0: {Epoch: 9, Record: rec(0xb)}},
		Pending:  &mlsx.PendingState{Commit: []byte("cb"), State: []byte("sb")},
	})
}

func testKeyPackages(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	ref1, ref2 := []byte("\x00ref-1\xff"), []byte("\x00ref-2\xff")
	if _, err := s.LoadKeyPackage(ctx, ref1); !errors.Is(err, candor.ErrNotFound) {
		t.Fatalf("LoadKeyPackage of a missing ref: %v, want ErrNotFound", err)
	}
	must(t, s.DeleteKeyPackage(ctx, ref1)) // never existed
	must(t, s.SaveKeyPackage(ctx, ref1, []byte("secrets 1")))
	must(t, s.SaveKeyPackage(ctx, ref2, []byte("secrets 2")))
	for ref, want := range map[string]string{string(ref1): "secrets 1", string(ref2): "secrets 2"} {
		got, err := s.LoadKeyPackage(ctx, []byte(ref))
		must(t, err)
		if string(got) != want {
			t.Errorf("LoadKeyPackage(%x) = %q, want %q", ref, got, want)
		}
	}
	if _, err := s.LoadKeyPackage(ctx, ref1[:4]); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("LoadKeyPackage of a prefix of a ref: %v, want ErrNotFound", err)
	}
	must(t, s.DeleteKeyPackage(ctx, ref1))
	if _, err := s.LoadKeyPackage(ctx, ref1); !errors.Is(err, candor.ErrNotFound) {
		t.Errorf("LoadKeyPackage after DeleteKeyPackage: %v, want ErrNotFound", err)
	}
	must(t, s.DeleteKeyPackage(ctx, ref1)) // already gone
	if got, err := s.LoadKeyPackage(ctx, ref2); err != nil || string(got) != "secrets 2" {
		t.Errorf("the other key package after a delete: %q, %v", got, err)
	}
	// Key packages and groups live apart.
	must(t, s.SaveGroup(ctx, candor.GroupID(ref2), 1, []byte("g")))
	must(t, s.DeleteGroup(ctx, candor.GroupID(ref2)))
	if got, err := s.LoadKeyPackage(ctx, ref2); err != nil || string(got) != "secrets 2" {
		t.Errorf("key package after deleting a group of the same bytes: %q, %v", got, err)
	}
}

// testInputsNotAliased: a store copies what it is given; the caller may
// reuse its buffers as soon as a method returns.
func testInputsNotAliased(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	state, record := []byte("state"), rec(1)
	commit, pending := []byte("commit"), []byte("pending")
	ref, secrets := []byte("ref"), []byte("secrets")
	must(t, s.SaveGroup(ctx, groupA, 1, state))
	must(t, s.SaveRatchet(ctx, groupA, 1, 0, record))
	must(t, s.SavePending(ctx, groupA, commit, pending))
	must(t, s.SaveKeyPackage(ctx, ref, secrets))
	for _, b := range [][]byte{state, record, commit, pending, secrets} {
		clear(b)
	}
	wantGroup(t, s, groupA, mlsx.StoredGroup{
		Epoch:    1,
		State:    []byte("state"),
		Ratchets: map[uint32]mlsx.RatchetRecord{0: {Epoch: 1, Record: rec(1)}},
		Pending:  &mlsx.PendingState{Commit: []byte("commit"), State: []byte("pending")},
	})
	got, err := s.LoadKeyPackage(ctx, []byte("ref"))
	must(t, err)
	if string(got) != "secrets" {
		t.Errorf("key package after the caller reused its buffer: %q", got)
	}
	// The ref is copied too: changing it does not move the entry.
	copy(ref, "xyz")
	if _, err := s.LoadKeyPackage(ctx, []byte("ref")); err != nil {
		t.Errorf("key package after the caller reused its ref: %v", err)
	}
}

// testOutputsNotAliased: what a store returns is the caller's to change.
func testOutputsNotAliased(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	must(t, s.SaveGroup(ctx, groupA, 1, []byte("state")))
	must(t, s.SaveRatchet(ctx, groupA, 1, 0, rec(1)))
	must(t, s.SavePending(ctx, groupA, []byte("commit"), []byte("pending")))
	must(t, s.SaveKeyPackage(ctx, []byte("ref"), []byte("secrets")))

	sg := load(t, s, groupA)
	clear(sg.State)
	clear(sg.Ratchets[0].Record)
	clear(sg.Pending.Commit)
	clear(sg.Pending.State)
	sg.Ratchets[7] = mlsx.RatchetRecord{Epoch: 1, Record: rec(7)}
	delete(sg.Ratchets, 0)
	sg.Pending.Commit = nil
	kp, err := s.LoadKeyPackage(ctx, []byte("ref"))
	must(t, err)
	clear(kp)

	wantGroup(t, s, groupA, mlsx.StoredGroup{
		Epoch:    1,
		State:    []byte("state"),
		Ratchets: map[uint32]mlsx.RatchetRecord{0: {Epoch: 1, Record: rec(1)}},
		Pending:  &mlsx.PendingState{Commit: []byte("commit"), State: []byte("pending")},
	})
	if kp, err := s.LoadKeyPackage(ctx, []byte("ref")); err != nil || string(kp) != "secrets" {
		t.Errorf("key package after the caller changed a loaded copy: %q, %v", kp, err)
	}
}

// testConcurrent: a store is safe for concurrent use. The adapter serialises
// calls per group, so each goroutine here has a group of its own, and all of
// them share the key packages.
func testConcurrent(t *testing.T, s mlsx.Store) {
	ctx := context.Background()
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				id := candor.GroupID(fmt.Sprintf("group-%d", w))
				for i := range rounds {
					epoch := candor.Epoch(i)
					if err := s.SaveGroup(ctx, id, epoch, fmt.Appendf(nil, "state %d", i)); err != nil {
						return err
					}
					for leaf := range uint32(3) {
						if err := s.SaveRatchet(ctx, id, epoch, leaf, rec(byte(i))); err != nil {
							return err
						}
					}
					ref := fmt.Appendf(nil, "ref %d/%d", w, i)
					if err := s.SaveKeyPackage(ctx, ref, ref); err != nil {
						return err
					}
					sg, err := s.LoadGroup(ctx, id)
					if err != nil {
						return err
					}
					if sg.Epoch != epoch || len(sg.Ratchets) != 3 || string(sg.State) != fmt.Sprintf("state %d", i) {
						return fmt.Errorf("%s round %d: loaded epoch %d, %d ratchets, state %q", id, i, sg.Epoch, len(sg.Ratchets), sg.State)
					}
					if _, err := s.LoadKeyPackage(ctx, ref); err != nil {
						return err
					}
					if i%2 == 0 {
						if err := s.DeleteKeyPackage(ctx, ref); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
