// Package testutil holds the helpers that the tests of several packages share: a buffer
// for a process's output, the builds of the commands that integration tests run, and
// loopback addresses that refuse connections for as long as a test runs.
// Only _test.go files import it (node/deps_test.go checks).
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer for a process's output, read while the process writes.
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bins builds the commands a package's tests run, each at most once per test binary,
// into one temporary directory, made at the first build. Its zero value is ready; TestMain
// calls Remove after m.Run.
type Bins struct {
	mu    sync.Mutex // guards dir and built
	dir   string     // "" until the first build
	built map[string]*build
}

// build is one command's build; once guards path and err.
type build struct {
	once sync.Once
	path string
	err  error
}

// Build builds the command pkg, an import path such as "lbd/cmd/lbctl", into the
// directory (named as the last element of pkg) and returns its path. Later calls for pkg
// return the first call's result without building again.
func (b *Bins) Build(pkg string) (string, error) {
	b.mu.Lock()
	if b.dir == "" {
		dir, err := os.MkdirTemp("", "lbd-test-bin-")
		if err != nil {
			b.mu.Unlock()
			return "", err
		}
		// Readable by every user: some tests run a binary as nobody.
		os.Chmod(dir, 0o755)
		b.dir, b.built = dir, map[string]*build{}
	}
	bl, ok := b.built[pkg]
	if !ok {
		bl = &build{path: filepath.Join(b.dir, path.Base(pkg))}
		b.built[pkg] = bl
	}
	b.mu.Unlock()
	bl.once.Do(func() {
		if out, err := exec.Command("go", "build", "-o", bl.path, pkg).CombinedOutput(); err != nil {
			bl.err = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	})
	return bl.path, bl.err
}

// Path is Build for a test: a failed build fails t.
func (b *Bins) Path(t testing.TB, pkg string) string {
	t.Helper()
	p, err := b.Build(pkg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Remove removes the directory and every build in it.
func (b *Bins) Remove() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		os.RemoveAll(b.dir)
		b.dir, b.built = "", nil
	}
}

// RequireCorpus fails the test when a fuzz target of the calling package has no corpus in
// testdata/fuzz/<target>: the inputs worth keeping (crashers found once, hand-picked
// cases), which every go test runs and which a renamed target or a moved directory would
// drop silently.
func RequireCorpus(t testing.TB, targets ...string) {
	t.Helper()
	for _, target := range targets {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Errorf("no corpus in testdata/fuzz/%s", target)
		}
	}
}

// Captures reads the files in testdata/DIR whose names match *.bin, by base name; the
// test fails when there are none (a moved directory must not turn a test of captured
// packets into one of nothing).
func Captures(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no captures in testdata/%s", dir)
	}
	out := map[string][]byte{}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(name)] = b
	}
	return out
}

// UnixServer serves h on a unix socket in the test's temp dir until the test ends, and
// returns the socket's path: the admin API's transport, for a fake API or a handler
// under test.
func UnixServer(t testing.TB, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "lbd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}
