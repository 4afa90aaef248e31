package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Addresses through netlink.
//
// How lbd finds its own addresses again (after a crash, a kill -9, or on the unit's
// ExecStopPost):
//
//   - Every address lbd adds carries the address protocol AddrProtocol (IFA_PROTO, Linux
//     5.18 and later; `ip -d addr show` prints it as "proto 0x6c", and `ip addr show proto
//     108` lists them). Older kernels ignore the attribute.
//   - IPv4 addresses also carry an interface label "<ifname>:<label>" (the kernel requires
//     labels to start with the interface name and to fit in 15 bytes, so the label part is
//     cut to fit; an interface name of 14 or more bytes leaves no room and Add fails with a
//     clear error). The label is what List matches for IPv4, on every kernel, and what an
//     operator sees in `ip addr` as keepalived users are used to.
//   - IPv6 has no labels. List(ifname, label) returns, for IPv6, every address on ifname
//     carrying AddrProtocol, whatever the label: callers that run several instances on one
//     interface intersect the result with the instance's configured VIPs. On kernels before
//     5.18 List finds no IPv6 addresses; removing the configured VIPs (Remove is
//     idempotent) covers them.
//
// IPv6 VIPs are added with IFA_F_NODAD, so they are usable at once: duplicate address
// detection would keep a moving VIP "tentative" (unusable as a source, not answered in
// neighbour discovery) for a second or more, and VRRP already decides who owns it.

// AddrProtocol is the IFA_PROTO value that marks the addresses lbd adds (0x6c, "l").
const AddrProtocol = 0x6c

// ifaProto is IFA_PROTO from linux/if_addr.h (not yet in x/sys/unix).
const ifaProto = 11

// maxLabelLen is the longest interface label the kernel stores (IFNAMSIZ - 1).
const maxLabelLen = 15

type netlinkAddresses struct{}

// NewAddresses returns the Addresses that change the calling thread's network namespace
// through netlink (see the notes above on labels and AddrProtocol).
func NewAddresses() Addresses { return netlinkAddresses{} }

// Add adds p to ifname with label (IPv4 only; see the notes above). An address that is
// already present is a success, even if something else added it.
func (netlinkAddresses) Add(ifname string, p netip.Prefix, label string) error {
	p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
	if !p.IsValid() {
		return fmt.Errorf("adding vip %s on %s: invalid prefix", p, ifname)
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("adding vip %s on %s: %w", p, ifname, err)
	}
	l, err := ipv4Label(ifname, label)
	if err != nil {
		return fmt.Errorf("adding vip %s on %s: %w", p, ifname, err)
	}
	if err := addAddr(link.Attrs().Index, p, l); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("adding vip %s on %s: %w", p, ifname, err)
	}
	return nil
}

// Remove removes p from ifname. An address that is not there is a success.
func (netlinkAddresses) Remove(ifname string, p netip.Prefix) error {
	p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("removing vip %s from %s: %w", p, ifname, err)
	}
	addr := &netlink.Addr{IPNet: prefixIPNet(p)}
	if err := netlink.AddrDel(link, addr); err != nil &&
		!errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("removing vip %s from %s: %w", p, ifname, err)
	}
	return nil
}

// List returns the IPv4 addresses on ifname labelled label and the IPv6 addresses on
// ifname marked with AddrProtocol, in kernel order.
func (netlinkAddresses) List(ifname, label string) ([]netip.Prefix, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("listing vips on %s: %w", ifname, err)
	}
	l, err := ipv4Label(ifname, label)
	if err != nil {
		return nil, fmt.Errorf("listing vips on %s: %w", ifname, err)
	}
	addrs, err := dumpAddrs(unix.AF_UNSPEC, link.Attrs().Index)
	if err != nil {
		return nil, fmt.Errorf("listing vips on %s: %w", ifname, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if a.Prefix.Addr().Is4() && l != "" && a.Label == l ||
			a.Prefix.Addr().Is6() && a.Proto == AddrProtocol {
			out = append(out, a.Prefix)
		}
	}
	return out, nil
}

