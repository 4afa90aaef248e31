//go:build linux

package vip

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// recvWithin returns the next packet of tr, failing the test when none arrives within
// a few seconds (it closes tr then, which also ends the Receive goroutine).
func recvWithin(t *testing.T, tr Transport) Received {
	t.Helper()
	type result struct {
		r   Received
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := tr.Receive()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("Receive: %v", res.err)
		}
		return res.r
	case <-time.After(5 * time.Second):
		tr.Close()
		<-ch
		t.Fatal("no packet within 5s")
		return Received{}
	}
}

func openTransport(t *testing.T, n *labNode, opts TransportOptions) Transport {
	t.Helper()
	var tr Transport
	n.do(func() {
		var err error
		tr, err = NewTransport(opts)
		if err != nil {
			t.Fatalf("NewTransport in %s: %v", n, err)
		}
	})
	t.Cleanup(func() { tr.Close() })
	return tr
}

func ifIndex(t *testing.T, n *labNode) int {
	t.Helper()
	var idx int
	n.do(func() {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		idx = ifi.Index
	})
	return idx
}

func TestTransportLinux(t *testing.T) {
	l := newLab(t)
	a := l.node("a", "198.18.0.1/24", "2001:2::1/64")
	b := l.node("b", "198.18.0.2/24", "2001:2::2/64")
	bIndex := ifIndex(t, b)

	tests := []struct {
		name      string
		family    int
		multicast bool
		aPeers    []netip.Addr // a's unicast peers; a sends to the first
		bPeers    []netip.Addr
		wantSrcA  netip.Addr // a's source as b sees it
		dst       netip.Addr // where a sends
	}{
		{
			name: "ipv4 multicast", family: 4, multicast: true,
			wantSrcA: netip.MustParseAddr("198.18.0.1"), dst: mcastGroup4,
		},
		{
			name: "ipv6 multicast", family: 6, multicast: true,
			wantSrcA: netip.MustParseAddr(a.linkLocal()), dst: mcastGroup6,
		},
		{
			name: "ipv4 unicast", family: 4,
			// a lists itself too, as a config shared by all nodes does
			aPeers:   []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1")},
			bPeers:   []netip.Addr{netip.MustParseAddr("198.18.0.1")},
			wantSrcA: netip.MustParseAddr("198.18.0.1"), dst: netip.MustParseAddr("198.18.0.2"),
		},
		{
			name: "ipv6 unicast", family: 6,
			aPeers:   []netip.Addr{netip.MustParseAddr("2001:2::2"), netip.MustParseAddr("2001:2::1")},
			bPeers:   []netip.Addr{netip.MustParseAddr("2001:2::1")},
			wantSrcA: netip.MustParseAddr(a.linkLocal()), dst: netip.MustParseAddr("2001:2::2"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := openTransport(t, a, TransportOptions{Interface: "eth0", Family: tt.family, Multicast: tt.multicast, UnicastPeers: tt.aPeers})
			tb := openTransport(t, b, TransportOptions{Interface: "eth0", Family: tt.family, Multicast: tt.multicast, UnicastPeers: tt.bPeers})
			if got := ta.Source(); got != tt.wantSrcA {
				t.Fatalf("a Source() = %s, want %s", got, tt.wantSrcA)
			}

			payload := []byte{0x31, 7, 100, 1, 0, 100, 0, 0, 198, 18, 0, 100}
			sent := time.Now()
			if err := ta.Send(payload, tt.dst); err != nil {
				t.Fatal(err)
			}
			got := recvWithin(t, tb)
			// The kernel's receive time: after the send, before the read returned.
			if got.At.Before(sent.Add(-time.Millisecond)) || got.At.After(time.Now()) {
				t.Errorf("received at %v, want between the send (%v) and now", got.At, sent)
			}
			got.At = time.Time{}
			want := Received{Payload: payload, Src: tt.wantSrcA, Dst: tt.dst, TTL: 255, IfIndex: bIndex}
			if d := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
				t.Errorf("b received (-want +got):\n%s", d)
			}

			// a's own packets never come back to a: after a sends (to the group, or to
			// itself in its peer list), the first packet a receives is b's.
			for _, p := range tt.aPeers {
				if err := ta.Send(payload, p); err != nil {
					t.Fatal(err)
				}
			}
			if tt.multicast {
				if err := ta.Send(payload, tt.dst); err != nil {
					t.Fatal(err)
				}
			}
			fromB := []byte{0x31, 7, 50, 0, 0, 100, 0, 0}
			bDst := tt.dst
			if !tt.multicast {
				bDst = tt.bPeers[0]
			}
			if err := tb.Send(fromB, bDst); err != nil {
				t.Fatal(err)
			}
			if r := recvWithin(t, ta); r.Src != tb.Source() || string(r.Payload) != string(fromB) {
				t.Errorf("a received %+v, want b's packet from %s", r, tb.Source())
			}
		})
	}

	t.Run("receive time is the kernel's, not the read's", func(t *testing.T) {
		ta := openTransport(t, a, TransportOptions{Interface: "eth0", Family: 4, Multicast: true})
		tb := openTransport(t, b, TransportOptions{Interface: "eth0", Family: 4, Multicast: true})
		payload := []byte{0x31, 7, 100, 1, 0, 100, 0, 0, 198, 18, 0, 100}
		// The kernel turns its receive timestamps on a little after the socket asks
		// for them (a deferred static key): until then a packet reads as received
		// now. Wait for that with packets that wait 20ms in the socket.
		for i := 0; ; i++ {
			if err := ta.Send(payload, mcastGroup4); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			read := time.Now()
			if r := recvWithin(t, tb); r.At.Before(read.Add(-10 * time.Millisecond)) {
				break
			}
			if i == 50 {
				t.Fatal("no kernel receive timestamps after 50 packets")
			}
		}
		sent := time.Now()
		if err := ta.Send(payload, mcastGroup4); err != nil {
			t.Fatal(err)
		}
		// The packet waits in b's socket, as during a hang of b's process.
		time.Sleep(200 * time.Millisecond)
		read := time.Now()
		got := recvWithin(t, tb)
		if got.At.IsZero() || got.At.Before(sent.Add(-time.Millisecond)) || !got.At.Before(read) {
			t.Errorf("received at %v, want between the send (%v) and the read (%v)", got.At, sent, read)
		}
	})

	t.Run("close unblocks receive", func(t *testing.T) {
		tr := openTransport(t, a, TransportOptions{Interface: "eth0", Family: 4, Multicast: true})
		errc := make(chan error, 1)
		go func() {
			_, err := tr.Receive()
			errc <- err
		}()
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Receive after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Receive still blocked 5s after Close")
		}
		if err := tr.Close(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
	})
}

