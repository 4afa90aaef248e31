package dataplane

// Request bodies on the fasthttp engine. The fasthttp server streams request bodies
// (Server.StreamRequestBody): it reads a request's head and at most 8 KiB of its body
// before the handler runs, so that a head alone costs fixed buffers whatever
// Content-Length it declares (read whole, fasthttp would reserve the declared length
// before the first body byte arrives). takeBody then reads the body as it arrives:
//
//   - a body that ends within maxBufferedBody (64 KiB, the loop engine's bound too) is
//     read whole into the request, as before: it may be sent again on a retry;
//   - a larger one streams to the server through streamedBody, with the bytes read so
//     far in front, and with backpressure: the client is read only as fast as the
//     server takes the bytes. A streamed request is retried only while no byte of its
//     body has been read to send (a connect failure, a full pool); once sending has
//     started, its first failure is final, as for HAProxy, which retries only what it
//     still holds in its buffer.
//
// Limits: a Content-Length over max_body_bytes is answered 413 before any body byte is
// read; a chunked body is counted as it streams and cut at max_body_bytes (413 when no
// answer has started). Time: a buffered body has client_idle to arrive whole, from the
// end of its head (headerReceived); a streamed one has client_idle for each stall, and
// the server timeouts.response for each write.

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// reqBufPool holds the buffers request bodies are read into before they are known to
// fit within maxBufferedBody.
var reqBufPool = sync.Pool{New: func() any { return new([]byte) }}

// errRequestBodyTooLarge is a chunked request body that grew over max_body_bytes.
var errRequestBodyTooLarge = errors.New("request body too large")

// takeBody reads the request body of ctx as takeBody's comment at the top of this file
// says. It returns the body to stream (nil when the body is in the request, or there is
// none), or ok false when it has answered the request itself (413, 400, 408).
func (f *httpFrontend) takeBody(ctx *fasthttp.RequestCtx, hg *httpGen) (sb *streamedBody, ok bool) {
	req := &ctx.Request
	if !req.IsBodyStream() {
		return nil, true
	}
	cfg := &hg.g.cfg
	cl := req.Header.ContentLength()
	if cl == 0 {
		req.ResetBody()
		return nil, true
	}
	if cl > cfg.MaxBodyBytes {
		f.clientError(ctx, hg, fasthttp.ErrBodyTooLarge)
		return nil, false
	}
	want := maxBufferedBody + 1 // one more byte tells a body that does not fit
	if cl > 0 && cl <= maxBufferedBody {
		want = cl
	}
	src := req.BodyStream()
	bp := reqBufPool.Get().(*[]byte)
	defer reqBufPool.Put(bp)
	b := (*bp)[:0]
	var err error
	for len(b) < want && err == nil {
		if len(b) == cap(b) { // grows with what arrives, never by what is declared
			b = append(b, 0)[:len(b)]
		}
		var n int
		n, err = src.Read(b[len(b):min(cap(b), want)])
		b = b[:len(b)+n]
	}
	*bp = b[:0]
	eof := err == io.EOF
	if err != nil && !eof || eof && cl > 0 && len(b) < cl {
		if eof {
			err = io.ErrUnexpectedEOF
		}
		f.clientError(ctx, hg, err)
		return nil, false
	}
	if len(b) > cfg.MaxBodyBytes { // chunked
		f.clientError(ctx, hg, fasthttp.ErrBodyTooLarge)
		return nil, false
	}
	if eof || cl > 0 && len(b) == cl {
		req.SetBody(b) // copied: b goes back to the pool; Write frames it as before
		return nil, true
	}
	sb = &streamedBody{
		src: src, prefix: append([]byte(nil), b...), size: cl, max: cfg.MaxBodyBytes,
		ctx: ctx, idle: cfg.Timeouts.ClientIdle, bytesIn: hg.g.m.bytesIn,
	}
	sb.n = len(sb.prefix)
	req.SetBodyStream(sb, cl)
	return sb, true
}

// clientError answers a request whose head or body the client got wrong, as fasthttp's
// ErrorHandler does (handleError), and closes the connection after the answer.
func (f *httpFrontend) clientError(ctx *fasthttp.RequestCtx, hg *httpGen, err error) {
	var small *fasthttp.ErrSmallBuffer
	var code int
	var what string
	switch {
	case errors.As(err, &small):
		code, what = fasthttp.StatusRequestHeaderFieldsTooLarge, "request header larger than "+strconv.Itoa(hg.g.cfg.MaxHeaderBytes)+" bytes"
	case errors.Is(err, fasthttp.ErrBodyTooLarge) || errors.Is(err, errRequestBodyTooLarge):
		code, what = fasthttp.StatusRequestEntityTooLarge, "request body larger than "+strconv.Itoa(hg.g.cfg.MaxBodyBytes)+" bytes"
	case isTimeout(err):
		code, what = fasthttp.StatusRequestTimeout, "request not received in time"
	default:
		code, what = fasthttp.StatusBadRequest, "malformed request"
	}
	writeAnswer(&ctx.Response, code, what)
	ctx.SetConnectionClose()
	hg.noBackend[classIndex(code)].inc4(hg.g.metrics.requests, hg.g.cfg.Name, "", "", classNames[classIndex(code)])
	hg.g.m.bytesOut.Add(float64(len(ctx.Response.Body())))
}

// streamedBody is a request body that streams from the client to a server: the bytes
// takeBody read, then the rest as the client sends it. Each read from the client has
// client_idle (a stall bound, not one over the whole body), and each pushes the
// server connection's write deadline by the response timeout (roundTripOnce sets conn).
type streamedBody struct {
	src     io.Reader
	prefix  []byte
	size    int // Content-Length, or -1 for chunked
	max     int // max_body_bytes
	n       int // bytes read from the client, prefix included
	started bool
	eof     bool
	// err is the client's failure, which the request's answer is about rather than
	// the server's.
	err     error
	ctx     *fasthttp.RequestCtx
	idle    time.Duration
	conn    net.Conn // the server connection, set while sending
	timeout time.Duration
	bytesIn interface{ Add(float64) }
}

func (s *streamedBody) Read(p []byte) (int, error) {
	s.started = true
	if s.err != nil {
		return 0, s.err
	}
	if len(s.prefix) > 0 {
		n := copy(p, s.prefix)
		s.prefix = s.prefix[n:]
		s.bytesIn.Add(float64(n))
		return n, nil
	}
	if s.idle > 0 {
		s.ctx.SetReadDeadline(time.Now().Add(s.idle))
	}
	n, err := s.src.Read(p)
	s.n += n
	s.bytesIn.Add(float64(n))
	switch {
	case s.size < 0 && s.n > s.max:
		err = errRequestBodyTooLarge
	case err == io.EOF && s.size >= 0 && s.n < s.size:
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		s.err = err
		return 0, err
	}
	s.eof = s.eof || err == io.EOF
	if s.conn != nil && s.timeout > 0 && n > 0 {
		s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
	}
	return n, err
}

// done reports whether the whole body was read from the client.
func (s *streamedBody) done() bool {
	return s.err == nil && len(s.prefix) == 0 && (s.size >= 0 && s.n == s.size || s.eof)
}

// clientErr returns the error of a failed request that was the client's: its body
// failed to arrive, or grew too large.
func (s *streamedBody) clientErr() error {
	if s == nil {
		return nil
	}
	return s.err
}
