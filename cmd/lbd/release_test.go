//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"lbd/vip"
)

// fakeAddrs is a vip.Addresses over a map, for releaseVIPs without root.
type fakeAddrs struct {
	have    map[string][]netip.Prefix // interface → addresses carrying the label
	removed []string
	fail    error
}

func (f *fakeAddrs) Add(string, netip.Prefix, string) error { return errors.New("not used") }
func (f *fakeAddrs) Remove(ifname string, p netip.Prefix) error {
	if f.fail != nil {
		return f.fail
	}
	f.removed = append(f.removed, ifname+" "+p.String())
	return nil
}
func (f *fakeAddrs) List(ifname, _ string) ([]netip.Prefix, error) { return f.have[ifname], nil }

func TestReleaseVIPsFake(t *testing.T) {
	cfg := vip.Config{Instances: []vip.Instance{
		{Name: "web", Interface: "lo", VRID: 1, Addresses: []string{"198.18.0.100/24"}},
		{Name: "gone", Interface: "lbdt-absent0", VRID: 2, Addresses: []string{"198.18.0.101/24"}},
	}}
	a := &fakeAddrs{have: map[string][]netip.Prefix{"lo": {netip.MustParsePrefix("198.18.0.100/24")}}}
	var out, errOut bytes.Buffer
	if err := releaseVIPs(&out, &errOut, cfg, a); err != nil {
		t.Fatalf("releaseVIPs: %v\n%s", err, errOut.String())
	}
	if len(a.removed) != 1 || a.removed[0] != "lo 198.18.0.100/24" {
		t.Errorf("removed %v, want [lo 198.18.0.100/24]", a.removed)
	}
	if !strings.Contains(out.String(), "interface lbdt-absent0 not found: nothing to release") {
		t.Errorf("output does not report the absent interface:\n%s", out.String())
	}

	// A failure to remove is exit 1 with the error.
	a = &fakeAddrs{have: a.have, fail: errors.New("operation not permitted")}
	out.Reset()
	errOut.Reset()
	err := releaseVIPs(&out, &errOut, cfg, a)
	if ee, ok := err.(exitError); !ok || ee != 1 || !strings.Contains(errOut.String(), "operation not permitted") {
		t.Errorf("releaseVIPs with a failing Remove: %v, stderr %q", err, errOut.String())
	}

	// No instances: nothing to do.
	out.Reset()
	if err := releaseVIPs(&out, &errOut, vip.Config{}, &fakeAddrs{}); err != nil || !strings.Contains(out.String(), "nothing to release") {
		t.Errorf("no instances: %v, %q", err, out.String())
	}
}

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
