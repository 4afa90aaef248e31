package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lbd/internal/testutil"
)

// ppWithCRC appends a CRC32C TLV to header h (a v2 header), fixing up its length and
// filling in the checksum; with corrupt, the checksum is off by one.
func ppWithCRC(h string, corrupt bool) string {
	b := append([]byte(h), tlvCRC32C, 0, 4, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-V2Prefix))
	sum := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	if corrupt {
		sum++
	}
	binary.BigEndian.PutUint32(b[len(b)-4:], sum)
	return string(b)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

type ppCase struct {
	name string
	in   string
	want Header
	n    int    // header size; 0: the whole input
	err  string // the exact error; "incomplete" for ErrIncomplete
}

// ppCases are the parser's table, and the fuzz target's seeds.
var ppCases = func() []ppCase {
	v1max := "PROXY UNKNOWN " + strings.Repeat("x", MaxV1-len("PROXY UNKNOWN ")-2) + "\r\n"
	inet := testutil.ProxyInet("192.0.2.1", "198.51.100.2", 56324, 443)
	return []ppCase{
		// v1, good.
		{name: "v1 tcp4", in: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
			want: Header{Src: ap("192.0.2.1:56324"), Dst: ap("198.51.100.2:443")}},
		{name: "v1 tcp4 with payload", in: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n\r\n",
			want: Header{Src: ap("192.0.2.1:56324"), Dst: ap("198.51.100.2:443")}, n: 45},
		{name: "v1 tcp6", in: "PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n",
			want: Header{Src: ap("[2001:db8::1]:0"), Dst: ap("[2001:db8::2]:65535")}},
		{name: "v1 tcp6 v4-mapped", in: "PROXY TCP6 ::ffff:192.0.2.1 ::ffff:198.51.100.2 1 2\r\n",
			want: Header{Src: ap("192.0.2.1:1"), Dst: ap("198.51.100.2:2")}},
		{name: "v1 unknown", in: "PROXY UNKNOWN\r\n", want: Header{Local: true}},
		{name: "v1 unknown with addresses", in: "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", want: Header{Local: true}},
		{name: "v1 longest", in: v1max + "data", want: Header{Local: true}, n: MaxV1},

		// v1, malformed.
		{name: "v1 port too big", in: "PROXY TCP4 192.0.2.1 198.51.100.2 99999 443\r\n", err: `proxy v1: bad source port "99999"`},
		{name: "v1 port leading zero", in: "PROXY TCP4 192.0.2.1 198.51.100.2 1 0443\r\n", err: `proxy v1: bad destination port "0443"`},
		{name: "v1 port sign", in: "PROXY TCP4 192.0.2.1 198.51.100.2 +1 443\r\n", err: `proxy v1: bad source port "+1"`},
		{name: "v1 port empty", in: "PROXY TCP4 192.0.2.1 198.51.100.2 1 \r\n", err: `proxy v1: bad destination port ""`},
		{name: "v1 double space", in: "PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n",
			err: `proxy v1: TCP4 needs source, destination, source port and destination port separated by single spaces, not "192.0.2.1  198.51.100.2 1 2"`},
		{name: "v1 trailing space", in: "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",
			err: `proxy v1: TCP4 needs source, destination, source port and destination port separated by single spaces, not "192.0.2.1 198.51.100.2 1 2 "`},
		{name: "v1 no fields", in: "PROXY TCP4\r\n",
			err: `proxy v1: TCP4 needs source, destination, source port and destination port separated by single spaces, not ""`},
		{name: "v1 unknown protocol", in: "PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n", err: `proxy v1: unknown protocol "TCP5"`},
		{name: "v1 lower case protocol", in: "PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n", err: `proxy v1: unknown protocol "tcp4"`},
		{name: "v1 empty protocol", in: "PROXY \r\n", err: `proxy v1: unknown protocol ""`},
		{name: "v1 tcp4 with ipv6", in: "PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", err: `proxy v1: source address "2001:db8::1" is not an IPv4 (TCP4) address`},
		{name: "v1 tcp6 with ipv4", in: "PROXY TCP6 2001:db8::1 198.51.100.2 1 2\r\n", err: `proxy v1: destination address "198.51.100.2" is not an IPv6 (TCP6) address`},
		{name: "v1 bad address", in: "PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n", err: `proxy v1: bad source address "192.0.2"`},
		{name: "v1 address leading zero", in: "PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n", err: `proxy v1: bad source address "192.0.2.01"`},
		{name: "v1 address with zone", in: "PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n", err: `proxy v1: bad source address "fe80::1%eth0"`},
		{name: "v1 bare LF", in: "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n", err: `proxy v1: line does not end with CRLF`},
		{name: "v1 CR inside", in: "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\r\n", err: `proxy v1: bad destination port "2\r"`},
		{name: "v1 too long", in: "PROXY UNKNOWN " + strings.Repeat("x", 200) + "\r\n", err: `proxy v1: no CRLF within 107 bytes`},
		{name: "v1 lower case signature", in: "proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n", err: `proxy: no PROXY protocol signature`},
		{name: "plain http", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", err: `proxy: no PROXY protocol signature`},
		{name: "v1 incomplete", in: "PROXY TCP4 192.0.2.1 198.51", err: "incomplete"},
		{name: "v1 signature incomplete", in: "PROX", err: "incomplete"},
		{name: "empty", in: "", err: "incomplete"},

		// v2, good.
		{name: "v2 tcp4", in: testutil.ProxyV2(0x21, 0x11, inet),
			want: Header{Src: ap("192.0.2.1:56324"), Dst: ap("198.51.100.2:443")}},
		{name: "v2 tcp4 with payload", in: testutil.ProxyV2(0x21, 0x11, inet) + "\r\n\r\n\x00\r\nQUIT\n",
			want: Header{Src: ap("192.0.2.1:56324"), Dst: ap("198.51.100.2:443")}, n: 28},
		{name: "v2 udp4", in: testutil.ProxyV2(0x21, 0x12, inet),
			want: Header{Src: ap("192.0.2.1:56324"), Dst: ap("198.51.100.2:443")}},
		{name: "v2 tcp6", in: testutil.ProxyV2(0x21, 0x21, testutil.ProxyInet6("2001:db8::1", "2001:db8::2", 1, 65535)),
			want: Header{Src: ap("[2001:db8::1]:1"), Dst: ap("[2001:db8::2]:65535")}},
		{name: "v2 tcp6 v4-mapped", in: testutil.ProxyV2(0x21, 0x21, testutil.ProxyInet6("::ffff:192.0.2.1", "::ffff:198.51.100.2", 1, 2)),
			want: Header{Src: ap("192.0.2.1:1"), Dst: ap("198.51.100.2:2")}},
		{name: "v2 local", in: testutil.ProxyV2(0x20, 0x00), want: Header{Local: true}},
		{name: "v2 local ignores the block", in: testutil.ProxyV2(0x20, 0xff, []byte("anything at all")), want: Header{Local: true}},
		{name: "v2 unspec", in: testutil.ProxyV2(0x21, 0x00, []byte{1, 2, 3}), want: Header{Local: true}},
		{name: "v2 unix", in: testutil.ProxyV2(0x21, 0x31, make([]byte, 216)), want: Header{Local: true}},
		{name: "v2 tlvs", in: testutil.ProxyV2(0x21, 0x11, inet, testutil.ProxyTLV(0x04, "\x00\x00"), testutil.ProxyTLV(0x01, "h2"), testutil.ProxyTLV(0x20, "")),
			want: Header{Src: ap("192.0.2.1:56324"), Dst: ap("198.51.100.2:443")}},
		{name: "v2 crc32c", in: ppWithCRC(testutil.ProxyV2(0x21, 0x11, inet, testutil.ProxyTLV(0x02, "example.com")), false),
			want: Header{Src: ap("192.0.2.1:56324"), Dst: ap("198.51.100.2:443")}},

		// v2, malformed.
		{name: "v2 version 1", in: testutil.ProxyV2(0x11, 0x11, inet), err: `proxy v2: bad version 1`},
		{name: "v2 version 3", in: testutil.ProxyV2(0x31, 0x11, inet), err: `proxy v2: bad version 3`},
		{name: "v2 bad command", in: testutil.ProxyV2(0x22, 0x11, inet), err: `proxy v2: bad command 0x2`},
		{name: "v2 bad family", in: testutil.ProxyV2(0x21, 0x41, inet), err: `proxy v2: bad family and transport byte 0x41`},
		{name: "v2 bad transport", in: testutil.ProxyV2(0x21, 0x13, inet), err: `proxy v2: bad family and transport byte 0x13`},
		{name: "v2 inet without transport", in: testutil.ProxyV2(0x21, 0x10, inet), err: `proxy v2: bad family and transport byte 0x10`},
		{name: "v2 unspec with transport", in: testutil.ProxyV2(0x21, 0x01), err: `proxy v2: bad family and transport byte 0x01`},
		{name: "v2 short inet block", in: testutil.ProxyV2(0x21, 0x11, inet[:8]), err: `proxy v2: address block of 8 bytes is shorter than the 12 its family needs`},
		{name: "v2 short inet6 block", in: testutil.ProxyV2(0x21, 0x21, inet), err: `proxy v2: address block of 12 bytes is shorter than the 36 its family needs`},
		{name: "v2 truncated tlv", in: testutil.ProxyV2(0x21, 0x11, inet, []byte{0x04, 0}), err: `proxy v2: truncated TLV at offset 28`},
		{name: "v2 tlv overrun", in: testutil.ProxyV2(0x21, 0x11, inet, testutil.ProxyTLV(0x04, "ab"), []byte{0x01, 0, 5, 'h', '2'}),
			err: `proxy v2: TLV 0x01 at offset 33: 5 bytes of value overrun the header`},
		{name: "v2 crc32c wrong", in: ppWithCRC(testutil.ProxyV2(0x21, 0x11, inet), true), err: "crc"},
		{name: "v2 crc32c wrong size", in: testutil.ProxyV2(0x21, 0x11, inet, testutil.ProxyTLV(0x03, "abc")), err: `proxy v2: CRC32C TLV of 3 bytes, want 4`},
		{name: "v2 bad signature", in: "\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c", err: `proxy: no PROXY protocol signature`},
		{name: "v2 signature incomplete", in: "\r\n\r\n\x00\r\nQU", err: "incomplete"},
		{name: "v2 prefix incomplete", in: testutil.ProxyV2(0x21, 0x11, inet)[:15], err: "incomplete"},
		{name: "v2 block incomplete", in: testutil.ProxyV2(0x21, 0x11, inet)[:20], err: "incomplete"},
	}
}()

func TestParse(t *testing.T) {
	for _, tc := range ppCases {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := Parse([]byte(tc.in))
			switch {
			case tc.err == "incomplete":
				if err != ErrIncomplete {
					t.Fatalf("err = %v, want ErrIncomplete", err)
				}
				return
			case tc.err == "crc":
				// The sums depend on the whole header; check the shape.
				if err == nil || !strings.HasPrefix(err.Error(), "proxy v2: CRC32C ") || !strings.Contains(err.Error(), "does not match the header's") {
					t.Fatalf("err = %v, want a CRC32C mismatch", err)
				}
				return
			case tc.err != "":
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
				var pe *Error
				if !errors.As(err, &pe) || (pe.Reason != ReasonMalformed && pe.Reason != ReasonMissing) {
					t.Fatalf("err = %#v, want a *Error, malformed or missing", err)
				}
				return
			case err != nil:
				t.Fatalf("err = %v", err)
			}
			if diff := cmp.Diff(tc.want, h, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			want := tc.n
			if want == 0 {
				want = len(tc.in)
			}
			if n != want {
				t.Errorf("size = %d, want %d", n, want)
			}
		})
	}
}

