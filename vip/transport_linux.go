package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// rawProtoVRRP is the IP protocol number of VRRP.
const rawProtoVRRP = 112

// rawTTL is the IPv4 TTL / IPv6 hop limit of every VRRP packet (RFC 5798 section 5.1.1.3).
const rawTTL = 255

// rawTOS is the IPv4 TOS / IPv6 traffic class of every VRRP packet: DSCP CS6 (network
// control), as keepalived sends, so that QoS rules that protect VRRP match lbd's too.
const rawTOS = 0xc0

// The VRRP multicast groups (RFC 5798 section 5.1.1.2 and 5.1.2.2).
var (
	mcastGroup4 = netip.MustParseAddr("224.0.0.18")
	mcastGroup6 = netip.MustParseAddr("ff02::12")
)

// TransportOptions configures NewTransport.
type TransportOptions struct {
	// Interface is the interface VRRP runs on. Required.
	Interface string
	// Family is 4 or 6. Required.
	Family int
	// UnicastPeers are the peers advertisements are sent to when the network drops
	// multicast (keepalived's unicast_peer). They must be of Family. The transport
	// does not filter received packets by them; the receive checks do.
	UnicastPeers []netip.Addr
	// Source is the address advertisements are sent from (keepalived's
	// unicast_src_ip). Default: the interface's first primary IPv4 address that lbd
	// did not add, or its IPv6 link-local address (RFC 5798 section 5.1.2.1).
	Source netip.Addr
	// Multicast joins the VRRP group of Family on Interface, so advertisements sent to
	// it are received. Set it when there are no unicast peers.
	Multicast bool
}

// rawTransport is the Linux Transport: a raw IP socket for protocol 112 bound to one
// interface (SO_BINDTODEVICE). The kernel adds the IP header on send (IP_HDRINCL is
// off) and reports the TTL/hop limit, destination and interface of each received
// packet in control messages. The VRRP checksum is the codec's: IPV6_CHECKSUM is not set.
// The receive time of each packet (Received.At) comes from the SIOCGSTAMPNS ioctl after
// the read: the first call turns the socket's receive timestamps on without adding a
// control message (SO_TIMESTAMPNS would add one ahead of the others and overflow the
// control buffer golang.org/x/net sizes for them).
type rawTransport struct {
	ifi    *net.Interface
	source netip.Addr
	conn   net.PacketConn // the *net.IPConn under p4 or p6; Close unblocks reads
	raw    syscall.RawConn
	p4     *ipv4.PacketConn
	p6     *ipv6.PacketConn
	buf    []byte // receive buffer; Receive is called from one goroutine
}

// NewTransport opens the raw VRRP socket described by opts in the calling thread's
// network namespace. It needs CAP_NET_RAW.
func NewTransport(opts TransportOptions) (Transport, error) {
	if opts.Family != 4 && opts.Family != 6 {
		return nil, fmt.Errorf("vrrp transport: family (%d) must be 4 or 6", opts.Family)
	}
	ifi, err := net.InterfaceByName(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp transport on %q: %w", opts.Interface, err)
	}
	for _, p := range opts.UnicastPeers {
		if !familyIs(p, opts.Family) {
			return nil, fmt.Errorf("vrrp transport on %s: unicast peer %s is not IPv%d", ifi.Name, p, opts.Family)
		}
	}
	source := opts.Source.Unmap()
	if source.IsValid() {
		if !familyIs(source, opts.Family) {
			return nil, fmt.Errorf("vrrp transport on %s: source %s is not IPv%d", ifi.Name, source, opts.Family)
		}
	} else if source, err = defaultSource(ifi, opts.Family); err != nil {
		return nil, fmt.Errorf("vrrp transport on %s: %w", ifi.Name, err)
	}

	network := fmt.Sprintf("ip%d:%d", opts.Family, rawProtoVRRP)
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name)
		})
		if serr != nil {
			return fmt.Errorf("SO_BINDTODEVICE %s: %w", ifi.Name, serr)
		}
		return err
	}}
	conn, err := lc.ListenPacket(context.Background(), network, "")
	if err != nil {
		return nil, fmt.Errorf("vrrp transport on %s: %w", ifi.Name, err)
	}
	t := &rawTransport{ifi: ifi, source: source, conn: conn, buf: make([]byte, max(ifi.MTU, 1500))}
	if sc, ok := conn.(syscall.Conn); ok {
		if t.raw, err = sc.SyscallConn(); err == nil {
			t.stamp() // turns the receive timestamps on
		}
	}
	if opts.Family == 4 {
		err = t.setup4(opts.Multicast)
	} else {
		err = t.setup6(opts.Multicast)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("vrrp transport on %s: %w", ifi.Name, err)
	}
	return t, nil
}

