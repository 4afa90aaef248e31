package dataplane

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Tests of HTTP/2 (http2.go, http2_inspect.go). Their helpers carry the prefix h2t.

// h2tHead is a request as a server received it: the request line, the header lines in
// the order they came, and the body.
type h2tHead struct {
	Line   string
	Header []string
	Body   string
}

// h2tBody is what h2tRecorder answers; longer than 5 bytes, which h2spec needs to run
// its flow-control cases.
const h2tBody = "hello, h2 world\n"

// h2tRecorder is a backend that records the requests it receives and answers each with
// 200 and h2tBody.
type h2tRecorder struct {
	addr string
	// mu guards heads.
	mu    sync.Mutex
	heads []h2tHead
}

func h2tRecord(t testing.TB) *h2tRecorder {
	r := &h2tRecorder{}
	r.addr, _ = htRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		tp := textproto.NewReader(br)
		for {
			var h h2tHead
			var err error
			if h.Line, err = tp.ReadLine(); err != nil {
				return
			}
			n := 0
			for {
				l, err := tp.ReadLine()
				if err != nil {
					return
				}
				if l == "" {
					break
				}
				h.Header = append(h.Header, l)
				if k, v, _ := strings.Cut(l, ":"); strings.EqualFold(k, "content-length") {
					n, _ = strconv.Atoi(strings.TrimSpace(v))
				}
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(br, b); err != nil {
				return
			}
			h.Body = string(b)
			r.mu.Lock()
			r.heads = append(r.heads, h)
			r.mu.Unlock()
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(h2tBody), h2tBody)
		}
	})
	return r
}

// take returns the requests received since the last take.
func (r *h2tRecorder) take() []h2tHead {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.heads
	r.heads = nil
	return h
}

// h2tFrontend is a frontend that serves HTTP/2 (TLS with ALPN, or h2c) and HTTP/1.1.
type h2tFrontend struct {
	name   string
	base   string // URL of the frontend
	h1, h2 *http.Client
	dial   func(t testing.TB) net.Conn // a connection that speaks HTTP/2 from its first byte
}

// h2tFrontends starts a TLS frontend and an h2c frontend with max_header_bytes
// maxHeader, both sending to backend, each frontend changed by opts.
func h2tFrontends(t testing.TB, backend string, maxHeader int, opts ...func(*Frontend)) []h2tFrontend {
	ca := ttNewCA(t)
	cfg := ttConfig(backend, &FrontendTLS{Certificates: []TLSCertificate{ca.files(t, t.TempDir(), "fe", "127.0.0.1")}})
	cfg.Frontends[0].MaxHeaderBytes = maxHeader
	for _, o := range opts {
		o(&cfg.Frontends[0])
	}
	dt := htDataplane(t, cfg)
	addrTLS := dt.Addr("fe").String()

	cfg = htConfig("roundrobin", backend)
	cfg.Frontends[0].MaxHeaderBytes = maxHeader
	cfg.Frontends[0].H2C = true
	for _, o := range opts {
		o(&cfg.Frontends[0])
	}
	dc := htDataplane(t, cfg)
	addrH2C := dc.Addr("fe").String()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Transport{Protocols: &p}
	t.Cleanup(h2c.CloseIdleConnections)

	return []h2tFrontend{
		{
			name: "tls", base: "https://" + addrTLS, h1: ttClient(t, ca, false), h2: ttClient(t, ca, true),
			dial: func(t testing.TB) net.Conn {
				c, err := tls.Dial("tcp", addrTLS, &tls.Config{RootCAs: ca.pool, NextProtos: []string{"h2"}})
				if err != nil {
					t.Fatal(err)
				}
				if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
					t.Fatalf("ALPN chose %q, want h2", p)
				}
				return c
			},
		},
		{
			name: "h2c", base: "http://" + addrH2C, h1: htClient(t), h2: &http.Client{Transport: h2c, Timeout: 10 * time.Second},
			dial: func(t testing.TB) net.Conn {
				c, err := net.Dial("tcp", addrH2C)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
		},
	}
}

