//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReleaseRefusesWhileRunning: a config whose admin socket answers (a stand-in for a
// running lbd) is refused, without touching any address; a dead socket is not.
func TestReleaseRefusesWhileRunning(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "lbd.sock")
	cfg := filepath.Join(dir, "lbd.yaml")
	conf := fmt.Sprintf("node:\n  name: n1\n  state_dir: %s\n  admin: {socket: %s, listen: \"\"}\n"+
		"vrrp:\n  instances:\n    - {name: web, interface: lbdt-absent0, vrid: 51, addresses: [\"198.18.0.100/24\"]}\n", dir, sock)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"node":"n1"}`)
	})}
	go srv.Serve(l)
	out, err := exec.Command(lbdBin, "release", "--config", cfg).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "refused") || !strings.Contains(string(out), "running") {
		t.Fatalf("release while an lbd answers: exit %d, want 1 and a refusal:\n%s", code, out)
	}
	srv.Close()
	out, err = exec.Command(lbdBin, "release", "--config", cfg).CombinedOutput()
	if code := exitCode(err); code != 0 || !strings.Contains(string(out), "nothing to release") {
		t.Fatalf("release after the lbd stopped: exit %d, want 0:\n%s", code, out)
	}

	// A config that does not load: exit 1, nothing released.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("frontends: [\n"), 0o644)
	out, err = exec.Command(lbdBin, "release", "--config", bad).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "no address released") {
		t.Fatalf("release with a broken config: exit %d, want 1:\n%s", code, out)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// TestReleaseAfterSIGKILL, as root in network namespaces (the scripts/lab.sh harness of
// the VRRP end-to-end tests): a SIGKILLed master keeps its VIP on its interface;
// `lbd release` (the unit's ExecStopPost) refuses while lbd runs, and removes the VIP once
// it is dead; a second run finds nothing and succeeds.
func TestReleaseAfterSIGKILL(t *testing.T) {
	c := newCluster(t, e2eOpts{}, &lbNode{name: "lb1", index: 1, priority: 100})
	n := c.startLBD("lb1")
	c.waitOwner(e2eVIP, "lb1")

	release := func() (string, int) {
		out, err := exec.Command("ip", "netns", "exec", c.lab.ns("lb1"), lbdBin, "release", "--config", n.cfg).CombinedOutput()
		return string(out), exitCode(err)
	}
	out, code := release()
	if code != 1 || !strings.Contains(out, "refused") {
		t.Fatalf("release while lbd runs: exit %d, want 1 and a refusal:\n%s", code, out)
	}
	if !c.lab.hasAddr("lb1", e2eVIP) || c.state("lb1", "web") != "MASTER" {
		t.Fatalf("the refused release touched the live master (VIP held: %v, state %q)", c.lab.hasAddr("lb1", e2eVIP), c.state("lb1", "web"))
	}

	c.kill("lb1", syscall.SIGKILL)
	if !c.lab.hasAddr("lb1", e2eVIP) {
		t.Fatalf("after SIGKILL the VIP %s is already gone from lb1: the test proves nothing", e2eVIP)
	}
	out, code = release()
	if code != 0 || !strings.Contains(out, "released "+e2eVIP+"/24 from eth0") {
		t.Fatalf("release after SIGKILL: exit %d, want 0 and the VIP released:\n%s", code, out)
	}
	if c.lab.hasAddr("lb1", e2eVIP) {
		t.Fatalf("lb1 still holds %s after lbd release", e2eVIP)
	}
	if !c.lab.hasAddr("lb1", "198.18.0.1") {
		t.Fatalf("lbd release removed the node's own address 198.18.0.1")
	}
	out, code = release()
	if code != 0 || !strings.Contains(out, "nothing to release") {
		t.Fatalf("second release: exit %d, want 0 (idempotent):\n%s", code, out)
	}
}
