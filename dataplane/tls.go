package dataplane

// TLS. An http frontend with tls: terminates TLS: the accept loop hands each connection
// to a goroutine that runs the handshake (bounded by client_header), picks the
// certificate by SNI (tls_certs.go), and then gives the connection to the fasthttp
// server (HTTP/1.1, the path of a plain frontend) or, when ALPN chose "h2", to the
// frontend's net/http server for HTTP/2 (http2.go), whose handler goes through the same
// handle → proxy → roundTrip code. Certificates are read again on every reload and, in
// between, whenever their files change (a poll of size and modification time every
// certPollInterval): handshakes read the current set through an atomic pointer, so
// nothing is dropped.
//
// Backends with tls: get TLS connections, in http mode (pooled, see http_transport.go)
// and in tcp mode (relayTLS). tcp frontends do not terminate TLS; with sni routes they
// read the ClientHello, route by its server name, and pass the bytes through (sni.go).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"lbd/internal/clock"
)

// FrontendTLS terminates TLS on an http frontend.
type FrontendTLS struct {
	// Certificates are PEM certificate chains with their keys. The one for a handshake is
	// chosen by the server name the client asks for (SNI), matched against each
	// certificate's DNS names (wildcards included) and IP addresses; the first is served
	// when none matches. At least one.
	Certificates []TLSCertificate `yaml:"certificates"`
	// MinVersion is the lowest TLS version accepted: "1.2" or "1.3". Default: "1.2".
	MinVersion string `yaml:"min_version"`
	// HTTP2 offers HTTP/2 by ALPN beside HTTP/1.1. Default: true.
	HTTP2 *bool `yaml:"http2"`
	// HSTS adds a Strict-Transport-Security header to every response. Default: none.
	HSTS *HSTS `yaml:"hsts"`
}

// TLSCertificate is one certificate of a TLS frontend.
type TLSCertificate struct {
	// CertFile is the PEM certificate chain, leaf first. Required.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of the leaf. Required.
	KeyFile string `yaml:"key_file"`
	// OCSPFile holds a DER OCSP response for the leaf, stapled to handshakes; reloaded
	// with the certificate. Default: "" (no stapling).
	OCSPFile string `yaml:"ocsp_file"`
}

// HSTS is the Strict-Transport-Security header of a TLS frontend.
type HSTS struct {
	// MaxAge is how long browsers remember to use https only. Default: 8760h (a year).
	MaxAge time.Duration `yaml:"max_age"`
	// IncludeSubdomains applies the policy to every subdomain. Default: false.
	IncludeSubdomains bool `yaml:"include_subdomains"`
	// Preload asks to be on browsers' preload lists (needs include_subdomains and a
	// max_age of at least a year). Default: false.
	Preload bool `yaml:"preload"`
}

