package dataplane

// HTTP mode: the fasthttp engine. Plain HTTP/1.1 is served first by the loop engine
// (httploop_linux.go), which hands what it does not serve to this one at a request
// boundary; TLS and h2c frontends, and frontends with engine: fasthttp, are served here
// from the start (HTTP/2 by net/http, http2.go). What both engines share (routing, the
// header rules, the rate limit, lbd's answers, failure classification, counting, the
// replayed connection of a hand-over) is in http_common.go.
//
// Why fasthttp. lbd's HTTP path is measured against HAProxy on the same machine.
// net/http's HTTP/1.1 server and Transport reached 0.38× HAProxy's request rate;
// fasthttp's Server with a HostClient pool reached 0.61–0.72×. fasthttp gets there by
// reusing everything per connection (the RequestCtx with its header and body buffers,
// the bufio readers and writers) and by keeping headers as byte slices rather than maps
// of strings, so that a proxied request allocates almost nothing.
//
// A request. The fasthttp server reads the request head into the connection's
// RequestCtx; takeBody (http_reqbody.go) reads a body of up to 64 KiB whole, which lets a
// retry send it again, and streams a larger one to the server as it arrives. The handler reads the frontend generation once, picks the backend by route and
// a server by the backend's balancer, rewrites ctx.Request in place (hop-by-hop headers
// out, X-Forwarded-* in) and sends it on a pooled server connection, reading the answer
// straight into ctx.Response. Nothing is copied between a client-side and a server-side
// request object.
//
// Pooling. Each server has a fasthttp.HostClient holding up to pool_size connections,
// handed out last-in first-out so that the pool shrinks to what the load needs; a
// connection idle for poolIdleTimeout is closed. lbd uses the HostClient only as a
// pool: roundTrip (http_transport.go) writes the request and reads the response itself.
// That lets it read small bodies (up to maxBufferedBody, by Content-Length) whole, with
// no allocation, and stream larger or unframed ones to the client with a deadline that
// bounds stalls rather than the whole download, so that lbd never holds a large body in
// memory. A reload keeps a server's pool, idle connections included, while the server
// keeps its name, address, pool_size and connect timeout.
//
// Timeouts. client_header bounds reading a request head (fasthttp's ReadTimeout, from
// the connection's accept or the request's first byte); a request body then has
// client_idle to arrive. client_idle also bounds an idle keep-alive connection, and each
// stall writing a streamed response to the client, and each stall reading a streamed
// request body. On the server side, connect bounds
// dialing (and waiting for a free pooled connection), and response bounds the wait from
// sending the request to the response head, then each stall in the body (pooledConn
// pushes the read deadline on every read); a streamed request body pushes the write
// deadline by response as it goes.
//
// Retries. A request that could not be sent (connect failure, pool exhausted) goes to
// another server, whatever its method; a streamed body (over 64 KiB) is not sent again
// once a byte of it has been read to send. One that timed out or got no answer at all (the
// server closed or reset the connection before the first response byte) goes to
// another server only if its method is idempotent. Once a server has started to answer,
// its answer, or the error, is final. An idempotent request whose pooled connection
// fails before any answer (the server had closed it while idle) goes again to the same
// server on another connection, without counting as a failure.
//
// Not supported: protocol upgrades (WebSocket; Upgrade is removed as hop-by-hop).

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// httpConcurrency is fasthttp's own connection limit, set out of the way: lbd applies
// maxconn itself, in the accept loop, so that connections over it wait in the kernel's
// accept queue instead of getting a 503.
const httpConcurrency = 1 << 24

