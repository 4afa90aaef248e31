//go:build linux

package vip

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// addrState renders the non-link-local addresses on ifname as text, one line each:
// "<prefix> [label=<label>] [proto=<n>] [nodad]", sorted (the kernel orders addresses by
// subnet and primary/secondary, which is not what this compares).
func addrState(t *testing.T, ifname string) string {
	t.Helper()
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := dumpAddrs(unix.AF_UNSPEC, link.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, a := range addrs {
		if a.Prefix.Addr().IsLinkLocalUnicast() {
			continue
		}
		var b strings.Builder
		b.WriteString(a.Prefix.String())
		if a.Label != "" {
			fmt.Fprintf(&b, " label=%s", a.Label)
		}
		if a.Proto != 0 {
			fmt.Fprintf(&b, " proto=%#x", a.Proto)
		}
		if a.Flags&unix.IFA_F_NODAD != 0 {
			b.WriteString(" nodad")
		}
		lines = append(lines, b.String()+"\n")
	}
	slices.Sort(lines)
	return strings.Join(lines, "")
}

func TestAddressesLinux(t *testing.T) {
	l := newLab(t)
	a := l.node("a", "198.18.0.1/24", "2001:2::1/64")
	const base = "198.18.0.1/24 label=eth0\n2001:2::1/64 nodad\n"
	vip4 := netip.MustParsePrefix("198.18.0.100/24")
	vip4b := netip.MustParsePrefix("198.18.1.100/32")
	vip6 := netip.MustParsePrefix("2001:2::100/64")
	addrs := NewAddresses()

	steps := []struct {
		name      string
		do        func() error
		wantState string
		wantList  []netip.Prefix // List("eth0", "vip1")
	}{
		{
			name:      "start",
			do:        func() error { return nil },
			wantState: base,
		},
		{
			name:      "add ipv4 with label",
			do:        func() error { return addrs.Add("eth0", vip4, "vip1") },
			wantState: "198.18.0.1/24 label=eth0\n198.18.0.100/24 label=eth0:vip1 proto=0x6c\n2001:2::1/64 nodad\n",
			wantList:  []netip.Prefix{vip4},
		},
		{
			name:      "add ipv4 again",
			do:        func() error { return addrs.Add("eth0", vip4, "vip1") },
			wantState: "198.18.0.1/24 label=eth0\n198.18.0.100/24 label=eth0:vip1 proto=0x6c\n2001:2::1/64 nodad\n",
			wantList:  []netip.Prefix{vip4},
		},
		{
			name: "add ipv4 with another label is not listed",
			do:   func() error { return addrs.Add("eth0", vip4b, "other") },
			wantState: "198.18.0.1/24 label=eth0\n198.18.0.100/24 label=eth0:vip1 proto=0x6c\n" +
				"198.18.1.100/32 label=eth0:other proto=0x6c\n2001:2::1/64 nodad\n",
			wantList: []netip.Prefix{vip4},
		},
		{
			name: "add ipv6 twice",
			do: func() error {
				if err := addrs.Add("eth0", vip6, "vip1"); err != nil {
					return err
				}
				return addrs.Add("eth0", vip6, "vip1")
			},
			wantState: "198.18.0.1/24 label=eth0\n198.18.0.100/24 label=eth0:vip1 proto=0x6c\n" +
				"198.18.1.100/32 label=eth0:other proto=0x6c\n" +
				"2001:2::1/64 nodad\n2001:2::100/64 proto=0x6c nodad\n",
			wantList: []netip.Prefix{vip4, vip6},
		},
		{
			name: "remove all twice",
			do: func() error {
				for range 2 {
					for _, p := range []netip.Prefix{vip4, vip4b, vip6} {
						if err := addrs.Remove("eth0", p); err != nil {
							return err
						}
					}
				}
				return nil
			},
			wantState: base,
		},
	}
	a.do(func() {
		for _, s := range steps {
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if d := cmp.Diff(s.wantState, addrState(t, "eth0")); d != "" {
				t.Errorf("%s: addresses (-want +got):\n%s", s.name, d)
			}
			got, err := addrs.List("eth0", "vip1")
			if err != nil {
				t.Fatalf("%s: List: %v", s.name, err)
			}
			if d := cmp.Diff(s.wantList, got, cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); d != "" {
				t.Errorf("%s: List (-want +got):\n%s", s.name, d)
			}
		}
		t.Logf("ip -o addr:\n%s", a.ip("-o", "addr", "show", "dev", "eth0"))

		// The label is what `ip addr` shows.
		if err := addrs.Add("eth0", vip4, "vip1"); err != nil {
			t.Fatal(err)
		}
		if out := a.ip("-o", "-4", "addr", "show", "dev", "eth0", "label", "eth0:vip1"); !strings.Contains(out, "198.18.0.100/24") {
			t.Errorf("ip addr show label eth0:vip1 = %q, want 198.18.0.100/24", out)
		}

		errCases := []struct {
			name string
			err  error
		}{
			{"add on a missing link", addrs.Add("nope0", vip4, "vip1")},
			{"remove from a missing link", addrs.Remove("nope0", vip4)},
			{"list on a missing link", func() error { _, err := addrs.List("nope0", "vip1"); return err }()},
		}
		for _, c := range errCases {
			if c.err == nil {
				t.Errorf("%s: no error", c.name)
			}
		}
	})
}

func TestIPv4Label(t *testing.T) {
	tests := []struct {
		ifname, label string
		want          string
		wantErr       bool
	}{
		{"eth0", "", "", false},
		{"eth0", "vip1", "eth0:vip1", false},
		{"eth0", "averyverylonglabel", "eth0:averyveryl", false}, // 15 bytes
		{"enp0s31f6", "lbd-web", "enp0s31f6:lbd-w", false},
		{"abcdefghijklm", "x", "abcdefghijklm:x", false},
		{"abcdefghijklmn", "x", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.ifname+"/"+tt.label, func(t *testing.T) {
			got, err := ipv4Label(tt.ifname, tt.label)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ipv4Label(%q, %q) = %q, %v; want %q, error %v", tt.ifname, tt.label, got, err, tt.want, tt.wantErr)
			}
			if len(got) > maxLabelLen {
				t.Errorf("label %q longer than %d", got, maxLabelLen)
			}
		})
	}
}

func TestIPv4Broadcast(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"198.18.0.100/24", "198.18.0.255"},
		{"198.18.0.100/15", "198.19.255.255"},
		{"198.18.0.100/30", "198.18.0.103"},
		{"198.18.0.100/0", "255.255.255.255"},
	}
	for _, tt := range tests {
		got, _ := netip.AddrFromSlice(ipv4Broadcast(netip.MustParsePrefix(tt.prefix)))
		if got.String() != tt.want {
			t.Errorf("ipv4Broadcast(%s) = %s, want %s", tt.prefix, got, tt.want)
		}
	}
}
