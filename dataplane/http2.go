package dataplane

// HTTP/2. Connections whose TLS handshake chose "h2" by ALPN, and cleartext connections
// that start with the HTTP/2 preface on an h2c frontend, go through a frame inspector
// (http2_inspect.go) to a net/http Server of the frontend, which serves them with its
// bundled HTTP/2 server as prior-knowledge HTTP/2 (Protocols.UnencryptedHTTP2: the
// server sees the inspector, not the *tls.Conn; TLS is done by then). Its handler builds
// each stream's request head for the server as a fasthttp request straight from the
// HTTP/2 fields (buildHead; nothing is parsed again, and the only rendering is
// rewriteRequest's scan of the head), in a RequestCtx of its own, and runs it through
// the same handler as HTTP/1.1 (handle: routes, balancing, retries, the server pools,
// the metrics), then writes the fasthttp response back on the stream, streaming a
// large body with a flush per write.
//
// Limits: a request head larger than max_header_bytes, counted as HTTP/1.1 would carry
// it, is answered with 431 as on HTTP/1.1 (serveH2). Before that, net/http bounds the
// header list as HTTP/2 counts it (32 bytes per field beside name and value) by
// SETTINGS_MAX_HEADER_LIST_SIZE, which it advertises (h2MaxHeaderBytes: about twice
// max_header_bytes) and answers with 431 too; a client that overshoots that by more than
// twice what is left of it in one frame has its connection closed (PROTOCOL_ERROR)
// instead, net/http's guard against floods of CONTINUATION frames. Frames are at most
// 16 KiB (SETTINGS_MAX_FRAME_SIZE left at its default).
//
// Request bodies: handle reads them as HTTP/1.1 ones (takeBody, http_reqbody.go): up to
// 64 KiB whole, the rest streamed to the server, with client_idle as the stream's read
// deadline (h2Body) since the connection's deadlines are not a stream's to set. net/http
// holds at most 1 MiB of unread body per connection (its default flow-control window).
//
// Request trailers and response trailers are not passed on over HTTP/2.

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"lbd/dataplane/internal/h1"
)

const (
	// h2MaxStreams bounds the concurrent streams of one HTTP/2 client connection, and
	// with the 64 KiB each may hold of its body (takeBody), the connection's memory
	// for request bodies: 6.4 MiB. HAProxy's default is 100
	// (tune.h2.max-concurrent-streams), nginx's 128 (http2_max_concurrent_streams).
	h2MaxStreams = 100
	// h2MaxFrameSize is the largest frame a client may send: HTTP/2's default, which
	// clients assume until they have read the server's settings (net/http would offer
	// 1 MiB).
	h2MaxFrameSize = 16 << 10
	// h2HeaderTableSize is the size of the HPACK dynamic table that decodes the
	// clients' header blocks, net/http's and the inspector's (SETTINGS_HEADER_TABLE_SIZE).
	h2HeaderTableSize = 4096
)

// h2MaxHeaderBytes is the MaxHeaderBytes of the net/http server of a frontend whose
// max_header_bytes is maxHeader: twice as much, because HTTP/2 counts a field 32 bytes
// larger than its name and value where HTTP/1.1 counts 4 (": " and CRLF), so that a
// head of maxHeader bytes as HTTP/1.1 counts it fits while its lines average 28 bytes
// or more. serveH2 holds each request to maxHeader as HTTP/1.1 counts it.
func h2MaxHeaderBytes(maxHeader int) int { return 2 * maxHeader }

// h2HeaderListSize is the SETTINGS_MAX_HEADER_LIST_SIZE net/http advertises, and
// enforces with 431, for a MaxHeaderBytes of maxBytes: it allows for the 32 bytes of ten
// fields more.
func h2HeaderListSize(maxBytes int) uint32 { return uint32(maxBytes + 10*32) }

// h2Server is one net/http Server of a frontend and the listener that feeds it.
type h2Server struct {
	srv  *http.Server
	ln   *chanListener
	opts serverOpts
}

// h2ConnKey is the context key of the client connection of an HTTP/2 request.
type h2ConnKey struct{}

// h2Current returns the HTTP/2 server for the current settings, starting one if there
// is none or the settings changed (the old one drains in the background). It returns
// nil once the frontend stops.
func (f *httpFrontend) h2Current() *h2Server {
	if s := f.tls.h2cur.Load(); s != nil && s.opts == serverOptsOf(f.gen.Load().g.cfg) {
		return s
	}
	s := &f.tls
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	opts := serverOptsOf(f.gen.Load().g.cfg)
	if s.h2 != nil && s.h2.opts == opts {
		return s.h2
	}
	old := s.h2
	s.h2 = f.startH2(opts)
	s.h2cur.Store(s.h2)
	if old != nil {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			ctx, cancel := context.WithTimeout(f.cutCtx, f.d.drain)
			defer cancel()
			old.drain(ctx, f)
		}()
	}
	return s.h2
}

