//go:build linux

package dataplane

// Tests of the http event-loop engine (engine: loop, httploop_linux.go). Most are
// differential: the same bytes go to a frontend on the loop engine and to one on
// fasthttp, in front of the same servers, and the answers must agree (status, body,
// end-to-end headers, trailers, whether the connection closes), besides being right.
// httpLoopCounters says whether the loop served a request itself or handed its
// connection over to fasthttp. Helpers carry the prefix hl.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// hlCounterWait bounds the wait for httpLoopCounters to reach what a test expects: a
// loop may count a request a moment after its last byte went out.
var hlCounterWait = 5 * time.Second

// hlCounts is a reading of httpLoopCounters.
type hlCounts struct{ served, handedOver int64 }

func hlCountsNow() hlCounts {
	return hlCounts{httpLoopCounters.served.Load(), httpLoopCounters.handedOver.Load()}
}

// hlExpect checks what the loop engine did since before: on the loop engine, served
// requests answered on a loop and handed connections handed over to fasthttp; on the
// fasthttp engine, nothing. Tests do not run in parallel, so the counters move only for
// the test that reads them.
func hlExpect(t testing.TB, engine string, before hlCounts, served, handed int64) {
	t.Helper()
	if engine != EngineLoop {
		served, handed = 0, 0
	}
	want := hlCounts{before.served + served, before.handedOver + handed}
	got := hlCountsNow()
	for deadline := time.Now().Add(hlCounterWait); got != want && engine == EngineLoop && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		got = hlCountsNow()
	}
	if got != want {
		t.Errorf("httpLoopCounters on the %s engine moved by served %+d, handedOver %+d; want %+d, %+d",
			engine, got.served-before.served, got.handedOver-before.handedOver, served, handed)
	}
}

// hlExpectEither checks that the loop engine dealt with n requests, either way: served
// on a loop or handed over with their connection (one request per connection). It is
// for answers the loop may give itself or leave to fasthttp (a malformed request).
func hlExpectEither(t testing.TB, engine string, before hlCounts, n int64) {
	t.Helper()
	if engine != EngineLoop {
		hlExpect(t, engine, before, 0, 0)
		return
	}
	sum := func() int64 { c := hlCountsNow(); return c.served - before.served + c.handedOver - before.handedOver }
	for deadline := time.Now().Add(hlCounterWait); sum() != n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := sum(); got != n {
		c := hlCountsNow()
		t.Errorf("httpLoopCounters moved by served %+d, handedOver %+d; want %d in all",
			c.served-before.served, c.handedOver-before.handedOver, n)
	}
}

// hlField is a header field as it was on the wire.
type hlField struct{ name, value string }

// hlFields is a header section in wire order, names in their case.
type hlFields []hlField

// get returns the first value of name, matched without regard to case.
func (h hlFields) get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

// values returns the values of name, matched without regard to case.
func (h hlFields) values(name string) []string {
	var v []string
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			v = append(v, f.value)
		}
	}
	return v
}

// hasName reports whether a field is named exactly name, case included.
func (h hlFields) hasName(name string) bool {
	return slices.ContainsFunc(h, func(f hlField) bool { return f.name == name })
}

// hasToken reports whether the comma-separated values of name hold tok.
func (h hlFields) hasToken(name, tok string) bool {
	for _, v := range h.values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// hlReadFields reads header lines up to the empty line that ends them.
func hlReadFields(br *bufio.Reader) (hlFields, error) {
	var h hlFields
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return h, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return h, fmt.Errorf("bad header line %q", line)
		}
		h = append(h, hlField{name, strings.TrimSpace(value)})
	}
}

// hlReadHead reads a start line and the header section. It returns io.EOF when the
// connection ends before the first byte.
func hlReadHead(br *bufio.Reader) (string, hlFields, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		if err == io.EOF && line != "" {
			err = io.ErrUnexpectedEOF
		}
		return "", nil, err
	}
	h, err := hlReadFields(br)
	return strings.TrimRight(line, "\r\n"), h, err
}

// hlReadBody reads a body framed as h says: chunked (trailers returned apart), by
// Content-Length, or up to the end of the connection when untilEOF (a response with
// neither) or empty (a request with neither).
func hlReadBody(br *bufio.Reader, h hlFields, untilEOF bool) (body []byte, trailer hlFields, chunked bool, err error) {
	switch {
	case h.hasToken("Transfer-Encoding", "chunked"):
		var buf bytes.Buffer
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return buf.Bytes(), nil, true, fmt.Errorf("chunk size line: %w", err)
			}
			size, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
			n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
			if err != nil {
				return buf.Bytes(), nil, true, fmt.Errorf("chunk size line %q", line)
			}
			if n == 0 {
				trailer, err := hlReadFields(br)
				return buf.Bytes(), trailer, true, err
			}
			if _, err := io.CopyN(&buf, br, n); err != nil {
				return buf.Bytes(), nil, true, err
			}
			if crlf, err := br.ReadString('\n'); err != nil || strings.TrimRight(crlf, "\r\n") != "" {
				return buf.Bytes(), nil, true, fmt.Errorf("chunk end %q, %v", crlf, err)
			}
		}
	case h.get("Content-Length") != "":
		n, err := strconv.ParseInt(h.get("Content-Length"), 10, 64)
		if err != nil {
			return nil, nil, false, err
		}
		body = make([]byte, n)
		_, err = io.ReadFull(br, body)
		return body, nil, false, err
	case untilEOF:
		body, err = io.ReadAll(br)
		return body, nil, false, err
	}
	return nil, nil, false, nil
}

// hlResp is a response as the client got it.
type hlResp struct {
	proto   string
	status  int
	header  hlFields
	body    string
	trailer hlFields
	chunked bool
	// close is set when the response says Connection: close, or is an HTTP/1.0 one
	// without keep-alive.
	close bool
}

// hlReadResponse reads one response to a request of method. An interim (1xx) response
// is returned as it is, for the caller to read the next.
func hlReadResponse(br *bufio.Reader, method string) (*hlResp, error) {
	line, h, err := hlReadHead(br)
	if err != nil {
		return nil, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	r := &hlResp{proto: proto, header: h}
	if r.status, err = strconv.Atoi(code); err != nil || !strings.HasPrefix(proto, "HTTP/1.") {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	r.close = h.hasToken("Connection", "close") || proto == "HTTP/1.0" && !h.hasToken("Connection", "keep-alive")
	if method == "HEAD" || r.status < 200 || r.status == 204 || r.status == 304 {
		return r, nil
	}
	body, trailer, chunked, err := hlReadBody(br, h, true)
	r.body, r.trailer, r.chunked = string(body), trailer, chunked
	if err != nil {
		return r, fmt.Errorf("reading the body of %q: %w", line, err)
	}
	return r, nil
}

// hlHopByHop are the response headers two engines may set differently without a
// difference to the client's application: connection management, framing, and Date.
var hlHopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te", "Upgrade", "Date"}

// hlShort is b, or its length and checksum when it is long.
func hlShort(b string) string {
	if len(b) <= 256 {
		return strconv.Quote(b)
	}
	return fmt.Sprintf("%d bytes, sha256 %x", len(b), sha256.Sum256([]byte(b)))
}

// summary is what two engines must agree on: status, end-to-end headers (names without
// regard to case, sorted), trailers, body, and whether the connection closes.
func (r *hlResp) summary() string {
	var lines []string
	add := func(prefix string, h hlFields) {
		for _, f := range h {
			k := textproto.CanonicalMIMEHeaderKey(f.name)
			if !slices.Contains(hlHopByHop, k) {
				lines = append(lines, prefix+k+": "+f.value)
			}
		}
	}
	add("", r.header)
	add("trailer ", r.trailer)
	slices.Sort(lines)
	return fmt.Sprintf("%s %d close=%v\n%s\nbody %s", r.proto, r.status, r.close, strings.Join(lines, "\n"), hlShort(r.body))
}

// hlConn is a client connection to a frontend, with a deadline for the whole test.
type hlConn struct {
	t    testing.TB
	c    net.Conn
	br   *bufio.Reader
	last string // the first line of the last write, for errors
}

func hlDial(t testing.TB, d *Dataplane) *hlConn {
	t.Helper()
	c, err := net.Dial("tcp", d.Addr("fe").String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &hlConn{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes s in one write.
func (c *hlConn) send(s string) {
	c.t.Helper()
	c.last, _, _ = strings.Cut(s, "\r\n")
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("writing %q: %v", c.last, err)
	}
}

// read reads the response to a request of method.
func (c *hlConn) read(method string) *hlResp {
	c.t.Helper()
	r, err := hlReadResponse(c.br, method)
	if err != nil {
		c.t.Fatalf("reading a response to %s (last sent %q): %v", method, c.last, err)
	}
	return r
}

// final reads the response to a request of method, skipping interim ones.
func (c *hlConn) final(method string) *hlResp {
	c.t.Helper()
	for range 10 {
		if r := c.read(method); r.status >= 200 {
			return r
		}
	}
	c.t.Fatal("more than 10 interim responses")
	return nil
}

// roundTrip sends req and reads its response.
func (c *hlConn) roundTrip(method, req string) *hlResp {
	c.t.Helper()
	c.send(req)
	return c.read(method)
}

// eof checks that the frontend closes the connection with nothing more to read.
func (c *hlConn) eof() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c.br)
	if len(b) > 0 || err != nil {
		c.t.Errorf("after the last answer: %q, %v; want the connection closed", b, err)
	}
}

// open checks that the connection is still open: nothing to read, no end, for a
// moment.
func (c *hlConn) open() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.br.Peek(1)
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Errorf("the connection should be open and quiet: %v", err)
	}
}