// h2tDo sends req with c and returns the status, the protocol and the body.
func h2tDo(t testing.TB, c *http.Client, req *http.Request) (int, string, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %.80s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %.80s: reading body: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, resp.Proto, string(b)
}

// TestHTTP2RequestHead: the request line and header lines a server receives from a
// request over HTTP/2 are those of the same request over HTTP/1.1, on a TLS and on an h2c
// frontend, with heads far above 4 KiB.
func TestHTTP2RequestHead(t *testing.T) {
	rec := h2tRecord(t)
	long := strings.Repeat("p", 5000)
	cases := []struct {
		name   string
		method string
		path   string
		header []string // name, value, …: values of one name are added in order
		body   string
		// want are lines the server must receive (beside the comparison with HTTP/1.1).
		want []string
	}{
		{name: "plain", method: "GET", path: "/a/b?c=d&e=f", header: []string{"Accept", "text/html", "X-Test", "yes"},
			want: []string{"X-Test: yes", "X-Forwarded-Proto: "}},
		{name: "post", method: "POST", path: "/form", header: []string{"Content-Type", "application/x-www-form-urlencoded"},
			body: "a=1&b=2", want: []string{"Content-Length: 7", "Content-Type: application/x-www-form-urlencoded"}},
		{name: "repeated values", method: "GET", path: "/", header: []string{"X-Multi", "1", "X-Multi", "2", "Accept-Language", "en, fr;q=0.5"},
			want: []string{"X-Multi: 1", "X-Multi: 2"}},
		{name: "forwarded by the client", method: "GET", path: "/", header: []string{"X-Forwarded-For", "192.0.2.1, 192.0.2.2", "X-Real-IP", "192.0.2.9", "X-Forwarded-Host", "evil.example"},
			want: []string{"X-Forwarded-For: 192.0.2.1, 192.0.2.2, 127.0.0.1", "X-Real-IP: 127.0.0.1"}},
		{name: "te trailers", method: "GET", path: "/", header: []string{"TE", "trailers"}, want: []string{"TE: trailers"}},
		{name: "expect", method: "PUT", path: "/up", header: []string{"Expect", "100-continue"}, body: "data"},
		{name: "cookies", method: "GET", path: "/", header: []string{"Cookie", "a=1; b=2; c=3"}, want: []string{"Cookie: a=1; b=2; c=3"}},
		{name: "long path 5000", method: "GET", path: "/" + long + "?q=" + long},
		{name: "45 headers of 100 bytes", method: "GET", path: "/", header: h2tHeaders(45, 100)},
		{name: "one header of 4009 bytes", method: "GET", path: "/", header: []string{"X-Big", strings.Repeat("v", 4009)}},
		{name: "header block of 15000 bytes", method: "GET", path: "/", header: h2tHeaders(150, 100)},
		{name: "header block of 60 KiB", method: "GET", path: "/", header: h2tHeaders(15, 4096)},
	}
	for _, fe := range h2tFrontends(t, rec.addr, 65536) {
		for _, tc := range cases {
			t.Run(fe.name+"/"+tc.name, func(t *testing.T) {
				var got [2]h2tHead
				for i, c := range []*http.Client{fe.h1, fe.h2} {
					req, err := http.NewRequest(tc.method, fe.base+tc.path, strings.NewReader(tc.body))
					if err != nil {
						t.Fatal(err)
					}
					if tc.body == "" {
						req.Body, req.ContentLength = nil, 0
					}
					req.Header.Set("User-Agent", "h2t")
					req.Header.Set("Accept-Encoding", "gzip")
					for j := 0; j+1 < len(tc.header); j += 2 {
						req.Header.Add(tc.header[j], tc.header[j+1])
					}
					code, proto, body := h2tDo(t, c, req)
					if code != 200 || body != h2tBody || proto != []string{"HTTP/1.1", "HTTP/2.0"}[i] {
						t.Fatalf("%s: %d %.200s", proto, code, body)
					}
					heads := rec.take()
					if len(heads) != 1 {
						t.Fatalf("%s: the server received %d requests, want 1", proto, len(heads))
					}
					got[i] = heads[0]
				}
				if diff := cmp.Diff(got[0], got[1]); diff != "" {
					t.Errorf("received over HTTP/2 differs from HTTP/1.1 (-http/1.1 +http/2):\n%s", diff)
				}
				if want := tc.method + " " + tc.path + " HTTP/1.1"; got[1].Line != want {
					t.Errorf("request line %.100q, want %.100q", got[1].Line, want)
				}
				for _, w := range tc.want {
					found := false
					for _, l := range got[1].Header {
						found = found || strings.HasPrefix(l, w)
					}
					if !found {
						t.Errorf("no line %q in %q", w, got[1].Header)
					}
				}
				if got[1].Body != tc.body {
					t.Errorf("body %q, want %q", got[1].Body, tc.body)
				}
			})
		}
	}
}

