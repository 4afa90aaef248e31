package vip

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// The VRRP advertisement codec (RFC 5798 section 5 for version 3, RFC 3768 section 5
// for version 2) and the receive checks of their section 7.1.
//
// Sending: build a Packet and Marshal it for the addresses it travels between (the
// checksum of version 3 covers them), then hand the bytes to Transport.Send:
//
//	p := Packet{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addresses: vips}
//	b, err := p.Marshal(t.Source(), MulticastGroupV4, opt)
//	if err == nil {
//		err = t.Send(b, MulticastGroupV4)
//	}
//
// With unicast peers, Marshal once per peer: the IPv4 pseudo-header names the peer.
//
// Receiving: describe the virtual router once in an Expect and pass every packet the
// transport returns through Expect.Check; it decodes the packet and applies every check,
// and a dropped packet comes back as a *DropError whose Reason is the counter to bump:
//
//	e := &Expect{Version: 3, VRID: 51, Interval: time.Second, Addresses: vips, Own: own}
//	for {
//		r, err := t.Receive()
//		if err != nil {
//			return err // net.ErrClosed when the transport is closed
//		}
//		adv, err := e.Check(r)
//		var drop *DropError
//		if errors.As(err, &drop) {
//			dropped[drop.Reason]++
//			if !drop.Reason.Quiet() {
//				logger.Info("vrrp packet dropped", "err", err)
//			}
//			continue
//		}
//		if adv.IntervalDiffers && adv.Interval != lastLogged { // once per change, not per packet
//			logger.Info("master advertises another interval", "master", adv.Src, "interval", adv.Interval, "ours", e.Interval)
//			lastLogged = adv.Interval
//		}
//		// the state machine's event: Advert{Priority: int(adv.Priority), Src: adv.Src, Interval: adv.Interval}
//	}
//
// Parse is the decoder alone (no TTL, VRID, authentication or address checks), for tools
// and tests.

// VRRP addresses and numbers of RFC 5798 section 5.1.
var (
	// MulticastGroupV4 is the IPv4 multicast group of VRRP advertisements.
	MulticastGroupV4 = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	// MulticastGroupV6 is the IPv6 multicast group of VRRP advertisements.
	MulticastGroupV6 = netip.MustParseAddr("ff02::12")
)

const (
	// IPProtocol is the IP protocol number of VRRP.
	IPProtocol = 112
	// RequiredTTL is the IPv4 TTL or IPv6 hop limit every advertisement is sent and
	// must be received with (RFC 5798 section 5.1.1.3): a packet that crossed a router
	// has a lower one.
	RequiredTTL = 255
	// MaxAddresses is the most addresses one advertisement carries (an 8-bit count).
	// 255 IPv4 addresses fit in any Ethernet frame; IPv6 advertisements with more than
	// 90 addresses exceed a 1500-byte MTU and are fragmented.
	MaxAddresses = 255
)

// Advertisement interval limits. Version 3 carries centiseconds in 12 bits, version 2
// whole seconds in 8 bits.
const (
	MinIntervalV3 = 10 * time.Millisecond
	MaxIntervalV3 = 4095 * 10 * time.Millisecond
	MinIntervalV2 = time.Second
	MaxIntervalV2 = 255 * time.Second
)

// Authentication types of VRRP version 2 (RFC 3768 section 5.3.6; version 3 has none).
const (
	// AuthNone: no authentication; the authentication data is zero.
	AuthNone uint8 = 0
	// AuthPassword: a plain-text password of up to 8 bytes, zero-padded, in the
	// authentication data (keepalived's auth_type PASS). It protects against
	// misconfiguration, not against an attacker.
	AuthPassword uint8 = 1
	// AuthIPAH is the IP Authentication Header type of RFC 2338, removed by RFC 3768.
	// It is not supported: packets that carry it are dropped (DropAuthType).
	AuthIPAH uint8 = 2
)

const (
	vrrpHeaderLen   = 8
	vrrpAuthDataLen = 8
	vrrpTypeAdvert  = 1
)

