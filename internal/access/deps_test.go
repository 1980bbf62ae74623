package access_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestServerDoesNotLinkCustody checks, from the go command's dependency
// graph, that the record formats and the server binary that writes them
// link none of the custody, ceremony or archive code: the server treats
// approvals as opaque bytes.
func TestServerDoesNotLinkCustody(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the go command")
	}
	for _, pkg := range []string{"candor/internal/access", "candor/cmd/candord"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, "candor/internal/access") {
			t.Fatalf("go list gave no dependency graph for %s: %v", pkg, deps)
		}
		for _, p := range deps {
			for _, banned := range []string{"candor/internal/custody", "candor/internal/ceremony", "candor/internal/archive"} {
				if p == banned || strings.HasPrefix(p, banned+"/") {
					t.Errorf("%s links %s", pkg, p)
				}
			}
		}
	}
}
