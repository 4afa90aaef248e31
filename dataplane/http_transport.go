package dataplane

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"lbd/dataplane/internal/h1"
)

// HTTP transport tuning. See the comment at the top of http.go for the reasoning.
const (
	// poolIdleTimeout closes a pooled server connection that has not been used for this
	// long. It is shorter than the keep-alive timeouts common servers use (Node.js 5s,
	// nginx 75s), so that lbd, not the server, closes idle connections: a request sent
	// on a connection the server is closing at that moment fails with an empty answer.
	poolIdleTimeout = 4 * time.Second
	// maxBufferedBody is the largest response body, by Content-Length, that is read
	// whole before the response is sent to the client. Larger bodies and bodies
	// without a length stream.
	maxBufferedBody = 64 << 10
	// maxHTTP10Body bounds a response of unknown length for an HTTP/1.0 client, which
	// cannot take chunked encoding: it is read whole to learn its length.
	maxHTTP10Body = 16 << 20
	// serverBufferSize is the size of the buffers used to talk to a server; the read
	// buffer bounds the size of a response's header block.
	serverBufferSize = 16 << 10
	// maxInterim bounds the 1xx responses skipped before a final one.
	maxInterim = 16
	// minUploadRate, in bytes per second, gives a large request body time to reach the
	// server beyond the response timeout.
	minUploadRate = 64 << 10
)

// httpTransport holds the connection pools of one backend generation: one pool per
// server. Pools outlive generations: a reload that keeps a server's name, address and
// pool settings keeps its pool, and with it the idle connections.
type httpTransport struct {
	// timeout bounds the wait for a response's headers, and a stall in its body.
	timeout time.Duration
	// clients[i] talks to the backend's servers[i].
	clients []*serverClient
	// byServer finds a client for backends with many servers; nil for few.
	byServer map[*Server]*serverClient
}

// serverClient is one server as the transport of one generation sees it.
type serverClient struct {
	srv  *Server
	idx  int // position in backend.servers
	pool *serverPool
}

// serverPool is the connection pool to one server. fasthttp's HostClient keeps the
// connections; lbd does the HTTP round trip on them itself (see roundTrip).
type serverPool struct {
	key  poolKey
	host *fasthttp.HostClient
	// retired is set when no generation uses the pool any more: connections coming back
	// from requests still in flight are closed instead of kept.
	retired atomic.Bool
	// loopConns counts the connections the event loops hold to the server
	// (httploop_linux.go). Unlike the HostClient's, they are not bounded: pool_size
	// bounds the idle ones (idleShare per loop), as nginx's keepalive does.
	loopConns atomic.Int32
}

// poolKey is what a pool is built from; a pool is reused while its key stays the same.
type poolKey struct {
	name, addr string
	size       int
	connect    time.Duration
	tls        string // backendTLS.key; "" for plain connections
}

// byServerMin is the server count from which httpTransport looks servers up by map
// rather than by scanning.
const byServerMin = 8

func newHTTPTransport(b *backend, prev *httpTransport) *httpTransport {
	t := &httpTransport{timeout: b.cfg.Timeouts.Response}
	var old map[poolKey]*serverPool
	if prev != nil {
		old = make(map[poolKey]*serverPool, len(prev.clients))
		for _, c := range prev.clients {
			old[c.pool.key] = c.pool
		}
	}
	for i, s := range b.servers {
		k := poolKey{name: s.Name, addr: s.Addr, size: b.cfg.PoolSize, connect: b.cfg.Timeouts.Connect}
		if b.tls != nil {
			k.tls = b.tls.key
		}
		p := old[k]
		if p == nil {
			p = newServerPool(k, b.tls)
		}
		t.clients = append(t.clients, &serverClient{srv: s, idx: i, pool: p})
	}
	if len(t.clients) >= byServerMin {
		t.byServer = make(map[*Server]*serverClient, len(t.clients))
		for _, c := range t.clients {
			t.byServer[c.srv] = c
		}
	}
	return t
}

func newServerPool(k poolKey, bt *backendTLS) *serverPool {
	dialer := &net.Dialer{Timeout: k.connect}
	return &serverPool{key: k, host: &fasthttp.HostClient{
		Addr: k.addr,
		Dial: func(addr string) (net.Conn, error) {
			c, err := dialer.Dial("tcp", addr)
			if err == nil && bt != nil { // the handshake is part of connecting (tls.go)
				c, err = dialTLS(c, bt.clientConfig(addr), k.connect)
			}
			if err != nil {
				return nil, &connectError{addr: addr, err: err}
			}
			return &pooledConn{Conn: c}, nil
		},
		MaxConns:            k.size,
		MaxConnWaitTimeout:  k.connect,
		MaxIdleConnDuration: poolIdleTimeout,
		ConnPoolStrategy:    fasthttp.LIFO,
		ReadBufferSize:      serverBufferSize,
		WriteBufferSize:     serverBufferSize,
		// The fields below matter only to HostClient.Do, which lbd does not call; they
		// are set so that a future use of Do behaves as a proxy should.
		MaxIdemponentCallAttempts:     1,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}}
}