// Packet is one VRRP advertisement.
type Packet struct {
	// Version is 2 (RFC 3768, IPv4 only) or 3 (RFC 5798).
	Version int
	// VRID is the virtual router identifier, 1 to 255.
	VRID uint8
	// Priority is the sender's priority: 255 for the address owner, 0 when the master
	// stops (a backup takes over after Skew_Time).
	Priority uint8
	// Interval is the advertisement interval: version 3, a multiple of 10ms from
	// MinIntervalV3 to MaxIntervalV3; version 2, whole seconds from MinIntervalV2 to
	// MaxIntervalV2.
	Interval time.Duration
	// AuthType is AuthNone or AuthPassword (version 2 only; zero for version 3).
	AuthType uint8
	// AuthData is the password of AuthPassword, zero-padded (version 2 only). It is
	// sent as is, so keep it zero with AuthNone.
	AuthData [8]byte
	// Addresses are the virtual addresses, all of the packet's family (IPv4 or IPv6),
	// at most MaxAddresses.
	Addresses []netip.Addr
}

// CodecOptions are the wire variants a peer may need. The zero value is RFC 5798 with
// keepalived's defaults.
type CodecOptions struct {
	// V3ChecksumAsV2 leaves the IPv4 pseudo-header out of the checksum of version 3
	// over IPv4, as version 2 does (keepalived's v3_checksum_as_v2, for Cisco and other
	// routers that read RFC 5798 section 5.2.8 that way, as RFC 9568 now does). Like
	// keepalived, the codec then sends and accepts only that form; without it, only the
	// form with the pseudo-header. IPv6 always includes its pseudo-header. Default: false.
	V3ChecksumAsV2 bool
}

// AuthDataFromPassword returns the version 2 authentication data for a plain-text
// password (AuthPassword): the password's bytes, zero-padded to 8.
func AuthDataFromPassword(password string) ([8]byte, error) {
	var d [8]byte
	if len(password) == 0 || len(password) > len(d) {
		// keepalived silently truncates a longer auth_pass to its first 8 characters.
		return d, fmt.Errorf("password of %d bytes: must be 1 to 8 bytes (keepalived uses only the first 8 characters of a longer auth_pass)", len(password))
	}
	copy(d[:], password)
	return d, nil
}

// Marshal encodes p as sent from src to dst (the multicast group or a unicast peer),
// computing the checksum. It returns the VRRP message without the IP header.
func (p *Packet) Marshal(src, dst netip.Addr, opt CodecOptions) ([]byte, error) {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("vrrp source %v and destination %v: must be addresses of one family", src, dst)
	}
	is4 := src.Is4()
	alen := 16
	if is4 {
		alen = 4
	}
	n := vrrpHeaderLen + alen*len(p.Addresses)
	switch p.Version {
	case 3:
		if p.AuthType != AuthNone || p.AuthData != [8]byte{} {
			return nil, fmt.Errorf("vrrp auth_type %d: authentication is version 2 only", p.AuthType)
		}
		if p.Interval < MinIntervalV3 || p.Interval > MaxIntervalV3 || p.Interval%(10*time.Millisecond) != 0 {
			return nil, fmt.Errorf("vrrp interval %v: version 3 needs a multiple of 10ms from %v to %v", p.Interval, MinIntervalV3, MaxIntervalV3)
		}
	case 2:
		if !is4 {
			return nil, errors.New("vrrp version 2 over IPv6: version 2 is IPv4 only (RFC 3768), use version 3")
		}
		switch p.AuthType {
		case AuthNone, AuthPassword:
		case AuthIPAH:
			return nil, errors.New("vrrp auth_type 2 (IP AH): removed by RFC 3768, not supported")
		default:
			return nil, fmt.Errorf("vrrp auth_type %d: unknown (0 none, 1 password)", p.AuthType)
		}
		if p.Interval < MinIntervalV2 || p.Interval > MaxIntervalV2 || p.Interval%time.Second != 0 {
			return nil, fmt.Errorf("vrrp interval %v: version 2 needs whole seconds from %v to %v", p.Interval, MinIntervalV2, MaxIntervalV2)
		}
		n += vrrpAuthDataLen
	default:
		return nil, fmt.Errorf("vrrp version %d: must be 2 or 3", p.Version)
	}
	if len(p.Addresses) > MaxAddresses {
		return nil, fmt.Errorf("vrrp addresses: %d, at most %d fit in one advertisement", len(p.Addresses), MaxAddresses)
	}

	b := make([]byte, vrrpHeaderLen, n)
	b[0] = byte(p.Version)<<4 | vrrpTypeAdvert
	b[1] = p.VRID
	b[2] = p.Priority
	b[3] = byte(len(p.Addresses))
	if p.Version == 3 {
		binary.BigEndian.PutUint16(b[4:], uint16(p.Interval/(10*time.Millisecond)))
	} else {
		b[4] = p.AuthType
		b[5] = byte(p.Interval / time.Second)
	}
	for i, a := range p.Addresses {
		switch {
		case is4 && a.Unmap().Is4():
			a4 := a.Unmap().As4()
			b = append(b, a4[:]...)
		case !is4 && a.Is6() && a.Zone() == "":
			a16 := a.As16()
			b = append(b, a16[:]...)
		default:
			return nil, fmt.Errorf("vrrp addresses[%d] %v: not an address of the packet's family (source %v)", i, a, src)
		}
	}
	if p.Version == 2 {
		b = append(b, p.AuthData[:]...)
	}
	binary.BigEndian.PutUint16(b[6:], ^fold(checksumSum(b, src, dst, p.Version, opt)))
	return b, nil
}