func TestAppendRoundTrip(t *testing.T) {
	pairs := []struct{ src, dst, wantV1 string }{
		{"192.0.2.1:56324", "198.51.100.2:443", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"},
		{"[2001:db8::1]:0", "[2001:db8::2]:65535", "PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n"},
		// Mixed families go as IPv6 and come back unmapped.
		{"192.0.2.1:1", "[2001:db8::2]:2", "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1 2\r\n"},
		{"[::ffff:192.0.2.1]:1", "198.51.100.2:2", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n"},
	}
	for _, p := range pairs {
		src, dst := ap(p.src), ap(p.dst)
		want := Header{Src: netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), Dst: netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())}
		for _, v := range []Version{V1, V2} {
			b := Append([]byte("x"), v, src, dst)[1:]
			if v == V1 && string(b) != p.wantV1 {
				t.Errorf("v1 of %s %s = %q, want %q", p.src, p.dst, b, p.wantV1)
			}
			h, n, err := Parse(append(b, "payload"...))
			if err != nil || n != len(b) || h != want {
				t.Errorf("%s of %s %s: parsed %+v, %d, %v; want %+v, %d", v, p.src, p.dst, h, n, err, want, len(b))
			}
		}
	}
	for _, v := range []Version{V1, V2} {
		b := Append(nil, v, netip.AddrPort{}, ap("192.0.2.1:1"))
		h, n, err := Parse(b)
		if err != nil || n != len(b) || !h.Local {
			t.Errorf("%s without a source: %q parsed %+v, %d, %v; want local", v, b, h, n, err)
		}
	}
}