// BackendTLS makes lbd talk TLS to a backend's servers.
type BackendTLS struct {
	// Enabled turns TLS to the servers on. Default: false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the servers' certificates.
	// Default: "" (the system's roots).
	CAFile string `yaml:"ca_file"`
	// ServerName is the name sent by SNI and checked against the servers'
	// certificates. Default: the host of each server's address.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate. Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// CertFile and KeyFile are a client certificate for mutual TLS. Default: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DefaultHSTSMaxAge is the max_age of an hsts: mapping that does not set it.
const DefaultHSTSMaxAge = 365 * 24 * time.Hour

func (t *FrontendTLS) setDefaults() {
	if t == nil {
		return
	}
	if t.MinVersion == "" {
		t.MinVersion = "1.2"
	}
	if t.HTTP2 == nil {
		v := true
		t.HTTP2 = &v
	}
	if t.HSTS != nil && t.HSTS.MaxAge == 0 {
		t.HSTS.MaxAge = DefaultHSTSMaxAge
	}
}

func (t *FrontendTLS) clone() *FrontendTLS {
	if t == nil {
		return nil
	}
	c := *t
	c.Certificates = append([]TLSCertificate(nil), t.Certificates...)
	if t.HTTP2 != nil {
		v := *t.HTTP2
		c.HTTP2 = &v
	}
	if t.HSTS != nil {
		h := *t.HSTS
		c.HSTS = &h
	}
	return &c
}

func (t *BackendTLS) clone() *BackendTLS {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// validateFrontendTLS checks what tls.go adds to a frontend: tls, h2c,
// redirect_to_https, and which routes each mode allows.
func validateFrontendTLS(errs *errList, p string, f Frontend, backends []Backend) {
	if len(f.Routes) > 0 && f.Mode == ModeUDP {
		errs.add(p+".routes", "routes need mode http (or tcp with sni), not %s", f.Mode)
	}
	tlsBackend := func(name string) bool {
		for _, b := range backends {
			if b.Name == name {
				return b.TLS != nil && b.TLS.Enabled
			}
		}
		return false
	}
	sni := false
	for j, r := range f.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", p, j)
		if r.SNI != "" {
			sni = true
			if f.Mode != ModeTCP {
				errs.add(rp+".sni", "sni routes need mode tcp, not %s", f.Mode)
			}
			if r.Host != "" || r.PathPrefix != "" || r.Header != nil {
				errs.add(rp+".sni", "cannot be combined with host, path_prefix or header")
			}
			if err := checkServerName(r.SNI); err != nil {
				errs.add(rp+".sni", "%v", err)
			}
			if tlsBackend(r.Backend) {
				errs.add(rp+".backend", "backend %q has tls enabled, but sni routes pass the client's TLS through", r.Backend)
			}
		} else if f.Mode == ModeTCP {
			errs.add(rp, "host, path_prefix and header routes need mode http; in tcp mode routes match sni")
		}
	}
	if sni && f.Backend != "" && tlsBackend(f.Backend) {
		errs.add(p+".backend", "backend %q has tls enabled, but sni routes pass the client's TLS through", f.Backend)
	}
	if f.H2C && (f.Mode != ModeHTTP || f.TLS != nil) {
		errs.add(p+".h2c", "needs mode http without tls (with tls, HTTP/2 is negotiated by ALPN)")
	}
	if f.RedirectToHTTPS && (f.Mode != ModeHTTP || f.TLS != nil) {
		errs.add(p+".redirect_to_https", "needs mode http without tls")
	}
	t := f.TLS
	if t == nil {
		return
	}
	tp := p + ".tls"
	if f.Mode != ModeHTTP {
		errs.add(tp, "tls termination needs mode http, not %s (tcp frontends pass TLS through with sni routes)", f.Mode)
	}
	if len(t.Certificates) == 0 {
		errs.add(tp+".certificates", "needs at least one certificate")
	}
	for i, c := range t.Certificates {
		cp := fmt.Sprintf("%s.certificates[%d]", tp, i)
		if c.CertFile == "" {
			errs.add(cp+".cert_file", "is required")
		}
		if c.KeyFile == "" {
			errs.add(cp+".key_file", "is required")
		}
	}
	if _, err := tlsVersion(t.MinVersion); err != nil {
		errs.add(tp+".min_version", "%v", err)
	}
	if h := t.HSTS; h != nil {
		if h.MaxAge < 0 {
			errs.add(tp+".hsts.max_age", "(%v) must not be negative", h.MaxAge)
		}
		if h.Preload && (!h.IncludeSubdomains || h.MaxAge < DefaultHSTSMaxAge) {
			errs.add(tp+".hsts.preload", "needs include_subdomains and a max_age of at least 8760h (max_age is %v)", h.MaxAge)
		}
	}
}

func validateBackendTLS(errs *errList, p string, t *BackendTLS) {
	if t == nil {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs.add(p+".cert_file", "cert_file and key_file go together (cert_file %q, key_file %q)", t.CertFile, t.KeyFile)
	}
	if t.ServerName != "" {
		if err := checkServerName(t.ServerName); err != nil {
			errs.add(p+".server_name", "%v", err)
		}
	}
}

// checkServerName accepts a DNS name, optionally starting with "*.".
func checkServerName(s string) error {
	name := strings.TrimPrefix(s, "*.")
	if name == "" || len(s) > 253 || strings.ContainsAny(name, "* /:") || strings.HasPrefix(name, ".") ||
		strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return fmt.Errorf("%q is not a server name (example.com or *.example.com)", s)
	}
	return nil
}

func tlsVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("must be \"1.2\" or \"1.3\", not %q", s)
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "1.0"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return "unknown"
}

// modernCiphers are the TLS 1.2 cipher suites a frontend offers: ECDHE key exchange and
// AEAD ciphers only (Mozilla's "intermediate" list). TLS 1.3 suites are not
// configurable and are all AEAD.
var modernCiphers = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// frontendTLS is the run-time TLS of a frontend generation.
type frontendTLS struct {
	store  *certStore
	config *tls.Config
	hsts   string // the Strict-Transport-Security value; "" for none
	// handshake metrics of the frontend
	seconds prometheus.Observer
	results map[string]*counterSlot // "result version" → counter
	mu      sync.Mutex
}

// buildFrontendTLS loads the certificates of frontend i; errors are *FieldErrors.
func (d *Dataplane) buildFrontendTLS(g *frontendGen, i int) error {
	t := g.cfg.TLS
	if t == nil {
		return nil
	}
	path := fmt.Sprintf("frontends[%d].tls", i)
	clk := d.clock
	set, err := loadCertSet(path, t, clk.Now())
	if err != nil {
		return err
	}
	store := &certStore{path: path, name: g.cfg.Name, cfg: t, clock: clk}
	store.set.Store(set)
	minV, _ := tlsVersion(t.MinVersion)
	ft := &frontendTLS{
		store:   store,
		seconds: d.metrics.tls.handshakeSeconds.WithLabelValues(g.cfg.Name),
		results: map[string]*counterSlot{},
	}
	ft.config = &tls.Config{
		MinVersion:     minV,
		CipherSuites:   modernCiphers,
		GetCertificate: store.getCertificate,
		NextProtos:     []string{"http/1.1"},
	}
	if *t.HTTP2 {
		ft.config.NextProtos = []string{"h2", "http/1.1"}
	}
	if h := t.HSTS; h != nil {
		v := "max-age=" + strconv.FormatInt(int64(h.MaxAge/time.Second), 10)
		if h.IncludeSubdomains {
			v += "; includeSubDomains"
		}
		if h.Preload {
			v += "; preload"
		}
		ft.hsts = v
	}
	g.tls = ft
	return nil
}

// countHandshake records one handshake of the frontend.
func (ft *frontendTLS) countHandshake(m *tlsMetrics, frontend, result string, version uint16, took time.Duration) {
	ft.seconds.Observe(took.Seconds())
	v := tlsVersionName(version)
	key := result + " " + v
	ft.mu.Lock()
	slot := ft.results[key]
	if slot == nil {
		slot = new(counterSlot)
		ft.results[key] = slot
	}
	ft.mu.Unlock()
	slot.inc3(m.handshakes, frontend, result, v)
}

// backendTLS is the run-time TLS of a backend: a client config, and a key that changes
// with anything that makes the pools' connections different.
type backendTLS struct {
	config *tls.Config
	key    string
}

// buildBackendTLS reads the files of backend i's tls; errors are *FieldErrors.
func buildBackendTLS(b *backend, i int) error {
	t := b.cfg.TLS
	if t == nil || !t.Enabled {
		return nil
	}
	p := fmt.Sprintf("backends[%d].tls", i)
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %v %q %q\n", t.CAFile, t.ServerName, t.InsecureSkipVerify, t.CertFile, t.KeyFile)
	cfg := &tls.Config{
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
		// No ALPN: an http backend's servers then speak HTTP/1.1, what the pools speak.
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return &FieldError{p + ".ca_file", err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return &FieldError{p + ".ca_file", t.CAFile + ": no PEM certificate in it"}
		}
		cfg.RootCAs = pool
		h.Write(pem)
	}
	if t.CertFile != "" {
		keyPEM, err := readKeyFile(t.KeyFile) // tls_certs.go
		if err != nil {
			return &FieldError{p + ".key_file", err.Error()}
		}
		certPEM, err := os.ReadFile(t.CertFile)
		if err != nil {
			return &FieldError{p + ".cert_file", err.Error()}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return &FieldError{p + ".cert_file", err.Error()}
		}
		cfg.Certificates = []tls.Certificate{cert}
		for _, c := range cert.Certificate {
			h.Write(c)
		}
	}
	b.tls = &backendTLS{config: cfg, key: hex.EncodeToString(h.Sum(nil))}
	return nil
}

