package vip

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"
)

// Authenticated VRRP (Instance.AuthKey), for virtual routers whose every router is lbd:
// each advertisement carries a trailer after the VRRP message,
//
//	"LBDA" | seq (uint64, the sender's clock in nanoseconds) |
//	HMAC-SHA256(key, "lbd vrrp" | source | destination | VRRP message | seq)[:16]
//
// 28 bytes that the VRRP checksum does not cover (it is computed over the message as
// usual). A receiver with a key drops an advertisement without a trailer, with a MAC
// that does not verify (DropAuth), or with a seq not above the last one it accepted
// from that source (DropReplay; the first one from a source must be from the last
// authReplayWindow by the receiver's clock, so the nodes' clocks must agree within
// that). keepalived routers of other VRIDs on the segment are not disturbed: keepalived
// looks the instance up by the VRID before any other check and ignores an advertisement
// of a VRID it does not run. A keepalived router of the same VRID would drop these
// adverts (its length check: "vrrp packet too long, length 60 and expect 32" from
// keepalived 2.2.7 in a netns, which ignored the same packets of a VRID it does not
// run), which is why every router of the instance must be lbd.

const (
	authTrailerN = 4 + 8 + 16
	// authReplayWindow is how old (by the sender's clock, as the receiver's clock
	// sees it) the first advertisement accepted from a source may be.
	authReplayWindow = 10 * time.Minute
)

var authMagic = [4]byte{'L', 'B', 'D', 'A'}

// sealAdvert appends the trailer to the VRRP message b sent from src to dst.
func sealAdvert(key, b []byte, src, dst netip.Addr, seq uint64) []byte {
	out := make([]byte, 0, len(b)+authTrailerN)
	out = append(out, b...)
	out = append(out, authMagic[:]...)
	out = binary.BigEndian.AppendUint64(out, seq)
	return append(out, advertMAC(key, b, src, dst, seq)...)
}

func advertMAC(key, b []byte, src, dst netip.Addr, seq uint64) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("lbd vrrp"))
	s, d := src.Unmap().WithZone("").AsSlice(), dst.Unmap().WithZone("").AsSlice()
	m.Write(s)
	m.Write(d)
	m.Write(b)
	m.Write(binary.BigEndian.AppendUint64(nil, seq))
	return m.Sum(nil)[:16]
}

// openAdvert checks the trailer of a received packet and returns the VRRP message and
// the sequence number; a packet without a valid trailer returns a *DropError
// (DropAuth).
func openAdvert(key []byte, r Received) ([]byte, uint64, error) {
	src := r.Src.Unmap()
	p := r.Payload
	if len(p) < vrrpHeaderLen+authTrailerN || [4]byte(p[len(p)-authTrailerN:]) != authMagic {
		return nil, 0, dropf(DropAuth, src, "no lbd authentication trailer (auth_key is set)")
	}
	b, t := p[:len(p)-authTrailerN], p[len(p)-authTrailerN+4:]
	seq := binary.BigEndian.Uint64(t[:8])
	if !hmac.Equal(t[8:], advertMAC(key, b, src, r.Dst, seq)) {
		return nil, 0, dropf(DropAuth, src, "authentication trailer does not verify (another auth_key?)")
	}
	return b, seq, nil
}
