package vip

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var addrComparer = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

var (
	pktSrc4  = netip.MustParseAddr("198.18.0.1")
	pktPeer4 = netip.MustParseAddr("198.18.0.2")
	pktSrc6  = netip.MustParseAddr("fe80::1")
)

// knownGood are advertisements built by hand from RFC field values. Their checksums
// were computed independently of this package (a few lines of Python summing the
// 16-bit words of pseudo-header and message, RFC 1071), not by the code under test.
var knownGood = []struct {
	name     string
	hex      string
	src, dst netip.Addr
	opt      CodecOptions
	want     Packet
}{
	{
		// 0x31 = version 3, type 1; VRID 0x33 = 51; priority 0x64 = 100; 1 address;
		// interval 0x064 = 100 centiseconds; checksum with the IPv4 pseudo-header
		// (198.18.0.1, 224.0.0.18, 0, 112, length 12); 198.18.0.100.
		name: "v3 ipv4 multicast",
		hex:  "31 33 64 01 0064 fd4d c6120064",
		src:  pktSrc4, dst: MulticastGroupV4,
		want: Packet{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addresses: addrs("198.18.0.100")},
	},
	{
		// The same message, checksum over the message alone.
		name: "v3 ipv4 checksum as v2",
		hex:  "31 33 64 01 0064 a3f0 c6120064",
		src:  pktSrc4, dst: MulticastGroupV4, opt: CodecOptions{V3ChecksumAsV2: true},
		want: Packet{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addresses: addrs("198.18.0.100")},
	},
	{
		// Unicast: the pseudo-header names the peer, so the checksum differs.
		name: "v3 ipv4 unicast peer",
		hex:  "31 33 64 01 0064 174c c6120064",
		src:  pktSrc4, dst: pktPeer4,
		want: Packet{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addresses: addrs("198.18.0.100")},
	},
	{
		name: "v3 ipv4 no addresses",
		hex:  "31 33 64 00 0064 c3c9",
		src:  pktSrc4, dst: MulticastGroupV4,
		want: Packet{Version: 3, VRID: 51, Priority: 100, Interval: time.Second},
	},
	{
		// Largest interval (0xfff centiseconds), priority 254, two addresses.
		name: "v3 ipv4 max interval",
		hex:  "31 33 fe 02 0fff 8d35 c6120064 c6120065",
		src:  pktSrc4, dst: MulticastGroupV4,
		want: Packet{Version: 3, VRID: 51, Priority: 254, Interval: 40950 * time.Millisecond, Addresses: addrs("198.18.0.100", "198.18.0.101")},
	},
	{
		// IPv6 pseudo-header: fe80::1, ff02::12, 32-bit length 24, 0, 0, 0, 112.
		name: "v3 ipv6 multicast",
		hex:  "31 34 c8 01 0064 e743 20010002000000000000000000000100",
		src:  pktSrc6, dst: MulticastGroupV6,
		want: Packet{Version: 3, VRID: 52, Priority: 200, Interval: time.Second, Addresses: addrs("2001:2::100")},
	},
	{
		// 0x21 = version 2, type 1; VRID 61; priority 100; 1 address; auth type 0;
		// interval 1 s; checksum over the message; 198.18.0.110; 8 zero bytes of
		// authentication data.
		name: "v2 auth none",
		hex:  "21 3d 64 01 00 01 b43f c612006e 0000000000000000",
		src:  pktSrc4, dst: MulticastGroupV4,
		want: Packet{Version: 2, VRID: 61, Priority: 100, Interval: time.Second, Addresses: addrs("198.18.0.110")},
	},
	{
		name: "v2 auth password",
		hex:  "21 3d 64 01 01 01 7725 c612006e 7333637265740000",
		src:  pktSrc4, dst: MulticastGroupV4,
		want: Packet{Version: 2, VRID: 61, Priority: 100, Interval: time.Second, AuthType: AuthPassword, AuthData: [8]byte{'s', '3', 'c', 'r', 'e', 't'}, Addresses: addrs("198.18.0.110")},
	},
	{
		// Priority 0 (the master stops) and the largest version 2 interval, 255 s.
		name: "v2 priority 0 max interval",
		hex:  "21 3e 00 02 00 ff 50bc c612006f c6120070 0000000000000000",
		src:  pktSrc4, dst: MulticastGroupV4,
		want: Packet{Version: 2, VRID: 62, Priority: 0, Interval: 255 * time.Second, Addresses: addrs("198.18.0.111", "198.18.0.112")},
	},
}