func (t *rawTransport) setup4(multicast bool) error {
	p := ipv4.NewPacketConn(t.conn)
	t.p4 = p
	if err := p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		return fmt.Errorf("enabling control messages: %w", err)
	}
	if err := p.SetTTL(rawTTL); err != nil {
		return fmt.Errorf("setting ttl: %w", err)
	}
	if err := p.SetTOS(rawTOS); err != nil {
		return fmt.Errorf("setting tos: %w", err)
	}
	if err := p.SetMulticastTTL(rawTTL); err != nil {
		return fmt.Errorf("setting multicast ttl: %w", err)
	}
	if err := p.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("disabling multicast loopback: %w", err)
	}
	if err := p.SetMulticastInterface(t.ifi); err != nil {
		return fmt.Errorf("setting multicast interface: %w", err)
	}
	if multicast {
		if err := p.JoinGroup(t.ifi, &net.IPAddr{IP: mcastGroup4.AsSlice()}); err != nil {
			return fmt.Errorf("joining %s: %w", mcastGroup4, err)
		}
	}
	return nil
}

func (t *rawTransport) setup6(multicast bool) error {
	p := ipv6.NewPacketConn(t.conn)
	t.p6 = p
	if err := p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		return fmt.Errorf("enabling control messages: %w", err)
	}
	if err := p.SetHopLimit(rawTTL); err != nil {
		return fmt.Errorf("setting hop limit: %w", err)
	}
	if err := p.SetTrafficClass(rawTOS); err != nil {
		return fmt.Errorf("setting traffic class: %w", err)
	}
	if err := p.SetMulticastHopLimit(rawTTL); err != nil {
		return fmt.Errorf("setting multicast hop limit: %w", err)
	}
	if err := p.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("disabling multicast loopback: %w", err)
	}
	if err := p.SetMulticastInterface(t.ifi); err != nil {
		return fmt.Errorf("setting multicast interface: %w", err)
	}
	if multicast {
		if err := p.JoinGroup(t.ifi, &net.IPAddr{IP: mcastGroup6.AsSlice()}); err != nil {
			return fmt.Errorf("joining %s: %w", mcastGroup6, err)
		}
	}
	return nil
}

// Send sends b to dst from Source() out of the transport's interface.
func (t *rawTransport) Send(b []byte, dst netip.Addr) error {
	dst = dst.Unmap()
	var err error
	switch {
	case t.p4 != nil && dst.Is4():
		cm := &ipv4.ControlMessage{Src: t.source.AsSlice(), IfIndex: t.ifi.Index}
		_, err = t.p4.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()})
	case t.p6 != nil && dst.Is6():
		cm := &ipv6.ControlMessage{Src: t.source.AsSlice(), IfIndex: t.ifi.Index, HopLimit: rawTTL}
		// No zone on dst: the IPV6_PKTINFO interface index scopes link-local and multicast
		// destinations, and a zone name would be resolved in the namespace of whichever
		// thread runs this, not the socket's.
		_, err = t.p6.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()})
	default:
		err = fmt.Errorf("wrong address family")
	}
	if err != nil {
		return fmt.Errorf("sending vrrp to %s on %s: %w", dst, t.ifi.Name, err)
	}
	return nil
}

