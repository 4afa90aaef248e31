package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Raft's traffic is mutual TLS under the cluster CA: both ends present a certificate
// the CA signed, with a node name as DNS SAN, over TLS 1.3, so a host without such a
// certificate can neither join raft, read its entries nor inject any. The raft port
// also serves the join exchange (join.go), told apart by ALPN:
//
//	lbd-raft/1  raft RPCs; the client must present a CA-signed node certificate
//	lbd-join/1  a new node redeeming a join token; it has no certificate yet
//
// One listener accepts TCP; each connection's TLS handshake runs in a goroutine of its
// own (bounded by tlsHandshakeTimeout, and at most maxPendingHandshakes at once, so a
// slow or silent client holds up nobody), then raft connections go to Accept and join
// connections to the join handler. Anything else (plain TCP, another CA's certificate,
// no or unknown ALPN) fails the handshake and is closed.
const (
	alpnRaft = "lbd-raft/1"
	alpnJoin = "lbd-join/1"

	tlsHandshakeTimeout  = 5 * time.Second
	maxPendingHandshakes = 64
)

// ErrLayerClosed is what Accept returns once the stream layer is closed.
var ErrLayerClosed = errors.New("raft TLS listener closed")

// TLSOptions configure the TLS stream layer.
type TLSOptions struct {
	// Node is this node's key and certificate, signed by the cluster CA. Required.
	Node *NodeKey
	// Join, if not nil, serves the join exchange (a *JoinServer's Serve) and closes
	// the connection; ctx ends when the layer closes. Without it, join connections are
	// closed.
	Join func(ctx context.Context, c net.Conn)
	// PeerAllowed, if not nil, is asked about every peer's node name (the DNS SAN of
	// its verified certificate) on both ends of a raft connection; an error refuses
	// the connection. The agent (New with WithTLS) checks admission besides: a peer
	// whose certificate is not the one it was admitted with, or that was removed, is
	// refused whatever PeerAllowed says (admission.go).
	PeerAllowed func(name string) error
	// admitted, set by the agent, checks the peer's certificate against the admitted
	// nodes in the replicated state.
	admitted func(name string, c *x509.Certificate) error
	// HandshakeTimeout bounds a TLS handshake. Default: 5s.
	HandshakeTimeout time.Duration
}

// TLSStreamLayer is a raft.StreamLayer over mutual TLS 1.3 (see above). Close stops it.
type TLSStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	opts      TLSOptions
	cert      tls.Certificate
	pool      *x509.CertPool
	log       *slog.Logger

	conns   chan net.Conn // raft connections, handshake done
	pending chan struct{} // a slot per handshake in progress
	done    chan struct{} // closed by Close
	ctx     context.Context
	cancel  context.CancelFunc // ends ctx, and the handshakes under it, on Close
	wg      sync.WaitGroup
	once    sync.Once
	err     error

	// mu guards accepted: the raft connections handed out and not yet closed, which
	// Close closes (raft's transport leaves a connection's reader blocked until the
	// peer hangs up).
	mu       sync.Mutex
	accepted map[*acceptedConn]struct{}
}

var _ raft.StreamLayer = (*TLSStreamLayer)(nil)

// acceptedConn is a raft connection handed out by Accept; closing it forgets it.
type acceptedConn struct {
	net.Conn
	l *TLSStreamLayer
}

func (c *acceptedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.accepted, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// NewTLSStreamLayer listens on bind (IP:port). advertise, if not nil, is the address
// other nodes dial; it must be one of the certificate's IPs.
func NewTLSStreamLayer(bind string, advertise net.Addr, opts TLSOptions, log *slog.Logger) (*TLSStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: listening on %s: %w", bind, err)
	}
	l, err := newTLSStreamLayer(ln, advertise, opts, log)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return l, nil
}

