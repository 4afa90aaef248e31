package node

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// FuzzLivenessHello feeds the master's hello parsers (parseLivenessHello for the plain
// protocol, isAuthHello and parseAuthHello for the keyed one) arbitrary bytes. An
// accepted hello asks for an interval within the bounds, which livenessHello encodes
// back to the same bytes (reserved byte aside) when the request was within them; a
// keyed hello carries its nonce and the interval its plain form would; no hello is
// both.
func FuzzLivenessHello(f *testing.F) {
	f.Add(livenessHello(25 * time.Millisecond))
	f.Add(livenessHello(time.Millisecond))
	f.Add(livenessHello(time.Minute))
	f.Add([]byte("LBDL\x01\x00\xff\xff"))
	f.Add([]byte("XBDL\x01\x00\x00\x19"))
	f.Add([]byte("LBDL\x03\x00\x00\x19"))
	f.Add([]byte("LBDL\x01\x00\x00"))
	h, _ := authHello(time.Second)
	f.Add(h)
	f.Add(h[:len(h)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		iv, ok := parseLivenessHello(b)
		keyed := isAuthHello(b)
		if ok && keyed {
			t.Fatalf("%x is both a plain and a keyed hello", b)
		}
		if ok {
			if iv < MinLivenessInterval || iv > MaxLivenessInterval {
				t.Fatalf("hello %x asks for %v, outside the bounds", b, iv)
			}
			enc := livenessHello(iv)
			if back, ok := parseLivenessHello(enc); !ok || back != iv {
				t.Fatalf("hello for %v reads back as %v, %v", iv, back, ok)
			}
			asked := time.Duration(binary.BigEndian.Uint16(b[6:])) * time.Millisecond
			want := bytes.Clone(b)
			want[5] = 0
			if asked == iv && !bytes.Equal(enc, want) {
				t.Fatalf("hello %x reads as %v, which encodes as %x", b, iv, enc)
			}
		}
		aiv, nonce, aok := parseAuthHello(b)
		if aok {
			if !keyed || len(nonce) != livenessNonceN || !bytes.Equal(nonce, b[livenessHelloN:]) {
				t.Fatalf("keyed hello %x: nonce %x", b, nonce)
			}
			plain := bytes.Clone(b[:livenessHelloN])
			plain[4] = livenessVersion
			if piv, _ := parseLivenessHello(plain); piv != aiv {
				t.Fatalf("keyed hello %x asks for %v, its plain form for %v", b, aiv, piv)
			}
		}
	})
}
