//go:build linux

package dataplane

// The "loop" engine of http mode (docs/design-http-loop.md): plain HTTP/1.1 served on
// the Dataplane's event loops (loops_linux.go), as tcp sessions are. Per request that is a read
// of the client, a write and a read of a pooled server connection and a write to the
// client, with no goroutine parked or woken, which is what kept the fasthttp engine's
// p99 latency at 1.8× HAProxy's on a busy host (docs/benchmarks.md).
//
// The loop serves the common case and hands the rest to the fasthttp engine, whole, at a
// request boundary, with the bytes it has read replayed in front of the connection:
//
//   - per frontend generation (httpGen.loop): the engine is "loop", the frontend is plain
//     (no tls, no h2c, no redirect_to_https), and every backend it routes to has no
//     backend TLS and servers given by IP address (PROXY-protocol headers are read off
//     the loop, then the connection comes to it);
//   - per request: HTTP/1.1, a head and target fasthttp accepts, with a Host, not
//     CONNECT, no Upgrade and no Expect, and a body (by Content-Length or chunked) that
//     fasthttp's reader accepts and that is complete within maxBufferedBody; malformed,
//     oversized and cut-short requests go to fasthttp too, so that every answer to a
//     client's error is the same on both engines.
//
// Each hand-over names its reason (handover, http_common.go) and is counted in
// lbd_http_engine_handover_total.
//
// Rate limits, persistence and server maxconn with the backend queue are applied on the
// loop, with the fasthttp engine's rules and answers. The head is parsed, rewritten and
// rendered with the same fasthttp types and the same functions as the fasthttp engine
// (rewriteRequest, fixResponse, Request.Write), so the requests a server sees and the
// headers a client sees cannot drift between the engines. The request is held until its
// answer starts, so that a retry can send it again; a response body is streamed:
// Content-Length and chunked bodies verbatim (a chunked body's trailer section checked
// first), a body delimited by the server's close re-framed as chunked so that the client
// connection stays open.

import (
	"bufio"
	"bytes"
	"container/list"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"lbd/dataplane/internal/evloop"
	"lbd/dataplane/internal/h1"
)

// httpLoopCounters count what the http event-loop engine did, for tests.
var httpLoopCounters struct {
	served     atomic.Int64 // requests answered on a loop
	handedOver atomic.Int64 // connections handed to the fasthttp engine
}

const (
	// loopReadSize is what one read of a socket takes at most.
	loopReadSize = 16 << 10
	// loopHeadBuf is the size of a loop's head parsing buffer; a frontend with a larger
	// max_header_bytes grows it.
	loopHeadBuf = 32 << 10
	// loopKeepBuf is the largest buffer a connection keeps between requests: idle
	// keep-alive connections hold no more than this.
	loopKeepBuf = 4 << 10
)

// loopHTTP is the http engine's state of one loop: scratch space that only the loop's
// goroutine uses, between two events.
type loopHTTP struct {
	req    fasthttp.Request
	uri    fasthttp.URI
	resp   fasthttp.ResponseHeader
	trail  fasthttp.ResponseHeader
	out    appendWriter
	bw     *bufio.Writer
	answer fasthttp.Response
	rd     bytes.Reader
	br     *bufio.Reader
	brSize int
	// buf receives every read; what must outlive the event is copied out of it.
	buf []byte
	// wbuf holds what the current event writes to staged, the client it serves: one
	// write(2) at the event's end (commit) sends the head and the body bytes read with
	// it; hbuf is where lbd's own answers are rendered.
	wbuf, hbuf []byte
	staged     *httpConn
	// pools holds the idle server connections of this loop, by pool.
	pools map[*serverPool][]*srvConn
	// panics and log are the dataplane's, for a panic on a server connection
	// (srvConn.recoverPanic); set when a client connection starts on the loop.
	panics *panicMetric
	log    *slog.Logger
}

func (l *eventLoop) httpState() *loopHTTP {
	if l.http == nil {
		h := &loopHTTP{buf: make([]byte, loopReadSize), pools: map[*serverPool][]*srvConn{}}
		h.bw = bufio.NewWriterSize(&h.out, loopReadSize)
		h.resp.DisableNormalizing()
		h.resp.SetNoDefaultContentType(true)
		h.answer.Header.DisableNormalizing()
		h.answer.Header.SetNoDefaultContentType(true)
		l.http = h
	}
	return l.http
}

// request returns the loop's Request, reset, with the fasthttp engine server's settings.
func (h *loopHTTP) request() *fasthttp.Request {
	req := &h.req
	req.Reset()
	req.Header.DisableNormalizing()
	req.Header.SetNoDefaultContentType(true)
	return req
}

// headHandover tells why the loop leaves a request with head rh to the fasthttp engine,
// if it does: a protocol, method or field the loop does not serve, or a Host and target
// that the fasthttp server's URI parser (parseURI) would refuse.
func (h *loopHTTP) headHandover(rh *fasthttp.RequestHeader) (handover, bool) {
	switch {
	case !rh.IsHTTP11():
		return handoverHTTP10, true
	case rh.IsConnect():
		return handoverConnect, true
	case len(rh.Host()) == 0:
		return handoverNoHost, true
	case peekHeader(rh, "Upgrade") != nil:
		return handoverUpgrade, true
	case peekHeader(rh, "Expect") != nil:
		return handoverExpect, true
	case h.uri.Parse(rh.Host(), rh.RequestURI()) != nil:
		return handoverTarget, true
	}
	return 0, false
}

// checkTrailer parses t, the trailer section of a chunked response, final empty line
// included, as the fasthttp engine's ReadTrailer does, and returns its error.
func (h *loopHTTP) checkTrailer(t []byte) error {
	tr := &h.trail
	tr.Reset()
	tr.DisableNormalizing()
	return tr.ReadTrailer(h.reader(t, len(t)))
}

// reader returns a bufio.Reader over b with room for a head of size bytes.
func (h *loopHTTP) reader(b []byte, size int) *bufio.Reader {
	h.rd.Reset(b)
	if h.br == nil || h.brSize < size {
		h.brSize = max(size, loopHeadBuf)
		h.br = bufio.NewReaderSize(&h.rd, h.brSize)
	} else {
		h.br.Reset(&h.rd)
	}
	return h.br
}

// loopable reports whether requests of g may be served on the loops (see the top), and
// when they may not, why.
func loopable(g *frontendGen) (why handover, ok bool) {
	cfg := &g.cfg
	switch {
	case cfg.Engine != EngineLoop:
		return handoverEngine, false
	case g.tls != nil:
		return handoverTLS, false
	case cfg.H2C:
		return handoverH2C, false
	case cfg.RedirectToHTTPS:
		return handoverRedirect, false
	}
	if why, ok := loopableBackend(g.backend); !ok {
		return why, false
	}
	for _, r := range g.routes {
		if why, ok := loopableBackend(r.backend); !ok {
			return why, false
		}
	}
	return 0, true
}

func loopableBackend(b *backend) (why handover, ok bool) {
	if b.tls != nil {
		return handoverBackendTLS, false
	}
	for _, s := range b.servers {
		if _, err := netip.ParseAddrPort(s.Addr); err != nil {
			return handoverServerName, false // the loop would have to resolve it
		}
	}
	return 0, true
}

