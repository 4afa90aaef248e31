package dataplane

// HTTP mode: the fasthttp engine. Plain HTTP/1.1 is served first by the loop engine
// (httploop_linux.go), which hands what it does not serve to this one at a request
// boundary; TLS and h2c frontends, and frontends with engine: fasthttp, are served here
// from the start (HTTP/2 by net/http, http2.go). Both engines share the routing, the
// header rules (rewriteRequest, fixResponse), failure classification and counting.
//
// Why fasthttp. lbd's HTTP path is measured against HAProxy on the same machine.
// net/http's HTTP/1.1 server and Transport reached 0.38× HAProxy's request rate;
// fasthttp's Server with a HostClient pool reached 0.61–0.72×. fasthttp gets there by
// reusing everything per connection (the RequestCtx with its header and body buffers,
// the bufio readers and writers) and by keeping headers as byte slices rather than maps
// of strings, so that a proxied request allocates almost nothing.
//
// A request. The fasthttp server reads the request head and body into the connection's
// RequestCtx; the body is buffered (up to max_body_bytes), which lets a retry send it
// again. The handler reads the frontend generation once, picks the backend by route and
// a server by the backend's balancer, rewrites ctx.Request in place (hop-by-hop headers
// out, X-Forwarded-* in) and sends it on a pooled server connection, reading the answer
// straight into ctx.Response. Nothing is copied between a client-side and a server-side
// request object.
//
// Pooling. Each server has a fasthttp.HostClient holding up to pool_size connections,
// handed out last-in first-out so that the pool shrinks to what the load needs; a
// connection idle for poolIdleTimeout is closed. lbd uses the HostClient only as a
// pool: exchange (http_transport.go) writes the request and reads the response itself.
// That lets it read small bodies (up to maxBufferedBody, by Content-Length) whole, with
// no allocation, and stream larger or unframed ones to the client with a deadline that
// bounds stalls rather than the whole download, so that lbd never holds a large body in
// memory. A reload keeps a server's pool, idle connections included, while the server
// keeps its name, address, pool_size and connect timeout.
//
// Timeouts. client_header bounds reading a request head (fasthttp's ReadTimeout, from
// the connection's accept or the request's first byte); a request body then has
// client_idle to arrive. client_idle also bounds an idle keep-alive connection, and each
// stall writing a streamed response to the client. On the server side, connect bounds
// dialing (and waiting for a free pooled connection), and response bounds the wait from
// sending the request to the response head, then each stall in the body (pooledConn
// pushes the read deadline on every read); a request body over 64 KiB gets extra time
// to be sent, at 64 KiB/s.
//
// Retries. A request that could not be sent (connect failure, pool exhausted) goes to
// another server, whatever its method. One that timed out or got no answer at all (the
// server closed or reset the connection before the first response byte) goes to
// another server only if its method is idempotent. Once a server has started to answer,
// its answer, or the error, is final. An idempotent request whose pooled connection
// fails before any answer (the server had closed it while idle) goes again to the same
// server on another connection, without counting as a failure.
//
// Not supported: protocol upgrades (WebSocket; Upgrade is removed as hop-by-hop) and
// streaming request bodies.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"lbd/dataplane/internal/h1"
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
	f.acceptor.init(ln)
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
		fresh: map[net.Conn]struct{}{}}
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
		MaxRequestBodySize:            f.gen.Load().g.cfg.MaxBodyBytes,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: true,
		DisablePreParseMultipartForm:  true,
		CloseOnShutdown:               true,
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
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
		if hc, ok := c.(*handedConn); ok { // counted when the loop engine accepted it
			gauge = hc.gauge
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
	case *prefixConn:
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
	hg := f.gen.Load()
	var small *fasthttp.ErrSmallBuffer
	var code int
	var what string
	switch {
	case errors.As(err, &small):
		code, what = fasthttp.StatusRequestHeaderFieldsTooLarge, "request header larger than "+strconv.Itoa(hg.g.cfg.MaxHeaderBytes)+" bytes"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		code, what = fasthttp.StatusRequestEntityTooLarge, "request body larger than "+strconv.Itoa(hg.g.cfg.MaxBodyBytes)+" bytes"
	case isTimeout(err):
		code, what = fasthttp.StatusRequestTimeout, "request not received in time"
	default:
		code, what = fasthttp.StatusBadRequest, "malformed request"
	}
	writeAnswer(&ctx.Response, code, what)
	hg.noBackend[classIndex(code)].inc4(hg.g.metrics.requests, hg.g.cfg.Name, "", "", classNames[classIndex(code)])
	hg.g.m.bytesOut.Add(float64(len(ctx.Response.Body())))
}

