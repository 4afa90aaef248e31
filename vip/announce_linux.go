package vip

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// Announcements, as keepalived sends them (vrrp_arp.c, vrrp_ndisc.c):
//
//   - IPv4: a gratuitous ARP request, Ethernet broadcast, sender and target protocol
//     address both the VIP, sender hardware address the interface's MAC, target hardware
//     address ff:ff:ff:ff:ff:ff. A request (not a reply) is what every neighbour processes:
//     Linux hosts update an existing entry from it, and switches learn the MAC.
//   - IPv6: an unsolicited neighbour advertisement (RFC 4861 section 7.2.6) from the VIP
//     itself to all-nodes ff02::1, hop limit 255, Override set, Solicited clear, Router
//     set when the interface forwards IPv6, with a Target Link-Layer Address option
//     carrying the interface's MAC.
//
// Each Announce opens its socket, sends one packet and closes it: announcements come in
// small bursts (garp_repeat) and a socket kept open would queue every ARP / ICMPv6 packet
// of the link for nobody. The VIP must already be on the interface (the manager adds it
// before announcing): the ARP client needs an IPv4 address on the interface, and the NA
// is sent from the VIP.

var ethernetBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

var allNodes = netip.MustParseAddr("ff02::1")

type linuxAnnouncer struct{}

// NewAnnouncer returns the Announcer that sends gratuitous ARP (IPv4) and unsolicited
// neighbour advertisements (IPv6) in the calling thread's network namespace. It needs
// CAP_NET_RAW.
func NewAnnouncer() Announcer { return linuxAnnouncer{} }

// Announce sends one gratuitous ARP or unsolicited NA for addr on ifname.
func (linuxAnnouncer) Announce(ifname string, addr netip.Addr) error {
	addr = addr.Unmap()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("announcing %s on %s: %w", addr, ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("announcing %s on %s: not an Ethernet interface (hardware address %q)", addr, ifname, ifi.HardwareAddr)
	}
	if addr.Is4() {
		err = gratuitousARP(ifi, addr)
	} else {
		err = unsolicitedNA(ifi, addr)
	}
	if err != nil {
		return fmt.Errorf("announcing %s on %s: %w", addr, ifname, err)
	}
	return nil
}

func gratuitousARP(ifi *net.Interface, addr netip.Addr) error {
	c, err := arp.Dial(ifi)
	if err != nil {
		return fmt.Errorf("opening arp socket: %w", err)
	}
	defer c.Close()
	p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, addr, ethernetBroadcast, addr)
	if err != nil {
		return err
	}
	return c.WriteTo(p, ethernetBroadcast)
}

func unsolicitedNA(ifi *net.Interface, addr netip.Addr) error {
	c, _, err := ndp.Listen(ifi, ndp.Addr(addr.WithZone("").String()))
	if err != nil {
		return fmt.Errorf("opening icmpv6 socket from %s: %w", addr, err)
	}
	defer c.Close()
	na := &ndp.NeighborAdvertisement{
		Router:        ipv6Forwarding(ifi.Name),
		Override:      true,
		TargetAddress: addr.WithZone(""),
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      ifi.HardwareAddr,
		}},
	}
	return c.WriteTo(na, nil, allNodes)
}

// ipv6Forwarding reports whether ifname forwards IPv6 (the NA's Router flag); false
// when it cannot be read.
func ipv6Forwarding(ifname string) bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + ifname + "/forwarding")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}