// clientConfig returns the config for a connection to addr: with the host of addr as the
// server name when none is configured.
func (t *backendTLS) clientConfig(addr string) *tls.Config {
	if t.config.ServerName != "" {
		return t.config
	}
	c := t.config.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		c.ServerName = host
	}
	return c
}

// dialTLS runs the client handshake on c within timeout; on failure it closes c.
func dialTLS(c net.Conn, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// tlsMetrics are the TLS metrics of the dataplane.
type tlsMetrics struct {
	handshakeSeconds *prometheus.HistogramVec // frontend
	handshakes       *prometheus.CounterVec   // frontend, result, version
	passthrough      *prometheus.CounterVec   // frontend, result
}

func newTLSMetrics(reg prometheus.Registerer) *tlsMetrics {
	m := &tlsMetrics{
		handshakeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lbd_tls_handshake_seconds",
			Help:    "Time to complete (or fail) a TLS handshake with a client, by frontend.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"frontend"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_tls_handshakes_total",
			Help: "TLS handshakes with clients, by frontend, result (ok, failed, timeout) and TLS version.",
		}, []string{"frontend", "result", "version"}),
		passthrough: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_tls_passthrough_total",
			Help: "TLS connections of tcp frontends with sni routes, by frontend and result (routed: an sni route matched, default: none did, malformed, timeout).",
		}, []string{"frontend", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.handshakeSeconds, m.handshakes, m.passthrough)
	}
	return m
}

// tlsState is what an httpFrontend keeps for TLS, HTTP/2 and h2c (see http2.go).
type tlsState struct {
	// ctx is cancelled by stop, aborting handshakes in progress.
	ctx    context.Context
	cancel context.CancelFunc
	// pollDone stops the certificate poller.
	pollDone chan struct{}

	// mu guards h2 and stopped.
	mu      sync.Mutex
	h2      *h2Server
	stopped bool
	h2cur   atomic.Pointer[h2Server]
}

// start prepares s for f and starts the certificate poller.
func (s *tlsState) start(f *httpFrontend) {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pollDone = make(chan struct{})
	p := &certPoller{clock: f.d.clock, d: f.d, current: func() *certStore {
		if t := f.gen.Load().g.tls; t != nil {
			return t.store
		}
		return nil
	}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		p.run(s.pollDone)
	}()
}

// stop aborts handshakes, stops the poller, and drains the HTTP/2 server until ctx is
// done, in the background (counted in f.wg).
func (s *tlsState) stop(f *httpFrontend, ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	close(s.pollDone)
	if h := s.h2; h != nil {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			h.drain(ctx, f)
		}()
	}
}

// certPoller reloads the certificates of the current generation when their files change.
type certPoller struct {
	clock   clock.Clock
	d       *Dataplane
	current func() *certStore
}

// run polls every certPollInterval until done is closed. The interval counts from the
// end of the last poll (a timer re-armed after each), so a test that steps the clock
// knows a poll is over when the timer is armed again.
func (p *certPoller) run(done <-chan struct{}) {
	t := p.clock.NewTimer(certPollInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C():
			if s := p.current(); s != nil {
				s.poll(p.d)
			}
			t.Reset(certPollInterval)
		case <-done:
			return
		}
	}
}

// dispatch hands an accepted connection on: to an event loop (toLoop), else straight
// to the fasthttp server for a plain frontend, else to a goroutine that runs deliverTLS.
// It returns false when the frontend stops.
func (f *httpFrontend) dispatch(c *net.TCPConn) bool {
	hg := f.gen.Load()
	if f.toLoop(c, hg, nil) {
		return true
	}
	g := hg.g
	if g.tls == nil && !g.cfg.H2C {
		return f.deliver(c)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if !f.deliverTLS(c, g) {
			c.Close()
			f.open.Add(-1)
			f.wake()
		}
	}()
	return true
}