// hlPair is one config served twice: on the loop engine and on fasthttp.
type hlPair struct{ loop, fast *Dataplane }

func hlStart(t testing.TB, cfg Config) hlPair {
	t.Helper()
	return hlPair{
		loop: htDataplane(t, withEngine(cfg, EngineLoop)),
		fast: htDataplane(t, withEngine(cfg, EngineFastHTTP)),
	}
}

// run runs script on a new connection to each engine, fasthttp first, and checks that
// the responses it returns agree. It returns the loop engine's.
func (p hlPair) run(t *testing.T, script func(c *hlConn) []*hlResp) []*hlResp {
	t.Helper()
	fast := script(hlDial(t, p.fast))
	loop := script(hlDial(t, p.loop))
	hlSame(t, loop, fast)
	return loop
}

// do sends raw in one write to each engine and reads one response per method.
func (p hlPair) do(t *testing.T, raw string, methods ...string) []*hlResp {
	t.Helper()
	return p.run(t, func(c *hlConn) []*hlResp {
		c.send(raw)
		var out []*hlResp
		for _, m := range methods {
			out = append(out, c.final(m))
		}
		return out
	})
}

// hlSame checks that the loop engine's responses agree with fasthttp's.
func hlSame(t testing.TB, loop, fast []*hlResp) {
	t.Helper()
	if len(loop) != len(fast) {
		t.Fatalf("loop engine: %d responses, fasthttp: %d", len(loop), len(fast))
	}
	for i := range loop {
		if diff := cmp.Diff(fast[i].summary(), loop[i].summary()); diff != "" {
			t.Errorf("response %d differs between the engines (-fasthttp +loop):\n%s", i, diff)
		}
	}
}

// hlReq is a request as a raw server got it.
type hlReq struct {
	method, target, proto string
	header                hlFields
	body                  []byte
	trailer               hlFields
	chunked               bool
}

func hlReadRequest(br *bufio.Reader) (*hlReq, error) {
	line, h, err := hlReadHead(br)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(line, " ")
	if len(parts) != 3 {
		return nil, fmt.Errorf("bad request line %q", line)
	}
	r := &hlReq{method: parts[0], target: parts[1], proto: parts[2], header: h}
	r.body, r.trailer, r.chunked, err = hlReadBody(br, h, false)
	return r, err
}

// hlRawBackend is a server that reads requests and has answer write each response,
// raw; answer returns false to close the connection after it. It counts the
// connections it accepted, and those it is done with.
type hlRawBackend struct {
	addr        string
	conns, done *atomic.Int64
	reqs        atomic.Int64
	mu          sync.Mutex
	last        *hlReq // the last request read
}

func hlRaw(t testing.TB, answer func(w io.Writer, r *hlReq) bool) *hlRawBackend {
	t.Helper()
	b := &hlRawBackend{done: new(atomic.Int64)}
	b.addr, b.conns = htRawServer(t, func(c net.Conn) {
		defer b.done.Add(1)
		br := bufio.NewReader(c)
		for {
			r, err := hlReadRequest(br)
			if err != nil {
				return
			}
			b.reqs.Add(1)
			b.mu.Lock()
			b.last = r
			b.mu.Unlock()
			if !answer(c, r) {
				return
			}
		}
	})
	return b
}

func (b *hlRawBackend) lastRequest() *hlReq {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// hlFraming are the request headers that frame the body: an engine that buffers the
// body sends a Content-Length where one that streams it passes the client's framing on.
var hlFraming = []string{"Content-Length", "Transfer-Encoding"}

// hlEchoAnswer answers with what the server got: the request line, the header fields in
// their case (framing ones left out, sorted by name, same names in wire order), the
// body and the trailers. HEAD gets the length alone.
func hlEchoAnswer(w io.Writer, r *hlReq) bool {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\n", r.method, r.target, r.proto)
	h := slices.Clone(r.header)
	h = slices.DeleteFunc(h, func(f hlField) bool {
		return slices.Contains(hlFraming, textproto.CanonicalMIMEHeaderKey(f.name))
	})
	slices.SortStableFunc(h, func(a, b hlField) int { return strings.Compare(strings.ToLower(a.name), strings.ToLower(b.name)) })
	for _, f := range h {
		fmt.Fprintf(&b, "%s: %s\n", f.name, f.value)
	}
	fmt.Fprintf(&b, "body %s\n", hlShort(string(r.body)))
	for _, f := range r.trailer {
		fmt.Fprintf(&b, "trailer %s: %s\n", f.name, f.value)
	}
	return hlWriteEcho(w, r, b.String())
}

// hlWriteEcho answers r with body, the echo's text; HEAD gets its length alone.
func hlWriteEcho(w io.Writer, r *hlReq, body string) bool {
	fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: echo\r\nContent-Length: %d\r\n\r\n", len(body))
	if r.method != "HEAD" {
		io.WriteString(w, body)
	}
	return true
}

// hlEcho is a raw server answering with hlEchoAnswer.
func hlEcho(t testing.TB) *hlRawBackend { return hlRaw(t, hlEchoAnswer) }

// hlEchoed parses an hlEchoAnswer body: the request line, and the header fields the
// server got.
func hlEchoed(t testing.TB, body string) (string, hlFields) {
	t.Helper()
	lines := strings.Split(body, "\n")
	var h hlFields
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "body ") {
			return lines[0], h
		}
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("bad echo line %q in %q", l, body)
		}
		h = append(h, hlField{k, v})
	}
	t.Fatalf("no body line in echo %q", body)
	return "", nil
}

// hlOneConfig is htConfig with one server, on the default engine (hlStart and
// withEngine set it).
func hlOneConfig(addr string) Config { return htConfig("", addr) }

func TestHTTPLoopKeepAlive(t *testing.T) { forEachEngine(t, testHTTPLoopKeepAlive) }

// Many requests one after the other on one client connection: each is served on the
// loop, over one server connection.
func testHTTPLoopKeepAlive(t *testing.T, engine string) {
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	d := htDataplane(t, withEngine(hlOneConfig(be.addr()), engine))
	before := hlCountsNow()
	c := hlDial(t, d)
	const n = 100
	for i := range n {
		path := "/r" + strconv.Itoa(i)
		r := c.roundTrip("GET", "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		if r.status != 200 || r.body != path || r.close {
			t.Fatalf("request %d: %d %q close=%v", i, r.status, r.body, r.close)
		}
	}
	c.open()
	if got := be.conns.Load(); got != 1 {
		t.Errorf("the server saw %d connections, want 1", got)
	}
	hlExpect(t, engine, before, n, 0)
}

