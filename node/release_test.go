//go:build linux

package node

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
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
	var out bytes.Buffer
	if _, err := releaseVIPs(&out, cfg, "", a); err != nil {
		t.Fatalf("releaseVIPs: %v", err)
	}
	if len(a.removed) != 1 || a.removed[0] != "lo 198.18.0.100/24" {
		t.Errorf("removed %v, want [lo 198.18.0.100/24]", a.removed)
	}
	if !strings.Contains(out.String(), "interface lbdt-absent0 not found: nothing to release") {
		t.Errorf("output does not report the absent interface:\n%s", out.String())
	}

	// A failure to remove comes back.
	a = &fakeAddrs{have: a.have, fail: errors.New("operation not permitted")}
	out.Reset()
	if _, err := releaseVIPs(&out, cfg, "", a); err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Errorf("releaseVIPs with a failing Remove: %v, want the failure", err)
	}

	// No instances: nothing to do.
	out.Reset()
	if n, err := releaseVIPs(&out, vip.Config{}, "", &fakeAddrs{}); n != 0 || err != nil || !strings.Contains(out.String(), "nothing to release") {
		t.Errorf("no instances: %d, %v, %q", n, err, out.String())
	}
}
