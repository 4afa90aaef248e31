package testutil

import (
	"bytes"
	"encoding/binary"
	"net/netip"
)

// ProxyV2 builds a PROXY protocol v2 header for tests: the signature, the
// version/command byte vc, the family/transport byte ft, the length of block, block.
// It encodes by hand, without the code under test, so that tests can also build headers
// that are wrong.
func ProxyV2(vc, ft byte, block ...[]byte) string {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n") // the v2 signature
	body := bytes.Join(block, nil)
	b = append(b, vc, ft)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return string(append(b, body...))
}

// ProxyInet is a PROXY v2 AF_INET address block.
func ProxyInet(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

// ProxyInet6 is a PROXY v2 AF_INET6 address block.
func ProxyInet6(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

// ProxyTLV is one PROXY v2 TLV.
func ProxyTLV(typ byte, val string) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint16(b, uint16(len(val)))
	return append(b, val...)
}