// h2tHeaders is n headers X-H<i> with values that make each line size bytes long.
func h2tHeaders(n, size int) []string {
	var h []string
	for i := range n {
		k := fmt.Sprintf("X-H%03d", i)
		h = append(h, k, strings.Repeat("v", size-len(k)-4))
	}
	return h
}

// TestHTTP2HeaderLimit: header blocks up to max_header_bytes pass over HTTP/2 whatever
// their shape; a block just over it is answered 431 and the connection goes on.
func TestHTTP2HeaderLimit(t *testing.T) {
	rec := h2tRecord(t)
	for _, fe := range h2tFrontends(t, rec.addr, 65536) {
		for _, kib := range []int{4, 8, 16, 32, 60} {
			for _, shape := range []struct {
				name string
				size int // of each header line
			}{{"one header", kib << 10}, {"100-byte headers", 100}, {"4 KiB headers", 4096}} {
				if shape.size > kib<<10 {
					continue
				}
				t.Run(fmt.Sprintf("%s/%dKiB/%s", fe.name, kib, shape.name), func(t *testing.T) {
					req, _ := http.NewRequest("GET", fe.base+"/limit", nil)
					h := h2tHeaders(kib<<10/shape.size, shape.size)
					for j := 0; j < len(h); j += 2 {
						req.Header.Add(h[j], h[j+1])
					}
					code, _, body := h2tDo(t, fe.h2, req)
					heads := rec.take()
					if code != 200 || len(heads) != 1 {
						t.Fatalf("%d %.200s (the server received %d requests)", code, body, len(heads))
					}
					n := 0
					for _, l := range heads[0].Header {
						if strings.HasPrefix(l, "X-H") {
							n += len(l) + 2
						}
					}
					if n != len(h)/2*shape.size {
						t.Errorf("the server received %d bytes of X-H headers, want %d", n, len(h)/2*shape.size)
					}
				})
			}
		}
		t.Run(fe.name+"/over the limit", func(t *testing.T) {
			// Go's client refuses to send more than the server's
			// SETTINGS_MAX_HEADER_LIST_SIZE: frames by hand.
			c := h2tDial(t, fe)
			over := c.request(h2tFields(fe, "GET", "/over", 22, 3000), 16384, nil)
			if r := c.result(over); r.status != 431 {
				t.Errorf("a header list of 66 000 bytes: %+v, want 431", r)
			}
			ok := c.request(h2tFields(fe, "GET", "/after", 1, 100), 16384, nil)
			if r := c.result(ok); r.status != 200 {
				t.Errorf("the next request on the connection: %+v, want 200", r)
			}
			if h := rec.take(); len(h) != 1 || h[0].Line != "GET /after HTTP/1.1" {
				t.Errorf("the server received %+v, want GET /after alone", h)
			}
		})
	}
	// 1000 empty fields: about 10 000 bytes as HTTP/1.1 counts them, under the default
	// max_header_bytes (16384), but 38 000 as HTTP/2 does (32 bytes a field), over
	// net/http's SETTINGS_MAX_HEADER_LIST_SIZE (about twice max_header_bytes): 431 too.
	for _, fe := range h2tFrontends(t, rec.addr, 0) {
		t.Run(fe.name+"/over HTTP/2's count", func(t *testing.T) {
			c := h2tDial(t, fe)
			if r := c.result(c.request(h2tFields(fe, "GET", "/tiny", 1000, 0), 16384, nil)); r.status != 431 {
				t.Errorf("1000 empty fields: %+v, want 431", r)
			}
			if r := c.result(c.request(h2tFields(fe, "GET", "/after", 1, 100), 16384, nil)); r.status != 200 {
				t.Errorf("the next request on the connection: %+v, want 200", r)
			}
			if h := rec.take(); len(h) != 1 || h[0].Line != "GET /after HTTP/1.1" {
				t.Errorf("the server received %+v, want GET /after alone", h)
			}
		})
	}
}