// loopConns are the connections of a frontend on the loops, for shutdown.
type loopConns struct {
	mu       sync.Mutex
	conns    map[*httpConn]struct{}
	draining bool
	empty    chan struct{} // closed when draining and conns is empty
}

func (lc *loopConns) add(c *httpConn) bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.draining {
		return false
	}
	if lc.conns == nil {
		lc.conns = map[*httpConn]struct{}{}
	}
	lc.conns[c] = struct{}{}
	return true
}

func (lc *loopConns) remove(c *httpConn) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	delete(lc.conns, c)
	if lc.draining && len(lc.conns) == 0 && lc.empty != nil {
		close(lc.empty)
		lc.empty = nil
	}
}

// drain makes the loop connections close once their request in flight is answered,
// waits until ctx is done for them to, and then closes those left.
func (lc *loopConns) drain(ctx interface {
	Done() <-chan struct{}
}) {
	lc.mu.Lock()
	lc.draining = true
	done := make(chan struct{})
	if len(lc.conns) == 0 {
		close(done)
	} else {
		lc.empty = done
	}
	for c := range lc.conns {
		c.l.Post(func() { c.drain() })
	}
	lc.mu.Unlock()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	lc.mu.Lock()
	for c := range lc.conns {
		c.l.Post(func() { c.cut() })
	}
	lc.mu.Unlock()
	<-done
}

// toLoop moves a new connection to an event loop; false when it cannot (the caller
// serves it on the fasthttp engine, and toLoop has counted why unless the frontend shuts
// down). pc is the connection with the addresses of its PROXY header, nil for none.
func (f *httpFrontend) toLoop(c *net.TCPConn, hg *httpGen, pc *proxiedConn) bool {
	if !hg.loop {
		if hg.notLoop != handoverEngine { // the fasthttp engine's own connection
			hg.handedOver(hg.notLoop)
		}
		return false
	}
	l, err := f.d.loops.get()
	if err != nil {
		hg.handedOver(handoverNoLoop)
		return false
	}
	fd, err := dupConn(c)
	if err != nil {
		hg.handedOver(handoverNoLoop)
		return false
	}
	m := &hg.g.m
	client := &httpConn{f: f, l: l, fd: fd, ip: tcpAddrPort(c.RemoteAddr()).Addr(), gauge: m.connsActive}
	if pc != nil {
		client.ip, client.remote, client.local = tcpAddrPort(pc.remote).Addr(), pc.remote, pc.local
	}
	if !f.loops.add(client) {
		unix.Close(fd)
		return false // shutting down: the fasthttp engine closes it
	}
	c.Close()
	m.connsTotal.Inc()
	m.connsActive.Inc()
	if !l.Post(client.start) {
		unix.Close(fd)
		client.release()
	}
	return true
}

// clientState is where a client connection on a loop is in its request cycle.
type clientState uint8

const (
	clientNew       clientState = iota // posted to its loop, not started yet
	clientIdle                         // keep-alive, waiting for a request
	clientHead                         // reading a request: its head, then its body
	clientServer                       // the request is with a server: connecting, sending or waiting
	clientAnswering                    // the answer is being written
	clientDelayed                      // the request waits for its turn under the rate limit
	clientQueued                       // the request waits in its backend's queue for a server slot
	clientClosed
)

// dueKind is what a client connection waits for until its deadline (httpConn.due), and
// so what the deadline's passing does (httpConn.timeout). It is not the state: a new
// connection is idle with client_header running (dueIdle), and a request body gets
// client_idle from the end of its head (dueRequest).
type dueKind uint8

const (
	dueIdle    dueKind = iota // a request to begin: close quietly
	dueRequest                // the rest of a request: 408
	dueDelay                  // the rate limit's delay: then the request goes on
	dueQueue                  // a server slot, in the backend's queue: 503
	dueServer                 // a connect or the answer's first byte: the attempt fails
	dueAnswer                 // the client taking the answer, or the server sending its body: close
)

// httpConn is a client connection on a loop; only the loop touches it once started.
type httpConn struct {
	f     *httpFrontend
	l     *eventLoop
	fd    int
	reg   uint32
	ip    netip.Addr
	gauge prometheus.Gauge
	// remote and local are the addresses of the connection's PROXY header, nil for none.
	remote, local net.Addr

	state clientState
	// in holds bytes read and not yet taken by a request (only when a read left some).
	in   []byte
	scan h1.HeadScanner
	// headStart and headEnd locate a complete head in the input while its body is
	// still arriving; 0, 0 otherwise. bodyAt is how far a chunked body has been
	// scanned (chunks), and bodyWait whether the body's deadline is set.
	headStart, headEnd, bodyAt int
	chunks                     h1.BodyFramer
	bodyWait                   bool
	// out holds bytes for the client that a write did not take; nothing is read from
	// the server meanwhile.
	out      []byte
	eof      bool // the client has shut down its side
	requests int  // requests taken on the connection
	closing  bool // the answer said Connection: close
	draining bool // close once the request in flight is answered
	timer    evloop.Timer
	due      int64   // when the current wait times out; 0: it does not
	dueKind  dueKind // what the wait is, and what its timeout does

	x exchange
}

// exchange is the request in flight on a client connection.
type exchange struct {
	hg    *httpGen
	bs    *backendStats
	st    *proxyState
	send  []byte // the rewritten request, head and body, as sent to each server tried
	head  bool   // a HEAD request
	idem  bool   // may be sent again after a server may have seen it
	close bool   // the client asked to close after the answer
	start int64  // when the head was complete
	sent  int64  // when the current attempt started
	try   int    // attempts made
	s     *Server
	ss    *serverStats
	pool  *serverPool
	stale int // attempts again on another connection to s, after a stale one
	// queue and queued are the backend queue and the request's place in it while it
	// waits for a server slot; queueTimeout is what it gets when the wait times out.
	queue        *queue
	queued       *list.Element
	queueTimeout *queueError
	sticky       *Server // the server persistence chose, nil for none
	srv          *srvConn
	failed       *Server
	fail         failure
	// the response
	code     int
	body     h1.BodyFramer
	chunkify bool // close-delimited from the server, chunked to the client
	headSent bool // the response head went to the client
	bytesOut int
}

// free gives the exchange's scratch space back.
func (x *exchange) free() {
	if st := x.st; st != nil {
		x.st = nil
		st.free()
	}
}

func (c *httpConn) start() {
	l := c.l
	if c.draining { // the frontend shut down before the loop got to it
		unix.Close(c.fd)
		c.release()
		return
	}
	h := l.httpState()
	h.panics, h.log = c.f.d.metrics.panics, c.f.d.log
	l.SetFD(c.fd, c)
	// A new connection has client_header for its first request, as on the fasthttp
	// engine, where client_idle is for waits between requests.
	c.state = clientIdle
	c.arm(dueIdle, c.f.gen.Load().g.cfg.Timeouts.ClientHeader)
	c.want(unix.EPOLLIN)
}

// want sets what epoll reports for the client's socket.
func (c *httpConn) want(ev uint32) {
	if c.state == clientClosed {
		return
	}
	if e := c.l.Register(c.fd, &c.reg, ev); e != 0 {
		c.close("epoll_ctl", e)
	}
}