func (f *httpFrontend) startH2(opts serverOpts) *h2Server {
	h := &h2Server{opts: opts, ln: newChanListener(f.ln.Addr())}
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	h.srv = &http.Server{
		Handler:           http.HandlerFunc(f.serveH2),
		ReadHeaderTimeout: opts.header,
		IdleTimeout:       opts.idle,
		MaxHeaderBytes:    h2MaxHeaderBytes(opts.maxHeader),
		Protocols:         &p,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:      h2MaxStreams,
			MaxReadFrameSize:          h2MaxFrameSize,
			MaxDecoderHeaderTableSize: h2HeaderTableSize,
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, h2ConnKey{}, c)
		},
		ConnState: f.h2ConnState,
		ErrorLog:  slog.NewLogLogger(f.d.log.Handler(), slog.LevelDebug),
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		h.srv.Serve(h.ln) // returns when h.ln closes
	}()
	return h
}

// drain stops h taking connections and lets its streams finish until ctx is done.
func (h *h2Server) drain(ctx context.Context, f *httpFrontend) {
	h.ln.Close()
	if err := h.srv.Shutdown(ctx); err != nil {
		h.srv.Close()
		f.d.log.Warn("http/2 connections cut", "err", err)
	}
}

// deliverH2 hands c to the HTTP/2 server. It returns false when the frontend stops.
func (f *httpFrontend) deliverH2(c net.Conn) bool {
	for {
		s := f.h2Current()
		if s == nil {
			return false
		}
		select {
		case s.ln.conns <- newH2Inspector(c, h2HeaderListSize(h2MaxHeaderBytes(s.opts.maxHeader))):
			return true
		case <-s.ln.done:
		case <-f.stop:
			return false
		}
	}
}

// h2ConnState counts HTTP/2 client connections as the fasthttp server's connState does.
func (f *httpFrontend) h2ConnState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		m := &f.gen.Load().g.m
		m.connsTotal.Inc()
		m.connsActive.Inc()
	case http.StateClosed, http.StateHijacked:
		f.gen.Load().g.m.connsActive.Dec()
		f.open.Add(-1)
		f.wake()
	}
}

// h2TLSConn and h2PlainConn stand for the client connection in the RequestCtx of an
// HTTP/2 request: the address and TLS state are the connection's, deadlines are not
// theirs to set (the connection carries other streams).
type h2TLSConn struct{ *tls.Conn }

func (h2TLSConn) SetDeadline(time.Time) error      { return nil }
func (h2TLSConn) SetReadDeadline(time.Time) error  { return nil }
func (h2TLSConn) SetWriteDeadline(time.Time) error { return nil }

type h2PlainConn struct{ net.Conn }

func (h2PlainConn) SetDeadline(time.Time) error      { return nil }
func (h2PlainConn) SetReadDeadline(time.Time) error  { return nil }
func (h2PlainConn) SetWriteDeadline(time.Time) error { return nil }

// h2Body is the body of an HTTP/2 request. Its reads have client_idle: the first
// maxBufferedBody+1 bytes, which takeBody reads whole, from the first read on; each
// read of a streamed body after that, as a stall bound. The stream's read deadline is
// its own (http.ResponseController): the connection carries other streams.
type h2Body struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	n    int
}