// deliverTLS runs the TLS handshake on c (or, on an h2c frontend, looks for the HTTP/2
// preface) and hands the connection to the fasthttp server or, for HTTP/2, to the
// net/http one. It returns false when the connection is to be closed: the handshake
// failed or the frontend stops. It blocks for the handshake: call it off the accept
// loop.
func (f *httpFrontend) deliverTLS(c net.Conn, g *frontendGen) bool {
	var conn net.Conn
	var h2 bool
	switch {
	case g.tls != nil:
		var tc *tls.Conn
		if tc, h2 = f.handshake(c, g); tc != nil {
			conn = tc
		}
	case g.cfg.H2C:
		conn, h2 = f.sniffH2C(c, g)
	default:
		conn = c
	}
	switch {
	case conn == nil:
		return false
	case h2:
		return f.deliverH2(conn)
	}
	return f.deliver(conn)
}

// handshake runs the server side of the TLS handshake on c, bounded by client_header; it
// returns nil on failure, and whether ALPN chose HTTP/2.
func (f *httpFrontend) handshake(c net.Conn, g *frontendGen) (*tls.Conn, bool) {
	ft := g.tls
	ctx, cancel := context.WithTimeout(f.tls.ctx, g.cfg.Timeouts.ClientHeader)
	defer cancel()
	tc := tls.Server(c, ft.config)
	start := time.Now()
	err := tc.HandshakeContext(ctx)
	took := time.Since(start)
	st := tc.ConnectionState()
	if err != nil {
		result := "failed"
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			result = "timeout"
		}
		ft.countHandshake(g.metrics.tls, g.cfg.Name, result, st.Version, took)
		if f.tls.ctx.Err() == nil {
			f.d.log.Debug("tls handshake failed", "frontend", g.cfg.Name, "client", c.RemoteAddr(), "err", err)
		}
		return nil, false
	}
	ft.countHandshake(g.metrics.tls, g.cfg.Name, "ok", st.Version, took)
	return tc, st.NegotiatedProtocol == "h2"
}

// h2cPreface is how an HTTP/2 client with prior knowledge starts (RFC 9113, 3.4).
const h2cPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// sniffH2C reads the first bytes of c, up to the length of the HTTP/2 preface or until
// they differ from it, and returns c with those bytes put back in front, and whether the
// client speaks HTTP/2. When they differ, it reads on to the end of the first line: a
// line that is not an HTTP/1.x request line either (no HTTP version at its end) is an
// invalid HTTP/2 connection preface, which ends the connection without an answer (RFC
// 9113, 3.4); it returns nil then.
func (f *httpFrontend) sniffH2C(c net.Conn, g *frontendGen) (net.Conn, bool) {
	c.SetReadDeadline(time.Now().Add(g.cfg.Timeouts.ClientHeader))
	buf := make([]byte, 0, len(h2cPreface))
	var err error
	for len(buf) < len(h2cPreface) {
		var n int
		n, err = c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if !strings.HasPrefix(h2cPreface, string(buf)) {
			break
		}
		if err != nil {
			if len(buf) == 0 || f.tls.ctx.Err() != nil {
				return nil, false
			}
			break // let the server answer what came
		}
	}
	h2 := string(buf) == h2cPreface
	if !h2 && err == nil {
		for bytes.IndexByte(buf, '\n') < 0 && len(buf) < g.cfg.MaxHeaderBytes && err == nil {
			buf = slices.Grow(buf, 512)
			var n int
			n, err = c.Read(buf[len(buf):min(cap(buf), g.cfg.MaxHeaderBytes)])
			buf = buf[:len(buf)+n]
		}
		if i := bytes.IndexByte(buf, '\n'); i >= 0 && !isRequestLine(buf[:i]) {
			return nil, false
		}
	}
	c.SetReadDeadline(time.Time{})
	return &replayConn{Conn: c, prefix: buf}, h2
}

// isRequestLine reports whether line (without its LF) ends with an HTTP version, as an
// HTTP/1.x request line does.
func isRequestLine(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte("\r"))
	return bytes.HasPrefix(line[bytes.LastIndexByte(line, ' ')+1:], []byte("HTTP/")) && bytes.Count(line, []byte(" ")) >= 2
}