// newTLSStreamLayer serves on a listener already open (tests: a joiner must know its
// port before it asks for its certificate).
func newTLSStreamLayer(ln net.Listener, advertise net.Addr, opts TLSOptions, log *slog.Logger) (*TLSStreamLayer, error) {
	if opts.Node == nil {
		return nil, errors.New("raft TLS: no node certificate")
	}
	cert, err := opts.Node.Certificate()
	if err != nil {
		return nil, fmt.Errorf("raft TLS: %w", err)
	}
	ca, err := parseCertPEM(opts.Node.CACertPEM)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: CA certificate: %w", err)
	}
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = tlsHandshakeTimeout
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	l := &TLSStreamLayer{
		ln: ln, advertise: advertise, opts: opts, cert: cert, pool: pool, log: log,
		conns:   make(chan net.Conn),
		pending: make(chan struct{}, maxPendingHandshakes),
		done:    make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// NewTLSTransport is raft's network transport over a TLS stream layer.
func NewTLSTransport(layer *TLSStreamLayer, log *slog.Logger) *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: raftTransportTimeout,
		Logger:  newHCLog(log, "raft-net"),
	})
}

// newTLSTransport is newTCPTransport's mutual-TLS twin: it listens on cfg.RaftBind and
// advertises as described at Config.RaftAdvertise.
func newTLSTransport(cfg *Config, opts TLSOptions, log *slog.Logger) (*raft.NetworkTransport, *TLSStreamLayer, error) {
	bind := netip.MustParseAddrPort(cfg.RaftBind) // checked by Validate
	var adv net.Addr
	if cfg.RaftAdvertise != "" {
		adv = net.TCPAddrFromAddrPort(netip.MustParseAddrPort(cfg.RaftAdvertise))
	} else if bind.Addr().IsUnspecified() {
		ip, err := advertiseIP(cfg)
		if err != nil {
			return nil, nil, err
		}
		adv = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, bind.Port()))
	}
	layer, err := NewTLSStreamLayer(cfg.RaftBind, adv, opts, log)
	if err != nil {
		return nil, nil, err
	}
	return NewTLSTransport(layer, log), layer, nil
}

// WithTLS makes raft's transport mutual TLS under the cluster CA (see TLSStreamLayer)
// instead of plain TCP. opts.Node must hold this node's certificate. Joins on the raft
// port go to opts.Join if set, else to the join server ServeJoins installs.
func WithTLS(opts TLSOptions) Option { return func(o *options) { o.tls = &opts } }

// tlsTransport makes the raft transport for WithTLS (at New, and again after
// RecoverForce).
func (c *Cluster) tlsTransport(opts TLSOptions) func() (raft.Transport, error) {
	opts.admitted = c.peerAdmitted
	if opts.Join == nil {
		opts.Join = func(ctx context.Context, conn net.Conn) {
			if js := c.joins.Load(); js != nil {
				js.Serve(ctx, conn)
				return
			}
			_ = conn.Close()
		}
	}
	return func() (raft.Transport, error) {
		t, _, err := newTLSTransport(&c.cfg, opts, c.log)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
}

// Addr is the address other nodes dial.
func (l *TLSStreamLayer) Addr() net.Addr { return l.advertise }

// Accept returns the next raft connection whose handshake succeeded.
func (l *TLSStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		ac := &acceptedConn{Conn: c, l: l}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.accepted == nil {
			l.accepted = map[*acceptedConn]struct{}{}
		}
		select {
		case <-l.done:
			_ = c.Close()
			return nil, ErrLayerClosed
		default:
		}
		l.accepted[ac] = struct{}{}
		return ac, nil
	case <-l.done:
		return nil, ErrLayerClosed
	}
}

// Close stops listening, ends the handshakes in progress, closes the connections
// Accept handed out, and waits for its goroutines. Safe to call more than once.
func (l *TLSStreamLayer) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done)
		for c := range l.accepted {
			_ = c.Conn.Close()
		}
		l.accepted = nil
		l.mu.Unlock()
		l.cancel()
		l.err = l.ln.Close()
		l.wg.Wait()
	})
	return l.err
}