// retire closes the idle connections of the pools that next does not use, in the
// fasthttp engine and on loops, and makes those pools close the connections still in use
// when they come back. A nil next retires every pool.
func (t *httpTransport) retire(next *httpTransport, loops *eventLoops) {
	if t == nil {
		return
	}
	keep := map[*serverPool]bool{}
	if next != nil {
		for _, c := range next.clients {
			keep[c.pool] = true
		}
	}
	for _, c := range t.clients {
		if keep[c.pool] {
			continue
		}
		c.pool.retired.Store(true)
		c.pool.host.CloseIdleConnections()
		c.pool.closeLoopIdle(loops)
	}
}

// client returns the client for s, one of the backend's servers.
func (t *httpTransport) client(s *Server) *serverClient {
	if t.byServer != nil {
		return t.byServer[s]
	}
	for _, c := range t.clients {
		if c.srv == s {
			return c
		}
	}
	return nil
}

// bodyError is a failure while reading a response body, after the server started to
// answer.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading response body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

var (
	errUpgrade         = errors.New("server switched protocols, which lbd did not ask for")
	errTooManyInterim  = errors.New("too many 1xx responses")
	errBodyTooLarge10  = fmt.Errorf("response of unknown length over %d bytes for an HTTP/1.0 client", maxHTTP10Body)
	errUnexpectedClose = io.ErrUnexpectedEOF
)

// roundTrip sends req to sc's server and reads the response into resp: the head, and
// the body when it is small. A larger body, or one of unknown length, stays on the
// connection; resp gets a body stream that the fasthttp server reads while it writes
// the response to the client, and that puts the connection back when done.
//
// fasthttp's own HostClient.Do is not used: it sets one absolute read deadline over the
// whole response, which would cut a long download at the response timeout, and it
// either streams every response (several allocations each) or none.
func (t *httpTransport) roundTrip(sc *serverClient, req *fasthttp.Request, resp *fasthttp.Response, x roundTripOpts) error {
	for stale := 0; ; stale++ {
		err := t.roundTripOnce(sc, req, resp, x)
		// A pooled connection the server closed while it sat idle, as a server may at
		// any time: an idempotent request goes again to the same server on another
		// connection, and the server is not blamed (the loop engine does the same).
		var se *staleConnError
		if !errors.As(err, &se) {
			return err
		}
		if !x.idem || stale >= maxStaleRetries || x.body != nil && x.body.started {
			return se.err
		}
	}
}

// maxStaleRetries bounds how often a request goes again to the same server after a
// pooled connection turned out to be closed.
const maxStaleRetries = 2

// staleConnError is a failure of a pooled connection before the first byte of an
// answer, which is what a connection the server has closed meanwhile gives.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string { return e.err.Error() }

// pooledConn is a server connection of a HostClient; used tells whether a round trip has
// had it before. While idle is set, every read has idle to return (the response timeout
// bounds each wait for the server, not the whole answer, as HAProxy's timeout server).
type pooledConn struct {
	net.Conn
	used bool
	idle time.Duration
}

func (c *pooledConn) Read(p []byte) (int, error) {
	if c.idle > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(p)
}