func (b *h2Body) Read(p []byte) (int, error) {
	if b.idle > 0 && (b.n == 0 || b.n > maxBufferedBody) {
		b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.r.Read(p)
	b.n += n
	return n, err
}

// h2Request is the per-request scratch space of serveH2, pooled.
type h2Request struct {
	ctx  fasthttp.RequestCtx
	keys []string
	join []byte
}

var h2RequestPool = sync.Pool{New: func() any { return new(h2Request) }}

// serveH2 serves one HTTP/2 request through handle.
func (f *httpFrontend) serveH2(w http.ResponseWriter, r *http.Request) {
	hg := f.gen.Load()
	x := h2RequestPool.Get().(*h2Request)
	defer func() {
		x.ctx.Request.Reset()
		x.ctx.Response.Reset()
		clear(x.keys)
		x.keys = x.keys[:0]
		h2RequestPool.Put(x)
	}()
	var conn net.Conn
	c := r.Context().Value(h2ConnKey{})
	if i, ok := c.(*h2Inspector); ok {
		c = i.Conn
	}
	switch c := c.(type) {
	case *tls.Conn:
		conn = h2TLSConn{c}
	case net.Conn:
		conn = h2PlainConn{c}
	}
	ctx := &x.ctx
	ctx.Init2(conn, fasthttpLogger{f.d.log}, false)
	if n := x.buildHead(&ctx.Request.Header, r); n > hg.g.cfg.MaxHeaderBytes {
		f.writeH2(w, ctx, hg, fasthttp.StatusRequestHeaderFieldsTooLarge, "request header larger than "+strconv.Itoa(hg.g.cfg.MaxHeaderBytes)+" bytes")
		return
	} else {
		hg.g.m.bytesIn.Add(float64(n - len(r.RequestURI))) // handle counts the target and the body
	}
	if r.ContentLength > int64(hg.g.cfg.MaxBodyBytes) {
		f.writeH2(w, ctx, hg, fasthttp.StatusRequestEntityTooLarge, "request body larger than "+strconv.Itoa(hg.g.cfg.MaxBodyBytes)+" bytes")
		return
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		// handle reads the body as on HTTP/1.1 (takeBody): up to 64 KiB whole, the
		// rest streamed; the stream's own read deadline bounds the client's time.
		cl := int(r.ContentLength) // -1: unknown, as chunked
		if cl < 0 {
			cl = -1
		}
		ctx.Request.SetBodyStream(&h2Body{r: r.Body, rc: http.NewResponseController(w), idle: hg.g.cfg.Timeouts.ClientIdle}, cl)
	}
	f.handle(ctx)
	writeH2Response(w, &ctx.Response, r.Method == http.MethodHead)
}

// buildHead sets h, the head of the request for the server, from the HTTP/2 request r:
// its method, :path as the request target, :authority (or Host) as Host, and its header
// fields, without parsing anything again. net/http's HTTP/2 server has checked the
// fields (names, values, the pseudo-header fields; http2_inspect.go: no
// connection-specific fields) and bounded their size (h2MaxHeaderBytes). It hands them
// over in a map, so the fields go in the order of their names;
// the values of one name keep their order. Names are as net/http canonicalized them
// (HTTP/2 sends them in lower case). The Cookie fields an HTTP/2 client may split are
// joined with "; " (RFC 9113, 8.2.3). Content-Length is fasthttp's to write from the
// body. It returns the size of the head as HTTP/1.1 would carry it (request line, Host,
// the fields, the empty line), which max_header_bytes bounds.
func (x *h2Request) buildHead(h *fasthttp.RequestHeader, r *http.Request) int {
	h.DisableNormalizing()
	h.SetMethod(r.Method)
	h.SetRequestURI(r.RequestURI)
	h.SetHost(r.Host)
	n := len(r.Method) + len(" ") + len(r.RequestURI) + len(" HTTP/1.1\r\n") + len("Host: \r\n") + len(r.Host) + len("\r\n")
	for k := range r.Header {
		x.keys = append(x.keys, k)
	}
	slices.Sort(x.keys)
	for _, k := range x.keys {
		vs := r.Header[k]
		switch k {
		case "Host", "Content-Length":
			continue
		case "Cookie":
			x.join = x.join[:0]
			for i, v := range vs {
				if i > 0 {
					x.join = append(x.join, "; "...)
				}
				x.join = append(x.join, v...)
			}
			// Kept as a field, as when read from HTTP/1.1, not parsed into cookies
			// (and written back in fasthttp's spelling) unless something asks for one.
			h.DisableSpecialHeader()
			h.AddBytesV(k, x.join)
			h.EnableSpecialHeader()
			n += len(k) + len(x.join) + 4
			continue
		}
		for _, v := range vs {
			h.Add(k, v)
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// writeH2 answers an HTTP/2 request with lbd's own answer.
func (f *httpFrontend) writeH2(w http.ResponseWriter, ctx *fasthttp.RequestCtx, hg *httpGen, code int, what string) {
	f.answer(ctx, hg, nil, code, what)
	writeH2Response(w, &ctx.Response, false)
}

// writeH2Response writes resp on the stream: the head without HTTP/1.1's
// connection-specific fields, then the body.
func writeH2Response(w http.ResponseWriter, resp *fasthttp.Response, head bool) {
	hdr := w.Header()
	for k, v := range resp.Header.All() {
		switch h1.KindOf(k) {
		case h1.Hop, h1.Connection, h1.TE:
			continue
		}
		if h1.EqualFold(k, "content-length") || h1.EqualFold(k, "transfer-encoding") || h1.EqualFold(k, "trailer") {
			continue
		}
		hdr.Add(string(k), string(v))
	}
	stream := resp.IsBodyStream()
	switch {
	case !stream && !head:
		hdr.Set("Content-Length", strconv.Itoa(len(resp.Body())))
	case head:
		if cl := resp.Header.ContentLength(); cl >= 0 {
			hdr.Set("Content-Length", strconv.Itoa(cl))
		}
	case resp.Header.ContentLength() >= 0:
		hdr.Set("Content-Length", strconv.Itoa(resp.Header.ContentLength()))
	}
	w.WriteHeader(resp.StatusCode())
	if head {
		resp.CloseBodyStream()
		return
	}
	if stream {
		resp.BodyWriteTo(flushWriter{w, http.NewResponseController(w)})
		return
	}
	w.Write(resp.Body())
}

// flushWriter flushes every write of a streamed body, so that a slow or endless stream
// reaches the client as it comes.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if err == nil {
		err = fw.rc.Flush()
	}
	return n, err
}