// Requests written at once, before any answer: answered in order, each whole.
func TestHTTPLoopPipelined(t *testing.T) {
	be := hlEcho(t)
	p := hlStart(t, hlOneConfig(be.addr))
	before := hlCountsNow()
	reqs := []string{
		"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		"POST /4 HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET /5 HTTP/1.1\r\nHost: a\r\n\r\n",
	}
	methods := []string{"GET", "HEAD", "POST", "POST", "GET"}
	for i := 6; i <= 30; i++ {
		reqs = append(reqs, "GET /"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: a\r\n\r\n")
		methods = append(methods, "GET")
	}
	got := p.do(t, strings.Join(reqs, ""), methods...)
	for i, r := range got {
		want := methods[i] + " /" + strconv.Itoa(i+1) + " HTTP/1.1\n"
		if methods[i] == "HEAD" {
			if r.status != 200 || r.body != "" || r.header.get("Content-Length") == "" {
				t.Errorf("HEAD: %d %q, Content-Length %q", r.status, r.body, r.header.get("Content-Length"))
			}
			continue
		}
		if r.status != 200 || !strings.HasPrefix(r.body, want) {
			t.Errorf("response %d: %d %q, want the answer to %q", i, r.status, r.body, want)
		}
	}
	if !strings.Contains(got[2].body, `body "hello"`) || !strings.Contains(got[3].body, `body "abc"`) {
		t.Errorf("bodies: %q, %q", got[2].body, got[3].body)
	}
	hlExpect(t, EngineLoop, before, int64(len(reqs)), 0)
}

// Request bodies framed every way, and sent slowly: the server gets them whole.
func TestHTTPLoopRequestBodies(t *testing.T) {
	be := hlEcho(t)
	p := hlStart(t, hlOneConfig(be.addr))
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	// send sends head, then pieces one by one; every request has a Content-Type (see
	// TestHTTPLoopNoContentTypeAdded for one without).
	send := func(head string, pieces ...string) func(c *hlConn) []*hlResp {
		return func(c *hlConn) []*hlResp {
			c.send(strings.Replace(head, "\r\nHost: a\r\n", "\r\nHost: a\r\nContent-Type: text/plain\r\n", 1))
			for _, s := range pieces {
				time.Sleep(10 * time.Millisecond) // a client trickling its body
				c.send(s)
			}
			return []*hlResp{c.read("POST")}
		}
	}
	pieces := []string{"0123", "4567", "89ab", "cdef", "ghij"}
	for _, tc := range []struct {
		name   string
		script func(c *hlConn) []*hlResp
		body   string
	}{
		{"content-length", send("POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"), "hello world"},
		{"content-length 1 MiB", send("POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: " +
			strconv.Itoa(len(big)) + "\r\n\r\n" + big), big},
		{"empty content-length", send("POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), ""},
		{"chunked", send("POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;name=value\r\nhello\r\n6;a;b=\"c d\"\r\n world\r\n0\r\n\r\n"), "hello world"},
		{"chunked 1 MiB", send("POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 1000, big[:1000], len(big)-1000, big[1000:])), big},
		{"empty chunked", send("POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), ""},
		{"slow content-length", send("POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n", pieces...), strings.Join(pieces, "")},
		{"slow chunked", send("POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
			"4\r\n0123\r", "\n4;x=y\r\n4567\r\n", "4\r\n89", "ab\r\n8\r\ncdefghij\r\n0", "\r\n\r\n"), strings.Join(pieces, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hlCountsNow()
			r := p.run(t, tc.script)[0]
			if want := "body " + hlShort(tc.body) + "\n"; r.status != 200 || !strings.HasSuffix(r.body, want) {
				t.Errorf("got %d %q, want a body ending in %q", r.status, r.body, want)
			}
			if len(tc.body) <= 64<<10 {
				hlExpect(t, EngineLoop, before, 1, 0)
			} else {
				hlExpectEither(t, EngineLoop, before, 1) // the loop may leave a large body to fasthttp
			}
		})
	}
}

// A chunked request's trailer section reaches the server, as a trailer or as fields
// of the head (an engine that buffers the body may merge it).
func TestHTTPLoopRequestTrailers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		be := hlEcho(t)
		d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
		before := hlCountsNow()
		r := hlDial(t, d).roundTrip("POST", "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
			"5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n")
		if r.status != 200 || !strings.Contains(r.body, `body "hello"`) {
			t.Fatalf("got %d %q", r.status, r.body)
		}
		got := be.lastRequest()
		if v := append(got.trailer.values("X-Sum"), got.header.values("X-Sum")...); len(v) != 1 || v[0] != "42" {
			t.Errorf("server got X-Sum %q (trailer %q, head %q)", v, got.trailer, got.header)
		}
		hlExpect(t, engine, before, 1, 0)
	})
}

func TestHTTPLoopNoContentTypeAdded(t *testing.T) { forEachEngine(t, testHTTPLoopNoContentTypeAdded) }

// A request with a body and no Content-Type reaches the server without one: a proxy does
// not make one up.
func testHTTPLoopNoContentTypeAdded(t *testing.T, engine string) {
	// fasthttp's RequestHeader writes "Content-Type: application/octet-stream" for a
	// request with a body and none (rewriteRequest does not SetNoDefaultContentType).
	be := hlEcho(t)
	d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
	before := hlCountsNow()
	c := hlDial(t, d)
	for _, req := range []string{
		"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		if r := c.roundTrip("POST", req); r.status != 200 || !strings.Contains(r.body, `body "hello"`) {
			t.Errorf("got %d %q", r.status, r.body)
		}
		if v := be.lastRequest().header.values("Content-Type"); v != nil {
			t.Errorf("%s: the server got Content-Type %q", strings.Fields(req)[1], v)
		}
	}
	hlExpect(t, engine, before, 2, 0)
}

// Response bodies framed every way, on one client connection: after each, the
// connection carries the next request.
func TestHTTPLoopResponseBodies(t *testing.T) {
	big := strings.Repeat("abcdefghijklmnop", 100000/16)
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		switch r.target {
		case "/cl":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: cl\r\n\r\nhello")
		case "/cl-big": // over fasthttp's buffered size: streamed
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
		case "/chunked":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
				"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n")
		case "/chunked-big":
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(big), big)
		case "/close": // no length: the body ends when the server closes
			io.WriteString(w, "HTTP/1.1 200 OK\r\nX-Kind: close\r\n\r\nclose-delimited body")
			return false
		case "/close-big":
			io.WriteString(w, "HTTP/1.1 200 OK\r\n\r\n"+big)
			return false
		case "/head":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-Kind: head\r\n\r\n")
		case "/204":
			io.WriteString(w, "HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n")
		case "/304":
			io.WriteString(w, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nX-Kind: 304\r\n\r\n")
		case "/continue":
			io.WriteString(w, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: final\r\n\r\nfinal")
		case "/404":
			io.WriteString(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nmissing")
		default:
			io.WriteString(w, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
		}
		return true
	})
	p := hlStart(t, hlOneConfig(be.addr))
	cases := []struct {
		method, path string
		status       int
		body         string
		check        func(t *testing.T, r *hlResp)
	}{
		{"GET", "/cl", 200, "hello", nil},
		{"GET", "/chunked", 200, "hello world", func(t *testing.T, r *hlResp) {
			if r.trailer.get("X-Sum") != "42" {
				t.Errorf("/chunked: trailer %q, want X-Sum: 42", r.trailer)
			}
		}},
		{"GET", "/close", 200, "close-delimited body", nil},
		{"HEAD", "/head", 200, "", func(t *testing.T, r *hlResp) {
			if r.header.get("Content-Length") != "1234" {
				t.Errorf("HEAD: Content-Length %q, want 1234", r.header.get("Content-Length"))
			}
		}},
		{"GET", "/204", 204, "", nil},
		{"GET", "/304", 304, "", func(t *testing.T, r *hlResp) {
			if r.header.get("ETag") != `"x"` {
				t.Errorf("304: ETag %q", r.header.get("ETag"))
			}
		}},
		{"GET", "/continue", 200, "final", nil},
		{"GET", "/cl-big", 200, big, nil},
		{"GET", "/close-big", 200, big, nil},
		{"GET", "/chunked-big", 200, big, nil},
		{"GET", "/404", 404, "missing", nil},
		{"GET", "/close", 200, "close-delimited body", nil},
		{"GET", "/cl", 200, "hello", nil},
	}
	before := hlCountsNow()
	got := p.run(t, func(c *hlConn) []*hlResp {
		var out []*hlResp
		for _, tc := range cases {
			// read, not final: an interim response must not reach a client that did
			// not ask for one.
			r := c.roundTrip(tc.method, tc.method+" "+tc.path+" HTTP/1.1\r\nHost: a\r\n\r\n")
			out = append(out, r)
			if r.close {
				t.Fatalf("%s %s: the answer closes the connection", tc.method, tc.path)
			}
		}
		c.open()
		return out
	})
	for i, tc := range cases {
		r := got[i]
		if r.status != tc.status || r.body != tc.body {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, r.status, hlShort(r.body), tc.status, hlShort(tc.body))
		}
		if tc.check != nil {
			tc.check(t, r)
		}
	}
	hlExpect(t, EngineLoop, before, int64(len(cases)), 0)
}

func TestHTTPLoopSlowReader(t *testing.T) {
	skipShort(t, "an 8 MiB answer to a client that reads slowly")
	forEachEngine(t, testHTTPLoopSlowReader)
}

// An 8 MiB response to a client that reads slowly arrives whole and in order: the
// proxy waits for the client rather than dropping or reordering anything.
func testHTTPLoopSlowReader(t *testing.T, engine string) {
	const size = 8 << 20
	chunk := make([]byte, 64<<10)
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cl" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		for i := 0; i < size; i += len(chunk) {
			for j := range chunk {
				chunk[j] = byte(i/len(chunk) + j)
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	want := sha256.New()
	for i := 0; i < size; i += len(chunk) {
		for j := range chunk {
			chunk[j] = byte(i/len(chunk) + j)
		}
		want.Write(chunk)
	}
	wantSum := want.Sum(nil)
	d := htDataplane(t, withEngine(hlOneConfig(be.addr()), engine))
	before := hlCountsNow()
	c := hlDial(t, d)
	for _, path := range []string{"/cl", "/chunked"} {
		c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // let every buffer on the way fill
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		buf := make([]byte, 16<<10)
		n := 0
		for i := 0; ; i++ {
			k, err := resp.Body.Read(buf)
			h.Write(buf[:k])
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: after %d bytes: %v", path, n, err)
			}
			if i%32 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		if n != size || !bytes.Equal(h.Sum(nil), wantSum) {
			t.Errorf("%s: got %d bytes, sha256 %x; want %d, %x", path, n, h.Sum(nil), size, wantSum)
		}
	}
	hlExpect(t, engine, before, 2, 0)
}

// X-Forwarded-For gets the client appended to what the client sent; X-Real-IP,
// X-Forwarded-Proto and X-Forwarded-Host are lbd's, whatever the client sent.
func TestHTTPLoopForwardedHeaders(t *testing.T) {
	be := hlEcho(t)
	p := hlStart(t, hlOneConfig(be.addr))
	for _, tc := range []struct {
		name, req string
		want      hlFields
	}{{
		name: "plain",
		req:  "GET /x HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
		want: hlFields{{"X-Forwarded-For", "127.0.0.1"}, {"X-Forwarded-Host", "example.com:8080"},
			{"X-Forwarded-Proto", "http"}, {"X-Real-IP", "127.0.0.1"}},
	}, {
		name: "appended and replaced",
		req: "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\nX-Real-IP: 6.6.6.6\r\n" +
			"x-forwarded-for: 10.0.0.3\r\nX-Forwarded-Proto: https\r\nX-FORWARDED-HOST: evil\r\n\r\n",
		want: hlFields{{"X-Forwarded-For", "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"}, {"X-Forwarded-Host", "a"},
			{"X-Forwarded-Proto", "http"}, {"X-Real-IP", "127.0.0.1"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			before := hlCountsNow()
			r := p.do(t, tc.req, "GET")[0]
			_, h := hlEchoed(t, r.body)
			var got hlFields
			for _, f := range h {
				if strings.HasPrefix(strings.ToLower(f.name), "x-") {
					got = append(got, hlField{textproto.CanonicalMIMEHeaderKey(f.name), f.value})
				}
			}
			for i := range tc.want {
				tc.want[i].name = textproto.CanonicalMIMEHeaderKey(tc.want[i].name)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(hlField{})); diff != "" {
				t.Errorf("forwarded headers the server got (-want +got):\n%s", diff)
			}
			hlExpect(t, EngineLoop, before, 1, 0)
		})
	}
}

// Hop-by-hop headers, and those the Connection header names, go neither way.
func TestHTTPLoopHopByHop(t *testing.T) {
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n"+
			"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-End: yes\r\n\r\nok")
		return true
	})
	p := hlStart(t, hlOneConfig(be.addr))
	before := hlCountsNow()
	var server []hlFields
	got := p.run(t, func(c *hlConn) []*hlResp {
		// No Upgrade from the client: the loop hands such requests over.
		r := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private\r\n"+
			"X-Private: secret\r\nkeep-alive: 300\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\n"+
			"Proxy-Authorization: Basic eA==\r\nX-Kept: 1\r\n\r\n")
		server = append(server, be.lastRequest().header)
		return []*hlResp{r}
	})
	for i, h := range server {
		engine := []string{EngineFastHTTP, EngineLoop}[i]
		for _, k := range []string{"Connection", "X-Private", "Keep-Alive", "Proxy-Connection", "Upgrade"} {
			if v := h.values(k); v != nil {
				t.Errorf("%s: the server got %s: %q", engine, k, v)
			}
		}
		for k, want := range map[string]string{"TE": "trailers", "Proxy-Authorization": "Basic eA==", "X-Kept": "1", "Host": "a"} {
			if v := h.values(k); len(v) != 1 || v[0] != want {
				t.Errorf("%s: the server got %s: %q, want %q", engine, k, v, want)
			}
		}
	}
	r := got[0]
	if r.status != 200 || r.body != "ok" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	for _, k := range []string{"Keep-Alive", "X-Hop", "Upgrade", "Proxy-Connection", "Connection"} {
		if v := r.header.values(k); v != nil {
			t.Errorf("the client got %s: %q", k, v)
		}
	}
	if v := r.header.get("X-End"); v != "yes" {
		t.Errorf("the client got X-End %q, want yes", v)
	}
	hlExpect(t, EngineLoop, before, 1, 0)
}

