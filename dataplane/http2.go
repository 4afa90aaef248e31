package dataplane

// HTTP/2. Connections whose TLS handshake chose "h2" by ALPN, and cleartext connections
// that start with the HTTP/2 preface on an h2c frontend, go to a net/http Server of the
// frontend (its bundled HTTP/2 server: net/http dispatches an already handshaken
// *tls.Conn by its negotiated protocol, and Protocols.UnencryptedHTTP2 serves prior
// knowledge h2c). Its handler turns each stream's request into a fasthttp request in a
// RequestCtx of its own and runs it through the same handler as HTTP/1.1 (handle:
// routes, balancing, retries, the server pools, the metrics), then writes the fasthttp
// response back on the stream, streaming a large body with a flush per write.
//
// What HTTP/2 adds costs one copy of the request head (re-read by fasthttp from an
// HTTP/1.1 rendering, so that header handling is the one of the HTTP/1.1 path) and of
// the response head. Response trailers are not passed on over HTTP/2.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"lbd/dataplane/internal/h1"
)

// h2MaxStreams bounds the concurrent streams of one HTTP/2 client connection.
const h2MaxStreams = 250

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
		MaxHeaderBytes:    opts.maxHeader,
		Protocols:         &p,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: h2MaxStreams},
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
		case s.ln.conns <- c:
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

// h2Request is the per-request scratch space of serveH2, pooled.
type h2Request struct {
	ctx  fasthttp.RequestCtx
	head bytes.Buffer
	rd   bytes.Reader
	br   *bufio.Reader
}

var h2RequestPool = sync.Pool{New: func() any {
	r := new(h2Request)
	r.br = bufio.NewReaderSize(&r.rd, 4096)
	return r
}}

// serveH2 serves one HTTP/2 request through handle.
func (f *httpFrontend) serveH2(w http.ResponseWriter, r *http.Request) {
	hg := f.gen.Load()
	x := h2RequestPool.Get().(*h2Request)
	defer func() {
		x.ctx.Request.Reset()
		x.ctx.Response.Reset()
		x.head.Reset()
		h2RequestPool.Put(x)
	}()
	var conn net.Conn
	switch c := r.Context().Value(h2ConnKey{}).(type) {
	case *tls.Conn:
		conn = h2TLSConn{c}
	case net.Conn:
		conn = h2PlainConn{c}
	}
	ctx := &x.ctx
	ctx.Init2(conn, fasthttpLogger{f.d.log}, false)
	ctx.Request.Header.DisableNormalizing()

	// The head, rendered as HTTP/1.1 and read back by fasthttp.
	b := &x.head
	b.WriteString(r.Method)
	b.WriteByte(' ')
	b.WriteString(r.RequestURI)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(r.Host)
	b.WriteString("\r\n")
	for k, vs := range r.Header {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Host":
			continue
		case "Cookie": // split into several fields by HTTP/2 (RFC 9113, 8.2.3)
			b.WriteString("Cookie: ")
			for i, v := range vs {
				if i > 0 {
					b.WriteString("; ")
				}
				b.WriteString(v)
			}
			b.WriteString("\r\n")
			continue
		}
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	x.rd.Reset(b.Bytes())
	x.br.Reset(&x.rd)
	if err := ctx.Request.Header.Read(x.br); err != nil {
		http.Error(w, "400 Bad Request: malformed request", http.StatusBadRequest)
		return
	}
	limit := int64(hg.g.cfg.MaxBodyBytes)
	if r.ContentLength > limit {
		f.writeH2(w, ctx, hg, fasthttp.StatusRequestEntityTooLarge, "request body larger than "+strconv.Itoa(hg.g.cfg.MaxBodyBytes)+" bytes")
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		n, err := io.Copy(ctx.Request.BodyWriter(), io.LimitReader(r.Body, limit+1))
		switch {
		case n > limit:
			f.writeH2(w, ctx, hg, fasthttp.StatusRequestEntityTooLarge, "request body larger than "+strconv.Itoa(hg.g.cfg.MaxBodyBytes)+" bytes")
			return
		case err != nil:
			f.writeH2(w, ctx, hg, fasthttp.StatusBadRequest, "request body not received")
			return
		}
	}
	f.handle(ctx)
	writeH2Response(w, &ctx.Response, r.Method == http.MethodHead)
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