func (l *TLSStreamLayer) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("raft listener: accept failed", "err", err)
			continue
		}
		select {
		case l.pending <- struct{}{}:
		default:
			l.log.Warn("raft listener: too many TLS handshakes in progress; connection closed", "remote", c.RemoteAddr().String())
			_ = c.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(c)
	}
}

// handshake runs the server side of one connection's handshake and hands it on.
func (l *TLSStreamLayer) handshake(raw net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.pending }()
	tc := tls.Server(raw, l.serverConfig())
	ctx, cancel := context.WithTimeout(l.ctx, l.opts.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.log.Debug("raft listener: TLS handshake refused", "remote", raw.RemoteAddr().String(), "err", err)
		_ = tc.Close()
		return
	}
	switch tc.ConnectionState().NegotiatedProtocol {
	case alpnRaft:
		select {
		case l.conns <- tc:
		case <-l.done:
			_ = tc.Close()
		}
	case alpnJoin:
		if l.opts.Join == nil {
			_ = tc.Close()
			return
		}
		l.opts.Join(l.ctx, tc)
	default:
		_ = tc.Close()
	}
}

func (l *TLSStreamLayer) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{l.cert},
		ClientCAs:    l.pool,
		// A joiner has no certificate yet; VerifyConnection requires one for raft.
		ClientAuth: tls.VerifyClientCertIfGiven,
		NextProtos: []string{alpnRaft, alpnJoin},
		VerifyConnection: func(cs tls.ConnectionState) error {
			switch cs.NegotiatedProtocol {
			case alpnRaft:
				if len(cs.VerifiedChains) == 0 {
					return errors.New("raft needs a client certificate signed by the cluster CA")
				}
				return l.checkPeer(cs.PeerCertificates[0])
			case alpnJoin:
				return nil
			}
			return fmt.Errorf("no supported application protocol (want %s or %s)", alpnRaft, alpnJoin)
		},
	}
}

// checkPeer checks a verified peer certificate's node name.
func (l *TLSStreamLayer) checkPeer(c *x509.Certificate) error {
	name, err := peerName(c)
	if err != nil {
		return err
	}
	if l.opts.admitted != nil {
		if err := l.opts.admitted(name, c); err != nil {
			return fmt.Errorf("peer %s refused: %w", name, err)
		}
	}
	if l.opts.PeerAllowed != nil {
		if err := l.opts.PeerAllowed(name); err != nil {
			return fmt.Errorf("peer %s refused: %w", name, err)
		}
	}
	return nil
}

// peerName is the node name in a node certificate: its one DNS SAN, which must be a
// valid node name and the subject's common name.
func peerName(c *x509.Certificate) (string, error) {
	if len(c.DNSNames) != 1 || !nameRE.MatchString(c.DNSNames[0]) || c.Subject.CommonName != c.DNSNames[0] {
		return "", fmt.Errorf("peer certificate (CN %q, DNS %v) does not name one node", c.Subject.CommonName, c.DNSNames)
	}
	return c.DNSNames[0], nil
}

// Dial opens a raft connection to a peer: TLS 1.3 with this node's certificate,
// verifying that the peer's is signed by the cluster CA, names a node, and is for the
// IP (or name) dialled.
func (l *TLSStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, fmt.Errorf("raft TLS: address %q: %w", address, err)
	}
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: timeout},
		Config: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{l.cert},
			RootCAs:      l.pool,
			ServerName:   host,
			NextProtos:   []string{alpnRaft},
			VerifyConnection: func(cs tls.ConnectionState) error {
				if cs.NegotiatedProtocol != alpnRaft {
					return fmt.Errorf("peer did not agree to %s", alpnRaft)
				}
				return l.checkPeer(cs.PeerCertificates[0])
			},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft TLS: dialling %s: %w", address, err)
	}
	return c, nil
}