// TestHTTP2Fields: what HTTP/2 clients send that HTTP/1.1 has no words for reaches the
// server as HTTP/1.1 says it: cookies split across fields joined with "; ", :authority as
// Host, trailers dropped (lbd passes none on over HTTP/2).
func TestHTTP2Fields(t *testing.T) {
	rec := h2tRecord(t)
	for _, fe := range h2tFrontends(t, rec.addr, 0) {
		host := strings.TrimPrefix(strings.TrimPrefix(fe.base, "https://"), "http://")
		t.Run(fe.name+"/split cookies", func(t *testing.T) {
			c := h2tDial(t, fe)
			f := append(h2tFields(fe, "GET", "/c", 0, 0), [2]string{"cookie", "a=1"}, [2]string{"x-a", "1"}, [2]string{"cookie", "b=2"}, [2]string{"cookie", "c"})
			if r := c.result(c.request(f, 16384, nil)); r.status != 200 {
				t.Fatalf("%+v", r)
			}
			h := rec.take()
			if len(h) != 1 || !slices.Contains(h[0].Header, "Cookie: a=1; b=2; c") || !slices.Contains(h[0].Header, "Host: "+host) {
				t.Errorf("the server received %q, want Cookie: a=1; b=2; c and Host: %s", h, host)
			}
		})
		t.Run(fe.name+"/trailers", func(t *testing.T) {
			c := h2tDial(t, fe)
			f := append(h2tFields(fe, "POST", "/t", 0, 0), [2]string{"te", "trailers"}, [2]string{"trailer", "x-sum"})
			if r := c.result(c.request(f, 16384, []byte("body"), [2]string{"x-sum", "42"})); r.status != 200 || r.body != h2tBody {
				t.Fatalf("%+v", r)
			}
			h := rec.take()
			if len(h) != 1 || h[0].Body != "body" || !slices.Contains(h[0].Header, "TE: trailers") || !slices.Contains(h[0].Header, "Content-Length: 4") {
				t.Fatalf("the server received %+v, want the body with Content-Length and TE: trailers", h)
			}
			for _, l := range h[0].Header {
				if strings.HasPrefix(strings.ToLower(l), "x-sum") || strings.HasPrefix(strings.ToLower(l), "trailer") {
					t.Errorf("the server received %q: request trailers are not passed on over HTTP/2", l)
				}
			}
		})
	}
}