// Parse decodes a VRRP message (without the IP header) received from src to dst and
// verifies its length and checksum. A malformed packet returns a *DropError with
// DropLength, DropVersion, DropType, DropFamily, DropChecksum, DropInterval or
// DropAuthType. Reserved bits are ignored. Parse does not check the TTL, VRID,
// authentication or addresses against a configuration: Expect.Check does.
func Parse(b []byte, src, dst netip.Addr, opt CodecOptions) (Packet, error) {
	src, dst = src.Unmap(), dst.Unmap()
	if len(b) < vrrpHeaderLen {
		return Packet{}, dropf(DropLength, src, "%d bytes, shorter than the %d-byte header", len(b), vrrpHeaderLen)
	}
	version := int(b[0] >> 4)
	if version != 2 && version != 3 {
		return Packet{}, dropf(DropVersion, src, "version %d, want 2 or 3", version)
	}
	if t := b[0] & 0x0f; t != vrrpTypeAdvert {
		return Packet{}, dropf(DropType, src, "type %d, want 1 (advertisement)", t)
	}
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return Packet{}, dropf(DropFamily, src, "source %v and destination %v are not of one family", src, dst)
	}
	is4 := src.Is4()
	if version == 2 && !is4 {
		return Packet{}, dropf(DropVersion, src, "version 2 over IPv6 (version 2 is IPv4 only)")
	}
	count := int(b[3])
	alen := 16
	if is4 {
		alen = 4
	}
	want := vrrpHeaderLen + count*alen
	if version == 2 {
		want += vrrpAuthDataLen
	}
	if len(b) != want {
		return Packet{}, dropf(DropLength, src, "%d bytes, want %d for version %d with %d addresses", len(b), want, version, count)
	}
	if s := fold(checksumSum(b, src, dst, version, opt) + uint32(binary.BigEndian.Uint16(b[6:]))); s != 0xffff {
		return Packet{}, dropf(DropChecksum, src, "checksum %#04x, want %#04x%s", binary.BigEndian.Uint16(b[6:]), ^fold(checksumSum(b, src, dst, version, opt)), checksumVariant(version, is4, opt))
	}

	p := Packet{Version: version, VRID: b[1], Priority: b[2]}
	if version == 3 {
		cs := binary.BigEndian.Uint16(b[4:]) & 0x0fff // the top 4 bits are reserved
		if cs == 0 {
			return Packet{}, dropf(DropInterval, src, "advertised interval 0")
		}
		p.Interval = time.Duration(cs) * 10 * time.Millisecond
	} else {
		p.AuthType = b[4]
		switch p.AuthType {
		case AuthNone, AuthPassword:
		case AuthIPAH:
			return Packet{}, dropf(DropAuthType, src, "auth_type 2 (IP AH): removed by RFC 3768, not supported")
		default:
			return Packet{}, dropf(DropAuthType, src, "auth_type %d unknown", p.AuthType)
		}
		if b[5] == 0 {
			return Packet{}, dropf(DropInterval, src, "advertised interval 0")
		}
		p.Interval = time.Duration(b[5]) * time.Second
		copy(p.AuthData[:], b[len(b)-vrrpAuthDataLen:])
	}
	if count > 0 {
		p.Addresses = make([]netip.Addr, count)
		for i := range count {
			a := b[vrrpHeaderLen+i*alen:][:alen]
			if is4 {
				p.Addresses[i] = netip.AddrFrom4([4]byte(a))
			} else {
				p.Addresses[i] = netip.AddrFrom16([16]byte(a))
			}
		}
	}
	return p, nil
}