// arm sets the deadline of the current wait.
func (c *httpConn) arm(what dueKind, d time.Duration) {
	c.dueKind = what
	if d <= 0 {
		c.due = 0
		return
	}
	c.due = c.l.Now() + int64(d)
	t := &c.timer
	if t.Pending() && t.Due() <= c.due {
		return // fires first and finds the later deadline
	}
	c.l.Timers().Remove(t)
	if t.Fire == nil {
		t.Fire = c.fire
	}
	c.l.Timers().Add(t, c.due)
}

func (c *httpConn) fire(now int64) int64 {
	defer c.recoverPanic()
	if c.state == clientClosed || c.due == 0 {
		return 0
	}
	if c.due > now {
		return c.due
	}
	c.due = 0
	c.timeout()
	c.l.http.commit()
	return 0
}

func (c *httpConn) idle() {
	c.state = clientIdle
	c.arm(dueIdle, c.f.gen.Load().g.cfg.Timeouts.ClientIdle)
}

// timeout handles the passing of the current deadline.
func (c *httpConn) timeout() {
	switch c.dueKind {
	case dueIdle:
		c.close("", nil)
	case dueRequest:
		hg := c.f.gen.Load()
		c.answerClose(hg, fasthttp.StatusRequestTimeout, "request not received in time")
	case dueDelay:
		c.state = clientServer
		c.route()
	case dueQueue:
		x := &c.x
		qerr := x.queueTimeout
		x.queue.timedOut(x.queued)
		x.queue, x.queued, x.queueTimeout = nil, nil, nil
		c.answer(x.bs, fasthttp.StatusServiceUnavailable, qerr.Error())
	case dueServer:
		if srv := c.x.srv; srv != nil && srv.connecting {
			c.serverFailed(&connectError{addr: srv.pool.key.addr, err: os.ErrDeadlineExceeded})
			return
		}
		c.serverFailed(fasthttp.ErrTimeout)
	case dueAnswer:
		if c.x.srv != nil && c.x.headSent && len(c.out) == 0 {
			c.serverBodyFailed(errors.New("server stalled sending the body"))
			return
		}
		c.close("client stalled reading the answer", os.ErrDeadlineExceeded)
	}
}

// event handles the readiness of the client's socket.
func (c *httpConn) Event(ev uint32) {
	defer c.recoverPanic()
	c.f.d.metrics.panics.injected(panicHTTPLoop)
	c.ready(ev)
	c.l.http.commit()
}

// recoverPanic, deferred at each entry into the connection's code on the loop, turns a
// panic (a bug) into the close of this connection (panics.go).
func (c *httpConn) recoverPanic() {
	r := recover()
	if r == nil {
		return
	}
	c.f.d.metrics.panics.recovered(c.f.d.log, panicHTTPLoop, r, "frontend", c.f.gen.Load().g.cfg.Name, "client", c.ip)
	closeAfterPanic(func() { c.close("panic", nil) }, c.forceClose)
	if h := c.l.http; h != nil && h.staged == c {
		h.staged, h.wbuf = nil, h.wbuf[:0]
	}
}

// forceClose is close for a connection whose state a panic broke (close panicked too):
// it takes the descriptor out of the loop and closes it, at least.
func (c *httpConn) forceClose() {
	c.l.Remove(c.fd, &c.reg)
	c.l.Timers().Remove(&c.timer)
	unix.Close(c.fd)
	c.state = clientClosed
}