func TestPacketKnownGood(t *testing.T) {
	for _, tc := range knownGood {
		t.Run(tc.name, func(t *testing.T) {
			b := mustHex(t, tc.hex)
			got, err := Parse(b, tc.src, tc.dst, tc.opt)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, addrComparer); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			out, err := tc.want.Marshal(tc.src, tc.dst, tc.opt)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !slices.Equal(out, b) {
				t.Errorf("Marshal = %x, want %x", out, b)
			}
		})
	}
}

// The checksum variant is strict either way, as in keepalived: with
// V3ChecksumAsV2 only the message-only form is accepted, without it only the form
// with the pseudo-header. IPv6 and version 2 do not depend on the option.
func TestPacketChecksumVariants(t *testing.T) {
	withPseudo := mustHex(t, knownGood[0].hex)
	messageOnly := mustHex(t, knownGood[1].hex)
	tests := []struct {
		name string
		hex  string
		src  netip.Addr
		dst  netip.Addr
		asV2 bool
		ok   bool
	}{
		{"v3 ipv4 pseudo-header, default", hex.EncodeToString(withPseudo), pktSrc4, MulticastGroupV4, false, true},
		{"v3 ipv4 pseudo-header, as v2", hex.EncodeToString(withPseudo), pktSrc4, MulticastGroupV4, true, false},
		{"v3 ipv4 message only, default", hex.EncodeToString(messageOnly), pktSrc4, MulticastGroupV4, false, false},
		{"v3 ipv4 message only, as v2", hex.EncodeToString(messageOnly), pktSrc4, MulticastGroupV4, true, true},
		{"v3 ipv4 multicast checksum to a unicast peer", hex.EncodeToString(withPseudo), pktSrc4, pktPeer4, false, false},
		{"v3 ipv4 from another source", hex.EncodeToString(withPseudo), pktPeer4, MulticastGroupV4, false, false},
		{"v3 ipv6, default", knownGood[5].hex, pktSrc6, MulticastGroupV6, false, true},
		{"v3 ipv6, as v2 keeps the pseudo-header", knownGood[5].hex, pktSrc6, MulticastGroupV6, true, true},
		{"v3 ipv6 from another source", knownGood[5].hex, netip.MustParseAddr("fe80::2"), MulticastGroupV6, false, false},
		{"v2, default", knownGood[6].hex, pktSrc4, MulticastGroupV4, false, true},
		{"v2, as v2", knownGood[6].hex, pktSrc4, MulticastGroupV4, true, true},
		{"v2 does not depend on the addresses", knownGood[6].hex, pktPeer4, pktSrc4, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(mustHex(t, tc.hex), tc.src, tc.dst, CodecOptions{V3ChecksumAsV2: tc.asV2})
			if tc.ok && err != nil {
				t.Fatalf("Parse: %v, want success", err)
			}
			if !tc.ok && dropReason(err) != DropChecksum {
				t.Fatalf("Parse: %v, want a %q drop", err, DropChecksum)
			}
		})
	}
}

func dropReason(err error) DropReason {
	var d *DropError
	if errors.As(err, &d) {
		return d.Reason
	}
	return ""
}

func manyAddrs(is4 bool, n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		if is4 {
			out[i] = netip.AddrFrom4([4]byte{198, 18, 1, byte(i)})
		} else {
			out[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 15: byte(i)})
		}
	}
	return out
}