func checksumVariant(version int, is4 bool, opt CodecOptions) string {
	switch {
	case version == 2:
		return " (version 2: message only)"
	case !is4:
		return " (version 3 over IPv6: with pseudo-header)"
	case opt.V3ChecksumAsV2:
		return " (version 3 over IPv4 without pseudo-header: v3_checksum_as_v2 is set)"
	default:
		return " (version 3 over IPv4 with pseudo-header: v3_checksum_as_v2 is not set)"
	}
}

// checksumSum returns the one's complement sum (not yet folded) of the VRRP message b
// without its checksum field, and of the pseudo-header where the version needs one.
func checksumSum(b []byte, src, dst netip.Addr, version int, opt CodecOptions) uint32 {
	var sum uint32
	if version == 3 {
		switch {
		case src.Is6():
			// RFC 8200 section 8.1: source, destination, 32-bit length, 3 zero bytes, next header.
			s, d := src.As16(), dst.As16()
			sum = sum16(sum, s[:])
			sum = sum16(sum, d[:])
			sum += uint32(len(b)>>16) + uint32(len(b)&0xffff) + IPProtocol
		case !opt.V3ChecksumAsV2:
			// As keepalived: source, destination, zero, protocol, 16-bit length.
			s, d := src.As4(), dst.As4()
			sum = sum16(sum, s[:])
			sum = sum16(sum, d[:])
			sum += IPProtocol + uint32(len(b))
		}
	}
	sum = sum16(sum, b[:6])
	return sum16(sum, b[8:])
}

// sum16 adds b to sum as big-endian 16-bit words (RFC 1071); an odd last byte is padded.
func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// DropReason names why a received packet was dropped; it is the label of the drop
// counter. The values are stable: they appear in metrics.
type DropReason string

// Drop reasons, in the order Expect.Check applies them.
const (
	// DropLength: shorter than the header, or longer or shorter than its address count
	// says.
	DropLength DropReason = "length"
	// DropVRID: another virtual router's packet (several share the group). Not an
	// error: count it, don't log it.
	DropVRID DropReason = "vrid"
	// DropOwn: our own packet, looped back by multicast or sent from one of our
	// addresses. Not an error: count it, don't log it.
	DropOwn DropReason = "own_packet"
	// DropUnicastSource: with unicast peers, a sender that is not one of them
	// (keepalived's check_unicast_src).
	DropUnicastSource DropReason = "unicast_src"
	// DropTTL: IPv4 TTL or IPv6 hop limit other than 255: the packet crossed a router.
	DropTTL DropReason = "ttl"
	// DropVersion: not version 2 or 3, not the version configured, or version 2 over IPv6.
	DropVersion DropReason = "version"
	// DropType: not an advertisement (type 1).
	DropType DropReason = "type"
	// DropFamily: source and destination, or the packet and our addresses, are of
	// different families.
	DropFamily DropReason = "family"
	// DropChecksum: the checksum does not match (see CodecOptions.V3ChecksumAsV2).
	DropChecksum DropReason = "checksum"
	// DropAuthType: version 2 authentication type other than ours, IP AH or unknown.
	DropAuthType DropReason = "auth_type"
	// DropAuthPassword: version 2 password other than ours.
	DropAuthPassword DropReason = "auth_password"
	// DropInterval: an advertised interval of 0, or, for version 2, other than ours
	// (RFC 3768 section 7.1; version 3 accepts the master's interval).
	DropInterval DropReason = "interval"
	// DropAddressCount: a number of addresses other than ours (from any sender,
	// the address owner included, as keepalived checks).
	DropAddressCount DropReason = "address_count"
	// DropAddressList: addresses other than ours (from any sender).
	DropAddressList DropReason = "address_list"
	// DropStale: as master, an advertisement received more than 3 advert intervals
	// before it was read: it waited in the socket while this process did not run (a
	// SIGSTOP, a stalled host). The instance applies it after the others (Check does
	// not know when a packet is read).
	DropStale DropReason = "stale"
	// DropAuth: with an auth_key, no lbd authentication trailer, or one that does
	// not verify (auth.go). Applied by the instance before Check.
	DropAuth DropReason = "auth"
	// DropReplay: with an auth_key, a sequence number not above the last one
	// accepted from the sender, or a first one older than the replay window.
	DropReplay DropReason = "replay"
)