// httpFrontend serves an http-mode frontend. It owns the listener and an accept loop that
// hands connections to a fasthttp.Server; a reload that changes the server's own
// settings (max_header_bytes and the client timeouts) starts a new fasthttp.Server for
// new connections and drains the old one.
type httpFrontend struct {
	d *Dataplane
	// acceptor holds the listener, the open connections' count and the stop channel
	// (accept.go).
	acceptor
	gen atomic.Pointer[httpGen]
	// cur receives the connections the accept loop accepts.
	cur atomic.Pointer[httpServer]
	// tls is the TLS, HTTP/2 and h2c side of the frontend (tls.go, http2.go).
	tls tlsState

	// cutCtx is cancelled when shutdown gives up waiting; servers still draining after a
	// settings change then close their connections.
	cutCtx context.Context
	cut    context.CancelFunc
	// wg counts the Serve goroutines and the drains of replaced servers.
	wg sync.WaitGroup
	// loops holds the connections served on the event loops (httploop_linux.go).
	loops loopConns

	// mu serializes update and shutdown's view of cur.
	mu sync.Mutex
}

// httpServer is one fasthttp.Server of a frontend and the connections it serves.
type httpServer struct {
	f    *httpFrontend
	srv  *fasthttp.Server
	ln   *chanListener
	opts serverOpts
	// served is closed when srv.Serve returns.
	served chan struct{}

	// mu guards conns and fresh.
	mu sync.Mutex
	// conns maps each open connection to the gauge it was counted in.
	conns map[net.Conn]prometheus.Gauge
	// fresh holds the connections that have not sent a byte yet, which drain closes
	// (fasthttp's Shutdown closes idle keep-alive connections but waits for these).
	fresh map[net.Conn]struct{}
}

// serverOpts are the frontend settings that fasthttp fixes for a Server's lifetime.
type serverOpts struct {
	maxHeader    int
	header, idle time.Duration
}

func serverOptsOf(f Frontend) serverOpts {
	return serverOpts{maxHeader: f.MaxHeaderBytes, header: f.Timeouts.ClientHeader, idle: f.Timeouts.ClientIdle}
}

func newHTTPFrontend(d *Dataplane, g *frontendGen, ln *net.TCPListener) frontendRunner {
	f := &httpFrontend{d: d}
	f.acceptor.init(ln, d.clock)
	f.cutCtx, f.cut = context.WithCancel(context.Background())
	f.gen.Store(newHTTPGen(g))
	f.cur.Store(f.startServer(serverOptsOf(g.cfg)))
	f.tls.start(f)
	go f.acceptLoop(d.log, func() *frontendGen { return f.gen.Load().g }, f.accepted)
	return f
}

func (f *httpFrontend) addr() net.Addr { return f.ln.Addr() }

// update serves g from the next request on. Requests in flight finish on the generation
// they started with.
func (f *httpFrontend) update(g *frontendGen) {
	f.gen.Store(newHTTPGen(g))
	f.wake() // MaxConn may have grown
	f.mu.Lock()
	defer f.mu.Unlock()
	opts := serverOptsOf(g.cfg)
	old := f.cur.Load()
	select {
	case <-f.stop:
		return
	default:
	}
	if old.opts == opts {
		return
	}
	f.cur.Store(f.startServer(opts))
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		ctx, cancel := context.WithTimeout(f.cutCtx, f.d.drain)
		defer cancel()
		if err := old.drain(ctx); err != nil {
			f.d.log.Warn("frontend settings changed; old connections cut", "frontend", g.cfg.Name, "err", err)
		}
	}()
}