// Header names keep their case, both ways.
func TestHTTPLoopHeaderCase(t *testing.T) {
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nx-resp-lower: a\r\nX-RESP-UPPER: b\r\nX-Resp-MiXeD: c\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	p := hlStart(t, hlOneConfig(be.addr))
	var server []hlFields
	got := p.run(t, func(c *hlConn) []*hlResp {
		r := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\nx-lower: 1\r\nX-UPPER: 2\r\nX-MiXeD-CaSe: 3\r\n\r\n")
		server = append(server, be.lastRequest().header)
		return []*hlResp{r}
	})
	for i, h := range server {
		for _, k := range []string{"x-lower", "X-UPPER", "X-MiXeD-CaSe"} {
			if !h.hasName(k) {
				t.Errorf("%s: the server did not get a field named %q: %q", []string{EngineFastHTTP, EngineLoop}[i], k, h)
			}
		}
	}
	for _, k := range []string{"x-resp-lower", "X-RESP-UPPER", "X-Resp-MiXeD"} {
		if !got[0].header.hasName(k) {
			t.Errorf("the client did not get a field named %q: %q", k, got[0].header)
		}
	}
}

func TestHTTPLoopConnectionClose(t *testing.T) { forEachEngine(t, testHTTPLoopConnectionClose) }