func TestNewTransportErrors(t *testing.T) {
	l := newLab(t)
	a := l.node("a", "198.18.0.1/24")
	tests := []struct {
		name string
		opts TransportOptions
	}{
		{"bad family", TransportOptions{Interface: "eth0", Family: 5}},
		{"no interface", TransportOptions{Interface: "nope0", Family: 4}},
		{"peer of wrong family", TransportOptions{Interface: "eth0", Family: 4, UnicastPeers: []netip.Addr{netip.MustParseAddr("2001:2::2")}}},
		{"source of wrong family", TransportOptions{Interface: "eth0", Family: 6, Source: netip.MustParseAddr("198.18.0.1")}},
		{"no address of the family", TransportOptions{Interface: "lo", Family: 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.do(func() {
				tr, err := NewTransport(tt.opts)
				if err == nil {
					tr.Close()
					t.Fatalf("NewTransport(%+v) succeeded, want an error", tt.opts)
				}
				t.Log(err)
			})
		})
	}
}

// TestTransportTOS: advertisements leave with TOS / traffic class 0xc0 (DSCP CS6,
// network control), as keepalived's, so that QoS rules that protect VRRP match them.
// b reads them with sockets of its own: an IPv4 raw socket sees the IP header; an IPv6
// one gets the traffic class in a control message.
func TestTransportTOS(t *testing.T) {
	l := newLab(t)
	a := l.node("a", "198.18.0.1/24", "2001:2::1/64")
	b := l.node("b", "198.18.0.2/24", "2001:2::2/64")
	payload := []byte{0x31, 7, 100, 1, 0, 100, 0, 0, 198, 18, 0, 100}

	t.Run("ipv4", func(t *testing.T) {
		var fd int
		b.do(func() {
			var err error
			if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, rawProtoVRRP); err != nil {
				t.Fatal(err)
			}
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
				t.Fatal(err)
			}
		})
		defer unix.Close(fd)
		ta := openTransport(t, a, TransportOptions{Interface: "eth0", Family: 4, UnicastPeers: []netip.Addr{netip.MustParseAddr("198.18.0.2")}})
		if err := ta.Send(payload, netip.MustParseAddr("198.18.0.2")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("reading b's raw socket: %v", err)
		}
		if n < 20 || buf[9] != rawProtoVRRP {
			t.Fatalf("not a vrrp packet: % x", buf[:n])
		}
		if tos := buf[1]; tos != 0xc0 {
			t.Errorf("tos = %#02x, want 0xc0", tos)
		}
	})

	t.Run("ipv6", func(t *testing.T) {
		var p *ipv6.PacketConn
		b.do(func() {
			c, err := net.ListenPacket("ip6:112", "2001:2::2")
			if err != nil {
				t.Fatal(err)
			}
			p = ipv6.NewPacketConn(c)
		})
		defer p.Close()
		if err := p.SetControlMessage(ipv6.FlagTrafficClass, true); err != nil {
			t.Fatal(err)
		}
		p.SetReadDeadline(time.Now().Add(5 * time.Second))
		ta := openTransport(t, a, TransportOptions{Interface: "eth0", Family: 6, UnicastPeers: []netip.Addr{netip.MustParseAddr("2001:2::2")}})
		if err := ta.Send(payload, netip.MustParseAddr("2001:2::2")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		_, cm, _, err := p.ReadFrom(buf)
		if err != nil {
			t.Fatalf("reading b's raw socket: %v", err)
		}
		if cm == nil || cm.TrafficClass != 0xc0 {
			t.Errorf("control message %v, want traffic class 0xc0", cm)
		}
	})
}