func (c *httpConn) ready(ev uint32) {
	if ev&unix.EPOLLOUT != 0 || (ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 && len(c.out) > 0) {
		c.flush()
		if c.state == clientClosed {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 && c.reg&unix.EPOLLIN != 0 {
		c.readable()
	}
}

// stop closes the connection because the loop quits.
func (c *httpConn) Stop() { c.close("", nil) }

// drain closes an idle connection and marks a busy one to close after its answer.
func (c *httpConn) drain() {
	if c.state == clientClosed {
		return
	}
	c.draining = true
	switch c.state {
	case clientNew: // start closes it
	case clientIdle:
		c.close("", nil)
	case clientDelayed: // as limiter.wait gives up on the fasthttp engine
		c.answer(nil, fasthttp.StatusServiceUnavailable, whatLimitStopped)
		c.l.http.commit()
	case clientQueued: // as queue.wait gives up
		c.leaveQueue()
		c.answer(c.x.bs, fasthttp.StatusServiceUnavailable, (&queueError{err: errQueueStopped}).Error())
		c.l.http.commit()
	}
}

// cut closes the connection whatever it is doing.
func (c *httpConn) cut() {
	if c.state == clientNew {
		c.draining = true // start closes it
		return
	}
	c.close("", nil)
}

// readable reads what the client sent and handles the requests it completes.
func (c *httpConn) readable() {
	h := c.l.httpState()
	buf := h.buf
	if len(c.in) > 0 {
		// Append to what is held; the buffer grows up to the head and body limits.
		if cap(c.in)-len(c.in) < loopReadSize {
			grown := make([]byte, len(c.in), 2*cap(c.in)+loopReadSize)
			copy(grown, c.in)
			c.in = grown
		}
		buf = c.in[len(c.in) : len(c.in)+loopReadSize]
	}
	n, e := rawIO(unix.SYS_READ, c.fd, buf)
	switch {
	case e == unix.EAGAIN || e == unix.EINTR:
		return
	case e != 0:
		c.close("reading the request", e)
		return
	case n == 0:
		c.clientEOF()
		return
	}
	if len(c.in) > 0 {
		c.in = c.in[:len(c.in)+n]
		c.process(c.in)
	} else {
		c.process(buf[:n])
	}
}

// clientEOF handles the client's FIN: an idle connection closes; a request in flight is
// answered first (a client may shut down its side after sending).
func (c *httpConn) clientEOF() {
	c.eof = true
	switch {
	case c.state == clientIdle:
		c.close("", nil)
	case c.state == clientHead: // cut short: fasthttp answers it (400), as it would have
		c.handOver(c.in, handoverCutShort)
	default: // answered first, and the complete requests held after it too
		c.want(c.reg &^ unix.EPOLLIN)
	}
}

// process handles the input b: the bytes held plus the new ones, or the new ones alone.
// What it does not take is kept in c.in.
func (c *httpConn) process(b []byte) {
	if c.state != clientIdle && c.state != clientHead {
		c.keep(b) // pipelined behind the request in flight
		c.want(c.reg &^ unix.EPOLLIN)
		return
	}
	hg := c.f.gen.Load()
	cfg := &hg.g.cfg
	if c.state == clientIdle {
		c.state = clientHead
		c.scan = h1.NewHeadScanner(cfg.MaxHeaderBytes)
		if c.requests > 0 { // the first request's client_header runs from the accept
			c.arm(dueRequest, cfg.Timeouts.ClientHeader)
		} else {
			c.dueKind = dueRequest
		}
	}
	if !hg.loop {
		c.handOver(b, hg.notLoop)
		return
	}
	start, end := c.headStart, c.headEnd
	if end == 0 {
		var err error
		if start, end, err = c.scan.Scan(b); err != nil {
			c.handOver(b, handoverHeadTooLarge) // fasthttp answers 431
			return
		}
		if end == 0 {
			if !h1.PlausibleHead(b[c.scan.Start():]) {
				c.handOver(b, handoverMalformed) // fasthttp answers 400 without waiting for the rest
				return
			}
			c.keep(b)
			return
		}
		c.headStart, c.headEnd, c.bodyAt = start, end, end
	}
	// The head is parsed again on every call while its body arrives: the loop's Request
	// serves all its connections.
	h := c.l.httpState()
	req := h.request()
	if err := req.Header.Read(h.reader(b[start:end], cfg.MaxHeaderBytes)); err != nil || h.br.Buffered() != 0 {
		c.handOver(b, handoverMalformed) // fasthttp answers it
		return
	}
	rh := &req.Header
	if why, ok := h.headHandover(rh); ok {
		c.handOver(b, why)
		return
	}
	// The body must be here, whole, within maxBufferedBody; it then has client_idle to
	// arrive, once, as on the fasthttp engine (headerReceived).
	bodyMax := min(cfg.MaxBodyBytes, maxBufferedBody)
	var bodyLen int
	switch cl := rh.ContentLength(); {
	case cl >= 0:
		if cl > bodyMax {
			c.handOver(b, handoverLargeBody)
			return
		}
		if len(b)-end < cl {
			c.waitBody(b, cfg.Timeouts.ClientIdle)
			return
		}
		bodyLen = cl
	case cl == -1:
		if c.bodyAt == end { // the first look at this body
			c.chunks = h1.NewBodyFramer(h1.BodyChunked, 0, int64(bodyMax))
		}
		n, done, err := c.chunks.Scan(b[c.bodyAt:]) // the bytes not looked at yet
		c.bodyAt += n
		switch {
		case errors.Is(err, h1.ErrBodyLimit), err == nil && !done && c.bodyAt-end >= maxBufferedBody:
			c.handOver(b, handoverLargeBody)
			return
		case err != nil:
			c.handOver(b, handoverBadBody)
			return
		}
		if !done {
			c.waitBody(b, cfg.Timeouts.ClientIdle)
			return
		}
		bodyLen = c.bodyAt - end
	}
	if bodyLen > 0 || rh.ContentLength() == -1 {
		// fasthttp's reader takes the body, as on the fasthttp engine: a body it would
		// refuse (a malformed chunk, say) is handed over for it to answer, and what goes
		// to the server is its rendering, never the client's framing.
		h.rd.Reset(b[end : end+bodyLen])
		h.br.Reset(&h.rd)
		if err := req.ContinueReadBody(h.br, bodyMax); err != nil || h.br.Buffered() != 0 || h.rd.Len() != 0 {
			c.handOver(b, handoverBadBody)
			return
		}
	}
	var delay time.Duration
	if hg.g.limit != nil {
		var ok bool
		if delay, ok = hg.rateLimit(rh, c.ip, &h.answer); !ok {
			hg.g.m.bytesIn.Add(float64(end - start + bodyLen))
			close := rh.ConnectionClose()
			c.take(b, end+bodyLen)
			c.state = clientAnswering
			n := c.writeOwn(rh.IsHead(), close || c.draining)
			hg.answered(nil, fasthttp.StatusTooManyRequests, 0, n)
			httpLoopCounters.served.Add(1)
			return
		}
	}
	if !c.startExchange(hg, end-start+bodyLen) {
		c.handOver(b, handoverUnrenderable)
		return
	}
	c.requests++
	c.take(b, end+bodyLen)
	c.readIfRoom()
	if delay > 0 {
		c.state = clientDelayed
		c.arm(dueDelay, delay)
		return
	}
	c.state = clientServer
	c.route()
}

// keep holds b, input not taken yet, as c.in: a copy, unless b is c.in already. What is
// held stays bounded: process hands the connection over before a head passes
// max_header_bytes or a body maxBufferedBody, and the client is not read while a
// pipelined request waits behind the one in flight (readIfRoom).
func (c *httpConn) keep(b []byte) {
	if len(c.in) > 0 && &b[0] == &c.in[0] {
		return
	}
	c.in = append(make([]byte, 0, max(2*len(b), loopReadSize)), b...)
}

// waitBody keeps b, a head whose body has not all arrived, and gives the body
// client_idle from the first time.
func (c *httpConn) waitBody(b []byte, idle time.Duration) {
	c.keep(b)
	if !c.bodyWait {
		c.bodyWait = true
		c.arm(dueRequest, idle)
	}
}

// take drops the first n bytes of the input b, the request just taken, keeping the rest
// in c.in.
func (c *httpConn) take(b []byte, n int) {
	c.headStart, c.headEnd, c.bodyAt, c.bodyWait = 0, 0, 0, false
	rest := b[n:]
	switch {
	case len(rest) == 0:
		c.in = nil
	case len(c.in) > 0 && &b[0] == &c.in[0]:
		c.in = c.in[:copy(c.in, rest)]
	default:
		c.in = append([]byte(nil), rest...)
	}
}

// startExchange sets up the exchange of the request just read into the loop's
// fasthttp.Request, n bytes on the wire; false when fasthttp cannot render it.
func (c *httpConn) startExchange(hg *httpGen, n int) bool {
	h := c.l.httpState()
	req := &h.req
	rh := &req.Header
	hg.g.m.bytesIn.Add(float64(n))
	bs := hg.route(req)
	b := bs.b
	st := newProxyState(bs, req, c.ip)
	x := &c.x
	*x = exchange{hg: hg, bs: bs, st: st, start: c.l.Now(), send: x.send[:0]}
	x.head = rh.IsHead()
	x.idem = x.head || idempotent(rh)
	x.close = rh.ConnectionClose()
	rewriteRequest(req, c.ip, st)
	if b.persist != nil { // before the head is rendered: it takes its cookie out
		x.sticky = b.persist.choose(req, c.ip, &st.persist)
	}
	// Rendered as the fasthttp engine's roundTrip writes it.
	h.out.b = x.send[:0]
	h.bw.Reset(&h.out)
	err := req.Write(h.bw)
	if err == nil {
		err = h.bw.Flush()
	}
	x.send = h.out.b
	h.out.b = nil
	if err != nil {
		x.free()
		*x = exchange{send: x.send[:0]}
		return false
	}
	return true
}

// appendWriter appends what is written to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// route picks a server for the request (again, after a failure) and starts the attempt.
func (c *httpConn) route() {
	x := &c.x
	b := x.bs.b
	var s *Server
	if x.try == 0 && x.sticky != nil && x.sticky.TryAcquire() {
		s = x.sticky
	}
	if s == nil && !b.limited {
		s, _ = b.acquire(&x.st.pick, nil) // b is not limited: this does not wait
	} else if s == nil {
		// backend.acquire without the wait: the request queues as a loop deadline.
		q := b.queue
		if q.n.Load() == 0 {
			s = b.tryPick(&x.st.pick)
		}
		if s == nil && (q.n.Load() > 0 || b.anyFull(&x.st.pick)) {
			c.enqueue(q)
			return
		}
	}
	c.use(s)
}

// enqueue makes the request wait in q, the backend's queue, for a server slot.
func (c *httpConn) enqueue(q *queue) {
	x := &c.x
	l := c.l
	e, timeout, qerr := q.joinLoop(func() { l.Post(c.dequeue) })
	if qerr != nil {
		c.answer(x.bs, fasthttp.StatusServiceUnavailable, qerr.Error())
		return
	}
	x.queue, x.queued, x.queueTimeout = q, e, timeout
	c.state = clientQueued
	c.arm(dueQueue, timeout.timeout)
	c.dequeue()
}

// dequeue tries for a server slot when the request is at the head of its queue.
func (c *httpConn) dequeue() {
	defer c.recoverPanic()
	x := &c.x
	if c.state != clientQueued || x.queued == nil || !x.queue.isHead(x.queued) {
		return
	}
	b := x.bs.b
	s := b.tryPick(&x.st.pick)
	if s == nil && b.anyFull(&x.st.pick) {
		return // waits for a slot
	}
	c.leaveQueue()
	c.state = clientServer
	c.use(s)
	c.l.http.commit()
}

// leaveQueue takes the request out of its queue.
func (c *httpConn) leaveQueue() {
	x := &c.x
	if x.queued != nil {
		x.queue.leave(x.queued)
		x.queue, x.queued, x.queueTimeout = nil, nil, nil
	}
}

// use starts an attempt on s, which has been acquired; nil answers that no server is
// available, or the last failure.
func (c *httpConn) use(s *Server) {
	x := &c.x
	b := x.bs.b
	if s == nil {
		if x.failed == nil {
			x.bs.noServer.Inc()
			c.answer(x.bs, fasthttp.StatusServiceUnavailable, "no server available for backend "+b.cfg.Name)
			return
		}
		c.answer(x.bs, x.fail.status, x.fail.describe(x.failed, b))
		return
	}
	sc := b.http.client(s)
	x.s, x.ss, x.pool = s, &x.bs.servers[sc.idx], sc.pool
	if x.try > 0 {
		x.bs.retries.Inc()
	}
	x.try++
	x.ss.sessions.inc2(x.hg.g.metrics.sessions, b.cfg.Name, s.Name)
	x.sent = c.l.Now()
	c.attempt()
}

// attempt sends the request to x.s, on a pooled connection or a new one.
func (c *httpConn) attempt() {
	x := &c.x
	b := x.bs.b
	c.arm(dueServer, b.cfg.Timeouts.Response)
	srv, err := c.l.serverConn(x.pool, x.s)
	if err != nil {
		c.serverFailed(err)
		return
	}
	x.srv = srv
	srv.c = c
	if srv.connecting {
		c.arm(dueServer, b.cfg.Timeouts.Connect) // sendRequest arms the response timeout
		return
	}
	srv.sendRequest()
}

// staleError reports whether err is how a pooled connection that the server has closed
// fails: the write is refused, or the read ends, before the first byte of an answer.
func staleError(err error) bool {
	var se *sendError
	return err == io.EOF || errors.As(err, &se)
}

// serverFailed ends the current attempt with err and retries or answers.
func (c *httpConn) serverFailed(err error) {
	x := &c.x
	s, b := x.s, x.bs.b
	if srv := x.srv; srv != nil && srv.reused && !srv.gotByte && x.idem && x.stale < maxStaleRetries && staleError(err) {
		// A pooled connection the server closed while it sat idle, as a server may at
		// any time: the request goes again to the same server on another connection, and
		// the server is not blamed.
		x.stale++
		x.srv = nil
		srv.close()
		c.attempt()
		return
	}
	if srv := x.srv; srv != nil {
		x.srv = nil
		srv.close()
	}
	fl := classify(err, x.idem)
	elapsed := time.Duration(c.l.Now() - x.sent)
	if fl.reason == reasonTimeout {
		s.Release(elapsed)
	} else {
		s.Release(0)
	}
	c.f.attemptFailed(x.hg, x.bs, x.ss, s, fl, x.try, err)
	x.failed, x.fail = s, fl
	x.s = nil
	if x.try > b.retries || !fl.retry {
		c.answer(x.bs, fl.status, fl.describe(s, b))
		return
	}
	x.st.pick.Exclude = append(x.st.pick.Exclude, s)
	c.route()
}

// answer writes lbd's own answer to the request in flight.
func (c *httpConn) answer(bs *backendStats, code int, what string) {
	x := &c.x
	n := c.renderAnswer(code, what, x.head, x.close || c.draining)
	x.hg.answered(bs, code, time.Duration(c.l.Now()-x.start), n)
	httpLoopCounters.served.Add(1)
	c.state = clientAnswering
	c.exchangeDone()
}

// answerClose answers a request the loop could not read, and closes.
func (c *httpConn) answerClose(hg *httpGen, code int, what string) {
	n := c.renderAnswer(code, what, false, true)
	hg.answered(nil, code, 0, n)
	c.state = clientAnswering // closes once the answer is out (commit, flush)
}

// renderAnswer writes lbd's answer, made by writeAnswer as on the fasthttp engine, and
// returns the size of its body. A HEAD request gets the head alone.
func (c *httpConn) renderAnswer(code int, what string, head, close bool) int {
	writeAnswer(&c.l.httpState().answer, code, what)
	return c.writeOwn(head, close)
}

// writeOwn writes lbd's answer, made in the loop's answer Response, with its length and
// close as the fasthttp server adds them, and returns the size of its body. A HEAD
// request gets the head alone.
func (c *httpConn) writeOwn(head, close bool) int {
	h := c.l.httpState()
	resp := &h.answer
	resp.Header.SetContentLength(len(resp.Body()))
	if close {
		resp.Header.SetConnectionClose()
		c.closing = true
	}
	h.hbuf = resp.Header.AppendBytes(h.hbuf[:0])
	c.write(h.hbuf)
	if head {
		return 0
	}
	c.write(resp.Body())
	return len(resp.Body())
}

// respond forwards the response head the server srv sent: fixResponse, then as the
// fasthttp engine's server writes it.
func (c *httpConn) respond(rh *fasthttp.ResponseHeader) {
	x := &c.x
	x.code = rh.StatusCode()
	switch cl := rh.ContentLength(); {
	case x.head || x.code < 200 || x.code == fasthttp.StatusNoContent || x.code == fasthttp.StatusNotModified:
		x.body = h1.NewBodyFramer(h1.BodyNone, 0, 0)
	case cl >= 0:
		x.body = h1.NewBodyFramer(h1.BodyLength, int64(cl), 0)
	case cl == -1:
		x.body = h1.NewBodyFramer(h1.BodyChunked, 0, 0)
	default:
		x.body = h1.NewBodyFramer(h1.BodyClose, 0, 0)
		x.chunkify = true
		rh.SetContentLength(-1) // chunked to the client
	}
	fixResponse(rh, x.st)
	if p := x.bs.b.persist; p != nil {
		p.record(rh, x.s, &x.st.persist)
	}
	if x.close || c.draining {
		rh.SetConnectionClose()
		c.closing = true
	}
	x.headSent = true
	c.state = clientAnswering
	c.arm(dueAnswer, x.bs.b.cfg.Timeouts.Response)
	h := c.stage()
	h.wbuf = rh.AppendBytes(h.wbuf)
}

// forward writes body bytes of the response; done when it is complete.
func (c *httpConn) forward(p []byte) {
	x := &c.x
	if x.chunkify {
		if len(p) == 0 {
			return
		}
		var hdr [20]byte
		h := h1.AppendChunkSize(hdr[:0], len(p))
		h = append(h, '\r', '\n')
		c.write(h)
		c.write(p)
		c.write(crlf)
		x.bytesOut += len(p) // the body, as the fasthttp engine counts it
		return
	}
	x.bytesOut += len(p)
	c.write(p)
}

var (
	crlf      = []byte("\r\n")
	lastChunk = []byte("0\r\n\r\n")
)

// responseDone ends an exchange whose response went whole to the client (or is in
// c.out); reuse tells whether the server connection may serve another request.
func (c *httpConn) responseDone(reuse bool) {
	x := &c.x
	if x.chunkify {
		c.write(lastChunk)
		x.bytesOut += len(lastChunk)
	}
	elapsed := time.Duration(c.l.Now() - x.sent)
	x.s.Release(elapsed)
	x.hg.served(x.bs, x.ss, x.s, x.code, time.Duration(c.l.Now()-x.start))
	x.hg.g.m.bytesOut.Add(float64(x.bytesOut))
	if srv := x.srv; srv != nil {
		x.srv = nil
		srv.c = nil
		if reuse {
			c.l.putServerConn(srv)
		} else {
			srv.close()
		}
	}
	httpLoopCounters.served.Add(1)
	c.exchangeDone()
}

// exchangeDone frees the exchange; the connection goes on once the answer is written.
func (c *httpConn) exchangeDone() {
	x := &c.x
	x.free()
	send := x.send[:0]
	if cap(send) > loopKeepBuf {
		send = nil
	}
	*x = exchange{send: send}
	if !c.pending() {
		c.next()
	}
}

// next starts on the next request once an answer is written whole.
func (c *httpConn) next() {
	if c.x.hg != nil || c.state == clientClosed {
		return
	}
	if c.draining || c.closing || c.eof && len(c.in) == 0 {
		c.close("", nil)
		return
	}
	c.idle()
	if len(c.in) > 0 {
		c.process(c.in)
	}
	if c.eof && (c.state == clientIdle || c.state == clientHead) {
		c.handOver(c.in, handoverCutShort) // fasthttp answers it
		return
	}
	c.readIfRoom()
}

// readIfRoom reads the client while it may send what the loop will take: always
// between requests and within one, and during a request only while nothing of the
// next is held (pipelined requests wait in the client's socket, not in lbd).
func (c *httpConn) readIfRoom() {
	switch {
	case c.state == clientClosed:
	case c.state == clientIdle, c.state == clientHead, len(c.in) == 0 && !c.eof:
		c.want(c.reg | unix.EPOLLIN)
	default:
		c.want(c.reg &^ unix.EPOLLIN)
	}
}

// write stages p for the client in the loop's write buffer; commit sends what the
// event staged in one write(2) (writeNow).
func (c *httpConn) write(p []byte) {
	if c.state == clientClosed || len(p) == 0 {
		return
	}
	h := c.stage()
	h.wbuf = append(h.wbuf, p...)
}

// stage makes c the client that the loop's write buffer is for.
func (c *httpConn) stage() *loopHTTP {
	h := c.l.http
	if h.staged != c {
		h.commit()
		h.staged = c
	}
	return h
}

// commit writes what the event that ends queued for a client, in one write(2), and
// starts on the client's next request once its answer is out.
func (h *loopHTTP) commit() {
	for h.staged != nil {
		c := h.staged
		h.staged = nil
		if c.state != clientClosed {
			c.writeNow(h.wbuf)
		}
		h.wbuf = h.wbuf[:0]
		if c.state == clientAnswering && c.x.hg == nil && len(c.out) == 0 {
			c.next()
		}
	}
	if cap(h.wbuf) > 4*loopReadSize {
		h.wbuf = nil
	}
}

// pending reports whether bytes of an answer wait to be written to the client.
func (c *httpConn) pending() bool { return len(c.out) > 0 || c.l.http.staged == c }

// writeNow writes p to the client, keeping in c.out what the socket does not take.
func (c *httpConn) writeNow(p []byte) {
	if len(c.out) > 0 {
		c.out = append(c.out, p...)
		return
	}
	n, e := rawIO(unix.SYS_WRITE, c.fd, p)
	if e == unix.EAGAIN || e == unix.EINTR {
		n, e = 0, 0
	}
	if e != 0 {
		c.close("writing the answer", e)
		return
	}
	if n < len(p) {
		c.out = append(c.out, p[n:]...)
		c.want(c.reg | unix.EPOLLOUT)
		if srv := c.x.srv; srv != nil {
			srv.want(srv.reg &^ unix.EPOLLIN) // backpressure
		}
		c.arm(dueAnswer, c.f.gen.Load().g.cfg.Timeouts.ClientIdle)
	}
}

// flush writes what c.out holds.
func (c *httpConn) flush() {
	if len(c.out) == 0 {
		c.want(c.reg &^ unix.EPOLLOUT)
		return
	}
	n, e := rawIO(unix.SYS_WRITE, c.fd, c.out)
	if e == unix.EAGAIN || e == unix.EINTR {
		return
	}
	if e != 0 {
		c.close("writing the answer", e)
		return
	}
	c.arm(dueAnswer, c.f.gen.Load().g.cfg.Timeouts.ClientIdle)
	if n < len(c.out) {
		c.out = c.out[:copy(c.out, c.out[n:])]
		return
	}
	c.out = c.out[:0]
	if cap(c.out) > loopKeepBuf {
		c.out = nil
	}
	c.want(c.reg &^ unix.EPOLLOUT)
	if srv := c.x.srv; srv != nil && !srv.connecting {
		srv.want(srv.reg | unix.EPOLLIN)
		c.arm(dueAnswer, c.x.bs.b.cfg.Timeouts.Response)
		return
	}
	if c.x.hg == nil {
		c.next()
	}
}

// handOver gives the connection to the fasthttp engine for the reason why, replaying
// b, the bytes read and not yet answered.
func (c *httpConn) handOver(b []byte, why handover) {
	prefix := append([]byte(nil), b...)
	c.in = nil
	c.detach()
	file := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(file)
	file.Close()
	if err != nil {
		c.f.d.log.Debug("http connection could not be handed to the fasthttp engine", "err", err)
		c.release()
		return
	}
	httpLoopCounters.handedOver.Add(1)
	c.f.gen.Load().handedOver(why)
	var conn net.Conn = nc
	if tc, ok := nc.(*net.TCPConn); ok && c.remote != nil {
		conn = &proxiedConn{TCPConn: tc, remote: c.remote, local: c.local}
	}
	hand := &handedConn{replayConn: replayConn{Conn: conn, prefix: prefix}, gauge: c.gauge}
	f := c.f
	f.wg.Add(1)
	c.f.loops.remove(c)
	go func() {
		defer f.wg.Done()
		if !f.deliver(hand) {
			hand.Close()
			hand.gauge.Dec()
			f.open.Add(-1)
			f.wake()
		}
	}()
}

// detach takes the client's descriptor out of the loop without closing it.
func (c *httpConn) detach() {
	c.l.Remove(c.fd, &c.reg)
	c.l.Timers().Remove(&c.timer)
	c.state = clientClosed
	if srv := c.x.srv; srv != nil {
		c.x.srv = nil
		srv.close()
	}
}

// close closes the connection at once; why and err say why when it failed.
func (c *httpConn) close(why string, err error) {
	if c.state == clientClosed {
		return
	}
	if h := c.l.http; h != nil && h.staged == c {
		// What this event wrote goes out first, best effort: a client whose answer is
		// cut gets as much of it as lbd had.
		h.staged = nil
		if len(c.out) == 0 {
			rawIO(unix.SYS_WRITE, c.fd, h.wbuf)
		}
		h.wbuf = h.wbuf[:0]
	}
	x := &c.x
	if x.s != nil { // the request in flight is abandoned
		x.s.Release(0)
		x.s = nil
	}
	c.leaveQueue()
	x.free()
	c.detach()
	unix.Close(c.fd)
	if err != nil {
		c.f.d.log.Debug("http connection failed", "op", why, "err", err)
	}
	c.release()
}

// release counts a connection the loop is done with.
func (c *httpConn) release() {
	c.state = clientClosed
	c.f.loops.remove(c)
	c.gauge.Dec()
	c.f.open.Add(-1)
	c.f.wake()
}

// srvConn is a connection to a server on a loop: in use by one client connection, or
// idle in the loop's pool.
type srvConn struct {
	l    *eventLoop
	fd   int
	reg  uint32
	pool *serverPool
	s    *Server
	c    *httpConn // nil while idle

	connecting bool
	reused     bool // it came from the pool: the server may have closed it meanwhile
	sendOff    int
	in         []byte // a response head that came in pieces
	trailer    []byte // the trailer section of a chunked response, until it is whole
	scan       h1.HeadScanner
	interim    int
	headDone   bool
	gotByte    bool
	reuse      bool
	timer      evloop.Timer
}

// serverConn returns an idle connection of p's pool on this loop, or a new one, which
// is connecting.
func (l *eventLoop) serverConn(p *serverPool, s *Server) (*srvConn, error) {
	h := l.httpState()
	if idle := h.pools[p]; len(idle) > 0 {
		srv := idle[len(idle)-1]
		idle[len(idle)-1] = nil
		h.pools[p] = idle[:len(idle)-1]
		l.Timers().Remove(&srv.timer)
		srv.reset()
		srv.reused = true
		return srv, nil
	}
	p.loopConns.Add(1)
	ap, err := netip.ParseAddrPort(p.key.addr)
	if err != nil {
		p.loopConns.Add(-1)
		return nil, &connectError{addr: p.key.addr, err: err}
	}
	fd, err := connectNonblock(ap)
	if err != nil {
		p.loopConns.Add(-1)
		return nil, &connectError{addr: p.key.addr, err: err}
	}
	srv := &srvConn{l: l, fd: fd, pool: p, s: s, connecting: true}
	srv.reset()
	l.SetFD(fd, srv)
	srv.want(unix.EPOLLOUT)
	return srv, nil
}

func (srv *srvConn) reset() {
	srv.sendOff, srv.in, srv.trailer, srv.interim, srv.headDone, srv.gotByte, srv.reuse = 0, nil, nil, 0, false, false, true
	srv.scan = h1.NewHeadScanner(serverBufferSize)
}

// connectNonblock starts a TCP connection to ap.
func connectNonblock(ap netip.AddrPort) (int, error) {
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return -1, os.NewSyscallError("connect", err)
	}
	return fd, nil
}

// quiet reports whether a server connection has nothing to read: bytes after a complete
// response, or its close, mean it must not carry another request (nginx's keepalive
// checks the same before it keeps a connection).
func quiet(fd int) bool {
	var b [1]byte
	// A raw recvfrom(2): unix.Recvfrom allocates the peer's address on every call.
	_, _, e := syscall.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return e == unix.EAGAIN
}

// connQuiet is quiet for a pooled connection of the fasthttp engine; true for a
// connection that is not plain TCP (TLS: its bytes cannot be peeked at).
func connQuiet(c net.Conn) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return true
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return true
	}
	q := true
	rc.Control(func(fd uintptr) { q = quiet(int(fd)) })
	return q
}