func TestPacketRoundTrip(t *testing.T) {
	for _, version := range []int{2, 3} {
		for _, is4 := range []bool{true, false} {
			for _, n := range []int{0, 1, 3, MaxAddresses} {
				family, src, dst := "ipv4", pktSrc4, MulticastGroupV4
				if !is4 {
					family, src, dst = "ipv6", pktSrc6, MulticastGroupV6
				}
				t.Run(fmt.Sprintf("v%d %s %d addresses", version, family, n), func(t *testing.T) {
					p := Packet{Version: version, VRID: 7, Priority: 42, Interval: 2 * time.Second, Addresses: manyAddrs(is4, n)}
					if version == 2 {
						p.AuthType, p.AuthData = AuthPassword, [8]byte{'p', 'w'}
					}
					b, err := p.Marshal(src, dst, CodecOptions{})
					if version == 2 && !is4 {
						// RFC 3768 is IPv4 only; keepalived too runs IPv6 instances as version 3.
						if err == nil || !strings.Contains(err.Error(), "IPv4 only") {
							t.Fatalf("Marshal: %v, want a version 2 over IPv6 error", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("Marshal: %v", err)
					}
					alen := 16
					if is4 {
						alen = 4
					}
					wantLen := 8 + n*alen
					if version == 2 {
						wantLen += 8
					}
					if len(b) != wantLen {
						t.Errorf("len = %d, want %d", len(b), wantLen)
					}
					got, err := Parse(b, src, dst, CodecOptions{})
					if err != nil {
						t.Fatalf("Parse: %v", err)
					}
					if n == 0 {
						p.Addresses = nil
					}
					if diff := cmp.Diff(p, got, addrComparer); diff != "" {
						t.Errorf("round trip (-want +got):\n%s", diff)
					}
				})
			}
		}
	}
}

func TestPacketIntervalLimits(t *testing.T) {
	tests := []struct {
		version  int
		interval time.Duration
		ok       bool
	}{
		{3, 10 * time.Millisecond, true},
		{3, 40950 * time.Millisecond, true},
		{3, 100 * time.Millisecond, true},
		{3, 1230 * time.Millisecond, true},
		{3, 0, false},
		{3, 5 * time.Millisecond, false},
		{3, 15 * time.Millisecond, false},
		{3, 40960 * time.Millisecond, false},
		{3, -time.Second, false},
		{2, time.Second, true},
		{2, 255 * time.Second, true},
		{2, 0, false},
		{2, 100 * time.Millisecond, false},
		{2, 1500 * time.Millisecond, false},
		{2, 256 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("v%d %v", tc.version, tc.interval), func(t *testing.T) {
			p := Packet{Version: tc.version, VRID: 1, Priority: 100, Interval: tc.interval, Addresses: addrs("198.18.0.100")}
			b, err := p.Marshal(pktSrc4, MulticastGroupV4, CodecOptions{})
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "interval") {
					t.Fatalf("Marshal: %v, want an interval error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := Parse(b, pktSrc4, MulticastGroupV4, CodecOptions{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Interval != tc.interval {
				t.Errorf("Interval = %v, want %v", got.Interval, tc.interval)
			}
		})
	}
}

func TestPacketMarshalErrors(t *testing.T) {
	base := func() Packet {
		return Packet{Version: 3, VRID: 1, Priority: 100, Interval: time.Second, Addresses: addrs("198.18.0.100")}
	}
	tests := []struct {
		name     string
		mod      func(p *Packet)
		src, dst netip.Addr
		want     string
	}{
		{"version 1", func(p *Packet) { p.Version = 1 }, pktSrc4, MulticastGroupV4, "version 1"},
		{"version 4", func(p *Packet) { p.Version = 4 }, pktSrc4, MulticastGroupV4, "version 4"},
		{"no source", func(p *Packet) {}, netip.Addr{}, MulticastGroupV4, "one family"},
		{"source and destination of two families", func(p *Packet) {}, pktSrc4, MulticastGroupV6, "one family"},
		{"ipv6 address in an ipv4 packet", func(p *Packet) { p.Addresses = addrs("2001:2::1") }, pktSrc4, MulticastGroupV4, "addresses[0]"},
		{"ipv4 address in an ipv6 packet", func(p *Packet) { p.Addresses = addrs("198.18.0.100") }, pktSrc6, MulticastGroupV6, "addresses[0]"},
		{"zoned address", func(p *Packet) { p.Addresses = addrs("2001:2::1", "fe80::5%eth0") }, pktSrc6, MulticastGroupV6, "addresses[1]"},
		{"invalid address", func(p *Packet) { p.Addresses = []netip.Addr{{}} }, pktSrc4, MulticastGroupV4, "addresses[0]"},
		{"too many addresses", func(p *Packet) { p.Addresses = manyAddrs(true, MaxAddresses+1) }, pktSrc4, MulticastGroupV4, "at most 255"},
		{"v3 with authentication", func(p *Packet) { p.AuthType = AuthPassword }, pktSrc4, MulticastGroupV4, "version 2 only"},
		{"v3 with authentication data", func(p *Packet) { p.AuthData[0] = 'x' }, pktSrc4, MulticastGroupV4, "version 2 only"},
		{"v2 over ipv6", func(p *Packet) { p.Version = 2; p.Addresses = addrs("2001:2::1") }, pktSrc6, MulticastGroupV6, "IPv4 only"},
		{"v2 ip ah", func(p *Packet) { p.Version = 2; p.AuthType = AuthIPAH }, pktSrc4, MulticastGroupV4, "IP AH"},
		{"v2 unknown auth type", func(p *Packet) { p.Version = 2; p.AuthType = 9 }, pktSrc4, MulticastGroupV4, "auth_type 9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.mod(&p)
			_, err := p.Marshal(tc.src, tc.dst, CodecOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Marshal: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// An IPv4-mapped source and destination (as a dual-stack socket reports them) are
// IPv4.
func TestPacketMappedAddresses(t *testing.T) {
	kg := knownGood[0]
	src, dst := netip.AddrFrom16(kg.src.As16()), netip.AddrFrom16(kg.dst.As16())
	p, err := Parse(mustHex(t, kg.hex), src, dst, CodecOptions{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(kg.want, p, addrComparer); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	want := kg.want
	want.Addresses = []netip.Addr{netip.AddrFrom16(want.Addresses[0].As16())}
	b, err := want.Marshal(src, dst, CodecOptions{})
	if err != nil || hex.EncodeToString(b) != strings.ReplaceAll(kg.hex, " ", "") {
		t.Errorf("Marshal = %x, %v; want %s", b, err, kg.hex)
	}
}

func TestAuthDataFromPassword(t *testing.T) {
	tests := []struct {
		pass string
		want [8]byte
		ok   bool
	}{
		{"s3cret", [8]byte{'s', '3', 'c', 'r', 'e', 't'}, true},
		{"12345678", [8]byte{'1', '2', '3', '4', '5', '6', '7', '8'}, true},
		{"", [8]byte{}, false},
		{"123456789", [8]byte{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.pass, func(t *testing.T) {
			got, err := AuthDataFromPassword(tc.pass)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("AuthDataFromPassword(%q) = %q, %v; want %q, ok %v", tc.pass, got, err, tc.want, tc.ok)
			}
		})
	}
}

// fixChecksum returns b with the checksum the codec computes for it, for test packets
// whose header was edited by hand.
func fixChecksum(b []byte, src, dst netip.Addr, opt CodecOptions) []byte {
	b = slices.Clone(b)
	binary.BigEndian.PutUint16(b[6:], ^fold(checksumSum(b, src.Unmap(), dst.Unmap(), int(b[0]>>4), opt)))
	return b
}

func mustMarshal(t testing.TB, p Packet, src, dst netip.Addr, opt CodecOptions) []byte {
	t.Helper()
	b, err := p.Marshal(src, dst, opt)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

// Every drop reason is a row.
func TestExpectCheckDrops(t *testing.T) {
	v3 := func() *Expect {
		return &Expect{Version: 3, VRID: 51, Interval: time.Second, Addresses: addrs("198.18.0.100"), Own: addrs("198.18.0.2")}
	}
	v2 := func() *Expect {
		pw, _ := AuthDataFromPassword("s3cret")
		return &Expect{Version: 2, VRID: 61, Interval: time.Second, AuthType: AuthPassword, AuthData: pw, Addresses: addrs("198.18.0.110"), Own: addrs("198.18.0.2")}
	}
	good3 := Packet{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addresses: addrs("198.18.0.100")}
	good2 := knownGood[7].want
	rx := func(p Packet) Received {
		return Received{Payload: mustMarshal(t, p, pktSrc4, MulticastGroupV4, CodecOptions{}), Src: pktSrc4, Dst: MulticastGroupV4, TTL: 255}
	}
	with := func(p Packet, f func(*Packet)) Packet {
		p.Addresses = slices.Clone(p.Addresses)
		f(&p)
		return p
	}
	edit := func(r Received, f func(b []byte)) Received {
		r.Payload = slices.Clone(r.Payload)
		f(r.Payload)
		return r
	}
	editSum := func(r Received, f func(b []byte)) Received {
		r = edit(r, f)
		r.Payload = fixChecksum(r.Payload, r.Src, r.Dst, CodecOptions{})
		return r
	}
	v6 := Received{
		Payload: mustMarshal(t, with(good3, func(p *Packet) { p.Addresses = addrs("2001:2::100") }), pktSrc6, MulticastGroupV6, CodecOptions{}),
		Src:     pktSrc6, Dst: MulticastGroupV6, TTL: 255,
	}

	tests := []struct {
		name   string
		expect *Expect
		r      Received
		want   DropReason
	}{
		{"empty", v3(), Received{Src: pktSrc4, Dst: MulticastGroupV4, TTL: 255}, DropLength},
		{"shorter than the header", v3(), Received{Payload: rx(good3).Payload[:7], Src: pktSrc4, Dst: MulticastGroupV4, TTL: 255}, DropLength},
		{"count says more addresses than sent", v3(), edit(rx(good3), func(b []byte) { b[3] = 2 }), DropLength},
		{"trailing bytes", v3(), Received{Payload: append(rx(good3).Payload, 0, 0, 0, 0), Src: pktSrc4, Dst: MulticastGroupV4, TTL: 255}, DropLength},
		{"v2 without authentication data", v2(), Received{Payload: rx(good2).Payload[:12], Src: pktSrc4, Dst: MulticastGroupV4, TTL: 255}, DropLength},
		{"another vrid", v3(), rx(with(good3, func(p *Packet) { p.VRID = 52 })), DropVRID},
		{"own packet", v3(), func() Received { r := rx(good3); r.Src = pktPeer4; return r }(), DropOwn},
		{"not a unicast peer", func() *Expect { e := v3(); e.Peers = addrs("198.18.0.3"); return e }(), rx(good3), DropUnicastSource},
		{"ttl 254", v3(), func() Received { r := rx(good3); r.TTL = 254; return r }(), DropTTL},
		{"ttl 64", v3(), func() Received { r := rx(good3); r.TTL = 64; return r }(), DropTTL},
		{"version 4", v3(), edit(rx(good3), func(b []byte) { b[0] = 0x41 }), DropVersion},
		{"version 1", v3(), edit(rx(good3), func(b []byte) { b[0] = 0x11 }), DropVersion},
		{"version 2 to a version 3 router", v3(), rx(with(good2, func(p *Packet) { p.VRID = 51; p.Addresses = addrs("198.18.0.100") })), DropVersion},
		{"version 3 to a version 2 router", v2(), rx(with(good3, func(p *Packet) { p.VRID = 61; p.Addresses = addrs("198.18.0.110") })), DropVersion},
		{"version 2 over ipv6", v3(), editSum(v6, func(b []byte) { b[0] = 0x21 }), DropVersion},
		{"type 2", v3(), edit(rx(good3), func(b []byte) { b[0] = 0x32 }), DropType},
		{"type 0", v3(), edit(rx(good3), func(b []byte) { b[0] = 0x30 }), DropType},
		{"source and destination of two families", v3(), func() Received { r := rx(good3); r.Dst = MulticastGroupV6; return r }(), DropFamily},
		{"no source", v3(), func() Received { r := rx(good3); r.Src = netip.Addr{}; return r }(), DropFamily},
		{"ipv6 packet to an ipv4 router", v3(), v6, DropFamily},
		{"corrupted address", v3(), edit(rx(good3), func(b []byte) { b[11] ^= 1 }), DropChecksum},
		{"corrupted checksum", v3(), edit(rx(good3), func(b []byte) { b[7] ^= 0x80 }), DropChecksum},
		{"pseudo-header checksum, v3_checksum_as_v2 set", func() *Expect { e := v3(); e.Codec.V3ChecksumAsV2 = true; return e }(), rx(good3), DropChecksum},
		{"message-only checksum, v3_checksum_as_v2 not set", v3(), Received{Payload: mustMarshal(t, good3, pktSrc4, MulticastGroupV4, CodecOptions{V3ChecksumAsV2: true}), Src: pktSrc4, Dst: MulticastGroupV4, TTL: 255}, DropChecksum},
		{"v2 corrupted password", v2(), edit(rx(good2), func(b []byte) { b[13] ^= 1 }), DropChecksum},
		{"v3 interval 0", v3(), editSum(rx(good3), func(b []byte) { b[4], b[5] = 0, 0 }), DropInterval},
		{"v3 interval 0 with reserved bits set", v3(), editSum(rx(good3), func(b []byte) { b[4], b[5] = 0xf0, 0 }), DropInterval},
		{"v2 interval 0", v2(), editSum(rx(good2), func(b []byte) { b[5] = 0 }), DropInterval},
		{"v2 interval 2s, ours 1s", v2(), rx(with(good2, func(p *Packet) { p.Interval = 2 * time.Second })), DropInterval},
		{"v2 ip ah", v2(), editSum(rx(good2), func(b []byte) { b[4] = AuthIPAH }), DropAuthType},
		{"v2 unknown auth type", v2(), editSum(rx(good2), func(b []byte) { b[4] = 3 }), DropAuthType},
		{"v2 no authentication, ours password", v2(), rx(with(good2, func(p *Packet) { p.AuthType, p.AuthData = AuthNone, [8]byte{} })), DropAuthType},
		{"v2 password, ours none", func() *Expect { e := v2(); e.AuthType, e.AuthData = AuthNone, [8]byte{}; return e }(), rx(good2), DropAuthType},
		{"v2 wrong password", v2(), rx(with(good2, func(p *Packet) { p.AuthData = [8]byte{'s', '3', 'c', 'r', 'e', 'T'} })), DropAuthPassword},
		{"v2 password with a trailing byte", v2(), rx(with(good2, func(p *Packet) { p.AuthData[6] = '!' })), DropAuthPassword},
		{"two addresses, ours one", v3(), rx(with(good3, func(p *Packet) { p.Addresses = addrs("198.18.0.100", "198.18.0.101") })), DropAddressCount},
		{"address owner (255) with other addresses", v3(), rx(with(good3, func(p *Packet) { p.Priority = 255; p.Addresses = addrs("198.18.0.7") })), DropAddressList},
		{"address owner (255) with more addresses", v3(), rx(with(good3, func(p *Packet) { p.Priority = 255; p.Addresses = addrs("198.18.0.100", "198.18.0.7") })), DropAddressCount},
		{"no addresses, ours one", v3(), rx(with(good3, func(p *Packet) { p.Addresses = nil })), DropAddressCount},
		{"priority 0 still checks addresses", v3(), rx(with(good3, func(p *Packet) { p.Priority = 0; p.Addresses = nil })), DropAddressCount},
		{"another address", v3(), rx(with(good3, func(p *Packet) { p.Addresses = addrs("198.18.0.99") })), DropAddressList},
		{"a duplicate instead of ours", func() *Expect { e := v3(); e.Addresses = addrs("198.18.0.100", "198.18.0.101"); return e }(), rx(with(good3, func(p *Packet) { p.Addresses = addrs("198.18.0.100", "198.18.0.100") })), DropAddressList},
	}
	covered := map[DropReason]bool{}
	for _, tc := range tests {
		covered[tc.want] = true
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.expect.Check(tc.r)
			if err == nil {
				t.Fatalf("Check accepted %+v, want a %q drop", got, tc.want)
			}
			var d *DropError
			if !errors.As(err, &d) {
				t.Fatalf("Check: %v is not a *DropError", err)
			}
			if d.Reason != tc.want {
				t.Errorf("Check: %v, want reason %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), string(tc.want)) {
				t.Errorf("error %q does not name the reason %q", err, tc.want)
			}
			if d.Reason.Quiet() != (d.Reason == DropVRID || d.Reason == DropOwn) {
				t.Errorf("%q.Quiet() = %v", d.Reason, d.Reason.Quiet())
			}
		})
	}
	for _, r := range DropReasons() {
		if !covered[r] && r != DropStale && r != DropAuth && r != DropReplay { // the instance's, not Check's
			t.Errorf("drop reason %q has no row", r)
		}
	}
	if len(covered) != len(DropReasons())-3 {
		t.Errorf("rows cover %d reasons, DropReasons lists %d", len(covered), len(DropReasons()))
	}
}

func TestExpectCheckAccepts(t *testing.T) {
	v3 := func() *Expect {
		return &Expect{Version: 3, VRID: 51, Interval: time.Second, Addresses: addrs("198.18.0.100", "198.18.0.101"), Own: addrs("198.18.0.2", "fe80::2")}
	}
	good3 := Packet{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addresses: addrs("198.18.0.100", "198.18.0.101")}
	with := func(p Packet, f func(*Packet)) Packet {
		p.Addresses = slices.Clone(p.Addresses)
		f(&p)
		return p
	}
	rx := func(p Packet, opt CodecOptions) Received {
		return Received{Payload: mustMarshal(t, p, pktSrc4, MulticastGroupV4, opt), Src: pktSrc4, Dst: MulticastGroupV4, TTL: 255}
	}
	pw, _ := AuthDataFromPassword("s3cret")
	tests := []struct {
		name   string
		expect *Expect
		r      Received
		want   Accepted
	}{
		{"v3", v3(), rx(good3, CodecOptions{}), Accepted{Packet: good3, Src: pktSrc4}},
		{
			"v3 master with another interval",
			v3(), rx(with(good3, func(p *Packet) { p.Interval = 100 * time.Millisecond }), CodecOptions{}),
			Accepted{Packet: with(good3, func(p *Packet) { p.Interval = 100 * time.Millisecond }), Src: pktSrc4, IntervalDiffers: true},
		},
		{
			"addresses in another order",
			v3(), rx(with(good3, func(p *Packet) { slices.Reverse(p.Addresses) }), CodecOptions{}),
			Accepted{Packet: with(good3, func(p *Packet) { slices.Reverse(p.Addresses) }), Src: pktSrc4},
		},
		{
			"address owner",
			v3(), rx(with(good3, func(p *Packet) { p.Priority = 255 }), CodecOptions{}),
			Accepted{Packet: with(good3, func(p *Packet) { p.Priority = 255 }), Src: pktSrc4},
		},
		{
			"a unicast peer",
			func() *Expect { e := v3(); e.Peers = addrs("198.18.0.3", pktSrc4.String()); return e }(), rx(good3, CodecOptions{}),
			Accepted{Packet: good3, Src: pktSrc4},
		},
		{
			"priority 0",
			v3(), rx(with(good3, func(p *Packet) { p.Priority = 0 }), CodecOptions{}),
			Accepted{Packet: with(good3, func(p *Packet) { p.Priority = 0 }), Src: pktSrc4},
		},
		{
			"v3_checksum_as_v2 on both sides",
			func() *Expect { e := v3(); e.Codec.V3ChecksumAsV2 = true; return e }(), rx(good3, CodecOptions{V3ChecksumAsV2: true}),
			Accepted{Packet: good3, Src: pktSrc4},
		},
		{
			"ipv4-mapped source and destination",
			v3(), func() Received {
				r := rx(good3, CodecOptions{})
				r.Src, r.Dst = netip.AddrFrom16(r.Src.As16()), netip.AddrFrom16(r.Dst.As16())
				return r
			}(),
			Accepted{Packet: good3, Src: pktSrc4},
		},
		{
			"ipv6 with a zoned source",
			&Expect{Version: 3, VRID: 52, Interval: time.Second, Addresses: addrs("2001:2::100"), Own: addrs("fe80::2")},
			Received{
				Payload: mustHex(t, knownGood[5].hex), Src: netip.MustParseAddr("fe80::1%veth0"), Dst: MulticastGroupV6, TTL: 255,
			},
			Accepted{Packet: knownGood[5].want, Src: netip.MustParseAddr("fe80::1%veth0")},
		},
		{
			"v2 password",
			&Expect{Version: 2, VRID: 61, Interval: time.Second, AuthType: AuthPassword, AuthData: pw, Addresses: addrs("198.18.0.110")},
			Received{Payload: mustHex(t, knownGood[7].hex), Src: pktSrc4, Dst: MulticastGroupV4, TTL: 255},
			Accepted{Packet: knownGood[7].want, Src: pktSrc4},
		},
		{
			"v2 no authentication ignores the data",
			&Expect{Version: 2, VRID: 61, Interval: time.Second, AuthData: pw, Addresses: addrs("198.18.0.110")},
			Received{Payload: mustHex(t, knownGood[6].hex), Src: pktSrc4, Dst: MulticastGroupV4, TTL: 255},
			Accepted{Packet: knownGood[6].want, Src: pktSrc4},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.expect.Check(tc.r)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, addrComparer); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

// A captured packet: the VRRP message and what its IP header said.
type capturedPacket struct {
	name     string // file:index
	payload  []byte
	src, dst netip.Addr
	ttl      int
}

// readPcap reads the VRRP packets of a pcap file (the classic format tcpdump -w
// writes: a 24-byte global header, then per packet a 16-byte header and the frame),
// with Ethernet, Linux cooked (SLL) or SLL2 link headers.
func readPcap(t testing.TB, path string) []capturedPacket {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 24 {
		t.Fatalf("%s: %d bytes, too short for a pcap file", path, len(data))
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(data) {
	case 0xa1b2c3d4, 0xa1b23c4d: // microsecond, nanosecond timestamps
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		t.Fatalf("%s: not a pcap file (magic %x; pcapng is not supported)", path, data[:4])
	}
	linkType := bo.Uint32(data[20:]) & 0x0fffffff
	var out []capturedPacket
	rest := data[24:]
	for i := 0; len(rest) > 0; i++ {
		if len(rest) < 16 {
			t.Fatalf("%s: packet %d: truncated record header", path, i)
		}
		incl := int(bo.Uint32(rest[8:]))
		if incl > len(rest)-16 {
			t.Fatalf("%s: packet %d: truncated (%d bytes captured, %d left)", path, i, incl, len(rest)-16)
		}
		frame := rest[16 : 16+incl]
		rest = rest[16+incl:]

		var etherType uint16
		var ip []byte
		switch linkType {
		case 1: // Ethernet
			etherType, ip = binary.BigEndian.Uint16(frame[12:]), frame[14:]
			for etherType == 0x8100 || etherType == 0x88a8 { // VLAN tags
				etherType, ip = binary.BigEndian.Uint16(ip[2:]), ip[4:]
			}
		case 113: // Linux cooked capture
			etherType, ip = binary.BigEndian.Uint16(frame[14:]), frame[16:]
		case 276: // Linux cooked capture v2
			etherType, ip = binary.BigEndian.Uint16(frame[0:]), frame[20:]
		default:
			t.Fatalf("%s: link type %d not supported", path, linkType)
		}
		p := capturedPacket{name: fmt.Sprintf("%s#%d", filepath.Base(path), i)}
		switch etherType {
		case 0x0800:
			ihl := int(ip[0]&0x0f) * 4
			total := int(binary.BigEndian.Uint16(ip[2:]))
			if ip[9] != IPProtocol {
				t.Fatalf("%s: IP protocol %d, the captures hold VRRP only", p.name, ip[9])
			}
			p.ttl = int(ip[8])
			p.src = netip.AddrFrom4([4]byte(ip[12:16]))
			p.dst = netip.AddrFrom4([4]byte(ip[16:20]))
			p.payload = ip[ihl:total]
		case 0x86dd:
			plen := int(binary.BigEndian.Uint16(ip[4:]))
			if ip[6] != IPProtocol {
				t.Fatalf("%s: next header %d, the captures hold VRRP without extension headers only", p.name, ip[6])
			}
			p.ttl = int(ip[7])
			p.src = netip.AddrFrom16([16]byte(ip[8:24]))
			p.dst = netip.AddrFrom16([16]byte(ip[24:40]))
			p.payload = ip[40 : 40+plen]
		default:
			t.Fatalf("%s: ethertype %#04x is not IP", p.name, etherType)
		}
		out = append(out, p)
	}
	return out
}

func capturedPackets(t testing.TB) []capturedPacket {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no captures in testdata/*.pcap (see testdata/README.md)")
	}
	var all []capturedPacket
	for _, f := range files {
		ps := readPcap(t, f)
		if len(ps) == 0 {
			t.Fatalf("%s holds no packets", f)
		}
		all = append(all, ps...)
	}
	return all
}

// What keepalived was configured with for each VRID (testdata/capture.sh).
var captureWant = map[uint8]Packet{
	51: {Version: 3, Priority: 100, Interval: 500 * time.Millisecond, Addresses: addrs("198.18.0.100", "198.18.0.101")},
	52: {Version: 3, Priority: 150, Interval: time.Second, Addresses: addrs("2001:2::100", "2001:2::101")},
	53: {Version: 3, Priority: 200, Interval: time.Second, Addresses: addrs("198.18.0.103")}, // unicast to 198.18.0.2
	61: {Version: 2, Priority: 100, Interval: time.Second, AuthType: AuthPassword, AuthData: [8]byte{'s', '3', 'c', 'r', 'e', 't'}, Addresses: addrs("198.18.0.110")},
	62: {Version: 2, Priority: 254, Interval: 2 * time.Second, Addresses: addrs("198.18.0.111", "198.18.0.112", "198.18.0.113")},
	// An IPv6 instance under vrrp_version 2: keepalived runs it as version 3.
	63: {Version: 3, Priority: 100, Interval: time.Second, Addresses: addrs("2001:2::110")},
}

// Real keepalived advertisements decode to what keepalived was configured with, pass
// the receive checks, and encode back to the same bytes.
func TestPacketCaptures(t *testing.T) {
	seen := map[uint8]int{}
	stopped := map[uint8]bool{}
	for _, c := range capturedPackets(t) {
		t.Run(c.name, func(t *testing.T) {
			if c.ttl != RequiredTTL {
				t.Errorf("captured with ttl %d", c.ttl)
			}
			p, err := Parse(c.payload, c.src, c.dst, CodecOptions{})
			if err != nil {
				t.Fatalf("Parse: %v (payload %x)", err, c.payload)
			}
			want, ok := captureWant[p.VRID]
			if !ok {
				t.Fatalf("VRID %d was not configured", p.VRID)
			}
			seen[p.VRID]++
			want.VRID = p.VRID
			if p.Priority == 0 {
				stopped[p.VRID] = true // keepalived says goodbye with priority 0
				want.Priority = 0
			}
			if diff := cmp.Diff(want, p, addrComparer); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			out, err := p.Marshal(c.src, c.dst, CodecOptions{})
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !slices.Equal(out, c.payload) {
				t.Errorf("Marshal = %x, keepalived sent %x", out, c.payload)
			}
			e := &Expect{Version: want.Version, VRID: want.VRID, Interval: want.Interval, AuthType: want.AuthType, AuthData: want.AuthData, Addresses: want.Addresses}
			if _, err := e.Check(Received{Payload: c.payload, Src: c.src, Dst: c.dst, TTL: c.ttl}); err != nil {
				t.Errorf("Check: %v", err)
			}
			// keepalived 2.2.7 has no v3_checksum_as_v2 and always includes the IPv4
			// pseudo-header: with the option set, its version 3 IPv4 packets fail.
			_, err = Parse(c.payload, c.src, c.dst, CodecOptions{V3ChecksumAsV2: true})
			if p.Version == 3 && c.src.Is4() {
				if dropReason(err) != DropChecksum {
					t.Errorf("Parse with V3ChecksumAsV2: %v, want a checksum drop", err)
				}
			} else if err != nil {
				t.Errorf("Parse with V3ChecksumAsV2: %v", err)
			}
		})
	}
	for vrid := range captureWant {
		if seen[vrid] == 0 {
			t.Errorf("no packet of VRID %d in the captures", vrid)
		}
		if !stopped[vrid] {
			t.Errorf("no priority 0 packet of VRID %d in the captures", vrid)
		}
	}
}