// redirectHTTPS answers a request on a redirect_to_https frontend: 301 to the same host
// (without its port) and URI over https.
func (f *httpFrontend) redirectHTTPS(ctx *fasthttp.RequestCtx, hg *httpGen) {
	host := string(ctx.Request.Header.Host())
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	if host == "" {
		f.answer(ctx, hg, nil, fasthttp.StatusBadRequest, "no Host header to redirect to")
		return
	}
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(fasthttp.StatusMovedPermanently)
	ctx.Response.Header.Set("Location", "https://"+host+string(ctx.Request.Header.RequestURI()))
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	c := classIndex(fasthttp.StatusMovedPermanently)
	hg.noBackend[c].inc4(hg.g.metrics.requests, hg.g.cfg.Name, "", "", classNames[c])
}

// addHSTS adds the Strict-Transport-Security header to a response on a TLS connection.
func addHSTS(ctx *fasthttp.RequestCtx, g *frontendGen) {
	if g.tls != nil && g.tls.hsts != "" && ctx.IsTLS() {
		ctx.Response.Header.Set("Strict-Transport-Security", g.tls.hsts)
	}
}

var strHTTPS = []byte("https")

// forwardedProto is the X-Forwarded-Proto of a request.
func forwardedProto(ctx *fasthttp.RequestCtx) []byte {
	if ctx.IsTLS() {
		return strHTTPS
	}
	return strHTTP
}

// relayTLS moves bytes both ways between a client connection and a TLS connection to a
// server (tcp mode, backend with tls), in user space, closing both when nothing has
// moved either way for idle.
func relayTLS(c *tcpConn, server *tls.Conn, idle time.Duration, in, out prometheus.Counter) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	tick := max(idle/tcpIdleTicks, time.Millisecond)
	closeAll := func() {
		c.close()
		server.Close()
	}
	copyDir := func(dst, src net.Conn, count prometheus.Counter, closeWrite func() error) {
		buf := make([]byte, 32<<10)
		for {
			if idle > 0 {
				src.SetReadDeadline(time.Now().Add(tick))
			}
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if idle > 0 {
					dst.SetWriteDeadline(time.Now().Add(2 * idle))
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					closeAll()
					return
				}
				count.Add(float64(n))
			}
			switch {
			case err == nil:
			case errors.Is(err, io.EOF):
				closeWrite()
				return
			case idle > 0 && errors.Is(err, os.ErrDeadlineExceeded):
				if time.Since(time.Unix(0, last.Load())) >= idle {
					closeAll()
					return
				}
			default:
				closeAll()
				return
			}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyDir(c.client, server, out, c.client.CloseWrite)
	}()
	copyDir(server, c.client, in, server.CloseWrite)
	<-done
	closeAll()
}

// startServerSide readies a new server connection of a tcp session: it sends the
// ClientHello read for sni routing and, for a backend with tls, runs the handshake and
// relays the session in user space. It returns true when the session is to be relayed
// by relay as usual (event loop or tcpPipe), false when it is over.
func (f *tcpFrontend) startServerSide(c *tcpConn, g *frontendGen, b *backend, s *Server, sc *net.TCPConn, hello []byte) bool {
	if len(hello) > 0 {
		if _, err := sc.Write(hello); err != nil {
			g.metrics.errors.WithLabelValues(b.cfg.Name, s.Name, "reset").Inc()
			return false
		}
	}
	if b.tls == nil {
		return true
	}
	tc, err := dialTLS(sc, b.tls.clientConfig(s.Addr), b.cfg.Timeouts.Connect)
	if err != nil {
		g.metrics.errors.WithLabelValues(b.cfg.Name, s.Name, "connect").Inc()
		f.d.log.Debug("tls to server failed", "frontend", g.cfg.Name, "backend", b.cfg.Name, "server", s.Name, "err", err)
		return false
	}
	relayTLS(c, tc, g.cfg.Timeouts.ClientIdle, g.m.bytesIn, g.m.bytesOut)
	return false
}