// Connection: close from the client ends its connection after the answer; from the
// server, it ends the server connection only.
func testHTTPLoopConnectionClose(t *testing.T, engine string) {
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		if r.target == "/server-closes" {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye")
			return false
		}
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
	before := hlCountsNow()

	c := hlDial(t, d)
	r := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if r.status != 200 || r.body != "ok" || !r.close {
		t.Errorf("client's Connection: close: %d %q close=%v", r.status, r.body, r.close)
	}
	c.eof()

	c = hlDial(t, d)
	for i := range 3 {
		r = c.roundTrip("GET", "GET /server-closes HTTP/1.1\r\nHost: a\r\n\r\n")
		if r.status != 200 || r.body != "bye" || r.close {
			t.Errorf("server's Connection: close, request %d: %d %q close=%v", i, r.status, r.body, r.close)
		}
	}
	c.open()
	// Each /server-closes after the first on a new server connection; the first on a
	// new one too, or on the first request's (it depends on the pool it finds).
	if got := be.conns.Load(); got < 3 || got > 4 || be.reqs.Load() != 4 {
		t.Errorf("the server saw %d requests on %d connections, want 4 on 3 or 4", be.reqs.Load(), got)
	}
	hlExpect(t, engine, before, 4, 0)
}

func TestHTTPLoopStaleServerConn(t *testing.T) { forEachEngine(t, testHTTPLoopStaleServerConn) }

// A server that closes its connection after each answer without saying so: the pooled
// connection is dead when the next request comes, which must go on a fresh one.
func testHTTPLoopStaleServerConn(t *testing.T, engine string) {
	// The fasthttp engine retries an empty answer on another server only (proxy's
	// Exclude), never on a fresh connection to the same one: with one server the client
	// gets 502.
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
		if r.method != "HEAD" {
			io.WriteString(w, "ok")
		}
		return false
	})
	d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
	before := hlCountsNow()
	c := hlDial(t, d)
	const n = 5
	for i := range n {
		for _, m := range []string{"GET", "HEAD"} {
			if r := c.roundTrip(m, m+" / HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 {
				t.Fatalf("%s %d: %d %q", m, i, r.status, r.body)
			}
			k := be.reqs.Load()
			htEventually(t, "the server closing its connection", func() bool { return be.done.Load() == k })
		}
	}
	hlExpect(t, engine, before, 2*n, 0)
}

// Requests lbd refuses: the same answer from both engines, whichever serves it.
func TestHTTPLoopBadRequests(t *testing.T) {
	be := hlEcho(t)
	cfg := hlOneConfig(be.addr)
	cfg.Frontends[0].MaxHeaderBytes = 4096
	cfg.Frontends[0].MaxBodyBytes = 1000
	p := hlStart(t, cfg)
	for _, tc := range []struct {
		name, req string
		status    int
		body      string
	}{
		{"malformed request line", "GET\r\nHost: a\r\n\r\n", 400, "400 Bad Request: malformed request\n"},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n", 431,
			"431 Request Header Fields Too Large: request header larger than 4096 bytes\n"},
		{"content-length too large", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n" + strings.Repeat("b", 1001), 413,
			"413 Request Entity Too Large: request body larger than 1000 bytes\n"},
		{"chunked too large", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + strings.Repeat("b", 1001) + "\r\n0\r\n\r\n", 413,
			"413 Request Entity Too Large: request body larger than 1000 bytes\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hlCountsNow()
			n := be.reqs.Load()
			r := p.do(t, tc.req, "GET")[0]
			if r.status != tc.status || r.body != tc.body || !r.close {
				t.Errorf("got %d %q close=%v, want %d %q and the connection closed", r.status, r.body, r.close, tc.status, tc.body)
			}
			if tc.status != 413 && be.reqs.Load() != n {
				t.Errorf("the server got the request")
			}
			hlExpectEither(t, EngineLoop, before, 1)
		})
	}
	// At the limits, the request passes.
	before := hlCountsNow()
	r := p.do(t, "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("b", 1000), "POST")[0]
	if r.status != 200 || !strings.Contains(r.body, "1000 bytes") {
		t.Errorf("a body at the limit: %d %q", r.status, r.body)
	}
	hlExpect(t, EngineLoop, before, 1, 0)
}

func TestHTTPLoopServerErrors(t *testing.T) {
	skipShort(t, "every server failure on both engines, some waiting on real timeouts")
	forEachEngine(t, testHTTPLoopServerErrors)
}

// What lbd answers when servers fail, and the retries it makes. lbd's own answers (502,
// 504) are given on the loop, and count as served there.
func testHTTPLoopServerErrors(t *testing.T, engine string) {
	t.Run("connect failures retried", func(t *testing.T) {
		be := htNamed(t, "alive")
		d := htDataplane(t, withEngine(htConfig(BalanceRoundRobin, deadAddr(t), be.addr(), deadAddr(t)), engine))
		before := hlCountsNow()
		c := hlDial(t, d)
		const n = 12
		for i := range n {
			if r := c.roundTrip("POST", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"); r.status != 200 || r.body != "alive" {
				t.Fatalf("request %d: %d %q", i, r.status, r.body)
			}
		}
		if got := htValue(t, d.metrics.retries.WithLabelValues("be")); got < n/2 {
			t.Errorf("retries counted: %v, want at least %d", got, n/2)
		}
		hlExpect(t, engine, before, n, 0)
	})
	t.Run("every server dead", func(t *testing.T) {
		d := htDataplane(t, withEngine(htConfig(BalanceRoundRobin, deadAddr(t), deadAddr(t)), engine))
		before := hlCountsNow()
		r := hlDial(t, d).roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if r.status != 502 || !strings.HasPrefix(r.body, "502 Bad Gateway: cannot connect to server") || !strings.Contains(r.body, "backend be") {
			t.Errorf("got %d %q", r.status, r.body)
		}
		hlExpect(t, engine, before, 1, 0)
	})
	t.Run("no answer", func(t *testing.T) {
		release := make(chan struct{})
		be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
			<-release
			return false
		})
		t.Cleanup(func() { close(release) }) // before the server's cleanup, which waits for it
		cfg := withEngine(hlOneConfig(be.addr), engine)
		cfg.Backends[0].Timeouts.Response = 200 * time.Millisecond
		d := htDataplane(t, cfg)
		before := hlCountsNow()
		c := hlDial(t, d)
		start := time.Now()
		r := c.roundTrip("POST", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
		if r.status != 504 || r.body != "504 Gateway Timeout: server s0 of backend be did not answer within 200ms\n" {
			t.Errorf("got %d %q", r.status, r.body)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("504 took %v", el)
		}
		// The client connection outlives the server's failure.
		if r := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 504 {
			t.Errorf("second request: %d %q", r.status, r.body)
		}
		if got := htValue(t, d.metrics.errors.WithLabelValues("be", "s0", "timeout")); got != 2 {
			t.Errorf("timeouts counted: %v, want 2", got)
		}
		hlExpect(t, engine, before, 2, 0)
	})
	t.Run("closed without answering", func(t *testing.T) {
		be := hlRaw(t, func(w io.Writer, r *hlReq) bool { return false })
		d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
		before := hlCountsNow()
		c := hlDial(t, d)
		r := c.roundTrip("POST", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
		if r.status != 502 || r.body != "502 Bad Gateway: server s0 of backend be closed the connection without answering\n" {
			t.Errorf("got %d %q", r.status, r.body)
		}
		if n := be.reqs.Load(); n != 1 {
			t.Errorf("the POST went to the server %d times, want 1 (not retried)", n)
		}
		r = c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if r.status != 502 {
			t.Errorf("GET: %d %q", r.status, r.body)
		}
		hlExpect(t, engine, before, 2, 0)
	})
}