// startServer starts a fasthttp.Server with opts, fed by the accept loop once it is cur.
func (f *httpFrontend) startServer(opts serverOpts) *httpServer {
	s := &httpServer{f: f, opts: opts, ln: newChanListener(f.ln.Addr()), conns: map[net.Conn]prometheus.Gauge{},
		fresh: map[net.Conn]struct{}{}, served: make(chan struct{})}
	s.srv = &fasthttp.Server{
		Handler:        f.handle,
		ErrorHandler:   f.handleError,
		HeaderReceived: f.headerReceived,
		ConnState:      s.connState,
		Logger:         fasthttpLogger{f.d.log},
		Concurrency:    httpConcurrency,
		// The read buffer holds the whole request head, so its size is the limit;
		// fasthttp answers a larger head with ErrSmallBuffer, which handleError turns
		// into 431.
		ReadBufferSize: opts.maxHeader,
		ReadTimeout:    opts.header,
		IdleTimeout:    opts.idle,
		// headerReceived sets the limit per request from the current generation.
		MaxRequestBodySize: f.gen.Load().g.cfg.MaxBodyBytes,
		// The body streams (http_reqbody.go): fasthttp reads the head and at most
		// 8 KiB of the body before the handler runs, whatever the head declares.
		StreamRequestBody:             true,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: true,
		DisablePreParseMultipartForm:  true,
		CloseOnShutdown:               true,
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(s.served)
		s.srv.Serve(s.ln) // returns when s.ln closes
	}()
	return s
}

// shutdown stops accepting, lets the requests in flight finish until ctx is done, then
// closes the connections left.
func (f *httpFrontend) shutdown(ctx context.Context) error {
	f.stopAccepting(ctx)
	f.tls.stop(f, ctx)
	f.loops.drain(ctx) // before cur's: the loops may hand connections to it meanwhile
	f.mu.Lock()
	cur := f.cur.Load()
	f.mu.Unlock()
	err := cur.drain(ctx)
	done := waitDone(&f.wg)
	select {
	case <-done:
	case <-ctx.Done():
		f.cut()
		<-done
		err = ctx.Err()
	}
	f.cut()
	return err
}

// accepted serves c, which the accept loop has counted as open. It returns false when
// the frontend stops.
func (f *httpFrontend) accepted(c *net.TCPConn) bool {
	if g := f.gen.Load().g; g.proxyTrust.trusts(tcpAddrPort(c.RemoteAddr()).Addr()) {
		// Its PROXY header is read off the accept loop (proxyproto.go).
		f.wg.Add(1)
		go f.deliverProxied(c, g)
		return true
	}
	if !f.dispatch(c) { // TLS and h2c are handled off this loop (tls.go)
		c.Close()
		f.open.Add(-1)
		return false
	}
	return true
}

// deliver hands c to the current server. It returns false when the frontend stops.
func (f *httpFrontend) deliver(c net.Conn) bool {
	for {
		s := f.cur.Load()
		select {
		case s.ln.conns <- c:
			return true
		case <-s.ln.done: // replaced by a newer server: cur has changed
		case <-f.stop:
			return false
		}
	}
}

// connState counts connections, and notes which have not sent a byte yet; fasthttp calls
// it on every change of a connection's state, twice per request.
func (s *httpServer) connState(c net.Conn, st fasthttp.ConnState) {
	switch st {
	case fasthttp.StateNew:
		var gauge prometheus.Gauge
		if hand, ok := c.(*handedConn); ok { // counted when the loop engine accepted it
			gauge = hand.gauge
		} else {
			m := &s.f.gen.Load().g.m
			m.connsTotal.Inc()
			m.connsActive.Inc()
			gauge = m.connsActive
		}
		s.mu.Lock()
		s.conns[c] = gauge
		if !hasPrefix(c) { // bytes read already (a hand-over, h2c sniffing) are a request
			s.fresh[c] = struct{}{}
		}
		s.mu.Unlock()
	case fasthttp.StateActive:
		s.mu.Lock()
		delete(s.fresh, c)
		s.mu.Unlock()
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		s.mu.Lock()
		g, ok := s.conns[c]
		delete(s.conns, c)
		delete(s.fresh, c)
		s.mu.Unlock()
		if ok {
			g.Dec()
		}
		s.f.open.Add(-1)
		s.f.wake()
	}
}

// hasPrefix reports whether c comes with bytes read from it already.
func hasPrefix(c net.Conn) bool {
	switch pc := c.(type) {
	case *handedConn:
		return len(pc.prefix) > 0
	case *replayConn:
		return len(pc.prefix) > 0
	}
	return false
}

