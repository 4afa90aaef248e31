package proxyproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// Size looks at the start of a connection's bytes and returns the size of the PROXY
// header they begin with, ErrIncomplete when more bytes are needed to tell, or the error
// that makes them not a header. It does not validate the header: Parse does. A v1
// header's size is known once its LF is in b, a v2 header's once its first 16 bytes are.
func Size(b []byte) (int, error) {
	switch {
	case len(b) == 0:
		return 0, ErrIncomplete
	case b[0] == v2Sig[0]:
		if !bytes.HasPrefix(v2Sig, b[:min(len(b), len(v2Sig))]) {
			return 0, errorf(ReasonMissing, "proxy: no PROXY protocol signature")
		}
		if len(b) < V2Prefix {
			return 0, ErrIncomplete
		}
		if v := b[12] >> 4; v != 2 {
			return 0, errorf(ReasonMalformed, "proxy v2: bad version %d", v)
		}
		return V2Prefix + int(binary.BigEndian.Uint16(b[14:16])), nil
	default:
		if !bytes.HasPrefix(b, v1Sig) && !bytes.HasPrefix(v1Sig, b) {
			return 0, errorf(ReasonMissing, "proxy: no PROXY protocol signature")
		}
		if i := bytes.IndexByte(b[:min(len(b), MaxV1)], '\n'); i >= 0 {
			return i + 1, nil
		}
		if len(b) >= MaxV1 {
			return 0, errorf(ReasonMalformed, "proxy v1: no CRLF within %d bytes", MaxV1)
		}
		return 0, ErrIncomplete
	}
}

// Parse parses the PROXY header at the start of b and returns it with its size. A b
// that holds only the start of a header gives ErrIncomplete. Every other error is an
// *Error naming what is wrong, of reason ReasonMissing or ReasonMalformed.
func Parse(b []byte) (Header, int, error) {
	n, err := Size(b)
	if err != nil {
		return Header{}, 0, err
	}
	if len(b) < n {
		return Header{}, 0, ErrIncomplete
	}
	var h Header
	if b[0] == v2Sig[0] {
		h, err = parseV2(b[:n])
	} else {
		h, err = parseV1(b[:n])
	}
	if err != nil {
		return Header{}, 0, err
	}
	return h, n, nil
}

// parseV1 parses one whole v1 line, CRLF included.
func parseV1(line []byte) (Header, error) {
	bad := func(format string, args ...any) (Header, error) {
		return Header{}, errorf(ReasonMalformed, "proxy v1: "+format, args...)
	}
	body, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		return bad("line does not end with CRLF")
	}
	body = body[len(v1Sig):]
	proto, rest, _ := bytes.Cut(body, []byte(" "))
	var want4 bool
	switch string(proto) {
	case "UNKNOWN":
		// "the receiver must ignore anything presented before the CRLF is found"
		return Header{Local: true}, nil
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return bad("unknown protocol %q", proto)
	}
	f := bytes.Split(rest, []byte(" "))
	if len(f) != 4 {
		return bad("%s needs source, destination, source port and destination port separated by single spaces, not %q", proto, rest)
	}
	var addrs [2]netip.Addr
	var ports [2]uint16
	for i, what := range [2]string{"source", "destination"} {
		a, err := netip.ParseAddr(string(f[i]))
		if err != nil || a.Zone() != "" {
			return bad("bad %s address %q", what, f[i])
		}
		if a.Is4() != want4 {
			return bad("%s address %q is not an %s address", what, f[i], map[bool]string{true: "IPv4 (TCP4)", false: "IPv6 (TCP6)"}[want4])
		}
		p, ok := parsePort(f[2+i])
		if !ok {
			return bad("bad %s port %q", what, f[2+i])
		}
		addrs[i], ports[i] = a.Unmap(), p
	}
	return Header{Src: netip.AddrPortFrom(addrs[0], ports[0]), Dst: netip.AddrPortFrom(addrs[1], ports[1])}, nil
}

// parsePort accepts 0 to 65535 in decimal, with no sign and no leading zero.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// parseV2 parses one whole v2 header.
func parseV2(b []byte) (Header, error) {
	bad := func(format string, args ...any) (Header, error) {
		return Header{}, errorf(ReasonMalformed, "proxy v2: "+format, args...)
	}
	// Size has checked the signature, the version and the length.
	switch cmd := b[12] & 0xf; cmd {
	case v2Local:
		// "the receiver must accept this connection as valid and must use the real
		// connection endpoints and discard the protocol block including the family"
		return Header{Local: true}, nil
	case v2Proxy:
	default:
		return bad("bad command %#x", cmd)
	}
	var addrLen int
	switch ft := b[13]; ft {
	case 0x00: // UNSPEC: the receiver ignores the block
		return Header{Local: true}, nil
	case 0x11, 0x12: // TCP4, UDP4
		addrLen = 12
	case 0x21, 0x22: // TCP6, UDP6
		addrLen = 36
	case 0x31, 0x32: // UNIX stream, datagram
		addrLen = 216
	default:
		return bad("bad family and transport byte 0x%02x", ft)
	}
	block := b[V2Prefix:]
	if len(block) < addrLen {
		return bad("address block of %d bytes is shorter than the %d its family needs", len(block), addrLen)
	}
	if err := checkTLVs(b, V2Prefix+addrLen); err != nil {
		return Header{}, err
	}
	var h Header
	switch b[13] >> 4 {
	case afInet:
		src, dst := netip.AddrFrom4([4]byte(block[0:4])), netip.AddrFrom4([4]byte(block[4:8]))
		h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(block[8:10]))
		h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(block[10:12]))
	case afInet6:
		src, dst := netip.AddrFrom16([16]byte(block[0:16])), netip.AddrFrom16([16]byte(block[16:32]))
		h.Src = netip.AddrPortFrom(src.Unmap(), binary.BigEndian.Uint16(block[32:34]))
		h.Dst = netip.AddrPortFrom(dst.Unmap(), binary.BigEndian.Uint16(block[34:36]))
	default: // AF_UNIX: no address a balancer or a header can use
		h.Local = true
	}
	return h, nil
}

// checkTLVs checks the framing of the TLVs of header b from offset off on, and the
// CRC32C one if there is one.
func checkTLVs(b []byte, off int) error {
	for off < len(b) {
		if len(b)-off < 3 {
			return errorf(ReasonMalformed, "proxy v2: truncated TLV at offset %d", off)
		}
		typ, n := b[off], int(binary.BigEndian.Uint16(b[off+1:off+3]))
		val := off + 3
		if len(b)-val < n {
			return errorf(ReasonMalformed, "proxy v2: TLV 0x%02x at offset %d: %d bytes of value overrun the header", typ, off, n)
		}
		if typ == tlvCRC32C {
			if n != 4 {
				return errorf(ReasonMalformed, "proxy v2: CRC32C TLV of %d bytes, want 4", n)
			}
			want := binary.BigEndian.Uint32(b[val : val+4])
			crc := crc32.Update(0, castagnoli, b[:val])
			crc = crc32.Update(crc, castagnoli, []byte{0, 0, 0, 0})
			crc = crc32.Update(crc, castagnoli, b[val+4:])
			if crc != want {
				return errorf(ReasonMalformed, "proxy v2: CRC32C %08x does not match the header's %08x", want, crc)
			}
		}
		off = val + n
	}
	return nil
}

func errorf(reason, format string, args ...any) error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}
