package dataplane

// PROXY protocol, versions 1 and 2, as HAProxy specifies it
// (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt).
//
// Sending. A tcp frontend's connection to a server of a backend with send_proxy starts
// with a header naming the client's address and the address the client connected to,
// written with a plain Write before the splice copy begins. http frontends never send
// one: their server connections are pooled and carry the requests of many clients, so a
// per-connection header would name the wrong client (Validate refuses send_proxy on a
// backend that an http frontend or route uses).
//
// Accepting. A connection to a frontend with accept_proxy whose peer address lies in one
// of its prefixes must start with a v1 or v2 header, received within client_header; one
// that does not is closed and counted in lbd_proxy_protocol_errors_total. Any other
// connection is plain: its bytes are never looked at as a header, so a client outside
// the trusted prefixes cannot claim another address. The header is read straight from
// the *net.TCPConn and never a byte further (v1: the line is found by recv(MSG_PEEK)
// first; v2: the 16-byte prefix gives the length), so that the connection stays a bare
// *net.TCPConn that tcp mode can splice, and the payload stays in the socket.
//
// The addresses a header gives replace the connection's own for balancing (source,
// consistent on client_ip), X-Forwarded-For and X-Real-IP, a header sent on to a server,
// and logs. A v2 LOCAL header, a v1 UNKNOWN line, and a v2 header of family UNSPEC or
// AF_UNIX keep the connection's own addresses.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Values of Backend.SendProxy.
const (
	ProxyV1 = "v1"
	ProxyV2 = "v2"
)

const (
	// proxyV1Max is the longest v1 header, CRLF included.
	proxyV1Max = 107
	// proxyV2Prefix is the fixed part of a v2 header: signature, version and command,
	// family and transport, length.
	proxyV2Prefix = 16
)

// proxyV2Sig starts every v2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// proxyV1Sig starts every v1 header.
var proxyV1Sig = []byte("PROXY ")

// Reasons a connection that had to send a PROXY header is closed, the reason label of
// lbd_proxy_protocol_errors_total.
const (
	proxyReasonTimeout   = "timeout"   // the header did not arrive within client_header
	proxyReasonClosed    = "closed"    // the connection ended (or failed) before the header did
	proxyReasonMissing   = "missing"   // the connection does not start with a PROXY signature
	proxyReasonMalformed = "malformed" // a PROXY header that breaks the specification
)

// ProxyError is why a PROXY header was refused.
type ProxyError struct {
	// Reason is one of timeout, closed, missing, malformed.
	Reason string
	Msg    string
}

func (e *ProxyError) Error() string { return e.Msg }