// DropReasons lists every reason, to create the counters at zero.
func DropReasons() []DropReason {
	return []DropReason{
		DropLength, DropVRID, DropOwn, DropUnicastSource, DropTTL, DropVersion, DropType, DropFamily,
		DropChecksum, DropAuthType, DropAuthPassword, DropInterval, DropAddressCount,
		DropAddressList, DropStale, DropAuth, DropReplay,
	}
}

// Quiet reports whether a drop for this reason is routine (another virtual router's
// packet, our own packet): count it but don't log it.
func (r DropReason) Quiet() bool {
	return r == DropVRID || r == DropOwn
}

// DropError is a received packet that was dropped, and why.
type DropError struct {
	Reason DropReason
	Src    netip.Addr // the packet's IP source
	Detail string     // what was wrong, for the log: "ttl 64, want 255"
}

func (e *DropError) Error() string {
	return fmt.Sprintf("vrrp packet from %v dropped: %s: %s", e.Src, e.Reason, e.Detail)
}

func dropf(r DropReason, src netip.Addr, format string, args ...any) *DropError {
	return &DropError{Reason: r, Src: src, Detail: fmt.Sprintf(format, args...)}
}

// Expect is what one virtual router accepts: its configuration as the receive checks
// of RFC 5798 / RFC 3768 section 7.1 need it. Build it when the instance starts (and
// again when its configuration or the interface's addresses change); Check does not
// modify it.
type Expect struct {
	// Version is 2 or 3; packets of the other version are dropped (DropVersion).
	Version int
	// VRID is the virtual router's identifier; other VRIDs are dropped (DropVRID).
	VRID uint8
	// Interval is our advertisement interval. Version 2 drops packets with another
	// (DropInterval); version 3 accepts them and sets Accepted.IntervalDiffers.
	Interval time.Duration
	// AuthType and AuthData are our version 2 authentication (AuthNone or
	// AuthPassword with AuthDataFromPassword); a packet with another type or password
	// is dropped. Ignored for version 3.
	AuthType uint8
	AuthData [8]byte
	// Addresses are our virtual addresses (without prefix length). An advertisement
	// from a non-owner must carry the same set, in any order (DropAddressCount,
	// DropAddressList); their family is the instance's (DropFamily).
	Addresses []netip.Addr
	// Own are this node's addresses on the interface (at least Transport.Source);
	// packets from them are our own (DropOwn).
	Own []netip.Addr
	// Peers, when not empty, are the only senders accepted (DropUnicastSource): the
	// unicast peers, with check_unicast_src.
	Peers []netip.Addr
	// Codec selects the checksum variant.
	Codec CodecOptions
}

// Accepted is an advertisement that passed the receive checks.
type Accepted struct {
	Packet
	// Src is the sender's IP address: its primary address, which breaks priority ties
	// (RFC 5798 section 6.4.3: the higher address wins).
	Src netip.Addr
	// IntervalDiffers is set (version 3 only) when the master advertises an interval
	// other than Expect.Interval. The packet is accepted, and a backup times the
	// master with the advertised Interval (Master_Adver_Interval, RFC 5798 section
	// 6.4.2); log it when it changes, as keepalived does.
	IntervalDiffers bool
}

