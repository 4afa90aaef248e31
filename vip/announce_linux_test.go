//go:build linux

package vip

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

func TestAnnounceLinux(t *testing.T) {
	l := newLab(t)
	a := l.node("a", "198.18.0.1/24", "2001:2::1/64")
	b := l.node("b", "198.18.0.2/24", "2001:2::2/64")
	aMAC := a.mac()

	t.Run("gratuitous arp", func(t *testing.T) {
		vip := netip.MustParseAddr("198.18.0.100")
		var c *arp.Client
		b.do(func() {
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				t.Fatal(err)
			}
			if c, err = arp.Dial(ifi); err != nil {
				t.Fatal(err)
			}
		})
		t.Cleanup(func() { c.Close() })

		a.do(func() {
			if err := NewAddresses().Add("eth0", netip.PrefixFrom(vip, 24), "vip"); err != nil {
				t.Fatal(err)
			}
			if err := NewAnnouncer().Announce("eth0", vip); err != nil {
				t.Fatal(err)
			}
		})

		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		for {
			p, eth, err := c.Read()
			if err != nil {
				t.Fatalf("no gratuitous ARP for %s seen in b: %v", vip, err)
			}
			if p.SenderIP != vip {
				continue // b's own traffic, or a resolving b
			}
			got := []string{p.Operation.String(), p.SenderHardwareAddr.String(), p.TargetIP.String(),
				p.TargetHardwareAddr.String(), eth.Destination.String(), eth.Source.String()}
			want := []string{arp.OperationRequest.String(), aMAC, vip.String(),
				"ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff", aMAC}
			if !slices.Equal(got, want) {
				t.Errorf("gratuitous ARP [op sha tpa tha eth-dst eth-src] = %q, want %q", got, want)
			}
			return
		}
	})

	t.Run("unsolicited neighbour advertisement", func(t *testing.T) {
		vip := netip.MustParseAddr("2001:2::100")
		var c *ndp.Conn
		b.do(func() {
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				t.Fatal(err)
			}
			if c, _, err = ndp.Listen(ifi, ndp.LinkLocal); err != nil {
				t.Fatal(err)
			}
			if err := c.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst, true); err != nil {
				t.Fatal(err)
			}
		})
		t.Cleanup(func() { c.Close() })

		a.do(func() {
			if err := NewAddresses().Add("eth0", netip.PrefixFrom(vip, 64), "vip"); err != nil {
				t.Fatal(err)
			}
			if err := NewAnnouncer().Announce("eth0", vip); err != nil {
				t.Fatal(err)
			}
		})

		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		for {
			m, cm, src, err := c.ReadFrom()
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("no neighbour advertisement for %s seen in b", vip)
				}
				t.Fatal(err)
			}
			na, ok := m.(*ndp.NeighborAdvertisement)
			if !ok || na.TargetAddress != vip {
				continue
			}
			var tlla string
			for _, o := range na.Options {
				if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
					tlla = lla.Addr.String()
				}
			}
			if src.WithZone("") != vip || cm.Dst.String() != "ff02::1" || cm.HopLimit != 255 ||
				!na.Override || na.Solicited || na.Router || tlla != aMAC {
				t.Errorf("NA from %s to %s hop limit %d: %+v, tlla %s; want from %s to ff02::1 hop limit 255, override, not solicited, not router, tlla %s",
					src, cm.Dst, cm.HopLimit, na, tlla, vip, aMAC)
			}
			return
		}
	})

	t.Run("errors", func(t *testing.T) {
		a.do(func() {
			an := NewAnnouncer()
			if err := an.Announce("nope0", netip.MustParseAddr("198.18.0.100")); err == nil {
				t.Error("announce on a missing interface: no error")
			}
			if err := an.Announce("lo", netip.MustParseAddr("198.18.0.100")); err == nil {
				t.Error("announce on lo (not Ethernet): no error")
			}
			// An IPv6 VIP that is not on the interface cannot be the NA's source.
			if err := an.Announce("eth0", netip.MustParseAddr("2001:2::200")); err == nil {
				t.Error("announce of an IPv6 address not on the interface: no error")
			}
		})
	})
}