// drain stops s taking connections and waits until ctx is done for the ones it has to
// finish their requests; it closes those left.
func (s *httpServer) drain(ctx context.Context) error {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.fresh { // as the loop engine closes its connections with no request
		c.Close()
	}
	s.mu.Unlock()
	// fasthttp counts a running Serve as an open connection, and ShutdownWithContext
	// looks again only every 100ms: waiting for Serve to see s.ln closed first spares
	// every drain (each Close, each reload that replaces the server) that 100ms when
	// no connection is left.
	select {
	case <-s.served:
	case <-ctx.Done():
	}
	err := s.srv.ShutdownWithContext(ctx)
	if err != nil {
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	}
	return err
}

// chanListener is the net.Listener a fasthttp.Server serves: it returns the connections
// the frontend's accept loop sends it.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed // fasthttp's Serve returns nil on this error
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// fasthttpLogger routes fasthttp's log lines to lbd's logger at debug level.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("fasthttp: " + fmt.Sprintf(format, args...))
	}
}

// headerReceived sets the limits of one request from the current generation: the body
// size limit, and client_idle for the body to arrive (ReadTimeout, client_header, has
// bounded the head).
func (f *httpFrontend) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	cfg := &f.gen.Load().g.cfg
	rc := fasthttp.RequestConfig{MaxRequestBodySize: cfg.MaxBodyBytes}
	if cl := h.ContentLength(); cl > 0 || cl == -1 {
		rc.ReadTimeout = cfg.Timeouts.ClientIdle
	}
	return rc
}

// handleError answers a request fasthttp could not read.
func (f *httpFrontend) handleError(ctx *fasthttp.RequestCtx, err error) {
	f.clientError(ctx, f.gen.Load(), err) // http_reqbody.go
}

// handle proxies one request.
func (f *httpFrontend) handle(ctx *fasthttp.RequestCtx) {
	hg := f.gen.Load()
	defer func() {
		if r := recover(); r != nil {
			f.d.metrics.panics.recovered(f.d.log, panicFastHTTP, r, "frontend", hg.g.cfg.Name)
			writeAnswer(&ctx.Response, fasthttp.StatusInternalServerError, "internal error")
			ctx.SetConnectionClose()
		}
	}()
	req := &ctx.Request
	h := &req.Header
	body, ok := f.takeBody(ctx, hg) // buffered, or streamed when large (http_reqbody.go)
	if !ok {
		return
	}
	n := len(h.RawHeaders()) + len(h.RequestURI())
	if body == nil {
		n += len(req.Body())
	}
	hg.g.m.bytesIn.Add(float64(n))
	if hg.g.limit != nil && !f.limitHTTP(ctx, hg) { // 429, or delayed (ratelimit.go)
		return
	}
	if hg.g.cfg.RedirectToHTTPS {
		f.redirectHTTPS(ctx, hg) // tls.go
		return
	}
	if h.IsConnect() {
		f.answer(ctx, hg, nil, fasthttp.StatusMethodNotAllowed, "CONNECT is not supported")
		return
	}
	bs := hg.route(req)
	ip := remoteIP(ctx)
	st := newProxyState(bs, req, ip)
	x := roundTripOpts{
		head: h.IsHead(), idem: h.IsHead() || idempotent(h), http11: h.IsHTTP11(), bytesOut: hg.g.m.bytesOut,
		client: clientConn{ctx: ctx, idle: hg.g.cfg.Timeouts.ClientIdle}, body: body,
	}
	st.proto = forwardedProto(ctx) // tls.go
	rewriteRequest(req, ip, st)
	f.proxy(ctx, hg, bs, st, x)
	addHSTS(ctx, hg.g) // tls.go
	st.free()
}

