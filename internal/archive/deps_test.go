package archive_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// deps lists the packages pkg links, through the go command.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// The delivery server never links the archive's opening code, and the
// journal's chain, which the server will link, stays clear of MLS.
func TestDependencyBoundaries(t *testing.T) {
	t.Parallel()
	server := deps(t, "candor/cmd/candord")
	if !slices.Contains(server, "candor/internal/server") {
		t.Fatalf("go list gave no dependency graph for the server: %v", server)
	}
	for _, p := range server {
		if p == "candor/internal/archive" || strings.HasPrefix(p, "candor/internal/archive/") {
			t.Errorf("the server binary links %s", p)
		}
	}
	for _, p := range deps(t, "candor/internal/journal") {
		if p == "candor/internal/mlsx" || strings.HasPrefix(p, "github.com/thomas-vilte/mls-go") || strings.HasPrefix(p, "candor/internal/store") {
			t.Errorf("internal/journal links %s", p)
		}
	}
}