// idleShare is the part of a pool's size, the most idle connections kept to a server,
// that each loop may keep.
func (l *eventLoop) idleShare(size int) int {
	n := max(1, l.n)
	return max(1, (size+n-1)/n)
}

// putServerConn keeps srv for another request, unless its pool is retired or this
// loop's share of it is full.
func (l *eventLoop) putServerConn(srv *srvConn) {
	p := srv.pool
	h := l.httpState()
	if p.retired.Load() || len(h.pools[p]) >= l.idleShare(p.key.size) || len(srv.in) > 0 || !quiet(srv.fd) {
		srv.close()
		return
	}
	h.pools[p] = append(h.pools[p], srv)
	srv.want(unix.EPOLLIN) // a close or anything else from an idle server ends it
	if srv.timer.Fire == nil {
		srv.timer.Fire = srv.idleFire
	}
	l.Timers().Add(&srv.timer, l.Now()+int64(poolIdleTimeout))
}

func (srv *srvConn) idleFire(now int64) int64 {
	if srv.c == nil && srv.fd >= 0 {
		srv.close()
	}
	return 0
}

func (srv *srvConn) want(ev uint32) {
	if srv.fd < 0 {
		return
	}
	if e := srv.l.Register(srv.fd, &srv.reg, ev); e != 0 {
		srv.fail(&net.OpError{Op: "epoll_ctl", Err: e})
	}
}

