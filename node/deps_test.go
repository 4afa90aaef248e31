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

// TestCommandImports keeps the commands thin: lbctl links only the admin API's wire
// types and client (node/api) and cobra, never the node or its parts; lbd reaches the
// parts through node only; node/api is the standard library alone.
func TestCommandImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	// node/api: the standard library only.
	for _, dep := range goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "lbd/node/api") {
		if dep != "lbd/node/api" {
			t.Errorf("node/api reaches %s: it may use the standard library only", dep)
		}
	}
	// cmd/lbctl, with its tests: node/api, cobra, and in tests go-cmp and
	// internal/testutil (which only _test.go files may import: TestTestutilOnlyInTests).
	for _, dep := range goList(t, "-deps", "-test", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "lbd/cmd/lbctl") {
		dep = strings.Fields(dep)[0] // "lbd/cmd/lbctl [lbd/cmd/lbctl.test]" for the test variant
		switch {
		case dep == "lbd/node/api", dep == "lbd/cmd/lbctl", dep == "lbd/cmd/lbctl.test", dep == "lbd/internal/testutil":
		case strings.HasPrefix(dep, "lbd/"):
			t.Errorf("cmd/lbctl reaches %s: it may import only lbd/node/api among lbd's packages", dep)
		case !strings.HasPrefix(dep, "github.com/spf13/") && !strings.HasPrefix(dep, "github.com/inconshreveable/mousetrap") &&
			!strings.HasPrefix(dep, "github.com/google/go-cmp/"):
			t.Errorf("cmd/lbctl reaches %s: it needs cobra and the standard library only", dep)
		}
	}
	// cmd/lbd: imports node (and its API types) directly, nothing below node; its tests
	// may use internal/testutil too.
	imports := goList(t, "-f", "{{range .Imports}}{{.}}\n{{end}}{{range .TestImports}}{{.}}\n{{end}}", "lbd/cmd/lbd")
	for _, imp := range imports {
		if strings.HasPrefix(imp, "lbd/") && imp != "lbd/node" && imp != "lbd/node/api" && imp != "lbd/internal/testutil" {
			t.Errorf("cmd/lbd imports %s: it reaches the parts through lbd/node only", imp)
		}
	}
	nodeDeps := map[string]bool{}
	for _, dep := range goList(t, "-deps", "lbd/node") {
		nodeDeps[dep] = true
	}
	for _, dep := range goList(t, "-deps", "lbd/cmd/lbd") {
		if strings.HasPrefix(dep, "lbd/") && dep != "lbd/cmd/lbd" && !nodeDeps[dep] {
			t.Errorf("cmd/lbd reaches %s, which node does not bring", dep)
		}
	}
}

// TestTestutilOnlyInTests: internal/testutil is for _test.go files (it builds binaries
// and runs go), and needs nothing of lbd.
func TestTestutilOnlyInTests(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, line := range goList(t, "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "lbd/...") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if imp == "lbd/internal/testutil" {
				t.Errorf("%s imports lbd/internal/testutil outside its tests", f[0])
			}
		}
	}
	for _, dep := range goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "lbd/internal/testutil") {
		if dep != "lbd/internal/testutil" {
			t.Errorf("internal/testutil reaches %s: it may use the standard library only", dep)
		}
	}
}

// goList runs go list with args and returns its output's lines, without empty ones.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func hasGoFiles(t *testing.T, dir string) bool {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	return len(matches) > 0
}

// TestInternalStdlibOnly keeps the internal packages pure: the shared ones
// (internal/clock, ...) and the dataplane's (dataplane/internal/evloop, h1, proxyproto,
// tlshello) import the standard library, golang.org/x/sys (the event loop's epoll) and
// other internal packages only, so never a part or a library of the engines.
func TestInternalStdlibOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, pattern := range []string{"lbd/internal/...", "lbd/dataplane/internal/..."} {
		for _, dep := range goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pattern) {
			if !strings.HasPrefix(dep, "lbd/internal/") && !strings.HasPrefix(dep, "lbd/dataplane/internal/") &&
				!strings.HasPrefix(dep, "golang.org/x/sys/") {
				t.Errorf("%s reaches %s: internal packages import the standard library and other internal packages only", pattern, dep)
			}
		}
	}
}

// TestSubPackagesPointDown keeps the other rule of ARCHITECTURE.md about sub-packages
// (dataplane/balance, dataplane/sticky, ...): a part's sub-packages depend on nothing
// else in it, so they never import the part itself.
func TestSubPackagesPointDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, part := range []string{"dataplane", "vip", "cluster", "node"} {
		out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "lbd/"+part+"/...").CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", part, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			deps := strings.Fields(line)
			if len(deps) == 0 || !strings.HasPrefix(deps[0], "lbd/"+part+"/") {
				continue
			}
			for _, dep := range deps[1:] {
				if dep == "lbd/"+part {
					t.Errorf("%s imports %s: a sub-package never imports the part it belongs to", deps[0], dep)
				}
			}
		}
	}
}