// Requests the loop engine leaves to fasthttp: their connection is handed over, and the
// answer is fasthttp's. Beside them, features the loop serves itself (rate limits,
// cookie persistence, the PROXY protocol), with the answers the fasthttp engine gives.
func TestHTTPLoopHandOver(t *testing.T) {
	skipShort(t, "every hand-over case against both engines")
	one := func(method, req string) func(c *hlConn) []*hlResp {
		return func(c *hlConn) []*hlResp { return []*hlResp{c.roundTrip(method, req)} }
	}
	for _, tc := range []struct {
		name   string
		config func(cfg *Config)
		script func(c *hlConn) []*hlResp
		check  func(t *testing.T, r []*hlResp)
		// served: the requests are served on the loop, not handed over.
		served int64
	}{{
		name:   "HTTP/1.0",
		script: one("GET", "GET /ten HTTP/1.0\r\nHost: a\r\n\r\n"),
		check: func(t *testing.T, r []*hlResp) {
			if r[0].status != 200 || !strings.HasPrefix(r[0].body, "GET /ten HTTP/1.1\n") || !r[0].close {
				t.Errorf("got %d %q close=%v", r[0].status, r[0].body, r[0].close)
			}
		},
	}, {
		name: "Expect: 100-continue",
		script: func(c *hlConn) []*hlResp {
			c.send("POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
			interim := c.read("POST")
			c.send("hello")
			return []*hlResp{interim, c.read("POST")}
		},
		check: func(t *testing.T, r []*hlResp) {
			if r[0].status != 100 || r[1].status != 200 || !strings.Contains(r[1].body, `body "hello"`) {
				t.Errorf("got %d then %d %q", r[0].status, r[1].status, r[1].body)
			}
		},
	}, {
		name:   "Upgrade",
		script: one("GET", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"),
		check: func(t *testing.T, r []*hlResp) {
			// lbd does not do upgrades: the request goes as a plain one.
			if r[0].status != 200 || strings.Contains(strings.ToLower(r[0].body), "upgrade") {
				t.Errorf("got %d %q", r[0].status, r[0].body)
			}
		},
	}, {
		name:   "rate limit",
		config: func(cfg *Config) { cfg.Frontends[0].RateLimit = &RateLimit{Rate: "1r/m"} },
		script: func(c *hlConn) []*hlResp {
			// The first passes; the second, within the minute, is refused.
			return []*hlResp{c.roundTrip("GET", "GET /rl HTTP/1.1\r\nHost: a\r\n\r\n"), c.roundTrip("GET", "GET /rl HTTP/1.1\r\nHost: a\r\n\r\n")}
		},
		check: func(t *testing.T, r []*hlResp) {
			if r[0].status != 200 || !strings.HasPrefix(r[0].body, "GET /rl HTTP/1.1\n") {
				t.Errorf("first: %d %q", r[0].status, r[0].body)
			}
			if r[1].status != 429 || r[1].body != "429 Too Many Requests: rate limit of 1r/m exceeded\n" {
				t.Errorf("second: %d %q", r[1].status, r[1].body)
			}
		},
		served: 2,
	}, {
		name: "cookie persistence",
		config: func(cfg *Config) {
			cfg.Backends[0].Persistence = &Persistence{Type: PersistCookie, Cookie: PersistenceCookie{Key: ptKey}}
		},
		script: one("GET", "GET /p HTTP/1.1\r\nHost: a\r\n\r\n"),
		check: func(t *testing.T, r []*hlResp) {
			want := "LBDSRV=" + cookieValue([]byte(ptKey), "be", "s0") + "; Path=/; HttpOnly; SameSite=Lax"
			if r[0].status != 200 || r[0].header.get("Set-Cookie") != want {
				t.Errorf("got %d, Set-Cookie %q; want %q", r[0].status, r[0].header.get("Set-Cookie"), want)
			}
		},
		served: 1,
	}, {
		name:   "PROXY protocol",
		config: func(cfg *Config) { cfg.Frontends[0].AcceptProxy = loopbackTrusted },
		script: one("GET", "PROXY TCP4 203.0.113.7 198.51.100.1 4444 80\r\nGET /pp HTTP/1.1\r\nHost: a\r\n\r\n"),
		check: func(t *testing.T, r []*hlResp) {
			if r[0].status != 200 || !strings.Contains(r[0].body, "\nX-Real-IP: 203.0.113.7\n") {
				t.Errorf("got %d %q", r[0].status, r[0].body)
			}
		},
		served: 1, // the header is read off the loop, the request is served on it
	}, {
		name:   "PROXY protocol, then HTTP/1.0",
		config: func(cfg *Config) { cfg.Frontends[0].AcceptProxy = loopbackTrusted },
		script: one("GET", "PROXY TCP4 203.0.113.7 198.51.100.1 4444 80\r\nGET /pp HTTP/1.0\r\nHost: a\r\n\r\n"),
		check: func(t *testing.T, r []*hlResp) {
			// Handed over: fasthttp sees the header's client as the connection's.
			if r[0].status != 200 || !strings.Contains(r[0].body, "\nX-Real-IP: 203.0.113.7\n") {
				t.Errorf("got %d %q", r[0].status, r[0].body)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			be := hlEcho(t)
			cfg := hlOneConfig(be.addr)
			if tc.config != nil {
				tc.config(&cfg)
			}
			p := hlStart(t, cfg)
			before := hlCountsNow()
			tc.check(t, p.run(t, tc.script))
			switch {
			case tc.served > 0:
				hlExpect(t, EngineLoop, before, tc.served, 0)
			default:
				hlExpect(t, EngineLoop, before, 0, 1)
			}
		})
	}
}

func TestHTTPLoopHandOverMidConnection(t *testing.T) {
	forEachEngine(t, testHTTPLoopHandOverMidConnection)
}

// A connection the loop has served requests on is handed over at the first request it
// cannot serve, with the bytes the client pipelined after it; fasthttp then serves the
// connection to its end.
func testHTTPLoopHandOverMidConnection(t *testing.T, engine string) {
	be := hlEcho(t)
	d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
	reqs := []string{
		"GET /a HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /b HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"GET /d HTTP/1.1\r\nHost: a\r\n\r\n",
	}
	check := func(i int, r *hlResp) {
		t.Helper()
		want := strings.Fields(reqs[i])[0] + " " + strings.Fields(reqs[i])[1] + " HTTP/1.1\n"
		if r.status != 200 || !strings.HasPrefix(r.body, want) || r.close {
			t.Errorf("request %d: %d %q close=%v, want the answer to %q", i, r.status, r.body, r.close, want)
		}
	}
	t.Run("one at a time", func(t *testing.T) {
		before := hlCountsNow()
		c := hlDial(t, d)
		for i, req := range reqs {
			check(i, c.roundTrip(strings.Fields(req)[0], req))
		}
		c.open()
		hlExpect(t, engine, before, 1, 1)
	})
	t.Run("pipelined", func(t *testing.T) {
		before := hlCountsNow()
		c := hlDial(t, d)
		c.send(strings.Join(reqs, ""))
		for i, req := range reqs {
			check(i, c.read(strings.Fields(req)[0]))
		}
		c.open()
		hlExpect(t, engine, before, 1, 1)
	})
}

func TestHTTPLoopQueue(t *testing.T) { forEachEngine(t, testHTTPLoopQueue) }

// A request for a backend whose servers are all at their maxconn waits in the queue,
// on the loop as on the fasthttp engine, and is served when the slot frees.
func testHTTPLoopQueue(t *testing.T, engine string) {
	var entered atomic.Int64
	release := make(chan struct{})
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		if entered.Add(1) == 1 {
			<-release
		}
		io.WriteString(w, r.URL.Path)
	})
	cfg := withEngine(hlOneConfig(be.addr()), engine)
	cfg.Backends[0].Servers[0].MaxConn = 1
	d := htDataplane(t, cfg)
	before := hlCountsNow()
	first, second := hlDial(t, d), hlDial(t, d)
	first.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
	htEventually(t, "the first request at the server", func() bool { return entered.Load() == 1 })
	second.send("GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
	htEventually(t, "the second request queued", func() bool {
		return d.snapshot().byName["be"].queue.Len() == 1
	})
	close(release)
	if r := first.read("GET"); r.status != 200 || r.body != "/first" {
		t.Errorf("first: %d %q", r.status, r.body)
	}
	if r := second.read("GET"); r.status != 200 || r.body != "/second" {
		t.Errorf("second: %d %q", r.status, r.body)
	}
	hlExpect(t, engine, before, 2, 0)
}

func TestHTTPLoopQueueTimeoutAndShutdown(t *testing.T) {
	forEachEngine(t, testHTTPLoopQueueTimeoutAndShutdown)
}

// A queued request gets 503 when its wait times out, and when the frontend shuts down
// while it waits, with the same text on both engines.
func testHTTPLoopQueueTimeoutAndShutdown(t *testing.T, engine string) {
	release := make(chan struct{})
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
		io.WriteString(w, r.URL.Path)
	})
	t.Cleanup(func() { close(release) }) // before the server's cleanup, which waits for it
	// start returns a Dataplane whose one server slot a request holds.
	start := func(queueTimeout time.Duration) *Dataplane {
		cfg := withEngine(hlOneConfig(be.addr()), engine)
		cfg.Backends[0].Servers[0].MaxConn = 1
		cfg.Backends[0].Queue.Timeout = queueTimeout
		d := New(Options{Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))})
		if err := d.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		holder := hlDial(t, d)
		holder.send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
		htEventually(t, "the server slot taken", func() bool { return d.snapshot().byName["be"].servers[0].Active() == 1 })
		return d
	}

	d := start(200 * time.Millisecond)
	c := hlDial(t, d)
	r := c.roundTrip("GET", "GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
	want := "503 Service Unavailable: queue timeout: no server of backend be had a free slot within 200ms\n"
	if r.status != 503 || r.body != want {
		t.Errorf("after the queue timeout: %d %q, want 503 %q", r.status, r.body, want)
	}
	closeNow(t, d)

	// Shut down while a request waits in a queue whose timeout cannot come first, and
	// keep the shutdown's deadline until the answer is read: under load, a 200ms queue
	// timeout or a 300ms deadline could end the wait before the shutdown answers it.
	d = start(time.Hour)
	c = hlDial(t, d)
	c.send("GET /stopping HTTP/1.1\r\nHost: a\r\n\r\n")
	htEventually(t, "a request queued", func() bool { return d.snapshot().byName["be"].queue.Len() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Close(ctx)
	}()
	r = c.read("GET")
	if r.status != 503 || r.body != "503 Service Unavailable: frontend stopping\n" {
		t.Errorf("queued at shutdown: %d %q", r.status, r.body)
	}
	cancel() // the held request is still in flight: Close cuts it and returns
	<-done
}

// closeNow closes d, cutting what is in flight.
func closeNow(t *testing.T, d *Dataplane) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.Close(ctx)
}