// close closes the connection and takes it out of its pool.
func (srv *srvConn) close() {
	if srv.fd < 0 {
		return
	}
	l := srv.l
	if srv.c == nil {
		h := l.httpState()
		idle := h.pools[srv.pool]
		for i, x := range idle {
			if x == srv {
				idle = append(idle[:i], idle[i+1:]...)
				break
			}
		}
		if len(idle) == 0 {
			delete(h.pools, srv.pool)
		} else {
			h.pools[srv.pool] = idle
		}
	}
	l.Remove(srv.fd, &srv.reg)
	l.Timers().Remove(&srv.timer)
	unix.Close(srv.fd)
	srv.fd = -1
	srv.pool.loopConns.Add(-1)
}

// fail ends the attempt on srv with err: the client retries or answers.
func (srv *srvConn) fail(err error) {
	c := srv.c
	if c == nil {
		srv.close()
		return
	}
	if c.x.headSent {
		c.serverBodyFailed(err)
		return
	}
	c.serverFailed(err)
}

// serverBodyFailed handles a server connection that failed after the answer started:
// the client connection cannot be given a complete answer and closes.
func (c *httpConn) serverBodyFailed(err error) {
	x := &c.x
	if x.s != nil {
		// Counted by its status, as the answer started, and as a server error, as
		// HAProxy counts a server abort.
		x.s.Release(time.Duration(c.l.Now() - x.sent))
		x.hg.served(x.bs, x.ss, x.s, x.code, time.Duration(c.l.Now()-x.start))
		x.hg.g.m.bytesOut.Add(float64(x.bytesOut))
		x.ss.errors[reasonReset].inc3(x.hg.g.metrics.errors, x.bs.b.cfg.Name, x.s.Name, reasonNames[reasonReset])
		x.s = nil
	}
	c.close("server connection failed during the answer", err)
}