// proxy sends the rewritten request to a server of bs's backend, and to others on
// failure as the retry rules allow, and leaves the answer in ctx.Response.
func (f *httpFrontend) proxy(ctx *fasthttp.RequestCtx, hg *httpGen, bs *backendStats, st *proxyState, x roundTripOpts) {
	b := bs.b
	req, resp := &ctx.Request, &ctx.Response
	m := hg.g.metrics
	var (
		fail   failure
		failed *Server
	)
	for attempt := 0; ; attempt++ {
		var s *Server
		if attempt == 0 && b.persist != nil {
			s = b.persist.choose(req, st.pick.ClientIP, &st.persist)
			if s != nil && !s.TryAcquire() {
				s = nil // at its maxconn: balanced, or queued, as a new session (queue.go)
			}
		}
		if s == nil {
			// Picks and acquires, waiting in the backend's queue while every server
			// is at its maxconn (queue.go).
			var qerr error
			if s, qerr = b.acquire(&st.pick, f.stop); qerr != nil {
				f.answer(ctx, hg, bs, fasthttp.StatusServiceUnavailable, qerr.Error())
				return
			}
		}
		if s == nil {
			break
		}
		sc := b.http.client(s)
		ss := &bs.servers[sc.idx]
		if attempt > 0 {
			bs.retries.Inc()
		}
		ss.sessions.inc2(m.sessions, b.cfg.Name, s.Name)
		if len(req.Header.Host()) == 0 {
			req.Header.SetHost(s.Addr)
		}
		t0 := time.Now()
		err := b.http.roundTrip(sc, req, resp, x)
		t1 := time.Now()
		if err == nil {
			if body, ok := resp.BodyStream().(*bodyStream); ok {
				body.srv, body.elapsed = s, t1.Sub(t0) // released when the body is done
				body.errs = func() {                   // allocates; streamed responses only
					ss.errors[reasonReset].inc3(m.errors, b.cfg.Name, s.Name, reasonNames[reasonReset])
				}
			} else {
				s.Release(t1.Sub(t0))
			}
			fixResponse(&resp.Header, st)
			if b.persist != nil {
				b.persist.record(&resp.Header, s, &st.persist)
			}
			hg.served(bs, ss, s, resp.StatusCode(), t1.Sub(ctx.Time()))
			if !resp.IsBodyStream() {
				hg.g.m.bytesOut.Add(float64(len(resp.Body())))
			}
			return
		}
		if cerr := x.body.clientErr(); cerr != nil { // the client's body failed, not s
			s.Release(0)
			f.clientError(ctx, hg, cerr)
			return
		}
		fail = classify(err, x.head || idempotent(&req.Header))
		if x.body != nil && x.body.started { // its body cannot be sent again
			fail.retry = false
		}
		if fail.reason == reasonTimeout {
			s.Release(t1.Sub(t0)) // a slow server should look slow to least_time
		} else {
			s.Release(0)
		}
		f.attemptFailed(hg, bs, ss, s, fail, attempt+1, err)
		failed = s
		if attempt >= b.retries || !fail.retry {
			break
		}
		st.pick.Exclude = append(st.pick.Exclude, s)
	}
	if x.body != nil && !x.body.done() {
		ctx.SetConnectionClose() // the rest of the body is not read
	}
	if failed == nil {
		bs.noServer.Inc()
		f.answer(ctx, hg, bs, fasthttp.StatusServiceUnavailable, "no server available for backend "+b.cfg.Name)
		return
	}
	f.answer(ctx, hg, bs, fail.status, fail.describe(failed, b))
}

// answer writes a response of lbd's own and counts it; bs is nil when no backend was
// chosen.
func (f *httpFrontend) answer(ctx *fasthttp.RequestCtx, hg *httpGen, bs *backendStats, code int, what string) {
	writeAnswer(&ctx.Response, code, what)
	hg.answered(bs, code, time.Since(ctx.Time()), len(ctx.Response.Body()))
}

func remoteIP(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