func (t *httpTransport) roundTripOnce(sc *serverClient, req *fasthttp.Request, resp *fasthttp.Response, x roundTripOpts) error {
	p := sc.pool
	host := p.host
	cc, err := host.AcquireConn(0, false)
	if err != nil {
		return err
	}
	conn := cc.Conn()
	reused := false
	for tries := 0; ; tries++ {
		pc, ok := conn.(*pooledConn) // one round trip at a time has it
		if !ok {
			break
		}
		reused, pc.used, pc.idle = pc.used, true, t.timeout
		// A pooled connection with something to read (the server closed it, or sent
		// bytes after its last answer) is not used; nginx's keepalive checks the same.
		if !reused || tries >= maxStaleRetries || connQuiet(pc.Conn) {
			break
		}
		host.CloseConn(cc)
		if cc, err = host.AcquireConn(0, false); err != nil {
			return err
		}
		conn = cc.Conn()
	}
	// Sending the request has the response timeout, and a large body extra time, at
	// minUploadRate; reading has it for each wait (pooledConn.Read pushes the deadline).
	// A streamed body pushes the deadline by the response timeout as it goes.
	deadline := time.Now().Add(t.timeout)
	if x.body != nil {
		x.body.conn, x.body.timeout = conn, t.timeout
	} else if n := len(req.Body()); n > maxBufferedBody {
		deadline = deadline.Add(time.Duration(n/minUploadRate) * time.Second)
	}
	if err := conn.SetWriteDeadline(deadline); err != nil {
		host.CloseConn(cc)
		return &sendError{err}
	}
	bw := host.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	host.ReleaseWriter(bw)
	start := time.Now()
	if err != nil {
		host.CloseConn(cc)
		if reused && !isTimeout(err) {
			return &staleConnError{&sendError{err}}
		}
		return &sendError{err}
	}

	br := host.AcquireReader(conn)
	// done gives the reader and connection back; reuse keeps the connection open, unless
	// the reader holds bytes past the answer.
	done := func(reuse bool) {
		reuse = reuse && br.Buffered() == 0
		host.ReleaseReader(br)
		if reuse && !p.retired.Load() {
			host.ReleaseConn(cc)
		} else {
			host.CloseConn(cc)
		}
	}
	if err := readHead(resp, br); err != nil {
		done(false)
		if reused && err == io.EOF {
			return &staleConnError{err}
		}
		return err
	}
	reuse := !resp.ConnectionClose()
	code := resp.StatusCode()
	if x.head || code < 200 || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified {
		done(reuse)
		return nil
	}
	cl := resp.Header.ContentLength()
	switch {
	case cl >= 0 && cl <= maxBufferedBody:
		err := resp.ReadBody(br, 0)
		done(reuse && err == nil)
		if err != nil {
			return &bodyError{err}
		}
		return nil
	case cl < 0 && !x.http11:
		err := resp.ReadBody(br, maxHTTP10Body)
		if err == nil && cl == -1 {
			err = resp.Header.ReadTrailer(br)
		}
		done(reuse && err == nil && cl == -1)
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			err = errBodyTooLarge10
		}
		if err != nil {
			return &bodyError{err}
		}
		return nil
	}
	s := bodyStreamPool.Get().(*bodyStream)
	*s = bodyStream{
		br:       br,
		hdr:      &resp.Header,
		client:   x.client,
		rearm:    x.client.idle / 4,
		armed:    start,
		left:     int64(cl),
		chunked:  cl == -1,
		chunks:   h1.NewChunkReader(),
		untilEOF: cl == -2,
		reuse:    reuse && cl != -2,
		done: func(reuse bool) { // allocates; streamed responses only
			reuse = reuse && br.Buffered() == 0
			host.ReleaseReader(br)
			if reuse && !p.retired.Load() {
				host.ReleaseConn(cc)
			} else {
				host.CloseConn(cc)
			}
		},
		bytesOut: x.bytesOut,
	}
	if cl < 0 {
		s.left = 0
		cl = -1 // chunked to the client; -2 would make it close the connection
	}
	x.client.arm(start)
	resp.SetBodyStream(s, cl)
	return nil
}

// roundTripOpts are the facts about the client's request that roundTrip needs.
type roundTripOpts struct {
	head     bool // a HEAD request: the response has no body whatever it says
	idem     bool // the request may be sent again after a server may have seen it
	http11   bool // the client speaks HTTP/1.1 and can take chunked encoding
	bytesOut interface{ Add(float64) }
	client   clientConn
	// body is a request body that streams from the client (http_reqbody.go); nil
	// when the body is in the request.
	body *streamedBody
}

// clientConn is the client side of a streamed response: writing to the client may
// stall for idle at most.
type clientConn struct {
	ctx  *fasthttp.RequestCtx
	idle time.Duration
}

// arm pushes the client connection's write deadline idle past now. The fasthttp server
// clears the deadline once it has written the response.
func (c clientConn) arm(now time.Time) {
	if c.ctx != nil && c.idle > 0 {
		c.ctx.SetWriteDeadline(now.Add(c.idle))
	}
}

// readHead reads the final response head into resp, skipping 1xx responses.
func readHead(resp *fasthttp.Response, br *bufio.Reader) error {
	for range maxInterim {
		if err := resp.Header.Read(br); err != nil {
			if errors.Is(err, io.EOF) && !headEnded(br) {
				return headReadError(err)
			}
			return err
		}
		switch code := resp.StatusCode(); {
		case code == fasthttp.StatusSwitchingProtocols:
			return errUpgrade
		case code >= 200:
			return nil
		}
	}
	return errTooManyInterim
}