func (srv *srvConn) Stop() {
	if srv.c != nil {
		srv.c.close("", nil)
	}
	srv.close()
}

// event handles the readiness of a server connection.
func (srv *srvConn) Event(ev uint32) {
	defer srv.recoverPanic()
	srv.l.http.panics.injected(panicHTTPLoopSrv)
	srv.ready(ev)
	srv.l.http.commit()
}

// recoverPanic is httpConn.recoverPanic for a server connection: the client connection
// it serves, if any, closes with it.
func (srv *srvConn) recoverPanic() {
	r := recover()
	if r == nil {
		return
	}
	h := srv.l.http
	if c := srv.c; c != nil {
		h.panics.recovered(h.log, panicHTTPLoopSrv, r, "frontend", c.f.gen.Load().g.cfg.Name, "client", c.ip, "server", srv.pool.key.addr)
		closeAfterPanic(func() { c.close("panic", nil) }, c.forceClose)
	} else {
		h.panics.recovered(h.log, panicHTTPLoopSrv, r, "server", srv.pool.key.addr)
	}
	closeAfterPanic(srv.close, func() {
		srv.l.Remove(srv.fd, &srv.reg)
		unix.Close(srv.fd)
		srv.fd = -1
	})
}

func (srv *srvConn) ready(ev uint32) {
	if srv.c == nil { // idle: the server closed it, or sent what it must not
		srv.close()
		return
	}
	if srv.connecting {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		srv.connecting = false
		if e, _ := unix.GetsockoptInt(srv.fd, unix.SOL_SOCKET, unix.SO_ERROR); e != 0 {
			srv.fail(&connectError{addr: srv.pool.key.addr, err: os.NewSyscallError("connect", syscall.Errno(e))})
			return
		}
		srv.sendRequest()
		return
	}
	if ev&unix.EPOLLOUT != 0 && srv.sendOff < len(srv.c.x.send) {
		srv.sendRequest()
		if srv.c == nil || srv.fd < 0 {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 && srv.reg&unix.EPOLLIN != 0 {
		srv.readable()
	}
}

// sendRequest writes (the rest of) the request.
func (srv *srvConn) sendRequest() {
	c := srv.c
	send := c.x.send
	if srv.sendOff == 0 {
		c.arm(dueServer, c.x.bs.b.cfg.Timeouts.Response)
	}
	// The server is read unless the client has bytes pending (backpressure): it may
	// answer before it has the whole request.
	var in uint32
	if len(c.out) == 0 {
		in = unix.EPOLLIN
	}
	for srv.sendOff < len(send) {
		n, e := rawIO(unix.SYS_WRITE, srv.fd, send[srv.sendOff:])
		if e == unix.EAGAIN {
			srv.want(unix.EPOLLOUT | in)
			return
		}
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			srv.fail(&sendError{os.NewSyscallError("write", e)})
			return
		}
		srv.sendOff += n
	}
	srv.want(in)
}

// readable reads the server's response: its head, then body bytes for the client.
func (srv *srvConn) readable() {
	h := srv.l.httpState()
	n, e := rawIO(unix.SYS_READ, srv.fd, h.buf)
	switch {
	case e == unix.EAGAIN || e == unix.EINTR:
		return
	case e != 0:
		if !srv.gotByte {
			srv.fail(io.EOF) // as fasthttp's Header.Read sees any error before the first byte
			return
		}
		srv.fail(os.NewSyscallError("read", e))
		return
	case n == 0:
		srv.eof()
		return
	}
	srv.gotByte = true
	p := h.buf[:n]
	if !srv.headDone {
		srv.head(p)
		return
	}
	c := srv.c
	c.arm(dueAnswer, c.x.bs.b.cfg.Timeouts.Response) // a stall, not the whole body
	srv.body(p)
}

// eof handles the server's FIN.
func (srv *srvConn) eof() {
	c := srv.c
	switch {
	case !srv.headDone && !srv.gotByte:
		srv.fail(io.EOF)
	case !srv.headDone:
		// A head cut by the close: what fasthttp's Header.Read makes of the bytes since
		// the last answer, as on the fasthttp engine (readHead): nothing but empty lines
		// is no answer, a bad first line an invalid one, else a cut one.
		h := srv.l.httpState()
		srv.fail(headReadError(h.resp.Read(h.reader(srv.in, serverBufferSize))))
	default:
		if err := c.x.body.EOF(); err != nil {
			srv.fail(err)
			return
		}
		c.responseDone(false)
	}
}

// head takes bytes of a response head.
func (srv *srvConn) head(p []byte) {
	c := srv.c
	b := p
	if len(srv.in) > 0 {
		srv.in = append(srv.in, p...)
		b = srv.in
	}
	for {
		start, end, err := srv.scan.Scan(b)
		if err != nil {
			srv.fail(&fasthttp.ErrSmallBuffer{})
			return
		}
		if end == 0 {
			if len(srv.in) == 0 {
				srv.in = append([]byte(nil), b...)
			}
			return
		}
		h := srv.l.httpState()
		rh := &h.resp
		if err := rh.Read(h.reader(b[start:end], serverBufferSize)); err != nil || h.br.Buffered() != 0 {
			if err == nil {
				err = errors.New("malformed response head")
			}
			srv.fail(err)
			return
		}
		code := rh.StatusCode()
		if code == fasthttp.StatusSwitchingProtocols {
			srv.fail(errUpgrade)
			return
		}
		if code < 200 {
			srv.interim++
			if srv.interim >= maxInterim {
				srv.fail(errTooManyInterim)
				return
			}
			srv.scan = h1.NewHeadScanner(serverBufferSize)
			if len(b) == end {
				srv.in = nil
				return
			}
			srv.in = append([]byte(nil), b[end:]...) // the scanner's offsets start here
			b = srv.in
			continue
		}
		srv.headDone = true
		srv.reuse = !rh.ConnectionClose()
		rest := b[end:]
		srv.in = nil
		c.respond(rh)
		if c.state == clientClosed {
			return
		}
		srv.body(rest)
		return
	}
}

// body forwards response body bytes to the client.
func (srv *srvConn) body(p []byte) {
	c := srv.c
	x := &c.x
	n, done, err := x.body.Scan(p)
	if err != nil {
		srv.fail(err)
		return
	}
	fwd := p[:n]
	if at, ok := x.body.TrailerAt(); ok {
		// The trailer section is held until it is whole and checked, as the fasthttp
		// engine's ReadTrailer checks it (no framing or routing fields).
		srv.trailer = append(srv.trailer, p[at:n]...)
		fwd = p[:at]
	}
	c.forward(fwd)
	if c.state == clientClosed {
		return
	}
	if done && len(srv.trailer) > 0 {
		t := srv.trailer
		srv.trailer = nil
		if err := c.l.httpState().checkTrailer(t); err != nil {
			srv.fail(err)
			return
		}
		c.forward(t)
	}
	if done {
		// A server that answered before it had the whole request (a 413, say) may
		// not expect the rest as a next request: its connection is not reused.
		reuse := srv.reuse && n == len(p) && x.body.Kind() != h1.BodyClose && srv.sendOff == len(x.send)
		c.responseDone(reuse)
	}
}

// closeLoopIdle closes the idle connections of p that the event loops hold, as
// HostClient.CloseIdleConnections does for the fasthttp engine's.
func (p *serverPool) closeLoopIdle(loops *eventLoops) {
	for _, l := range loops.running() {
		l.Post(func() {
			if l.http == nil {
				return
			}
			for _, srv := range slices.Clone(l.http.pools[p]) {
				srv.close()
			}
		})
	}
}
