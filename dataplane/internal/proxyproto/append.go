package proxyproto

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// Append appends a header of version v (V1, or else V2) naming src and dst. Addresses of
// different families are sent as IPv6 (v4 mapped); invalid ones make a v1 UNKNOWN line
// or a v2 LOCAL header. A v2 header is at most V2Prefix+36 bytes long, a v1 header at
// most MaxV1.
func Append(b []byte, v Version, src, dst netip.AddrPort) []byte {
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	ok := src.IsValid() && dst.IsValid()
	if ok && sa.Is4() != da.Is4() {
		sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
	}
	if v == V1 {
		if !ok {
			return append(b, "PROXY UNKNOWN\r\n"...)
		}
		proto := "PROXY TCP6 "
		if sa.Is4() {
			proto = "PROXY TCP4 "
		}
		b = append(b, proto...)
		b = append(sa.AppendTo(b), ' ')
		b = append(da.AppendTo(b), ' ')
		b = append(strconv.AppendUint(b, uint64(src.Port()), 10), ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, "\r\n"...)
	}
	b = append(b, v2Sig...)
	if !ok {
		return append(b, 0x20|v2Local, afUnspec, 0, 0)
	}
	if sa.Is4() {
		b = append(b, 0x20|v2Proxy, afInet<<4|transStream, 0, 12)
		s, d := sa.As4(), da.As4()
		b = append(append(b, s[:]...), d[:]...)
	} else {
		b = append(b, 0x20|v2Proxy, afInet6<<4|transStream, 0, 36)
		s, d := sa.As16(), da.As16()
		b = append(append(b, s[:]...), d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
