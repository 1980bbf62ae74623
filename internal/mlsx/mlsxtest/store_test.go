package mlsxtest_test

import (
	"testing"

	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
)

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	mlsxtest.TestStore(t, func(t *testing.T) mlsx.Store { return mlsxtest.NewStore() })
}

// TestMemoryStoreClone checks that a clone is what a restarted process
// would find: the same contents, and no later write to either shows in the
// other.
func TestMemoryStoreClone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := mlsxtest.NewStore()
	if err := s.SaveGroup(ctx, "g", 1, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRatchet(ctx, "g", 1, 0, []byte("r")); err != nil {
		t.Fatal(err)
	}
	c := s.Clone()
	if err := s.SaveGroup(ctx, "g", 2, []byte("s2")); err != nil {
		t.Fatal(err)
	}
	sg, err := c.LoadGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if sg.Epoch != 1 || string(sg.State) != "s1" || len(sg.Ratchets) != 1 {
		t.Fatalf("clone changed with the original: %+v", sg)
	}
}
