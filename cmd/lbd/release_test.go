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

	// A config that does not load (here, removed): release works from the record in
	// the state directory alone, and exits 1 to say the config's VIPs were not checked.
	rec := `{"addresses": [{"interface": "lbdt-absent0", "prefix": "198.18.0.100/24"}]}`
	if err := os.WriteFile(filepath.Join(dir, "vips.json"), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "gone.yaml")
	out, err = exec.Command(lbdBin, "release", "--config", gone, "--socket", sock, "--state-dir", dir).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "cannot read the config") ||
		!strings.Contains(string(out), "recorded 198.18.0.100/24: interface lbdt-absent0 not found") {
		t.Fatalf("release with a removed config: exit %d, want 1, reading the record:\n%s", code, out)
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

// TestReleaseAfterSIGKILLBadConfig, as root in network namespaces: a SIGKILLed master
// whose config was then broken by an edit still loses its VIP on `lbd release`: the
// addresses lbd added are recorded in its state directory (vips.json), and release
// removes them from that record alone.
func TestReleaseAfterSIGKILLBadConfig(t *testing.T) {
	c := newCluster(t, e2eOpts{}, &lbNode{name: "lb1", index: 1, priority: 100})
	n := c.startLBD("lb1")
	c.waitOwner(e2eVIP, "lb1")
	c.kill("lb1", syscall.SIGKILL)
	if !c.lab.hasAddr("lb1", e2eVIP) {
		t.Fatalf("after SIGKILL the VIP %s is already gone from lb1: the test proves nothing", e2eVIP)
	}
	good, err := os.ReadFile(n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A bad edit: the file no longer loads, its node.state_dir still reads.
	if err := os.WriteFile(n.cfg, append(good, "frontend:\n  - {name: typo}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", c.lab.ns("lb1"), lbdBin, "release", "--config", n.cfg).CombinedOutput()
	if !strings.Contains(string(out), "released "+e2eVIP+"/24 from eth0") || exitCode(err) != 1 {
		t.Fatalf("release after SIGKILL with a broken config: exit %d, want 1 and the VIP released:\n%s", exitCode(err), out)
	}
	if c.lab.hasAddr("lb1", e2eVIP) {
		t.Fatalf("lb1 still holds %s after lbd release with a broken config", e2eVIP)
	}
	if !c.lab.hasAddr("lb1", "198.18.0.1") {
		t.Fatalf("lbd release removed the node's own address 198.18.0.1")
	}
	if _, err := os.Stat(filepath.Join(n.dir, "state", "vips.json")); !os.IsNotExist(err) {
		t.Errorf("the record is still there after everything it listed was released: %v", err)
	}
}