// proxyState is the per-request scratch space of the handler, pooled.
type proxyState struct {
	tried [maxRetries + 1]*Server
	pick  Pick
	key   []byte
	buf   []byte
	del   [][]byte // header names to delete
	toks  [][]byte // header names listed in Connection
	xff   [][]byte // X-Forwarded-For values the client sent
	proto []byte   // X-Forwarded-Proto: http or https (tls.go); nil for http
	// persist is what session persistence chose, for it to record (persist.go).
	persist persistScratch
}

var proxyStatePool = sync.Pool{New: func() any { return new(proxyState) }}

// handle proxies one request.
func (f *httpFrontend) handle(ctx *fasthttp.RequestCtx) {
	hg := f.gen.Load()
	defer func() {
		if r := recover(); r != nil {
			f.d.log.Error("panic serving request", "frontend", hg.g.cfg.Name, "panic", r, "stack", string(debug.Stack()))
			writeAnswer(&ctx.Response, fasthttp.StatusInternalServerError, "internal error")
			ctx.SetConnectionClose()
		}
	}()
	req := &ctx.Request
	h := &req.Header
	hg.g.m.bytesIn.Add(float64(len(h.RawHeaders()) + len(h.RequestURI()) + len(req.Body())))
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
	// Routes match the normalized path (percent-decoded, dot segments resolved), as a
	// server will understand it, so that "/x/../admin" cannot dodge an /admin/ route; the
	// server gets the path as the client sent it.
	b := hg.g.selectBackend(h.Host(), req.URI().Path(), func(name string) []byte { return peekHeader(h, name) })
	bs := hg.stats(b)

	st := proxyStatePool.Get().(*proxyState)
	ip := remoteIP(ctx)
	st.pick = Pick{ClientIP: ip, Exclude: st.tried[:0]}
	if k := requestKey(bs.hashKey, &b.key, req); k != nil {
		st.key = append(st.key[:0], k...)
		st.pick.Key = st.key
	}
	x := exchangeOpts{
		head: h.IsHead(), idem: h.IsHead() || idempotent(h), http11: h.IsHTTP11(), bytesOut: hg.g.m.bytesOut,
		client: clientConn{ctx: ctx, idle: hg.g.cfg.Timeouts.ClientIdle},
	}
	st.proto = forwardedProto(ctx) // tls.go
	rewriteRequest(req, ip, st)
	f.proxy(ctx, hg, bs, st, x)
	addHSTS(ctx, hg.g) // tls.go

	clear(st.tried[:])
	st.pick = Pick{}
	proxyStatePool.Put(st)
}

// proxy sends the rewritten request to a server of bs's backend, and to others on
// failure as the retry rules allow, and leaves the answer in ctx.Response.
func (f *httpFrontend) proxy(ctx *fasthttp.RequestCtx, hg *httpGen, bs *backendStats, st *proxyState, x exchangeOpts) {
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
		err := b.http.exchange(sc, req, resp, x)
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
		fail = classify(err, x.head || idempotent(&req.Header))
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

// The counting of both engines (this file's and httploop_linux.go's), so that the
// metrics cannot differ between them.

// answered counts an answer of lbd's own with a body of n bytes; bs is nil when no
// backend was chosen.
func (hg *httpGen) answered(bs *backendStats, code int, elapsed time.Duration, n int) {
	c := classIndex(code)
	if bs == nil {
		hg.noBackend[c].inc4(hg.g.metrics.requests, hg.g.cfg.Name, "", "", classNames[c])
	} else {
		bs.answers[c].inc4(hg.g.metrics.requests, hg.g.cfg.Name, bs.b.cfg.Name, "", classNames[c])
		bs.duration.Observe(elapsed.Seconds())
	}
	hg.g.m.bytesOut.Add(float64(n))
}

// served counts the answer of server s, ss its stats, to a request that took elapsed.
func (hg *httpGen) served(bs *backendStats, ss *serverStats, s *Server, code int, elapsed time.Duration) {
	b := bs.b
	c := classIndex(code)
	ss.requests[c].inc4(hg.g.metrics.requests, hg.g.cfg.Name, b.cfg.Name, s.Name, classNames[c])
	b.reportResponse(s, code) // passive health (health_passive.go)
	bs.duration.Observe(elapsed.Seconds())
}

// attemptFailed counts attempt number n of a request, which failed on server s.
func (f *httpFrontend) attemptFailed(hg *httpGen, bs *backendStats, ss *serverStats, s *Server, fail failure, n int, err error) {
	b := bs.b
	ss.errors[fail.reason].inc3(hg.g.metrics.errors, b.cfg.Name, s.Name, reasonNames[fail.reason])
	b.reportHTTPFailure(s, fail) // passive health (health_passive.go)
	if log := f.d.log; log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug("request to server failed", "frontend", hg.g.cfg.Name, "backend", b.cfg.Name,
			"server", s.Name, "attempt", n, "reason", reasonNames[fail.reason], "err", err)
	}
}