// haproxyCaptures returns the headers HAProxy 2.6 sent in testdata/haproxy, each
// followed by the payload "hello", by file name: send-proxy (v1) and send-proxy-v2,
// plain, with proxy-v2-options crc32c, and with crc32c,unique-id, over IPv4 and IPv6
// loopback.
func haproxyCaptures(t testing.TB) map[string][]byte { return testutil.Captures(t, "haproxy") }

// TestParseHAProxy parses what HAProxy sends, CRC32C and unique-id TLVs included, and
// refuses a capture with a CRC32C whose header was changed on the way.
func TestParseHAProxy(t *testing.T) {
	for name, b := range haproxyCaptures(t) {
		t.Run(name, func(t *testing.T) {
			h, n, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if string(b[n:]) != "hello" {
				t.Errorf("size %d leaves %q, want the payload", n, b[n:])
			}
			if h.Local || !h.Src.Addr().IsLoopback() || !h.Dst.Addr().IsLoopback() || h.Src.Addr().Is4() != strings.Contains(name, "tcp4") {
				t.Errorf("header %+v, want loopback addresses of the capture's family", h)
			}
			if !strings.Contains(name, "crc32c") {
				return
			}
			bad := bytes.Clone(b)
			bad[V2Prefix+3]++ // a byte of the source address
			if _, _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "CRC32C") {
				t.Errorf("a changed header parsed: %v, want a CRC32C mismatch", err)
			}
		})
	}
}