// Receive returns the next VRRP packet that did not come from Source(). It must not be
// called from two goroutines at once.
func (t *rawTransport) Receive() (Received, error) {
	for {
		var (
			n   int
			r   Received
			src net.Addr
			err error
		)
		if t.p4 != nil {
			var cm *ipv4.ControlMessage
			n, cm, src, err = t.p4.ReadFrom(t.buf)
			if cm != nil {
				r.TTL, r.IfIndex = cm.TTL, cm.IfIndex
				r.Dst, _ = netip.AddrFromSlice(cm.Dst.To4())
			}
		} else {
			var cm *ipv6.ControlMessage
			n, cm, src, err = t.p6.ReadFrom(t.buf)
			if cm != nil {
				r.TTL, r.IfIndex = cm.HopLimit, cm.IfIndex
				r.Dst, _ = netip.AddrFromSlice(cm.Dst.To16())
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return Received{}, fmt.Errorf("receiving vrrp on %s: %w", t.ifi.Name, net.ErrClosed)
			}
			return Received{}, fmt.Errorf("receiving vrrp on %s: %w", t.ifi.Name, err)
		}
		if ipa, ok := src.(*net.IPAddr); ok {
			r.Src, _ = netip.AddrFromSlice(ipa.IP)
			r.Src = r.Src.Unmap()
		}
		if r.Src == t.source {
			continue // our own packet, looped back by a unicast peer list that names us
		}
		r.Payload = slices.Clone(t.buf[:n])
		r.At = t.stamp()
		return r, nil
	}
}

// stamp returns the kernel's receive time of the last packet read (zero when unknown).
func (t *rawTransport) stamp() time.Time {
	if t.raw == nil {
		return time.Time{}
	}
	var ts unix.Timespec
	var errno syscall.Errno
	if err := t.raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.SIOCGSTAMPNS, uintptr(unsafe.Pointer(&ts)))
	}); err != nil || errno != 0 {
		return time.Time{}
	}
	return time.Unix(ts.Unix())
}

// IfIndex is the index of the interface the socket is bound to.
func (t *rawTransport) IfIndex() int { return t.ifi.Index }

// Source is the address advertisements are sent from.
func (t *rawTransport) Source() netip.Addr { return t.source }

// Close closes the socket; a blocked Receive returns an error wrapping net.ErrClosed.
func (t *rawTransport) Close() error {
	if err := t.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func familyIs(a netip.Addr, family int) bool {
	a = a.Unmap()
	return family == 4 && a.Is4() || family == 6 && a.Is6()
}

// defaultSource picks the VRRP source address on ifi: for IPv4 the first primary
// (not secondary) address that does not carry AddrProtocol, for IPv6 the first
// link-local address, preferring one that is not tentative.
func defaultSource(ifi *net.Interface, family int) (netip.Addr, error) {
	af := unix.AF_INET
	if family == 6 {
		af = unix.AF_INET6
	}
	addrs, err := dumpAddrs(af, ifi.Index)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listing addresses: %w", err)
	}
	var tentative netip.Addr
	for _, a := range addrs {
		ip := a.Prefix.Addr()
		switch {
		case family == 4 && a.Flags&unix.IFA_F_SECONDARY == 0 && a.Proto != AddrProtocol:
			return ip, nil
		case family == 6 && ip.IsLinkLocalUnicast():
			if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
				return ip, nil
			}
			if !tentative.IsValid() {
				tentative = ip
			}
		}
	}
	if tentative.IsValid() {
		return tentative, nil
	}
	if family == 6 {
		return netip.Addr{}, errors.New("no IPv6 link-local address to send from (RFC 5798 requires one; is IPv6 enabled and the link up?)")
	}
	return netip.Addr{}, errors.New("no IPv4 address to send from (add one, or set the unicast source)")
}
