// Package packaging holds the .deb/.rpm packaging of lbd (nfpm.yaml, the systemd unit,
// the default config, the sysctl drop-in, the maintainer scripts); its tests check them.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"lbd/node"
)

// TestDefaultConfigValidates: the /etc/lbd/lbd.yaml the package installs loads as lbd
// validate loads it.
func TestDefaultConfigValidates(t *testing.T) {
	cfg, err := node.LoadFile("lbd.yaml")
	if err != nil {
		t.Fatalf("packaging/lbd.yaml does not validate: %v", err)
	}
	if cfg.Node.Admin.Socket != "/run/lbd/lbd.sock" || cfg.Node.StateDir != "/var/lib/lbd" {
		t.Errorf("admin socket %q, state dir %q: want the unit's RuntimeDirectory and StateDirectory",
			cfg.Node.Admin.Socket, cfg.Node.StateDir)
	}
}

// TestUnit checks the systemd unit's commands and limits.
func TestUnit(t *testing.T) {
	b, err := os.ReadFile("lbd.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"Type=simple",
		"ExecStartPre=/usr/bin/lbd validate --config /etc/lbd/lbd.yaml",
		"ExecStart=/usr/bin/lbd run --config /etc/lbd/lbd.yaml",
		"ExecReload=/usr/bin/lbd reload",
		"ExecStopPost=/usr/bin/lbd release --config /etc/lbd/lbd.yaml",
		"KillSignal=SIGTERM", "TimeoutStopSec=40", "Restart=on-failure", "RestartSec=1",
		"AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID\n",
		"RuntimeDirectory=lbd", "StateDirectory=lbd", "LimitNOFILE=1048576",
		"WantedBy=multi-user.target",
	} {
		if !strings.Contains(unit, "\n"+want) {
			t.Errorf("lbd.service lacks %q", want)
		}
	}
	b, err = os.ReadFile("90-lbd.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"net.ipv4.ip_nonlocal_bind", "net.ipv6.ip_nonlocal_bind"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s*=\s*1$`).Match(b) {
			t.Errorf("90-lbd.conf does not set %s = 1", key)
		}
	}
}

// wantFiles are the files both packages must install.
var wantFiles = []string{
	"/usr/bin/lbd", "/usr/bin/lbctl", "/etc/lbd/lbd.yaml",
	"/lib/systemd/system/lbd.service", "/usr/lib/sysctl.d/90-lbd.conf",
}

// TestPackages builds the .deb and .rpm with nfpm (go tool nfpm, pinned in go.mod) from
// placeholder binaries into a temporary directory and checks what they install.
// `make check-package` does the same with the real binaries.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the nfpm packaging with -short")
	}
	// go tool -n builds nfpm (once, cached) and prints its path.
	out, err := exec.Command("go", "tool", "-n", "nfpm").CombinedOutput()
	if err != nil {
		t.Skipf("skipping: go tool nfpm is not available: %v\n%s", err, out)
	}
	nfpm := strings.TrimSpace(string(out))
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"lbd", "lbctl"} {
		if err := os.WriteFile(filepath.Join(work, "bin", bin), []byte("#!/bin/sh\necho placeholder\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pkgDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(pkgDir, filepath.Join(work, "packaging")); err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join(work, "dist")
	os.Mkdir(dist, 0o755)
	for _, packager := range []string{"deb", "rpm"} {
		cmd := exec.Command(nfpm, "pkg",
			"--packager", packager, "--config", "packaging/nfpm.yaml", "--target", dist+"/")
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "VERSION=1.2.3", "ARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nfpm %s: %v\n%s", packager, err, out)
		}
	}

	deb := filepath.Join(dist, "lbd_1.2.3_amd64.deb")
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		checkNonEmpty(t, deb)
	} else {
		out, err := exec.Command("dpkg-deb", "-c", deb).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb -c: %v\n%s", err, out)
		}
		for _, f := range wantFiles {
			if !strings.Contains(string(out), " ."+f+"\n") {
				t.Errorf("the .deb does not install %s:\n%s", f, out)
			}
		}
		ctl, err := exec.Command("dpkg-deb", "-I", deb, "conffiles").CombinedOutput()
		if err != nil || strings.TrimSpace(string(ctl)) != "/etc/lbd/lbd.yaml" {
			t.Errorf("the .deb's conffiles: %q (%v), want /etc/lbd/lbd.yaml", ctl, err)
		}
		for _, script := range []string{"postinst", "prerm"} {
			if out, err := exec.Command("dpkg-deb", "-I", deb, script).CombinedOutput(); err != nil {
				t.Errorf("the .deb has no %s: %v\n%s", script, err, out)
			}
		}
	}

	rpm := filepath.Join(dist, "lbd-1.2.3-1.x86_64.rpm")
	if _, err := exec.LookPath("rpm"); err != nil {
		checkNonEmpty(t, rpm)
		return
	}
	out, err = exec.Command("rpm", "-qlp", rpm).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qlp: %v\n%s", err, out)
	}
	for _, f := range wantFiles {
		if !strings.Contains("\n"+string(out), "\n"+f+"\n") {
			t.Errorf("the .rpm does not install %s:\n%s", f, out)
		}
	}
}

func checkNonEmpty(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 {
		t.Errorf("%s: missing or empty (%v)", path, err)
	}
}