// FuzzParse checks that whatever Parse accepts it accepts alone and not a byte shorter
// (Size agreeing, and saying no other size of any shorter start of it, as a reader that
// peeks relies on), and survives a round trip through Append in both versions.
func FuzzParse(f *testing.F) {
	for _, tc := range ppCases {
		f.Add([]byte(tc.in))
	}
	for _, b := range haproxyCaptures(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *Error", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("size %d of %d bytes", n, len(b))
		}
		if size, err := Size(b); err != nil || size != n {
			t.Fatalf("Size = %d, %v; parse says %d", size, err, n)
		}
		for k := range n {
			if _, _, err := Parse(b[:k]); err != ErrIncomplete {
				t.Fatalf("the first %d bytes of a %d-byte header: %v, want ErrIncomplete", k, n, err)
			}
			if size, err := Size(b[:k]); err != ErrIncomplete && size != n {
				t.Fatalf("Size of the first %d bytes of a %d-byte header: %d, %v", k, n, size, err)
			}
			if k == 512 { // the rest of a long v2 header is its TLVs
				break
			}
		}
		if h2, n2, err := Parse(b[:n]); err != nil || h2 != h || n2 != n {
			t.Fatalf("the header alone: %+v, %d, %v; with what follows: %+v, %d", h2, n2, err, h, n)
		}
		if h.Local {
			return
		}
		for _, v := range []Version{V1, V2} {
			out := Append(nil, v, h.Src, h.Dst)
			h2, n2, err := Parse(out)
			if err != nil || h2 != h || n2 != len(out) {
				t.Fatalf("%s round trip of %+v: %q parsed %+v, %d, %v", v, h, out, h2, n2, err)
			}
		}
	})
}

// TestFuzzCorpora: every fuzz target of this package keeps a corpus in testdata/fuzz.
func TestFuzzCorpora(t *testing.T) {
	testutil.RequireCorpus(t, "FuzzParse")
}