func proxyErrorf(reason, format string, args ...any) error {
	return &ProxyError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// errProxyIncomplete is what the parser says of a buffer that holds the start of a
// header but not all of it.
var errProxyIncomplete = &ProxyError{Reason: proxyReasonClosed, Msg: "proxy: incomplete header"}

// proxyHeader is what a PROXY header says about a connection.
type proxyHeader struct {
	// Src is the client's address, Dst the address it connected to (unmapped).
	Src, Dst netip.AddrPort
	// Local means the header gives no addresses to use (v2 LOCAL, v1 UNKNOWN, v2
	// families UNSPEC and AF_UNIX): the connection's own stand.
	Local bool
}

// proxyHeaderSize looks at the start of a connection's bytes and returns the size of the
// PROXY header they begin with, errProxyIncomplete when more bytes are needed to tell, or
// the error that makes them not a header. It does not validate the header: parse does.
func proxyHeaderSize(b []byte) (int, error) {
	switch {
	case len(b) == 0:
		return 0, errProxyIncomplete
	case b[0] == proxyV2Sig[0]:
		if !bytes.HasPrefix(proxyV2Sig, b[:min(len(b), len(proxyV2Sig))]) {
			return 0, proxyErrorf(proxyReasonMissing, "proxy: no PROXY protocol signature")
		}
		if len(b) < proxyV2Prefix {
			return 0, errProxyIncomplete
		}
		if v := b[12] >> 4; v != 2 {
			return 0, proxyErrorf(proxyReasonMalformed, "proxy v2: bad version %d", v)
		}
		return proxyV2Prefix + int(binary.BigEndian.Uint16(b[14:16])), nil
	default:
		if !bytes.HasPrefix(b, proxyV1Sig) && !bytes.HasPrefix(proxyV1Sig, b) {
			return 0, proxyErrorf(proxyReasonMissing, "proxy: no PROXY protocol signature")
		}
		if i := bytes.IndexByte(b[:min(len(b), proxyV1Max)], '\n'); i >= 0 {
			return i + 1, nil
		}
		if len(b) >= proxyV1Max {
			return 0, proxyErrorf(proxyReasonMalformed, "proxy v1: no CRLF within %d bytes", proxyV1Max)
		}
		return 0, errProxyIncomplete
	}
}

// parseProxyHeader parses the PROXY header at the start of b and returns it with its
// size. A b that holds only the start of a header gives errProxyIncomplete. Every other
// error is a *ProxyError naming what is wrong.
func parseProxyHeader(b []byte) (proxyHeader, int, error) {
	n, err := proxyHeaderSize(b)
	if err != nil {
		return proxyHeader{}, 0, err
	}
	if len(b) < n {
		return proxyHeader{}, 0, errProxyIncomplete
	}
	var h proxyHeader
	if b[0] == proxyV2Sig[0] {
		h, err = parseProxyV2(b[:n])
	} else {
		h, err = parseProxyV1(b[:n])
	}
	if err != nil {
		return proxyHeader{}, 0, err
	}
	return h, n, nil
}

// parseProxyV1 parses one whole v1 line, CRLF included.
func parseProxyV1(line []byte) (proxyHeader, error) {
	bad := func(format string, args ...any) (proxyHeader, error) {
		return proxyHeader{}, proxyErrorf(proxyReasonMalformed, "proxy v1: "+format, args...)
	}
	body, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		return bad("line does not end with CRLF")
	}
	body = body[len(proxyV1Sig):]
	proto, rest, _ := bytes.Cut(body, []byte(" "))
	var want4 bool
	switch string(proto) {
	case "UNKNOWN":
		// "the receiver must ignore anything presented before the CRLF is found"
		return proxyHeader{Local: true}, nil
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
	return proxyHeader{Src: netip.AddrPortFrom(addrs[0], ports[0]), Dst: netip.AddrPortFrom(addrs[1], ports[1])}, nil
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

// v2 commands, families and transports.
const (
	proxyV2Local = 0x0
	proxyV2Proxy = 0x1

	proxyAFUnspec = 0x0
	proxyAFInet   = 0x1
	proxyAFInet6  = 0x2
	proxyAFUnix   = 0x3

	proxyStream = 0x1

	proxyTLVCRC32C = 0x03
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// parseProxyV2 parses one whole v2 header.
func parseProxyV2(b []byte) (proxyHeader, error) {
	bad := func(format string, args ...any) (proxyHeader, error) {
		return proxyHeader{}, proxyErrorf(proxyReasonMalformed, "proxy v2: "+format, args...)
	}
	// proxyHeaderSize has checked the signature, the version and the length.
	switch cmd := b[12] & 0xf; cmd {
	case proxyV2Local:
		// "the receiver must accept this connection as valid and must use the real
		// connection endpoints and discard the protocol block including the family"
		return proxyHeader{Local: true}, nil
	case proxyV2Proxy:
	default:
		return bad("bad command %#x", cmd)
	}
	var addrLen int
	switch ft := b[13]; ft {
	case 0x00: // UNSPEC: the receiver ignores the block
		return proxyHeader{Local: true}, nil
	case 0x11, 0x12: // TCP4, UDP4
		addrLen = 12
	case 0x21, 0x22: // TCP6, UDP6
		addrLen = 36
	case 0x31, 0x32: // UNIX stream, datagram
		addrLen = 216
	default:
		return bad("bad family and transport byte 0x%02x", ft)
	}
	block := b[proxyV2Prefix:]
	if len(block) < addrLen {
		return bad("address block of %d bytes is shorter than the %d its family needs", len(block), addrLen)
	}
	if err := checkProxyTLVs(b, proxyV2Prefix+addrLen); err != nil {
		return proxyHeader{}, err
	}
	var h proxyHeader
	switch b[13] >> 4 {
	case proxyAFInet:
		src, dst := netip.AddrFrom4([4]byte(block[0:4])), netip.AddrFrom4([4]byte(block[4:8]))
		h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(block[8:10]))
		h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(block[10:12]))
	case proxyAFInet6:
		src, dst := netip.AddrFrom16([16]byte(block[0:16])), netip.AddrFrom16([16]byte(block[16:32]))
		h.Src = netip.AddrPortFrom(src.Unmap(), binary.BigEndian.Uint16(block[32:34]))
		h.Dst = netip.AddrPortFrom(dst.Unmap(), binary.BigEndian.Uint16(block[34:36]))
	default: // AF_UNIX: no address a balancer or a header can use
		h.Local = true
	}
	return h, nil
}

// checkProxyTLVs checks the framing of the TLVs of header b from offset off on, and the
// CRC32C one if there is one.
func checkProxyTLVs(b []byte, off int) error {
	for off < len(b) {
		if len(b)-off < 3 {
			return proxyErrorf(proxyReasonMalformed, "proxy v2: truncated TLV at offset %d", off)
		}
		typ, n := b[off], int(binary.BigEndian.Uint16(b[off+1:off+3]))
		val := off + 3
		if len(b)-val < n {
			return proxyErrorf(proxyReasonMalformed, "proxy v2: TLV 0x%02x at offset %d: %d bytes of value overrun the header", typ, off, n)
		}
		if typ == proxyTLVCRC32C {
			if n != 4 {
				return proxyErrorf(proxyReasonMalformed, "proxy v2: CRC32C TLV of %d bytes, want 4", n)
			}
			want := binary.BigEndian.Uint32(b[val : val+4])
			crc := crc32.Update(0, castagnoli, b[:val])
			crc = crc32.Update(crc, castagnoli, []byte{0, 0, 0, 0})
			crc = crc32.Update(crc, castagnoli, b[val+4:])
			if crc != want {
				return proxyErrorf(proxyReasonMalformed, "proxy v2: CRC32C %08x does not match the header's %08x", want, crc)
			}
		}
		off = val + n
	}
	return nil
}

// appendProxyHeader appends a header of version (ProxyV1 or ProxyV2) naming src and
// dst. Addresses of different families are sent as IPv6 (v4 mapped); invalid ones make a
// v1 UNKNOWN line or a v2 LOCAL header.
func appendProxyHeader(b []byte, version string, src, dst netip.AddrPort) []byte {
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	ok := src.IsValid() && dst.IsValid()
	if ok && sa.Is4() != da.Is4() {
		sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
	}
	if version == ProxyV1 {
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
	b = append(b, proxyV2Sig...)
	if !ok {
		return append(b, 0x20|proxyV2Local, proxyAFUnspec, 0, 0)
	}
	if sa.Is4() {
		b = append(b, 0x20|proxyV2Proxy, proxyAFInet<<4|proxyStream, 0, 12)
		s, d := sa.As4(), da.As4()
		b = append(append(b, s[:]...), d[:]...)
	} else {
		b = append(b, 0x20|proxyV2Proxy, proxyAFInet6<<4|proxyStream, 0, 36)
		s, d := sa.As16(), da.As16()
		b = append(append(b, s[:]...), d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// tcpCloseWait is Linux's TCP_CLOSE_WAIT state (include/net/tcp_states.h): the peer has
// sent its FIN.
const tcpCloseWait = 8

// readProxyHeader reads the PROXY header c starts with, by the deadline, and not one byte
// of what follows it. It finds the header's end by peeking (recv with MSG_PEEK) and then
// reads exactly that much, so c stays a bare *net.TCPConn with the payload in the socket.
func readProxyHeader(c *net.TCPConn, deadline time.Time) (proxyHeader, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return proxyHeader{}, proxyReadError(err)
	}
	defer c.SetReadDeadline(time.Time{})
	rc, err := c.SyscallConn()
	if err != nil {
		return proxyHeader{}, proxyReadError(err)
	}
	// Enough to hold a whole v1 line or a v2 prefix; a v2 header is read in full below.
	var peek [proxyV1Max + 1]byte
	var size int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, e := unix.Recvfrom(int(fd), peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case e == unix.EAGAIN || e == unix.EINTR:
			return false // wait until readable
		case e != nil:
			perr = e
			return true
		case n == 0:
			perr = io.EOF
			return true
		}
		size, perr = proxyHeaderSize(peek[:n])
		if perr != errProxyIncomplete {
			return true
		}
		// A peek never reports the end of the stream while bytes are queued, so a
		// client that half-closes after part of a header is seen in the TCP state.
		if info, e := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); e == nil && info.State == tcpCloseWait {
			perr = io.ErrUnexpectedEOF
			return true
		}
		// Wait for more bytes. The poller is edge-triggered, so this blocks until the
		// next ones arrive (or the deadline) rather than spinning.
		return false
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		return proxyHeader{}, proxyReadError(err)
	}
	buf := peek[:]
	if size > len(buf) {
		buf = make([]byte, size)
	}
	if _, err := io.ReadFull(c, buf[:size]); err != nil {
		return proxyHeader{}, proxyReadError(err)
	}
	h, _, err := parseProxyHeader(buf[:size])
	return h, err
}

// proxyReadError turns a read failure into a *ProxyError with its reason.
func proxyReadError(err error) error {
	var pe *ProxyError
	switch {
	case errors.As(err, &pe):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return proxyErrorf(proxyReasonTimeout, "proxy: header not received in time")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return proxyErrorf(proxyReasonClosed, "proxy: connection closed before the end of the header")
	}
	return proxyErrorf(proxyReasonClosed, "proxy: reading the header: %v", err)
}

// proxyTrust is a frontend's compiled accept_proxy.
type proxyTrust []netip.Prefix

func newProxyTrust(cidrs []string) proxyTrust {
	var t proxyTrust
	for _, s := range cidrs {
		if p, err := parseTrustedPrefix(s); err == nil {
			t = append(t, p)
		}
	}
	return t
}

// parseTrustedPrefix accepts a CIDR prefix with no host bits set, or a single address.
func parseTrustedPrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; the prefix is %s", s, p.Masked())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}

// trusts reports whether a connection from a must start with a PROXY header.
func (t proxyTrust) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// tcpAddrPort returns a *net.TCPAddr's address, unmapped; the zero AddrPort for any other
// kind of address.
func tcpAddrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// acceptProxy settles the addresses of a tcp-mode client connection: its own, or, from a
// trusted source, those of the PROXY header it must start with. It returns false when the
// connection is to be closed.
func (f *tcpFrontend) acceptProxy(c *tcpConn, g *frontendGen) bool {
	c.src, c.dst = tcpAddrPort(c.client.RemoteAddr()), tcpAddrPort(c.client.LocalAddr())
	if !g.proxyTrust.trusts(c.src.Addr()) {
		return true
	}
	h, err := readProxyHeader(c.client, time.Now().Add(g.cfg.Timeouts.ClientHeader))
	if err != nil {
		if f.ctx.Err() == nil { // not cut by shutdown
			g.proxyError(f.d, c.src, err)
		}
		return false
	}
	if !h.Local {
		c.src, c.dst = h.Src, h.Dst
	}
	return true
}

// proxyError counts and logs a connection refused for its PROXY header.
func (g *frontendGen) proxyError(d *Dataplane, peer netip.AddrPort, err error) {
	reason := proxyReasonMalformed
	var pe *ProxyError
	if errors.As(err, &pe) {
		reason = pe.Reason
	}
	g.metrics.proxyErrors.WithLabelValues(g.cfg.Name, reason).Inc()
	d.log.Debug("connection closed: bad PROXY protocol header", "frontend", g.cfg.Name, "peer", peer, "reason", reason, "err", err)
}

// sendProxy writes b's PROXY header, if it sends one, on a new server connection sc of
// client connection c. On failure it closes sc.
func (b *backend) sendProxy(sc net.Conn, c *tcpConn) error {
	if b.cfg.SendProxy == "" {
		return nil
	}
	var buf [proxyV2Prefix + 36]byte
	if _, err := sc.Write(appendProxyHeader(buf[:0], b.cfg.SendProxy, c.src, c.dst)); err != nil {
		sc.Close()
		return fmt.Errorf("sending the PROXY header: %w", err)
	}
	return nil
}

// deliverProxied reads the PROXY header of an http-mode connection from a trusted
// source, off the accept loop, and then hands the connection on (TLS handshake, h2c,
// the current server) with the header's client address as its RemoteAddr.
func (f *httpFrontend) deliverProxied(c *net.TCPConn, g *frontendGen) {
	defer f.wg.Done()
	// Stopping the frontend cuts the wait for the header short.
	read := make(chan struct{})
	go func() {
		select {
		case <-f.stop:
			c.SetReadDeadline(time.Unix(1, 0))
		case <-read:
		}
	}()
	peer := tcpAddrPort(c.RemoteAddr())
	h, err := readProxyHeader(c, time.Now().Add(g.cfg.Timeouts.ClientHeader))
	close(read)
	var conn net.Conn = c
	switch {
	case err != nil:
		select {
		case <-f.stop: // not the client's fault
		default:
			g.proxyError(f.d, peer, err)
		}
		conn = nil
	case !h.Local:
		conn = &proxiedConn{TCPConn: c, remote: net.TCPAddrFromAddrPort(h.Src), local: net.TCPAddrFromAddrPort(h.Dst)}
	}
	if conn != nil && g.tls == nil && !g.cfg.H2C {
		pc, _ := conn.(*proxiedConn)
		if hg := f.gen.Load(); hg.loop && f.toLoop(c, hg, pc) {
			return
		}
	}
	// deliverTLS runs the TLS handshake or the h2c sniffing the frontend asks for, or
	// else just delivers (tls.go).
	if conn == nil || !f.deliverTLS(conn, g) {
		c.Close()
		f.open.Add(-1)
		f.wake()
	}
}

// proxiedConn is a client connection whose addresses came from a PROXY header.
type proxiedConn struct {
	*net.TCPConn
	remote, local net.Addr
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }
func (c *proxiedConn) LocalAddr() net.Addr  { return c.local }

// validateProxy checks accept_proxy and send_proxy: the prefixes, the versions, and that
// no http frontend or route uses a backend that sends a header.
func validateProxy(errs *errList, c *Config) {
	httpUse := map[string]string{} // backend name → the http frontend that uses it
	for i, f := range c.Frontends {
		p := fmt.Sprintf("frontends[%d].accept_proxy", i)
		if len(f.AcceptProxy) > 0 && f.Mode != ModeHTTP && f.Mode != ModeTCP {
			errs.add(p, "needs mode http or tcp, not %s", f.Mode)
		}
		for j, s := range f.AcceptProxy {
			if _, err := parseTrustedPrefix(s); err != nil {
				errs.add(fmt.Sprintf("%s[%d]", p, j), "%v", err)
			}
		}
		if f.Mode != ModeHTTP {
			continue
		}
		if _, ok := httpUse[f.Backend]; !ok {
			httpUse[f.Backend] = f.Name
		}
		for _, r := range f.Routes {
			if _, ok := httpUse[r.Backend]; !ok {
				httpUse[r.Backend] = f.Name
			}
		}
	}
	for i, b := range c.Backends {
		p := fmt.Sprintf("backends[%d].send_proxy", i)
		switch b.SendProxy {
		case "":
			continue
		case ProxyV1, ProxyV2:
		default:
			errs.add(p, "must be v1 or v2, not %q", b.SendProxy)
			continue
		}
		if fe, ok := httpUse[b.Name]; ok {
			errs.add(p, "backend %q is used by http frontend %q; send_proxy applies to tcp frontends only (http server connections are pooled and shared by clients)", b.Name, fe)
		}
	}
}

// newProxyErrorsMetric returns lbd_proxy_protocol_errors_total, registered with reg.
func newProxyErrorsMetric(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_proxy_protocol_errors_total",
		Help: "Connections from accept_proxy sources closed for their PROXY protocol header, by frontend and reason (timeout, closed, missing, malformed).",
	}, []string{"frontend", "reason"})
	if reg != nil {
		reg.MustRegister(v)
	}
	return v
}
