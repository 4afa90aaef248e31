package dataplane

// The contract of http mode's two engines: the loop engine (httploop_linux.go, plain
// HTTP/1.1 on the event loops) and the fasthttp engine (http.go, http_transport.go,
// http2.go, tls.go), which serves what the loop hands over to it (with the bytes read
// replayed: replayConn) and the frontends the loop does not serve. As Traefik keeps the
// behaviour of its two reverse proxies (pkg/proxy/fast and pkg/proxy/httputil) in the
// code they share, so everything a client or a server can tell apart lives here, once,
// and both engines call it:
//
//   - the frontend generation and its metrics (httpGen), and routing (route);
//   - the request's scratch space and balancing key (proxyState, requestKey);
//   - the request rewrite (rewriteRequest) and the response fix-up (fixResponse);
//   - the rate limit's decision for a request (rateLimit);
//   - lbd's own answers (writeAnswer);
//   - the classification of a failed attempt (classify), which decides the status, the
//     retry and the reason counted;
//   - the counting of answers and failures (answered, served, attemptFailed);
//   - the hand-over: its named reasons (handover), counted in
//     lbd_http_engine_handover_total, and its replay connection (replayConn,
//     handedConn).
//
// A chunked body is read by one grammar on both engines too: the loop scans it with
// h1.ChunkScanner, the fasthttp engine decodes it with h1.ChunkReader, built on it.
//
// An engine that needs a rule of its own for any of these is a difference clients can
// see; the differential tests (httploop_*_test.go, FuzzHTTPEngines) hold them equal.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"lbd/dataplane/internal/h1"
)

// Generations and routing.