// ipv4Label returns the kernel label for an lbd label on ifname: "ifname:label" cut to 15
// bytes, or "" for an empty label.
func ipv4Label(ifname, label string) (string, error) {
	if label == "" {
		return "", nil
	}
	room := maxLabelLen - len(ifname) - 1
	if room < 1 {
		return "", fmt.Errorf("interface name %q leaves no room for label %q (labels are at most %d bytes and start with the interface name and a colon)",
			ifname, label, maxLabelLen)
	}
	if len(label) > room {
		label = label[:room]
	}
	return ifname + ":" + label, nil
}

// kernelAddr is one address as the kernel reports it.
type kernelAddr struct {
	Prefix netip.Prefix
	Label  string // IPv4 only
	Flags  uint32 // IFA_F_*
	Scope  uint8
	Proto  uint8 // IFA_PROTO, 0 when unset or unsupported
}

// addAddr sends RTM_NEWADDR with NLM_F_EXCL (EEXIST when present), marking the address
// with AddrProtocol, and IPv6 addresses with IFA_F_NODAD.
func addAddr(index int, p netip.Prefix, label string) error {
	family := unix.AF_INET
	if p.Addr().Is6() {
		family = unix.AF_INET6
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfAddrmsg(family)
	msg.Index = uint32(index)
	msg.Prefixlen = uint8(p.Bits())
	msg.Scope = unix.RT_SCOPE_UNIVERSE
	var flags uint32
	if family == unix.AF_INET6 {
		flags |= unix.IFA_F_NODAD
		if p.Addr().IsLinkLocalUnicast() {
			msg.Scope = unix.RT_SCOPE_LINK
		}
	}
	msg.Flags = uint8(flags)
	req.AddData(msg)
	ip := p.Addr().AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
	fb := make([]byte, 4)
	binary.NativeEndian.PutUint32(fb, flags)
	req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, fb))
	if family == unix.AF_INET {
		if p.Bits() < 31 {
			req.AddData(nl.NewRtAttr(unix.IFA_BROADCAST, ipv4Broadcast(p)))
		}
		if label != "" {
			req.AddData(nl.NewRtAttr(unix.IFA_LABEL, nl.ZeroTerminated(label)))
		}
	}
	req.AddData(nl.NewRtAttr(ifaProto, []byte{AddrProtocol}))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// dumpAddrs lists the addresses of one family (AF_UNSPEC for both) on the interface
// index (0 for all interfaces).
func dumpAddrs(family, index int) ([]kernelAddr, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfAddrmsg(family))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR)
	if err != nil {
		return nil, err
	}
	var out []kernelAddr
	for _, m := range msgs {
		if len(m) < unix.SizeofIfAddrmsg {
			continue
		}
		hdr := nl.DeserializeIfAddrmsg(m)
		if index != 0 && int(hdr.Index) != index {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfAddrmsg:])
		if err != nil {
			return nil, err
		}
		a := kernelAddr{Flags: uint32(hdr.Flags), Scope: hdr.Scope}
		var local, address netip.Addr
		for _, at := range attrs {
			switch at.Attr.Type {
			case unix.IFA_LOCAL:
				local, _ = netip.AddrFromSlice(at.Value)
			case unix.IFA_ADDRESS:
				address, _ = netip.AddrFromSlice(at.Value)
			case unix.IFA_LABEL:
				a.Label = nl.BytesToString(at.Value)
			case unix.IFA_FLAGS:
				if len(at.Value) >= 4 {
					a.Flags = binary.NativeEndian.Uint32(at.Value)
				}
			case ifaProto:
				if len(at.Value) >= 1 {
					a.Proto = at.Value[0]
				}
			}
		}
		// IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point
		// links, and the only one IPv6 sends.
		ip := local
		if !ip.IsValid() {
			ip = address
		}
		if !ip.IsValid() {
			continue
		}
		a.Prefix = netip.PrefixFrom(ip.Unmap(), int(hdr.Prefixlen))
		out = append(out, a)
	}
	return out, nil
}

// prefixIPNet converts p to the net.IPNet netlink wants.
func prefixIPNet(p netip.Prefix) *net.IPNet {
	bits := p.Addr().BitLen()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// ipv4Broadcast returns the IPv4 broadcast address of p.
func ipv4Broadcast(p netip.Prefix) []byte {
	b := p.Addr().As4()
	for i := range 4 {
		bits := p.Bits() - 8*i
		switch {
		case bits <= 0:
			b[i] = 0xff
		case bits < 8:
			b[i] |= 0xff >> bits
		}
	}
	return b[:]
}