// headReadError is the error of a response head that the server's close cut, from
// what fasthttp's Header.Read said of the bytes before it: io.EOF when there was
// nothing but empty lines (closed without answering), a head that stops short a
// failed connection (errUnexpectedClose), and a bad first line an invalid answer.
// Both engines classify a cut head with it.
func headReadError(err error) error {
	if err == nil {
		return errUnexpectedClose // a head the loop's scanner did not find the end of
	}
	if err != io.EOF && errors.Is(err, io.EOF) {
		return errUnexpectedClose
	}
	return err
}

// headEnded tells whether the bytes br holds have the empty line that ends a head
// (with CRLF or bare LF line ends, as the loop engine's scanner finds it), so that a
// failure to read them is an invalid head rather than a cut one.
func headEnded(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	b = bytes.TrimLeft(b, "\r\n") // the empty lines before a status line are skipped
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\r\n"))
}

var bodyStreamPool = sync.Pool{New: func() any { return new(bodyStream) }}

// bodyStream is a response body read from a server connection while the fasthttp server
// writes it to the client. It bounds stalls, not the whole transfer: each read of the
// server has the response timeout (pooledConn.Read), and reads push the client
// connection's write deadline (by client_idle) further, so a download may take any time
// as long as bytes keep moving both ways.
type bodyStream struct {
	br     *bufio.Reader
	hdr    *fasthttp.ResponseHeader // receives trailers
	client clientConn
	rearm  time.Duration // how often the client's deadline is pushed
	armed  time.Time     // when it was last pushed
	// left is what remains of a body by length; chunks reads a chunked one.
	left     int64
	chunked  bool
	chunks   h1.ChunkReader
	untilEOF bool // no length: the body ends when the server closes
	reuse    bool // the server keeps the connection open after the body
	eof      bool // the body was read to its end
	failed   bool
	closed   bool
	n        int64 // bytes read
	done     func(reuse bool)
	bytesOut interface{ Add(float64) }
	// srv, when set, is released with elapsed once the body is done, so that it counts
	// as busy while it streams; a body that fails counts a reset in errs (proxy sets
	// them).
	srv     *Server
	elapsed time.Duration
	errs    func()
}

func (s *bodyStream) Read(p []byte) (int, error) {
	if s.eof {
		return 0, io.EOF
	}
	if s.failed || s.closed {
		return 0, io.ErrUnexpectedEOF
	}
	if now := time.Now(); now.Sub(s.armed) > s.rearm { // the server side: pooledConn.Read
		s.client.arm(now)
		s.armed = now
	}
	var n int
	var err error
	switch {
	case s.chunked:
		n, err = s.readChunked(p)
	case s.untilEOF:
		n, err = s.br.Read(p)
		if err == io.EOF {
			s.eof = true
		}
	default:
		if int64(len(p)) > s.left {
			p = p[:s.left]
		}
		n, err = s.br.Read(p)
		s.left -= int64(n)
		switch {
		case s.left == 0:
			s.eof, err = true, io.EOF
		case err == io.EOF:
			err = errUnexpectedClose
		}
	}
	s.n += int64(n)
	if err != nil && err != io.EOF {
		s.failed = true
	}
	return n, err
}

// readChunked reads a chunked body with the grammar and bounds of the loop engine's
// scanner (h1.ChunkReader).
func (s *bodyStream) readChunked(p []byte) (int, error) {
	n, trailer, err := s.chunks.Read(s.br, p)
	if !trailer {
		return n, err
	}
	// The trailer section goes into the response header, from which the fasthttp server
	// writes it after the last chunk.
	if err := s.hdr.ReadTrailer(s.br); err != nil {
		if err == io.EOF {
			err = errUnexpectedClose
		}
		return 0, err
	}
	s.eof = true
	return 0, io.EOF
}

// CloseWithError is called by the fasthttp server once it has written the response, or
// failed to. The connection goes back to the pool only after a complete body.
func (s *bodyStream) CloseWithError(err error) error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.failed && s.errs != nil {
		s.errs()
	}
	s.done(s.reuse && s.eof && !s.failed && err == nil)
	if s.srv != nil {
		s.srv.Release(s.elapsed)
	}
	if s.bytesOut != nil {
		s.bytesOut.Add(float64(s.n))
	}
	*s = bodyStream{}
	bodyStreamPool.Put(s)
	return nil
}