// httpGen is a frontend generation with the metrics its requests count in, looked up once
// per generation (or on first use) instead of by label on every request.
type httpGen struct {
	g *frontendGen
	// loop is set when g's requests may be served on the event loops; notLoop says why
	// not when it is not (loopable).
	loop    bool
	notLoop handover
	// handovers count the connections the loop engine hands to the fasthttp engine, by
	// reason: all of them when g's engine is loop, handoverEngine alone when it is
	// fasthttp (connections on a loop from before the reload that set it).
	handovers [numHandovers]prometheus.Counter
	def       *backendStats // of g.backend
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
	hg := &httpGen{g: g, byBackend: map[*backend]*backendStats{}}
	hg.notLoop, hg.loop = loopable(g)
	for why := range numHandovers {
		if g.cfg.Engine == EngineLoop || why == handoverEngine {
			hg.handovers[why] = g.metrics.handovers.WithLabelValues(g.cfg.Name, why.String())
		}
	}
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

// route returns the stats of the backend that req goes to. Routes match the normalized
// path (percent-decoded, dot segments resolved), as a server will understand it, so
// that "/x/../admin" cannot dodge an /admin/ route; the server gets the path as the
// client sent it.
func (hg *httpGen) route(req *fasthttp.Request) *backendStats {
	h := &req.Header
	return hg.stats(hg.g.selectBackend(h.Host(), req.URI().Path(), func(name string) []byte { return peekHeader(h, name) }))
}

// The request.

// proxyState is the per-request scratch space of the handler, pooled.
type proxyState struct {
	tried [maxRetries + 1]*Server
	pick  Pick
	key   []byte
	buf   []byte
	raw   []byte   // the head of a request built from HTTP/2, written out (rewriteRequest)
	del   [][]byte // header names to delete
	toks  [][]byte // header names listed in Connection
	xff   [][]byte // X-Forwarded-For values the client sent
	proto []byte   // X-Forwarded-Proto: http or https (tls.go); nil for http
	// persist is what session persistence chose, for it to record (persist.go).
	persist persistScratch
}

var proxyStatePool = sync.Pool{New: func() any { return new(proxyState) }}

// newProxyState returns the scratch space of a request req from ip to bs's backend,
// with its balancing key.
func newProxyState(bs *backendStats, req *fasthttp.Request, ip netip.Addr) *proxyState {
	st := proxyStatePool.Get().(*proxyState)
	st.pick = Pick{ClientIP: ip, Exclude: st.tried[:0]}
	if k := requestKey(bs.hashKey, &bs.b.key, req); k != nil {
		st.key = append(st.key[:0], k...)
		st.pick.Key = st.key
	}
	st.proto = nil
	return st
}

// free gives st back to the pool.
func (st *proxyState) free() {
	clear(st.tried[:])
	st.pick = Pick{}
	proxyStatePool.Put(st)
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
// not normalize them), so a name that Peek misses is looked up in the raw header block,
// or, in a request built from HTTP/2 fields (http2.go), which has none, by its canonical
// form.
func peekHeader(h *fasthttp.RequestHeader, name string) []byte {
	if v := h.Peek(name); v != nil {
		return v
	}
	raw := h.RawHeaders()
	if len(raw) == 0 { // built from HTTP/2 (http2.go): its names are in canonical form
		h.EnableNormalizing()
		v := h.Peek(name)
		h.DisableNormalizing()
		return v
	}
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
	// A request built from HTTP/2 fields (http2.go) has no raw head: its head is written
	// out into st.raw instead (iterating over the header itself would parse its cookies
	// into fasthttp's lossy form).
	if len(raw) == 0 {
		st.raw = h.AppendBytes(st.raw[:0])
		_, raw = h1.NextLine(st.raw) // not the request line
	}
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

// The rate limit.

// rateLimit applies the frontend's rate limit, which hg must have, to a request with
// head h from ip, keyed by the header the limit names or else by the address. A request
// over the limit gets its 429 in resp, and ok is false; one within it may go after delay
// (0: at once).
func (hg *httpGen) rateLimit(h *fasthttp.RequestHeader, ip netip.Addr, resp *fasthttp.Response) (delay time.Duration, ok bool) {
	l := hg.g.limit
	var v limitVerdict
	if l.key.header != "" {
		v = l.take(peekHeader(h, l.key.header))
	} else {
		var a [16]byte
		v = l.take(ipKey(ip, &a))
	}
	if !v.ok {
		writeAnswer(resp, fasthttp.StatusTooManyRequests, "rate limit of "+l.cfg.Rate+" exceeded")
		resp.Header.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(v.retryAfter), 10))
		return 0, false
	}
	return v.delay, true
}

// whatLimitStopped is the 503 of a request that waited for its turn under the rate
// limit when its frontend shut down.
const whatLimitStopped = "server shutting down"

// lbd's own answers.

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

// Failures.

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

// classify sorts the error of a failed attempt. idempotent tells whether the request may be sent
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

// connectError is a failure to connect to a server: the request was not sent, so it
// may go to another server whatever its method.
type connectError struct {
	addr string
	err  error
}

func (e *connectError) Error() string { return "connecting to " + e.addr + ": " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// sendError is a failure to send the request to a server.
type sendError struct{ err error }

func (e *sendError) Error() string { return "sending request: " + e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// Counting, so that the metrics cannot differ between the engines.

// Status classes, the class label of lbd_http_requests_total.
const numClasses = 6

var classNames = [numClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

func classIndex(code int) int {
	if code >= 100 && code <= 599 {
		return code/100 - 1
	}
	return numClasses - 1
}

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

// The hand-over.

// handover is why the loop engine left a connection to the fasthttp engine: the reason
// label of lbd_http_engine_handover_total. A connection is handed over once, at a
// request boundary (or before its first request), and stays with fasthttp until it
// closes. New connections of a frontend with engine fasthttp are not hand-overs; its
// connections still on a loop from before a reload are (handoverEngine).
type handover uint8

const (
	// The frontend generation is not served on the loops (loopable): its new
	// connections, and connections already on a loop at their next request, go over.
	handoverTLS        handover = iota // the frontend terminates TLS
	handoverH2C                        // the frontend takes h2c
	handoverRedirect                   // redirect_to_https
	handoverBackendTLS                 // a backend it routes to has tls
	handoverServerName                 // a server's address is a name (the loop does no DNS)
	handoverEngine                     // a reload set engine: fasthttp (loop connections only)
	// The connection: no event loop could take it.
	handoverNoLoop
	// The request, from its head and body.
	handoverHTTP10       // not HTTP/1.1
	handoverConnect      // CONNECT (fasthttp answers 405)
	handoverNoHost       // no Host (fasthttp answers 400)
	handoverUpgrade      // an Upgrade field
	handoverExpect       // an Expect field (fasthttp answers 100 Continue first)
	handoverTarget       // a Host and target fasthttp's URI parser refuses
	handoverMalformed    // a head fasthttp refuses, or one that cannot become valid (400)
	handoverHeadTooLarge // a head over max_header_bytes (431)
	handoverLargeBody    // a body over 64 KiB, or over max_body_bytes (413)
	handoverBadBody      // a body fasthttp's reader refuses, such as a malformed chunk (400)
	handoverCutShort     // the client ended its side within the request (400)
	handoverUnrenderable // a request fasthttp cannot render for the server
	numHandovers
)

var handoverNames = [numHandovers]string{
	handoverTLS:          "tls",
	handoverH2C:          "h2c",
	handoverRedirect:     "redirect_to_https",
	handoverBackendTLS:   "backend_tls",
	handoverServerName:   "server_name",
	handoverEngine:       "engine",
	handoverNoLoop:       "no_loop",
	handoverHTTP10:       "http10",
	handoverConnect:      "connect",
	handoverNoHost:       "no_host",
	handoverUpgrade:      "upgrade",
	handoverExpect:       "expect",
	handoverTarget:       "bad_target",
	handoverMalformed:    "malformed",
	handoverHeadTooLarge: "head_too_large",
	handoverLargeBody:    "large_body",
	handoverBadBody:      "bad_body",
	handoverCutShort:     "cut_short",
	handoverUnrenderable: "unrenderable",
}

func (h handover) String() string {
	if h < numHandovers {
		return handoverNames[h]
	}
	return "handover(" + strconv.Itoa(int(h)) + ")"
}

// handedOver counts a hand-over for the reason why.
func (hg *httpGen) handedOver(why handover) {
	if c := hg.handovers[why]; c != nil {
		c.Inc()
	}
}

// replayConn is a connection whose first bytes were read already: they are read again
// first. The loop hands its connections over with one (handedConn), and h2c sniffing
// puts back what it read with one (tls.go).
type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// handedConn is a connection the loop gave to the fasthttp engine; it was counted when
// accepted.
type handedConn struct {
	replayConn
	gauge prometheus.Gauge
}