// writeAnswer replaces resp with a short text/plain answer: "502 Bad Gateway: what".
func writeAnswer(resp *fasthttp.Response, code int, what string) {
	resp.Reset()
	resp.SetStatusCode(code)
	resp.Header.SetContentType("text/plain; charset=utf-8")
	resp.AppendBodyString(strconv.Itoa(code))
	resp.AppendBodyString(" ")
	resp.AppendBodyString(fasthttp.StatusMessage(code))
	resp.AppendBodyString(": ")
	resp.AppendBodyString(what)
	resp.AppendBodyString("\n")
}

// Failure reasons, the reason label of lbd_server_errors_total.
const (
	reasonConnect = iota // could not connect (or no pooled connection came free)
	reasonTimeout        // no answer within the response timeout
	reasonReset          // the connection failed while sending or receiving
	reasonEmpty          // the server closed the connection without answering
	reasonInvalid        // the answer was not valid HTTP
	numReasons
)

var reasonNames = [numReasons]string{"connect", "timeout", "reset", "empty", "invalid"}

// failure is what went wrong with one attempt, and what it means for the request.
type failure struct {
	reason int
	status int  // what the client gets if this is the last attempt
	retry  bool // another server may be tried
	err    error
}

// classify sorts an exchange error. idempotent tells whether the request may be sent
// again after the server may have seen it.
func classify(err error, idempotent bool) failure {
	var ce *connectError
	var se *sendError
	switch {
	case errors.As(err, &ce):
		return failure{reasonConnect, fasthttp.StatusBadGateway, true, err}
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return failure{reasonConnect, fasthttp.StatusServiceUnavailable, true, err}
	case errors.As(err, &se):
		if isTimeout(err) {
			return failure{reasonTimeout, fasthttp.StatusGatewayTimeout, idempotent, err}
		}
		return failure{reasonReset, fasthttp.StatusBadGateway, idempotent, err}
	case err == fasthttp.ErrTimeout: // no byte of the answer arrived
		return failure{reasonTimeout, fasthttp.StatusGatewayTimeout, idempotent, err}
	case err == io.EOF || err == fasthttp.ErrConnectionClosed: // closed before the first byte
		return failure{reasonEmpty, fasthttp.StatusBadGateway, idempotent, err}
	case isTimeout(err):
		return failure{reasonTimeout, fasthttp.StatusGatewayTimeout, false, err}
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF):
		return failure{reasonReset, fasthttp.StatusBadGateway, false, err}
	}
	return failure{reasonInvalid, fasthttp.StatusBadGateway, false, err}
}

// describe says what went wrong, for the body of lbd's answer.
func (fl failure) describe(s *Server, b *backend) string {
	where := "server " + s.Name + " of backend " + b.cfg.Name
	switch fl.reason {
	case reasonConnect:
		if fl.status == fasthttp.StatusServiceUnavailable {
			return "no free connection to " + where
		}
		return "cannot connect to " + where
	case reasonTimeout:
		return where + " did not answer within " + b.cfg.Timeouts.Response.String()
	case reasonEmpty:
		return where + " closed the connection without answering"
	case reasonReset:
		return "connection to " + where + " failed"
	}
	return "invalid response from " + where
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}

// idempotent reports whether a request may be sent again after a server may have seen
// it (RFC 9110, section 9.2.2).
func idempotent(h *fasthttp.RequestHeader) bool {
	return h.IsGet() || h.IsHead() || h.IsOptions() || h.IsTrace() || h.IsPut() || h.IsDelete()
}

