package node

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportDirection keeps the rule of ARCHITECTURE.md: dataplane, vip and cluster never
// import each other or node, and each reaches only the libraries it owns.
func TestImportDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	parts := []string{"dataplane", "vip", "cluster"}
	forbidden := map[string][]string{
		"dataplane": {"github.com/hashicorp/", "github.com/vishvananda/", "github.com/mdlayher/"},
		"vip":       {"github.com/hashicorp/", "github.com/valyala/"},
		"cluster":   {"github.com/vishvananda/", "github.com/mdlayher/", "github.com/valyala/"},
	}
	for _, part := range parts {
		if !hasGoFiles(t, filepath.Join("..", part)) {
			continue
		}
		out, err := exec.Command("go", "list", "-deps", "lbd/"+part+"/...").CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", part, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, other := range append(parts, "node", "cmd") {
				if other != part && (dep == "lbd/"+other || strings.HasPrefix(dep, "lbd/"+other+"/")) {
					t.Errorf("%s imports %s: dataplane, vip and cluster never import each other or node", part, dep)
				}
			}
			for _, prefix := range forbidden[part] {
				if strings.HasPrefix(dep, prefix) {
					t.Errorf("%s reaches %s, which belongs to another part", part, dep)
				}
			}
		}
	}
}

func hasGoFiles(t *testing.T, dir string) bool {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	return len(matches) > 0
}

// TestInternalStdlibOnly keeps the shared internal packages (internal/clock) free of
// dependencies, so that every part can import them.
func TestInternalStdlibOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "lbd/internal/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list internal: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(dep, "/")
		if strings.Contains(first, ".") || (first == "lbd" && !strings.HasPrefix(dep, "lbd/internal/")) {
			t.Errorf("internal reaches %s: the shared internal packages import the standard library only", dep)
		}
	}
}