func TestHTTPLoopReloadInFlight(t *testing.T) { forEachEngine(t, testHTTPLoopReloadInFlight) }

// A reload while requests are in flight loses none, and their connections go on (on
// fasthttp, a change of client settings closes them after the answer in flight).
func testHTTPLoopReloadInFlight(t *testing.T, engine string) {
	const n = 40
	var entered atomic.Int64
	release := make(chan struct{})
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered.Add(1)
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	})
	cfg := withEngine(hlOneConfig(be.addr()), engine)
	d := htDataplane(t, cfg)
	before := hlCountsNow()
	conns := make([]*hlConn, n)
	for i := range conns {
		conns[i] = hlDial(t, d)
		conns[i].send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	htEventually(t, "all requests in flight", func() bool { return entered.Load() == n })
	next := cloneConfig(cfg)
	next.Frontends[0].Routes = []Route{{PathPrefix: "/new/", Backend: "be"}}
	next.Frontends[0].MaxHeaderBytes = 8192 // a setting of the client side
	next.Frontends[0].Timeouts.ClientIdle = 30 * time.Second
	if err := d.Apply(next); err != nil {
		t.Fatal(err)
	}
	close(release)
	for i, c := range conns {
		r := c.read("GET")
		if r.status != 200 || r.body != "done /slow" {
			t.Errorf("request %d in flight: %d %q", i, r.status, r.body)
		}
		switch {
		case r.close:
			c.eof()
			c = hlDial(t, d)
		case engine == EngineFastHTTP:
			// The fasthttp server draining after a change of client settings closes its
			// connections after their answer, not always saying so first.
			c = hlDial(t, d)
		}
		if r := c.roundTrip("GET", "GET /new/x HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 || r.body != "done /new/x" {
			t.Errorf("connection %d after the reload: %d %q", i, r.status, r.body)
		}
	}
	hlExpect(t, engine, before, 2*n, 0)
}

func TestHTTPLoopShutdown(t *testing.T) { forEachEngine(t, testHTTPLoopShutdown) }

// Close lets the request in flight finish, closes idle keep-alive connections and
// returns.
func testHTTPLoopShutdown(t *testing.T, engine string) {
	var entered atomic.Int64
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered.Add(1)
			time.Sleep(200 * time.Millisecond)
		}
		io.WriteString(w, "done "+r.URL.Path)
	})
	d := New(Options{Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))})
	if err := d.Apply(withEngine(hlOneConfig(be.addr()), engine)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) }) // when the test fails early
	addr := d.Addr("fe").String()
	before := hlCountsNow()
	idle := make([]*hlConn, 5)
	for i := range idle { // each has had an answer, and waits
		idle[i] = hlDial(t, d)
		if r := idle[i].roundTrip("GET", "GET /idle HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 {
			t.Fatalf("idle %d: %d %q", i, r.status, r.body)
		}
	}
	idle = append(idle, hlDial(t, d)) // connected, and silent
	busy := hlDial(t, d)
	busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	htEventually(t, "the request in flight", func() bool { return entered.Load() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := d.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Close took %v", el)
	}
	if r := busy.read("GET"); r.status != 200 || r.body != "done /slow" {
		t.Errorf("the request in flight got %d %q", r.status, r.body)
	}
	busy.eof()
	for _, c := range idle {
		c.eof()
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("the frontend still accepts after Close")
	}
	hlExpect(t, engine, before, 6, 0)
}

func TestHTTPLoopIdleServerConnsClosed(t *testing.T) {
	forEachEngine(t, testHTTPLoopIdleServerConnsClosed)
}

