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
//
// The headers are parsed and built by dataplane/internal/proxyproto; this file reads
// them off connections, decides who must send one, sends them, and counts the refusals.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"lbd/dataplane/internal/proxyproto"
)

// Values of Backend.SendProxy.
const (
	ProxyV1 = "v1"
	ProxyV2 = "v2"
)

// ProxyError is why a PROXY header was refused; its Reason is one of timeout, closed,
// missing, malformed.
type ProxyError = proxyproto.Error

// tcpCloseWait is Linux's TCP_CLOSE_WAIT state (include/net/tcp_states.h): the peer has
// sent its FIN.
const tcpCloseWait = 8

// readProxyHeader reads the PROXY header c starts with, by the deadline, and not one byte
// of what follows it. It finds the header's end by peeking (recv with MSG_PEEK) and then
// reads exactly that much, so c stays a bare *net.TCPConn with the payload in the socket.
func readProxyHeader(c *net.TCPConn, deadline time.Time) (proxyproto.Header, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return proxyproto.Header{}, proxyReadError(err)
	}
	defer c.SetReadDeadline(time.Time{})
	rc, err := c.SyscallConn()
	if err != nil {
		return proxyproto.Header{}, proxyReadError(err)
	}
	// Enough to hold a whole v1 line or a v2 prefix; a v2 header is read in full below.
	var peek [proxyproto.MaxV1 + 1]byte
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
		size, perr = proxyproto.Size(peek[:n])
		if perr != proxyproto.ErrIncomplete {
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
		return proxyproto.Header{}, proxyReadError(err)
	}
	buf := peek[:]
	if size > len(buf) {
		buf = make([]byte, size)
	}
	if _, err := io.ReadFull(c, buf[:size]); err != nil {
		return proxyproto.Header{}, proxyReadError(err)
	}
	h, _, err := proxyproto.Parse(buf[:size])
	return h, err
}

// proxyReadError turns a read failure into a *ProxyError with its reason.
func proxyReadError(err error) error {
	var pe *ProxyError
	switch {
	case errors.As(err, &pe):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &ProxyError{Reason: proxyproto.ReasonTimeout, Msg: "proxy: header not received in time"}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &ProxyError{Reason: proxyproto.ReasonClosed, Msg: "proxy: connection closed before the end of the header"}
	}
	return &ProxyError{Reason: proxyproto.ReasonClosed, Msg: fmt.Sprintf("proxy: reading the header: %v", err)}
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
	reason := proxyproto.ReasonMalformed
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
	v := proxyproto.V2
	if b.cfg.SendProxy == ProxyV1 {
		v = proxyproto.V1
	}
	var buf [proxyproto.V2Prefix + 36]byte
	if _, err := sc.Write(proxyproto.Append(buf[:0], v, c.src, c.dst)); err != nil {
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
	if conn != nil {
		pc, _ := conn.(*proxiedConn)
		if f.toLoop(c, f.gen.Load(), pc) { // the current generation's engine, TLS and h2c
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
