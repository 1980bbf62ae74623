package opening

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"candor"
	"candor/internal/access"
	"candor/internal/archive"
	"candor/internal/journal"
)

func TestExplainCut(t *testing.T) {
	t.Parallel()
	const g, other = candor.GroupID("g"), candor.GroupID("other")
	h := func(s string) journal.Hash { return sha256.Sum256([]byte(s)) }
	del := func(index int64, group candor.GroupID, first, last uint64, hash journal.Hash) *access.DeletionEntry {
		return &access.DeletionEntry{Index: index, Deletion: &access.Deletion{
			Group: group, First: first, Last: last, LastHash: hash, At: time.Unix(1790000000, 0), Retention: time.Hour,
		}}
	}
	start := archive.LogStart{Seq: 21, Prev: h("entry 20")}
	tests := []struct {
		name      string
		deletions []*access.DeletionEntry
		says      string // "" if explained
	}{
		{"one deletion", []*access.DeletionEntry{del(3, g, 1, 20, h("entry 20"))}, ""},
		{"two in turn", []*access.DeletionEntry{del(3, g, 1, 9, h("entry 9")), del(7, g, 10, 20, h("entry 20"))}, ""},
		{"one retried", []*access.DeletionEntry{del(3, g, 1, 20, h("entry 20")), del(4, g, 1, 20, h("entry 20"))}, ""},
		{"none", nil, "no Deletion record in the access log names this group"},
		{"another group's", []*access.DeletionEntry{del(3, other, 1, 20, h("entry 20"))}, "no Deletion record in the access log names this group"},
		{"another hash", []*access.DeletionEntry{del(3, g, 1, 20, h("entry 19"))}, "the Deletion record at index 3 names"},
		{"a hole at the start", []*access.DeletionEntry{del(3, g, 5, 20, h("entry 20"))}, "covers entries 1..4"},
		{"a hole in the middle", []*access.DeletionEntry{del(3, g, 1, 9, h("entry 9")), del(7, g, 12, 20, h("entry 20"))}, "covers entries 10..11"},
		{"too short", []*access.DeletionEntry{del(3, g, 1, 9, h("entry 9"))}, "cover entries 1..9 only"},
		{"not finished", []*access.DeletionEntry{del(3, g, 1, 30, h("entry 30"))}, "the deletion of entries 1..30 logged at index 3 is not finished"},
		{"ends elsewhere", []*access.DeletionEntry{del(3, g, 1, 9, h("entry 9")), del(7, g, 10, 30, h("entry 30")), del(9, g, 31, 40, h("entry 40"))}, "is not finished"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := explainCut(g, start, tt.deletions)
			if tt.says == "" {
				if err != nil {
					t.Fatalf("explainCut = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnexplainedCut) || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), "entries 1..20 are deleted") {
				t.Errorf("explainCut = %v, want ErrUnexplainedCut saying %q", err, tt.says)
			}
		})
	}
}