// Idle pooled server connections close when their pool is retired (a reload removes
// the server) and when the dataplane closes, not only once idle for poolIdleTimeout.
func testHTTPLoopIdleServerConnsClosed(t *testing.T, engine string) {
	a, b := htNamed(t, "a"), htNamed(t, "b")
	d := New(Options{Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))})
	if err := d.Apply(withEngine(hlOneConfig(a.addr()), engine)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) }) // when the test fails early
	before := hlCountsNow()
	// Several client connections, which the loop engine spreads over its loops, each
	// with its own pool.
	conns := make([]*hlConn, 4)
	for i := range conns {
		conns[i] = hlDial(t, d)
		if r := conns[i].roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 || r.body != "a" {
			t.Fatalf("connection %d: %d %q", i, r.status, r.body)
		}
	}
	if err := d.Apply(withEngine(hlOneConfig(b.addr()), engine)); err != nil {
		t.Fatal(err)
	}
	const soon = poolIdleTimeout / 2
	eventually(t, "the removed server's idle connections closed", soon, func() bool { return a.closed.Load() == a.conns.Load() })
	for i, c := range conns {
		if r := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 || r.body != "b" {
			t.Errorf("connection %d after the reload: %d %q", i, r.status, r.body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	eventually(t, "the server connections closed by Close", soon, func() bool { return b.closed.Load() == b.conns.Load() })
	for _, c := range conns {
		c.eof()
	}
	hlExpect(t, engine, before, 2*int64(len(conns)), 0)
}

func TestHTTPLoopRateLimitDelayShutdown(t *testing.T) {
	forEachEngine(t, testHTTPLoopRateLimitDelayShutdown)
}

// A request waiting for its turn under the rate limit when the frontend shuts down gets
// 503 at once, on both engines, instead of holding the shutdown for its delay.
func testHTTPLoopRateLimitDelayShutdown(t *testing.T, engine string) {
	be := htNamed(t, "x")
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Frontends[0].RateLimit = &RateLimit{Rate: "1r/m", Burst: 5} // the second waits a minute
	d := New(Options{Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))})
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", d.Addr("fe").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	io.WriteString(c, "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
	m := d.metrics.ctl.rateLimited
	htEventually(t, "second request delayed", func() bool { return htValue(t, m.WithLabelValues("fe", "delayed")) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := d.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close took %v with a delayed request", took)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("delayed request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || string(body) != "503 Service Unavailable: server shutting down\n" {
		t.Errorf("delayed request got %d %q", resp.StatusCode, body)
	}
}

// hlHandovers reads lbd_http_engine_handover_total of frontend fe, by reason, leaving
// out the reasons at 0.
func hlHandovers(t testing.TB, d *Dataplane) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for why := range numHandovers {
		if v := htValue(t, d.metrics.handovers.WithLabelValues("fe", why.String())); v != 0 {
			got[why.String()] = v
		}
	}
	return got
}

// Every hand-over the loop engine makes is counted once, under its reason, in
// lbd_http_engine_handover_total; a request the loop serves, and a frontend on the
// fasthttp engine, count nothing. Elsewhere: engine (TestHTTPLoopHandoverOnReload). Not
// reachable here: no_loop (the event loops could not be started), no_host (fasthttp's parser refuses an HTTP/1.1 head without Host first:
// malformed) and unrenderable (a request fasthttp parsed but cannot write).
func TestHTTPLoopHandoverReasons(t *testing.T) {
	skipShort(t, "nineteen scenarios, each starting and closing a Dataplane")
	be := hlEcho(t)
	ca := ttNewCA(t)
	dir := t.TempDir()
	cert := ca.files(t, dir, "fe", "localhost", "127.0.0.1")
	_, port, _ := net.SplitHostPort(be.addr)
	get := func(c *hlConn) { c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n") }
	send := func(req string) func(c *hlConn) {
		return func(c *hlConn) {
			c.send(req)
			c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, io.LimitReader(c.br, 1)) // an answer starts: the hand-over is done
		}
	}
	for _, tc := range []struct {
		reason string // "": served on the loop
		config func(cfg *Config)
		script func(c *hlConn)
	}{
		{reason: "", script: get},
		{reason: "tls", config: func(cfg *Config) {
			cfg.Frontends[0].TLS = &FrontendTLS{Certificates: []TLSCertificate{cert}}
		}, script: func(c *hlConn) {}},
		{reason: "h2c", config: func(cfg *Config) { cfg.Frontends[0].H2C = true }, script: get},
		{reason: "redirect_to_https", config: func(cfg *Config) { cfg.Frontends[0].RedirectToHTTPS = true }, script: get},
		{reason: "backend_tls", config: func(cfg *Config) { cfg.Backends[0].TLS = &BackendTLS{Enabled: true} }, script: func(c *hlConn) {}},
		{reason: "server_name", config: func(cfg *Config) { cfg.Backends[0].Servers[0].Address = "localhost:" + port }, script: get},
		{reason: "http10", script: send("GET / HTTP/1.0\r\nHost: a\r\n\r\n")},
		{reason: "connect", script: send("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")},
		{reason: "upgrade", script: send("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")},
		{reason: "expect", script: send("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")},
		{reason: "bad_target", script: send("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n")},
		{reason: "malformed", script: send("GET\r\nHost: a\r\n\r\n")},
		{reason: "malformed", script: send("GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n")},
		{reason: "malformed", script: send("GET / HTTP/1.1\r\n\r\n")}, // fasthttp's parser wants a Host
		{reason: "head_too_large", script: send("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n")},
		{reason: "large_body", script: send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("b", 70000))},
		{reason: "large_body", script: send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n11170\r\n" + strings.Repeat("b", 70000) + "\r\n0\r\n\r\n")},
		{reason: "bad_body", script: send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")},
		{reason: "cut_short", script: func(c *hlConn) {
			c.send("GET / HTTP/1.1\r\nHost: a\r\n")
			c.c.(*net.TCPConn).CloseWrite()
			c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, c.br)
		}},
	} {
		name := tc.reason
		if name == "" {
			name = "served"
		}
		t.Run(name, func(t *testing.T) {
			cfg := hlOneConfig(be.addr)
			cfg.Frontends[0].MaxHeaderBytes = 4096
			if tc.config != nil {
				tc.config(&cfg)
			}
			for _, engine := range httpEngines {
				d := htDataplane(t, withEngine(cfg, engine))
				tc.script(hlDial(t, d))
				want := map[string]float64{}
				if tc.reason != "" && engine == EngineLoop {
					want[tc.reason] = 1
				}
				// The script has seen an answer start, or the connection close: the
				// hand-over, if any, has been counted (for tls and backend_tls, at the
				// accept: wait for it).
				got := hlHandovers(t, d)
				for deadline := time.Now().Add(hlCounterWait); len(want) > 0 && len(got) == 0 && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
					got = hlHandovers(t, d)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s engine: lbd_http_engine_handover_total (-want +got):\n%s", engine, diff)
				}
			}
		})
	}
}

// A reload that makes a frontend's generation not loopable hands its loop connections
// over at their next request, counted under the new generation's reason: engine when it
// sets engine: fasthttp, whose own new connections then count nothing.
func TestHTTPLoopHandoverOnReload(t *testing.T) {
	be := hlEcho(t)
	for _, tc := range []struct {
		reason string
		change func(cfg *Config)
	}{
		{"engine", func(cfg *Config) { cfg.Frontends[0].Engine = EngineFastHTTP }},
		{"h2c", func(cfg *Config) { cfg.Frontends[0].H2C = true }},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			cfg := withEngine(hlOneConfig(be.addr), EngineLoop)
			d := htDataplane(t, cfg)
			c := hlDial(t, d)
			before := hlCountsNow()
			if r := c.roundTrip("GET", "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 {
				t.Fatalf("before the reload: %d %q", r.status, r.body)
			}
			hlExpect(t, EngineLoop, before, 1, 0)
			next := cloneConfig(cfg)
			tc.change(&next)
			if err := d.Apply(next); err != nil {
				t.Fatal(err)
			}
			if r := c.roundTrip("GET", "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 || !strings.HasPrefix(r.body, "GET /b HTTP/1.1\n") {
				t.Fatalf("after the reload: %d %q", r.status, r.body)
			}
			if r := hlDial(t, d).roundTrip("GET", "GET /c HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 {
				t.Fatalf("a new connection: %d %q", r.status, r.body)
			}
			want := map[string]float64{tc.reason: 1}
			if tc.reason != "engine" {
				want[tc.reason] = 2 // the new connection too
			}
			if diff := cmp.Diff(want, hlHandovers(t, d)); diff != "" {
				t.Errorf("lbd_http_engine_handover_total (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandoverString(t *testing.T) {
	seen := map[string]bool{}
	for why := range numHandovers {
		s := why.String()
		if s == "" || seen[s] || strings.HasPrefix(s, "handover(") {
			t.Errorf("handover %d is named %q", why, s)
		}
		seen[s] = true
	}
	if s := numHandovers.String(); s != "handover("+strconv.Itoa(int(numHandovers))+")" {
		t.Errorf("numHandovers.String() = %q", s)
	}
}
