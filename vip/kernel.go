package vip

import (
	"net/netip"
	"time"
)

// The kernel-facing parts of the VIP manager, behind small interfaces so the state
// machine and the manager are tested against fakes, and the Linux implementations
// (transport_linux.go, addr_linux.go, announce_linux.go) in network namespaces.

// Transport sends and receives VRRP advertisements (IP protocol 112) on one interface.
type Transport interface {
	// Send sends an encoded VRRP packet (the VRRP header and addresses, without the IP
	// header) to dst: the VRRP multicast group of the family, or a unicast peer. The
	// IPv4 TTL / IPv6 hop limit is 255.
	Send(b []byte, dst netip.Addr) error
	// Receive blocks until a packet arrives or the transport is closed (an error
	// wrapping net.ErrClosed).
	Receive() (Received, error)
	// Source is the primary address the transport sends from (the interface's first
	// address of the family, or the configured unicast source).
	Source() netip.Addr
	Close() error
}

// Received is one packet as the transport saw it.
type Received struct {
	Payload []byte     // the VRRP header and addresses
	Src     netip.Addr // IP source address
	Dst     netip.Addr // IP destination address
	TTL     int        // IPv4 TTL or IPv6 hop limit; the receive checks require 255
	IfIndex int        // interface the packet came in on
	// At is when the kernel received the packet (zero when unknown). A packet read
	// long after it arrived waited in the socket while the process did not run (a
	// SIGSTOP, a hung host); the instance drops such packets as master.
	At time.Time
}

// Addresses adds and removes the virtual addresses on an interface. Adding an address
// that is present and removing one that is absent succeed.
type Addresses interface {
	Add(ifname string, p netip.Prefix, label string) error
	Remove(ifname string, p netip.Prefix) error
	// List returns the addresses on ifname that carry label (to clean up after a crash).
	List(ifname, label string) ([]netip.Prefix, error)
}

// Announcer tells the neighbours that this node now answers for addr: a gratuitous ARP
// for IPv4, an unsolicited neighbour advertisement with the override flag for IPv6.
type Announcer interface {
	Announce(ifname string, addr netip.Addr) error
}