// Check decodes a received packet and applies the receive checks, in the order of the
// Drop… constants: length, VRID, own packet, unicast source, TTL, then Parse's checks
// (version, type, family, length, checksum, interval, auth type), the configured version
// and family, version 2 authentication and interval, and the addresses. RFC 5798 section
// 7.1 lets the address owner (priority 255) advertise other addresses; like keepalived,
// Check does not: otherwise any host could take over with priority 255 and whatever
// addresses it likes. A dropped packet returns a *DropError.
func (e *Expect) Check(r Received) (Accepted, error) {
	src := r.Src.Unmap()
	if len(r.Payload) < vrrpHeaderLen {
		return Accepted{}, dropf(DropLength, src, "%d bytes, shorter than the %d-byte header", len(r.Payload), vrrpHeaderLen)
	}
	// Several virtual routers share the group: sort out the others' packets first, so
	// that they never count as errors of this one.
	if vrid := r.Payload[1]; vrid != e.VRID {
		return Accepted{}, dropf(DropVRID, src, "vrid %d, ours is %d", vrid, e.VRID)
	}
	for _, a := range e.Own {
		if a.Unmap().WithZone("") == src.WithZone("") {
			return Accepted{}, dropf(DropOwn, src, "sent from our address %v", a)
		}
	}
	if len(e.Peers) > 0 && !slices.ContainsFunc(e.Peers, func(a netip.Addr) bool { return a.Unmap().WithZone("") == src.WithZone("") }) {
		return Accepted{}, dropf(DropUnicastSource, src, "not one of the unicast peers %v", e.Peers)
	}
	if r.TTL != RequiredTTL {
		return Accepted{}, dropf(DropTTL, src, "ttl %d, want %d", r.TTL, RequiredTTL)
	}
	p, err := Parse(r.Payload, src, r.Dst, e.Codec)
	if err != nil {
		return Accepted{}, err
	}
	if p.Version != e.Version {
		return Accepted{}, dropf(DropVersion, src, "version %d, ours is %d", p.Version, e.Version)
	}
	// Our addresses in the packet's family: IPv4-mapped ones count as IPv4 in an IPv4
	// packet, and an IPv6 packet carries all 16 bytes.
	ours := func(o netip.Addr) netip.Addr {
		if src.Is4() {
			return o.Unmap()
		}
		return o
	}
	if len(e.Addresses) > 0 && ours(e.Addresses[0]).Is4() != src.Is4() {
		return Accepted{}, dropf(DropFamily, src, "packet of the other family than our addresses (%v)", e.Addresses[0])
	}
	adv := Accepted{Packet: p, Src: src}
	if p.Version == 2 {
		if p.AuthType != e.AuthType {
			return Accepted{}, dropf(DropAuthType, src, "auth_type %d, ours is %d", p.AuthType, e.AuthType)
		}
		if p.AuthType == AuthPassword && subtle.ConstantTimeCompare(p.AuthData[:], e.AuthData[:]) != 1 {
			return Accepted{}, dropf(DropAuthPassword, src, "wrong password")
		}
		if p.Interval != e.Interval {
			// RFC 3768 section 7.1: two routers with different intervals would both be
			// master; drop, and the operator sees the mismatch in the log.
			return Accepted{}, dropf(DropInterval, src, "interval %v, ours is %v", p.Interval, e.Interval)
		}
	} else {
		adv.IntervalDiffers = p.Interval != e.Interval
	}
	if len(p.Addresses) != len(e.Addresses) {
		return Accepted{}, dropf(DropAddressCount, src, "%d addresses, we have %d", len(p.Addresses), len(e.Addresses))
	}
	for _, a := range p.Addresses {
		if !slices.ContainsFunc(e.Addresses, func(o netip.Addr) bool { return ours(o) == a }) {
			return Accepted{}, dropf(DropAddressList, src, "address %v is not one of ours %v", a, e.Addresses)
		}
	}
	for _, o := range e.Addresses {
		if !slices.Contains(p.Addresses, ours(o)) {
			return Accepted{}, dropf(DropAddressList, src, "our address %v is missing from %v", o, p.Addresses)
		}
	}
	return adv, nil
}