// TestHTTP2Inspector: the rules the frame inspector adds (http2_inspect.go), on the wire.
// A malformed request is reset with PROTOCOL_ERROR and the connection goes on, with the
// HPACK tables in step; a SETTINGS frame with a setting twice is taken.
func TestHTTP2Inspector(t *testing.T) {
	rec := h2tRecord(t)
	for _, fe := range h2tFrontends(t, rec.addr, 0) {
		t.Run(fe.name, func(t *testing.T) {
			c := h2tDial(t, fe)
			if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			base := h2tFields(fe, "GET", "/", 0, 0)
			// Indexed fields (Go's encoder indexes them) before, inside and after the
			// malformed blocks: the next requests refer to them.
			for i, tc := range []struct {
				extra  [][2]string
				status int
				rst    http2.ErrCode
			}{
				{[][2]string{{"x-a", "1"}}, 200, 0},
				{[][2]string{{"x-b", "2"}, {"connection", "keep-alive"}}, 0, http2.ErrCodeProtocol},
				{[][2]string{{"x-a", "1"}, {"x-b", "2"}}, 200, 0},
				{[][2]string{{"x-c", "3"}, {"te", "gzip"}, {"x-d", strings.Repeat("d", 8000)}}, 0, http2.ErrCodeProtocol},
				{[][2]string{{"x-c", "3"}, {"te", "trailers"}}, 200, 0},
				{[][2]string{{"upgrade", "websocket"}}, 0, http2.ErrCodeProtocol},
				{[][2]string{{"x-a", "1"}, {"x-b", "2"}, {"x-c", "3"}}, 200, 0},
			} {
				f := append(append([][2]string{}, base...), tc.extra...)
				f[3][1] = "/" + strconv.Itoa(i)
				r := c.result(c.request(f, 1000, nil))
				if r.status != tc.status || r.rst != tc.rst || r.goaway {
					t.Fatalf("request %d: %+v, want status %d reset %v", i, r, tc.status, tc.rst)
				}
			}
			var got []string
			for _, h := range rec.take() {
				var xs []string
				for _, l := range h.Header {
					if strings.HasPrefix(l, "X-") && !strings.HasPrefix(l, "X-Forwarded") && !strings.HasPrefix(l, "X-Real") {
						xs = append(xs, l)
					}
				}
				got = append(got, h.Line+" "+strings.Join(xs, ","))
			}
			want := []string{"GET /0 HTTP/1.1 X-A: 1", "GET /2 HTTP/1.1 X-A: 1,X-B: 2", "GET /4 HTTP/1.1 X-C: 3", "GET /6 HTTP/1.1 X-A: 1,X-B: 2,X-C: 3"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the server received (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCollapseSettings(t *testing.T) {
	frame := func(s ...uint32) []byte {
		b := []byte{0, 0, byte(3 * len(s)), h2FrameSettings, 0, 0, 0, 0, 0}
		for i := 0; i < len(s); i += 2 {
			b = append(b, byte(s[i]>>8), byte(s[i]), byte(s[i+1]>>24), byte(s[i+1]>>16), byte(s[i+1]>>8), byte(s[i+1]))
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		in, want []byte
	}{
		{"one", frame(4, 100), frame(4, 100)},
		{"distinct", frame(4, 100, 3, 10, 1, 0), frame(4, 100, 3, 10, 1, 0)},
		{"twice", frame(4, 100, 4, 1), frame(4, 1)},
		{"twice among others", frame(4, 100, 3, 10, 4, 1, 1, 0), frame(3, 10, 4, 1, 1, 0)},
		{"three times and twice", frame(5, 1<<14, 4, 7, 5, 1<<15, 4, 8, 5, 1<<16), frame(4, 8, 5, 1<<16)},
		{"an invalid value is kept", frame(4, 1<<31, 4, 1), frame(4, 1<<31)},
		{"the first invalid value is kept", frame(2, 1, 2, 5, 2, 7, 2, 0), frame(2, 5)},
		{"unknown settings too", frame(0xf0, 1, 0xf0, 2), frame(0xf0, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, collapseSettings(bytes.Clone(tc.in), 0)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if in := frame(4, 1, 4, 2); !bytes.Equal(collapseSettings(bytes.Clone(in), 1), in) {
		t.Error("a SETTINGS frame on a stream was rewritten")
	}
}

// h2tConn is a raw HTTP/2 client connection, for what Go's client does not send.
type h2tConn struct {
	t    testing.TB
	c    net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	buf  bytes.Buffer
	next uint32
}

func h2tDial(t testing.TB, fe h2tFrontend) *h2tConn {
	t.Helper()
	c := &h2tConn{t: t, c: fe.dial(t), next: 1}
	t.Cleanup(func() { c.c.Close() })
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c.c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	c.fr = http2.NewFramer(c.c, c.c)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.buf)
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// h2tFields is the pseudo-header fields of a request to fe, and n headers x-f<i> of
// size bytes each.
func h2tFields(fe h2tFrontend, method, path string, n, size int) [][2]string {
	scheme, host, _ := strings.Cut(fe.base, "://")
	f := [][2]string{{":method", method}, {":scheme", scheme}, {":authority", host}, {":path", path}}
	for i := range n {
		f = append(f, [2]string{fmt.Sprintf("x-f%03d", i), strings.Repeat("f", size)})
	}
	return f
}

// request sends a request with fields (its header block cut in frames of at most frame
// bytes), body and trailers, and returns its stream.
func (c *h2tConn) request(fields [][2]string, frame int, body []byte, trailers ...[2]string) uint32 {
	c.t.Helper()
	id := c.next
	c.next += 2
	block := func(fields [][2]string, end bool) {
		c.buf.Reset()
		for _, f := range fields {
			c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		b := c.buf.Bytes()
		first := true
		for first || len(b) > 0 {
			n := min(len(b), frame)
			var err error
			if first {
				err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b[:n], EndStream: end, EndHeaders: n == len(b)})
			} else {
				err = c.fr.WriteContinuation(id, n == len(b), b[:n])
			}
			if err != nil {
				c.t.Fatal(err)
			}
			first, b = false, b[n:]
		}
	}
	block(fields, body == nil)
	if body != nil {
		if err := c.fr.WriteData(id, len(trailers) == 0, body); err != nil {
			c.t.Fatal(err)
		}
		if len(trailers) > 0 {
			block(trailers, true)
		}
	}
	return id
}

// h2tResult is how a stream ended: the response status and body, or a reset, or the
// connection's end.
type h2tResult struct {
	status int
	body   string
	rst    http2.ErrCode
	goaway bool
}

// result reads frames until stream ends or the connection does.
func (c *h2tConn) result(stream uint32) h2tResult {
	c.t.Helper()
	var r h2tResult
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			r.goaway = true
			return r
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			r.goaway = true
			return r
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				r.rst = f.ErrCode
				return r
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == stream {
				r.status, _ = strconv.Atoi(f.PseudoValue("status"))
				if f.StreamEnded() {
					return r
				}
			}
		case *http2.DataFrame:
			if f.StreamID == stream {
				r.body += string(f.Data())
				if len(f.Data()) > 0 {
					c.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				}
				if f.StreamEnded() {
					return r
				}
			}
		}
	}
}

// h2specBinary is the h2spec that `make deps` installs, or "" when there is none.
func h2specBinary() string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	if p := filepath.Join(gopath, "bin", "h2spec"); fileExists(p) {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestH2Spec runs h2spec (github.com/summerwind/h2spec, installed by `make deps`) against
// a TLS frontend and an h2c frontend: every one of its 145 cases passes, none skipped.
func TestH2Spec(t *testing.T) {
	skipShort(t, "runs the h2spec binary, 145 cases on two frontends")
	bin := h2specBinary()
	if bin == "" {
		t.Skip("h2spec is not installed (make deps installs it: go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible)")
	}
	rec := h2tRecord(t)
	summary := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)
	for _, fe := range h2tFrontends(t, rec.addr, 0) {
		t.Run(fe.name, func(t *testing.T) {
			host, port, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(fe.base, "https://"), "http://"))
			args := []string{"-h", host, "-p", port, "-o", "5"}
			if fe.name == "tls" {
				args = append(args, "-t", "-k")
			}
			out, _ := exec.Command(bin, args...).CombinedOutput()
			m := summary.FindStringSubmatch(string(out))
			if m == nil || m[1] != "145" || m[2] != "145" {
				t.Errorf("h2spec %s: %s\n%s", strings.Join(args, " "), firstOr(m, "no summary"), out)
			}
			t.Logf("h2spec %s: %s", strings.Join(args, " "), firstOr(m, "no summary"))
		})
	}
}

func firstOr(m []string, def string) string {
	if len(m) == 0 {
		return def
	}
	return m[0]
}