func remoteIP(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// Hash key kinds a backendStats precomputes, so that the handler extracts a key only for
// consistent hashing.
const (
	keyNone = iota
	keyURI
	keyHeader
	keyCookie
)

// requestKey returns the consistent-hashing key of req, or nil to hash the client
// address.
func requestKey(kind int, k *hashKey, req *fasthttp.Request) []byte {
	switch kind {
	case keyURI:
		return req.Header.RequestURI()
	case keyHeader:
		return peekHeader(&req.Header, k.name)
	case keyCookie:
		return req.Header.Cookie(k.name)
	}
	return nil
}

// peekHeader returns the value of the request header name, matched without regard to
// case, or nil when there is none. Header names keep the client's case (the server does
// not normalize them), so a name that Peek misses is looked up in the raw header block.
func peekHeader(h *fasthttp.RequestHeader, name string) []byte {
	if v := h.Peek(name); v != nil {
		return v
	}
	raw := h.RawHeaders()
	for len(raw) > 0 {
		var line []byte
		line, raw = h1.NextLine(raw)
		if k, v, ok := h1.SplitHeader(line); ok && h1.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

var (
	hdrXForwardedFor   = "X-Forwarded-For"
	hdrXRealIP         = "X-Real-IP"
	hdrXForwardedProto = "X-Forwarded-Proto"
	hdrXForwardedHost  = "X-Forwarded-Host"
	strHTTP            = []byte("http")
	strHTTP11          = "HTTP/1.1"
)

// rewriteRequest turns the client's request into the one for the server, in place:
// hop-by-hop headers (those of RFC 9110 section 7.6.1, Proxy-Connection, Expect, and
// those Connection names) are removed; X-Forwarded-For gets the client address
// appended; X-Real-IP, X-Forwarded-Proto and X-Forwarded-Host are set; Host stays as the
// client sent it. Transfer-Encoding and Trailer are left to fasthttp, which frames the
// buffered body itself.
func rewriteRequest(req *fasthttp.Request, ip netip.Addr, st *proxyState) {
	h := &req.Header
	raw := h.RawHeaders() // a copy of the head as received; rewriting does not touch it
	st.del, st.toks, st.xff = st.del[:0], st.toks[:0], st.xff[:0]
	te := false
	for r := raw; len(r) > 0; {
		var line []byte
		line, r = h1.NextLine(r)
		k, v, ok := h1.SplitHeader(line)
		if !ok {
			continue
		}
		switch h1.KindOf(k) {
		case h1.Hop, h1.Forwarded:
			st.del = append(st.del, k)
		case h1.Connection:
			st.del = append(st.del, k)
			st.toks = h1.AppendTokens(st.toks, v)
		case h1.TE:
			st.del = append(st.del, k)
			te = te || h1.HasToken(h1.AppendTokens(nil, v), []byte("trailers"))
		case h1.XForwardedFor:
			st.del = append(st.del, k)
			st.xff = append(st.xff, v)
		}
	}
	if len(st.toks) > 0 {
		for r := raw; len(r) > 0; {
			var line []byte
			line, r = h1.NextLine(r)
			if k, _, ok := h1.SplitHeader(line); ok && h1.KindOf(k) == h1.Other && h1.HasToken(st.toks, k) &&
				!h1.EqualFold(k, "host") && !h1.EqualFold(k, "content-length") {
				st.del = append(st.del, k)
			}
		}
	}
	for _, k := range st.del {
		h.DelBytes(k)
	}
	h.ResetConnectionClose()        // the client's wish, not the server connection's
	h.SetNoDefaultContentType(true) // no Content-Type the client did not send
	if te {
		h.Set("TE", "trailers")
	}

	buf := st.buf[:0]
	for _, v := range st.xff {
		buf = append(append(buf, v...), ", "...)
	}
	n := len(buf)
	buf = ip.AppendTo(buf)
	h.SetBytesV(hdrXForwardedFor, buf)
	h.SetBytesV(hdrXRealIP, buf[n:])
	if st.proto != nil {
		h.SetBytesV(hdrXForwardedProto, st.proto)
	} else {
		h.SetBytesV(hdrXForwardedProto, strHTTP)
	}
	if host := h.Host(); len(host) > 0 {
		h.SetBytesV(hdrXForwardedHost, host)
	}
	st.buf = buf
	if !h.IsHTTP11() {
		h.SetProtocol(strHTTP11)
	}
	req.UseHostHeader = true
	req.URI().DisablePathNormalizing = true
}

// fixResponse removes the hop-by-hop headers of a server's response (and a Date that
// the fasthttp server would repeat), before it goes to the client.
func fixResponse(h *fasthttp.ResponseHeader, st *proxyState) {
	st.del, st.toks = st.del[:0], st.toks[:0]
	for k, v := range h.All() {
		switch h1.KindOf(k) {
		case h1.Hop, h1.TE:
			st.del = append(st.del, k)
		case h1.Connection:
			st.del = append(st.del, k)
			st.toks = h1.AppendTokens(st.toks, v)
		case h1.Date:
			if string(k) != fasthttp.HeaderDate {
				st.del = append(st.del, k)
			}
		}
	}
	if len(st.toks) > 0 {
		for k := range h.All() {
			if h1.KindOf(k) == h1.Other && h1.HasToken(st.toks, k) && !h1.EqualFold(k, "content-length") &&
				!h1.EqualFold(k, "transfer-encoding") {
				st.del = append(st.del, k)
			}
		}
	}
	for _, k := range st.del {
		h.DelBytes(k)
	}
	h.ResetConnectionClose() // the server connection's, not the client's
	h.SetProtocol(nil)       // answer as HTTP/1.1 whatever the server spoke
}

// Status classes, the class label of lbd_http_requests_total.
const numClasses = 6

var classNames = [numClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

func classIndex(code int) int {
	if code >= 100 && code <= 599 {
		return code/100 - 1
	}
	return numClasses - 1
}

// httpGen is a frontend generation with the metrics its requests count in, looked up once
// per generation (or on first use) instead of by label on every request.
type httpGen struct {
	g *frontendGen
	// loop is set when g's requests may be served on the event loops (loopable).
	loop bool
	def  *backendStats // of g.backend
	// byBackend holds the stats of every backend g routes to.
	byBackend map[*backend]*backendStats
	// noBackend counts the answers lbd gave before choosing a backend.
	noBackend [numClasses]counterSlot
}

// backendStats are one frontend's metrics for one backend.
type backendStats struct {
	b        *backend
	hashKey  int // keyNone unless the backend hashes on part of the request
	duration prometheus.Observer
	noServer prometheus.Counter
	retries  prometheus.Counter
	// answers counts lbd's own answers (server "").
	answers [numClasses]counterSlot
	// servers[i] is for b.servers[i].
	servers []serverStats
}

type serverStats struct {
	sessions counterSlot
	requests [numClasses]counterSlot
	errors   [numReasons]counterSlot
}

func newHTTPGen(g *frontendGen) *httpGen {
	hg := &httpGen{g: g, byBackend: map[*backend]*backendStats{}, loop: loopable(g)}
	add := func(b *backend) {
		if hg.byBackend[b] != nil {
			return
		}
		bs := &backendStats{
			b:        b,
			duration: g.metrics.duration.WithLabelValues(g.cfg.Name, b.cfg.Name),
			noServer: g.metrics.noServer.WithLabelValues(g.cfg.Name, b.cfg.Name),
			retries:  g.metrics.retries.WithLabelValues(b.cfg.Name),
			servers:  make([]serverStats, len(b.servers)),
		}
		if b.cfg.Balance == BalanceConsistent {
			switch b.key.kind {
			case "uri":
				bs.hashKey = keyURI
			case "header":
				bs.hashKey = keyHeader
			case "cookie":
				bs.hashKey = keyCookie
			}
		}
		hg.byBackend[b] = bs
	}
	add(g.backend)
	for _, r := range g.routes {
		add(r.backend)
	}
	hg.def = hg.byBackend[g.backend]
	return hg
}

func (hg *httpGen) stats(b *backend) *backendStats {
	if b == hg.def.b {
		return hg.def
	}
	return hg.byBackend[b]
}

// counterSlot is a counter child created on first use, so that series appear only for
// what happened.
type counterSlot struct{ p atomic.Pointer[counterBox] }

type counterBox struct{ c prometheus.Counter }

// inc2, inc3 and inc4 increment the child of vec with the given label values, creating
// it the first time. A slot's label values never change.
func (s *counterSlot) inc2(vec *prometheus.CounterVec, a, b string) {
	if x := s.p.Load(); x != nil {
		x.c.Inc()
		return
	}
	s.create(vec, a, b).Inc()
}

func (s *counterSlot) inc3(vec *prometheus.CounterVec, a, b, c string) {
	if x := s.p.Load(); x != nil {
		x.c.Inc()
		return
	}
	s.create(vec, a, b, c).Inc()
}

func (s *counterSlot) inc4(vec *prometheus.CounterVec, a, b, c, d string) {
	if x := s.p.Load(); x != nil {
		x.c.Inc()
		return
	}
	s.create(vec, a, b, c, d).Inc()
}

func (s *counterSlot) create(vec *prometheus.CounterVec, lvs ...string) prometheus.Counter {
	x := &counterBox{vec.WithLabelValues(lvs...)}
	if !s.p.CompareAndSwap(nil, x) {
		x = s.p.Load()
	}
	return x.c
}
