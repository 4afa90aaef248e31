package vip

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse feeds the decoder and the receive checks arbitrary packets. Seeds: the
// known-good table and every captured keepalived advertisement. Properties:
//   - Parse and Expect.Check never panic, and every error they return is a *DropError.
//   - A packet that parses marshals again, to the same bytes up to what the decoder
//     ignores (the reserved bits of version 3), and the result parses to the same Packet.
//   - A packet that parses passes Check against an Expect made from it.
//
// With fixSum the fuzzer's packet gets a correct checksum first, so that mutations get
// past the checksum and reach the rest of the decoder.
//
// go test ./vip -run '^$' -fuzz FuzzParse -fuzztime 30s
func FuzzParse(f *testing.F) {
	for _, kg := range knownGood {
		f.Add(mustHex(f, kg.hex), kg.src.AsSlice(), kg.dst.AsSlice(), kg.opt.V3ChecksumAsV2, uint8(255), false)
	}
	for _, c := range capturedPackets(f) {
		f.Add(c.payload, c.src.AsSlice(), c.dst.AsSlice(), false, uint8(c.ttl), true)
	}
	f.Fuzz(func(t *testing.T, b, srcb, dstb []byte, asV2 bool, ttl uint8, fixSum bool) {
		src, _ := netip.AddrFromSlice(srcb)
		dst, _ := netip.AddrFromSlice(dstb)
		opt := CodecOptions{V3ChecksumAsV2: asV2}
		if fixSum && len(b) >= vrrpHeaderLen && src.IsValid() && dst.IsValid() && src.Is4() == dst.Is4() {
			b = fixChecksum(b, src, dst, opt)
		}

		// Check against some configuration must not panic, whatever the packet.
		vrid := uint8(0)
		if len(b) > 1 {
			vrid = b[1]
		}
		r := Received{Payload: b, Src: src, Dst: dst, TTL: int(ttl)}
		for _, e := range []*Expect{
			{Version: 3, VRID: vrid, Interval: time.Second, Addresses: addrs("198.18.0.100"), Codec: opt},
			{Version: 2, VRID: vrid, Interval: time.Second, AuthType: AuthPassword, Addresses: addrs("198.18.0.100"), Own: addrs("198.18.0.1"), Codec: opt},
		} {
			if _, err := e.Check(r); err != nil {
				var d *DropError
				if !errors.As(err, &d) || d.Reason == "" {
					t.Fatalf("Check: %v is not a *DropError with a reason", err)
				}
			}
		}

		p, err := Parse(b, src, dst, opt)
		if err != nil {
			var d *DropError
			if !errors.As(err, &d) || d.Reason == "" {
				t.Fatalf("Parse: %v is not a *DropError with a reason", err)
			}
			return
		}
		out, err := p.Marshal(src, dst, opt)
		if err != nil {
			t.Fatalf("Parse accepted %x as %+v, which does not marshal: %v", b, p, err)
		}
		want := slices.Clone(b)
		if p.Version == 3 {
			want[4] &= 0x0f // reserved
		}
		want = fixChecksum(want, src, dst, opt) // a sum of zero may be sent as 0x0000 or 0xffff
		if !slices.Equal(out, want) {
			t.Fatalf("Marshal(Parse(%x)) = %x, want %x", b, out, want)
		}
		p2, err := Parse(out, src, dst, opt)
		if err != nil {
			t.Fatalf("Parse(Marshal(%+v)): %v", p, err)
		}
		if diff := cmp.Diff(p, p2, addrComparer); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}

		e := &Expect{Version: p.Version, VRID: p.VRID, Interval: p.Interval, AuthType: p.AuthType, AuthData: p.AuthData, Addresses: p.Addresses, Codec: opt}
		acc, err := e.Check(Received{Payload: b, Src: src, Dst: dst, TTL: RequiredTTL})
		if err != nil {
			t.Fatalf("Check against the packet's own configuration: %v", err)
		}
		if diff := cmp.Diff(p, acc.Packet, addrComparer); diff != "" {
			t.Fatalf("Check (-Parse +Check):\n%s", diff)
		}
	})
}
