package dataplane

// SNI routing of tcp frontends: lbd reads the client's TLS ClientHello from the bare
// connection (it does not terminate TLS), takes the server name from it, picks the
// backend of the first sni route that matches (else the frontend's backend), sends the
// bytes it read to the server, and splices the rest as any tcp session.

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// maxHelloBytes bounds the ClientHello lbd reads to route a connection; a larger hello
// (post-quantum key shares make them a few KiB) is malformed for routing purposes.
const maxHelloBytes = 64 << 10

var (
	errNotTLS       = errors.New("not a TLS handshake record")
	errNotHello     = errors.New("first handshake message is not a ClientHello")
	errHelloTooLong = fmt.Errorf("ClientHello longer than %d bytes", maxHelloBytes)
	errHelloShort   = errors.New("truncated ClientHello")
)

// sniRoute is a compiled sni route.
type sniRoute struct {
	name     string // lower case; for a wildcard, the suffix with its dot (".example.com")
	wildcard bool
	backend  *backend
}

// compileSNIRoutes returns the sni routes of a frontend.
func compileSNIRoutes(fc Frontend, byName map[string]*backend) []sniRoute {
	var out []sniRoute
	for _, r := range fc.Routes {
		if r.SNI == "" {
			continue
		}
		sr := sniRoute{name: strings.ToLower(r.SNI), backend: byName[r.Backend]}
		if strings.HasPrefix(sr.name, "*.") {
			sr.name, sr.wildcard = sr.name[1:], true
		}
		out = append(out, sr)
	}
	return out
}

// matchSNI returns the backend for server name sni, or nil when no route matches.
func matchSNI(routes []sniRoute, sni string) *backend {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	for _, r := range routes {
		if r.wildcard {
			if len(sni) > len(r.name) && strings.HasSuffix(sni, r.name) {
				return r.backend
			}
		} else if sni == r.name {
			return r.backend
		}
	}
	return nil
}

// routeSNI picks the backend of a tcp connection: the default one, or for a frontend
// with sni routes, by the server name of the ClientHello it reads from c. hello is what
// it read, for the server; ok is false when the connection is to be closed.
func (f *tcpFrontend) routeSNI(c *tcpConn, g *frontendGen) (b *backend, hello []byte, ok bool) {
	if len(g.sni) == 0 {
		return g.backend, nil, true
	}
	m := g.metrics.tls.passthrough
	c.client.SetReadDeadline(time.Now().Add(g.cfg.Timeouts.ClientHeader))
	hello, name, err := readClientHello(c.client)
	c.client.SetReadDeadline(time.Time{})
	if err != nil {
		result := "malformed"
		if isTimeout(err) {
			result = "timeout"
		}
		m.WithLabelValues(g.cfg.Name, result).Inc()
		f.d.log.Debug("no ClientHello to route by", "frontend", g.cfg.Name, "client", c.client.RemoteAddr(), "err", err)
		return nil, nil, false
	}
	g.m.bytesIn.Add(float64(len(hello)))
	if b := matchSNI(g.sni, name); b != nil {
		m.WithLabelValues(g.cfg.Name, "routed").Inc()
		return b, hello, true
	}
	m.WithLabelValues(g.cfg.Name, "default").Inc()
	return g.backend, hello, true
}

// readClientHello reads TLS records from c until it holds a whole ClientHello, and
// returns the bytes read and the server name the hello asks for ("" for none).
func readClientHello(c net.Conn) (raw []byte, sni string, err error) {
	raw = make([]byte, 0, 2048)
	var hs []byte // the handshake messages, without record headers
	for {
		// Parse what is there; read another record if the hello is not whole.
		if len(hs) >= 4 {
			if hs[0] != 1 {
				return raw, "", errNotHello
			}
			n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if n > maxHelloBytes {
				return raw, "", errHelloTooLong
			}
			if len(hs) >= 4+n {
				sni, err := parseClientHello(hs[4 : 4+n])
				return raw, sni, err
			}
		}
		hdr, err := readFull(c, &raw, 5)
		if err != nil {
			return raw, "", err
		}
		if hdr[0] != 22 || hdr[1] != 3 { // handshake, TLS 1.x record version
			return raw, "", errNotTLS
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		if n == 0 || n > 1<<14+2048 {
			return raw, "", errNotTLS
		}
		if len(raw)+n > maxHelloBytes+5*8 {
			return raw, "", errHelloTooLong
		}
		body, err := readFull(c, &raw, n)
		if err != nil {
			return raw, "", err
		}
		hs = append(hs, body...)
	}
}

// readFull reads n more bytes from c onto *buf and returns them.
func readFull(c net.Conn, buf *[]byte, n int) ([]byte, error) {
	start := len(*buf)
	for len(*buf) < start+n {
		b := *buf
		if cap(b) < start+n {
			nb := make([]byte, len(b), 2*cap(b)+n)
			copy(nb, b)
			b = nb
		}
		m, err := c.Read(b[len(b) : start+n])
		*buf = b[:len(b)+m]
		if err != nil {
			if len(*buf) < start+n {
				if isTimeout(err) {
					return nil, err
				}
				return nil, errHelloShort
			}
		}
	}
	return (*buf)[start : start+n], nil
}

// parseClientHello returns the server name of a ClientHello body (RFC 8446, 4.1.2; RFC
// 6066, 3), or "" when it has none.
func parseClientHello(b []byte) (string, error) {
	s := helloReader(b)
	if !s.skip(2+32) || !s.skipVec(1) || !s.skipVec(2) || !s.skipVec(1) { // version, random, session id, suites, compression
		return "", errHelloShort
	}
	if len(s) == 0 {
		return "", nil // no extensions
	}
	exts, ok := s.vec(2)
	if !ok {
		return "", errHelloShort
	}
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec(2)
		if !ok1 || !ok2 {
			return "", errHelloShort
		}
		if typ != 0 { // server_name
			continue
		}
		list, ok := data.vec(2)
		if !ok {
			return "", errHelloShort
		}
		for len(list) > 0 {
			kind, ok1 := list.u8()
			name, ok2 := list.vec(2)
			if !ok1 || !ok2 {
				return "", errHelloShort
			}
			if kind == 0 { // host_name
				if len(name) == 0 || !validHostName(name) {
					return "", errors.New("malformed server name in ClientHello")
				}
				return string(name), nil
			}
		}
		return "", nil
	}
	return "", nil
}

func validHostName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// helloReader reads a ClientHello front to back.
type helloReader []byte

func (s *helloReader) skip(n int) bool {
	if len(*s) < n {
		return false
	}
	*s = (*s)[n:]
	return true
}

func (s *helloReader) u8() (byte, bool) {
	if len(*s) < 1 {
		return 0, false
	}
	v := (*s)[0]
	*s = (*s)[1:]
	return v, true
}

func (s *helloReader) u16() (int, bool) {
	if len(*s) < 2 {
		return 0, false
	}
	v := int((*s)[0])<<8 | int((*s)[1])
	*s = (*s)[2:]
	return v, true
}

// vec reads a vector with a length prefix of size bytes (1 or 2).
func (s *helloReader) vec(size int) (helloReader, bool) {
	var n int
	var ok bool
	if size == 1 {
		var v byte
		v, ok = s.u8()
		n = int(v)
	} else {
		n, ok = s.u16()
	}
	if !ok || len(*s) < n {
		return nil, false
	}
	v := (*s)[:n]
	*s = (*s)[n:]
	return v, true
}

func (s *helloReader) skipVec(size int) bool {
	_, ok := s.vec(size)
	return ok
}
