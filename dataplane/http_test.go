package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Helpers of the http tests carry the prefix ht.

// htDataplane returns a Dataplane serving cfg, closed when the test ends.
func htDataplane(t testing.TB, cfg Config) *Dataplane {
	t.Helper()
	return testDataplane(t, cfg)
}

// htConfig is one http frontend "fe" on 127.0.0.1:0 sending to backend "be" with servers
// at addrs, named s0, s1, ….
func htConfig(balance string, addrs ...string) Config {
	b := Backend{Name: "be", Balance: balance}
	for i, a := range addrs {
		b.Servers = append(b.Servers, ServerConfig{Name: "s" + strconv.Itoa(i), Address: a})
	}
	return Config{
		Frontends: []Frontend{{Name: "fe", Bind: "127.0.0.1:0", Backend: "be"}},
		Backends:  []Backend{b},
	}
}

// htURL is the base URL of frontend fe.
func htURL(t testing.TB, d *Dataplane) string {
	t.Helper()
	a := d.Addr("fe")
	if a == nil {
		t.Fatal("frontend fe has no address")
	}
	return "http://" + a.String()
}

// htClient is an HTTP client with its own connection pool, closed when the test ends.
func htClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// htGet does a request and returns the status and body.
func htDo(t testing.TB, c *http.Client, method, url string, body io.Reader, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// htBackend is a net/http server on a loopback port that counts its connections.
type htBackend struct {
	*httptest.Server
	conns  atomic.Int64 // connections accepted
	closed atomic.Int64 // connections closed
	reqs   atomic.Int64 // requests received
}

func htServe(t testing.TB, h http.HandlerFunc) *htBackend {
	t.Helper()
	b := &htBackend{}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.reqs.Add(1)
		h(w, r)
	}))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.conns.Add(1)
		case http.StateClosed:
			b.closed.Add(1)
		}
	}
	b.Config.ErrorLog = nil
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *htBackend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// htNamed answers every request with name.
func htNamed(t testing.TB, name string) *htBackend {
	return htServe(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name)
	})
}

// htEchoed is what htEcho answers: the request as the server saw it.
type htEchoed struct {
	Method string
	URI    string
	Host   string
	Proto  string
	Header http.Header
	Body   string
}

func htEcho(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(htEchoed{
		Method: r.Method, URI: r.RequestURI, Host: r.Host, Proto: r.Proto, Header: r.Header, Body: string(b),
	})
}

func htDecode(t testing.TB, body string) htEchoed {
	t.Helper()
	var e htEchoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return e
}

// htRaw sends a raw request on a new connection and reads one response.
func htRaw(t testing.TB, d *Dataplane, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", d.Addr("fe").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

// htRawServer runs handle for each connection accepted on a loopback port, and counts
// them.
func htRawServer(t testing.TB, handle func(c net.Conn)) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return htServeRaw(t, ln, handle)
}

// htServeRaw is htRawServer on the listener ln.
func htServeRaw(t testing.TB, ln net.Listener, handle func(c net.Conn)) (string, *atomic.Int64) {
	var n atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String(), &n
}

// htValue reads a counter or gauge.
func htValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	return metricValue(t, c)
}

// htEventually polls cond until it holds or 10s pass. It is for events that end on their
// own, not for timers.
func htEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventually(t, what, 10*time.Second, cond)
}

// httpEngines are the engines the http tests run on, each as a subtest of its name.
var httpEngines = []string{EngineLoop, EngineFastHTTP}

// forEachEngine runs run as the subtests "loop" and "fasthttp", passing the engine each
// is named after. The test sets it on its frontends with withEngine.
func forEachEngine(t *testing.T, run func(t *testing.T, engine string)) {
	t.Helper()
	for _, e := range httpEngines {
		t.Run(e, func(t *testing.T) { run(t, e) })
	}
}

// withEngine returns cfg with engine set on every http frontend (mode http or unset).
// The frontends are copied: cfg itself is not changed.
func withEngine(cfg Config, engine string) Config {
	cfg.Frontends = slices.Clone(cfg.Frontends)
	for i := range cfg.Frontends {
		if m := cfg.Frontends[i].Mode; m == "" || m == ModeHTTP {
			cfg.Frontends[i].Engine = engine
		}
	}
	return cfg
}

func TestHTTPProxyBasic(t *testing.T) { forEachEngine(t, testHTTPProxyBasic) }

func testHTTPProxyBasic(t *testing.T, engine string) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, streamed
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			htEcho(w, r)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.Header().Set("ETag", `"x"`)
			w.WriteHeader(http.StatusNotModified)
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		case "/chunked":
			for i := range 5 {
				fmt.Fprintf(w, "part %d;", i)
				w.(http.Flusher).Flush()
			}
		case "/missing":
			http.Error(w, "no such thing", http.StatusNotFound)
		case "/head":
			w.Header().Set("Content-Length", "1234")
		}
	})
	d := htDataplane(t, withEngine(htConfig("", be.addr()), engine))
	url := htURL(t, d)
	c := htClient(t)

	code, body := htDo(t, c, "GET", url+"/echo?a=1&b=%2F", nil)
	e := htDecode(t, body)
	if code != 200 || e.Method != "GET" || e.URI != "/echo?a=1&b=%2F" || e.Proto != "HTTP/1.1" {
		t.Errorf("GET: %d %+v", code, e)
	}
	code, body = htDo(t, c, "POST", url+"/echo", strings.NewReader("hello body"), "Content-Type", "text/plain")
	e = htDecode(t, body)
	if code != 200 || e.Method != "POST" || e.Body != "hello body" || e.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("POST: %d %+v", code, e)
	}
	if code, body := htDo(t, c, "GET", url+"/nocontent", nil); code != 204 || body != "" {
		t.Errorf("204: %d %q", code, body)
	}
	if code, body := htDo(t, c, "GET", url+"/notmodified", nil); code != 304 || body != "" {
		t.Errorf("304: %d %q", code, body)
	}
	if code, body := htDo(t, c, "GET", url+"/missing", nil); code != 404 || body != "no such thing\n" {
		t.Errorf("404: %d %q", code, body)
	}
	if code, body := htDo(t, c, "GET", url+"/big", nil); code != 200 || body != string(big) {
		t.Errorf("big: %d, %d bytes", code, len(body))
	}
	if code, body := htDo(t, c, "GET", url+"/chunked", nil); code != 200 || body != "part 0;part 1;part 2;part 3;part 4;" {
		t.Errorf("chunked: %d %q", code, body)
	}
	resp, err := c.Head(url + "/head")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 1234 {
		t.Errorf("HEAD: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	// All of it over one client connection and one server connection.
	if n := be.conns.Load(); n != 1 {
		t.Errorf("server saw %d connections, want 1", n)
	}
	m := d.metrics
	if got := htValue(t, m.requests.WithLabelValues("fe", "be", "s0", "2xx")); got != 6 {
		t.Errorf("2xx requests counted: %v, want 6", got)
	}
	if got := htValue(t, m.sessions.WithLabelValues("be", "s0")); got != 8 {
		t.Errorf("sessions counted: %v, want 8", got)
	}
}

func TestHTTPForwardedHeaders(t *testing.T) { forEachEngine(t, testHTTPForwardedHeaders) }

func testHTTPForwardedHeaders(t *testing.T, engine string) {
	be := htServe(t, htEcho)
	d := htDataplane(t, withEngine(htConfig("", be.addr()), engine))
	tests := []struct {
		name string
		req  string
		want http.Header
		host string
	}{{
		name: "plain",
		req:  "GET /x HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
		host: "example.com:8080",
		want: http.Header{
			"X-Forwarded-For":   {"127.0.0.1"},
			"X-Real-Ip":         {"127.0.0.1"},
			"X-Forwarded-Proto": {"http"},
			"X-Forwarded-Host":  {"example.com:8080"},
		},
	}, {
		name: "appended to the client's",
		req:  "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\nx-forwarded-for: 10.0.0.3\r\n\r\n",
		host: "a",
		want: http.Header{
			"X-Forwarded-For":   {"10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"},
			"X-Real-Ip":         {"127.0.0.1"},
			"X-Forwarded-Proto": {"http"},
			"X-Forwarded-Host":  {"a"},
		},
	}, {
		name: "spoofed values replaced",
		req: "GET /x HTTP/1.1\r\nHost: a\r\nx-real-ip: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n" +
			"X-FORWARDED-HOST: evil\r\n\r\n",
		host: "a",
		want: http.Header{
			"X-Forwarded-For":   {"127.0.0.1"},
			"X-Real-Ip":         {"127.0.0.1"},
			"X-Forwarded-Proto": {"http"},
			"X-Forwarded-Host":  {"a"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, body := htRaw(t, d, tt.req)
			e := htDecode(t, body)
			got := http.Header{}
			for _, k := range []string{"X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Proto", "X-Forwarded-Host"} {
				if v := e.Header.Values(k); v != nil {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("forwarded headers (-want +got):\n%s", diff)
			}
			if e.Host != tt.host {
				t.Errorf("Host = %q, want %q", e.Host, tt.host)
			}
		})
	}
}

func TestHTTPHopByHop(t *testing.T) { forEachEngine(t, testHTTPHopByHop) }

func testHTTPHopByHop(t *testing.T, engine string) {
	// The server is raw, to send hop-by-hop response headers net/http would not.
	var got atomic.Pointer[http.Request]
	srv, _ := htRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			got.Store(r)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n"+
				"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nUpgrade: h2c\r\nX-End: yes\r\n\r\nok")
		}
	})
	d := htDataplane(t, withEngine(htConfig("", srv), engine))
	resp, body := htRaw(t, d, "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private\r\n"+
		"X-Private: secret\r\nkeep-alive: 300\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\n"+
		"Upgrade: websocket\r\nProxy-Authorization: Basic eA==\r\nX-Kept: 1\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	r := got.Load()
	for _, k := range []string{"Connection", "X-Private", "Keep-Alive", "Proxy-Connection", "Upgrade"} {
		if v := r.Header.Values(k); v != nil {
			t.Errorf("server got %s: %q", k, v)
		}
	}
	for k, want := range map[string]string{"Te": "trailers", "Proxy-Authorization": "Basic eA==", "X-Kept": "1"} {
		if v := r.Header.Get(k); v != want {
			t.Errorf("server got %s: %q, want %q", k, v, want)
		}
	}
	for _, k := range []string{"Keep-Alive", "X-Hop", "Upgrade"} {
		if v := resp.Header.Values(k); v != nil {
			t.Errorf("client got %s: %q", k, v)
		}
	}
	if v := resp.Header.Get("Connection"); v != "" {
		t.Errorf("client got Connection: %q", v)
	}
	if v := resp.Header.Get("X-End"); v != "yes" {
		t.Errorf("client got X-End: %q, want yes", v)
	}
}

func TestHTTPRouting(t *testing.T) { forEachEngine(t, testHTTPRouting) }

func testHTTPRouting(t *testing.T, engine string) {
	names := []string{"def", "exact", "wild", "path", "hdr"}
	cfg := Config{Frontends: []Frontend{{Name: "fe", Bind: "127.0.0.1:0", Backend: "def", Engine: engine, Routes: []Route{
		{Host: "exact.example.com", Backend: "exact"},
		{Host: "*.wild.example.com", Backend: "wild"},
		{PathPrefix: "/api/", Backend: "path"},
		{Header: &HeaderMatch{Name: "X-Route", Value: "hdr"}, Backend: "hdr"},
	}}}}
	for _, n := range names {
		be := htNamed(t, n)
		cfg.Backends = append(cfg.Backends, Backend{Name: n, Servers: []ServerConfig{{Address: be.addr()}}})
	}
	d := htDataplane(t, cfg)
	url := htURL(t, d)
	c := htClient(t)
	tests := []struct {
		name string
		path string
		hdr  []string
		want string
	}{
		{"default", "/", nil, "def"},
		{"exact host", "/", []string{"Host", "exact.example.com"}, "exact"},
		{"exact host with port and case", "/", []string{"Host", "EXACT.example.com:80"}, "exact"},
		{"wildcard host", "/", []string{"Host", "a.b.wild.example.com"}, "wild"},
		{"wildcard needs a subdomain", "/", []string{"Host", "wild.example.com"}, "def"},
		{"path prefix", "/api/v1", nil, "path"},
		{"path prefix needs the slash", "/api", nil, "def"},
		{"header", "/", []string{"X-Route", "hdr"}, "hdr"},
		{"header other value", "/", []string{"X-Route", "other"}, "def"},
		{"first match wins", "/api/x", []string{"Host", "exact.example.com"}, "exact"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := htDo(t, c, "GET", url+tt.path, nil, tt.hdr...); code != 200 || body != tt.want {
				t.Errorf("got %d %q, want 200 %q", code, body, tt.want)
			}
		})
	}
	// A header name in another case than the route's still matches.
	_, body := htRaw(t, d, "GET / HTTP/1.1\r\nHost: a\r\nx-route: hdr\r\n\r\n")
	if body != "hdr" {
		t.Errorf("lower-case header routed to %q, want hdr", body)
	}
}

func TestHTTPKeepAliveToServer(t *testing.T) { forEachEngine(t, testHTTPKeepAliveToServer) }

func testHTTPKeepAliveToServer(t *testing.T, engine string) {
	be := htNamed(t, "ok")
	d := htDataplane(t, withEngine(htConfig("", be.addr()), engine))
	url := htURL(t, d)
	c := htClient(t)
	for range 200 {
		if code, _ := htDo(t, c, "GET", url, nil); code != 200 {
			t.Fatalf("got %d", code)
		}
	}
	// 200 more from 20 clients at once, each over a new client connection.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := htClient(t)
			for range 10 {
				htDo(t, c, "GET", url, nil)
			}
		}()
	}
	wg.Wait()
	if n := be.conns.Load(); n > 20 {
		t.Errorf("400 requests took %d server connections, want at most 20", n)
	}
	if be.reqs.Load() != 400 {
		t.Errorf("server got %d requests, want 400", be.reqs.Load())
	}
	// A reload that keeps the server keeps its idle connections.
	before := be.conns.Load()
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Frontends[0].Routes = []Route{{PathPrefix: "/other/", Backend: "be"}}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	htDo(t, c, "GET", url, nil)
	if n := be.conns.Load(); n != before {
		t.Errorf("after a reload the server saw %d new connections, want 0", n-before)
	}
}

func TestHTTPRetryConnectFailure(t *testing.T) { forEachEngine(t, testHTTPRetryConnectFailure) }

func testHTTPRetryConnectFailure(t *testing.T, engine string) {
	be := htNamed(t, "alive")
	cfg := withEngine(htConfig(BalanceRoundRobin, deadAddr(t), be.addr(), deadAddr(t)), engine)
	d := htDataplane(t, cfg)
	url := htURL(t, d)
	c := htClient(t)
	for i := range 30 {
		if code, body := htDo(t, c, "POST", url, strings.NewReader("x")); code != 200 || body != "alive" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	m := d.metrics
	if got := htValue(t, m.retries.WithLabelValues("be")); got < 10 {
		t.Errorf("retries counted: %v, want at least 10", got)
	}
	if got := htValue(t, m.errors.WithLabelValues("be", "s0", "connect")); got < 5 {
		t.Errorf("connect errors of s0: %v, want at least 5", got)
	}

	// With every server dead, the client gets 502 naming the backend.
	d2 := htDataplane(t, withEngine(htConfig(BalanceRoundRobin, deadAddr(t), deadAddr(t)), engine))
	code, body := htDo(t, c, "GET", htURL(t, d2), nil)
	if code != 502 || !strings.HasPrefix(body, "502 Bad Gateway: cannot connect to server") || !strings.Contains(body, "backend be") {
		t.Errorf("all dead: %d %q", code, body)
	}
}

func TestHTTPEmptyAnswer(t *testing.T) { forEachEngine(t, testHTTPEmptyAnswer) }

func testHTTPEmptyAnswer(t *testing.T, engine string) {
	// Servers that read a request and close without a word.
	hangUp := func(c net.Conn) {
		http.ReadRequest(bufio.NewReader(c))
	}
	a0, n0 := htRawServer(t, hangUp)
	a1, n1 := htRawServer(t, hangUp)
	d := htDataplane(t, withEngine(htConfig(BalanceRoundRobin, a0, a1), engine))
	url := htURL(t, d)
	c := htClient(t)

	code, body := htDo(t, c, "POST", url, strings.NewReader("once"))
	if code != 502 || !strings.Contains(body, "closed the connection without answering") {
		t.Errorf("POST: %d %q", code, body)
	}
	if n := n0.Load() + n1.Load(); n != 1 {
		t.Errorf("POST went to %d servers, want 1 (not retried)", n)
	}
	code, _ = htDo(t, c, "GET", url, nil)
	if code != 502 {
		t.Errorf("GET: %d, want 502", code)
	}
	if n := n0.Load() + n1.Load(); n != 3 {
		t.Errorf("POST and GET went to %d servers, want 3 (GET retried)", n)
	}
	if got := htValue(t, d.metrics.requests.WithLabelValues("fe", "be", "", "5xx")); got != 2 {
		t.Errorf("5xx answers counted: %v, want 2", got)
	}
}

func TestHTTPResponseTimeout(t *testing.T) {
	skipShort(t, "waits on real response timeouts")
	forEachEngine(t, testHTTPResponseTimeout)
}

func testHTTPResponseTimeout(t *testing.T, engine string) {
	release := make(chan struct{})
	hang := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // net/http watches the connection only after the body
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	slow, slow2 := htServe(t, hang), htServe(t, hang)
	t.Cleanup(func() { close(release) }) // before the servers' Close, which waits for handlers

	cfg := withEngine(htConfig("", slow.addr()), engine)
	cfg.Backends[0].Timeouts.Response = 100 * time.Millisecond
	d := htDataplane(t, cfg)
	start := time.Now()
	code, body := htDo(t, htClient(t), "GET", htURL(t, d), nil)
	if code != 504 || !strings.HasPrefix(body, "504 Gateway Timeout: server s0 of backend be did not answer within 100ms") {
		t.Errorf("got %d %q", code, body)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("504 took %v", el)
	}
	if got := htValue(t, d.metrics.errors.WithLabelValues("be", "s0", "timeout")); got != 1 {
		t.Errorf("timeouts counted: %v, want 1", got)
	}

	// A GET that times out is tried on the other server too; a POST is not.
	cfg = withEngine(htConfig(BalanceRoundRobin, slow.addr(), slow2.addr()), engine)
	cfg.Backends[0].Timeouts.Response = 100 * time.Millisecond
	d = htDataplane(t, cfg)
	c := htClient(t)
	if code, _ := htDo(t, c, "GET", htURL(t, d), nil); code != 504 {
		t.Errorf("GET: %d, want 504", code)
	}
	if n := slow.reqs.Load() + slow2.reqs.Load(); n != 3 {
		t.Errorf("the servers got %d requests, want 3 (one before, two for the GET)", n)
	}
	if code, _ := htDo(t, c, "POST", htURL(t, d), strings.NewReader("x")); code != 504 {
		t.Errorf("POST: %d, want 504", code)
	}
	if n := slow.reqs.Load() + slow2.reqs.Load(); n != 4 {
		t.Errorf("the servers got %d requests, want 4 (POST not retried)", n)
	}
}

func TestHTTPStreamingTimeouts(t *testing.T) {
	skipShort(t, "waits on real response timeouts")
	forEachEngine(t, testHTTPStreamingTimeouts)
}

func testHTTPStreamingTimeouts(t *testing.T, engine string) {
	// A body that keeps coming may take longer than the response timeout; one that
	// stalls for it is cut.
	stall := make(chan struct{})
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 8 {
			fmt.Fprintf(w, "%d", i)
			w.(http.Flusher).Flush()
			time.Sleep(40 * time.Millisecond)
		}
		if r.URL.Path == "/stall" {
			<-stall
		}
	})
	t.Cleanup(func() { close(stall) }) // before be.Close, which waits for the handler
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Backends[0].Timeouts.Response = 150 * time.Millisecond
	d := htDataplane(t, cfg)
	c := htClient(t)
	if code, body := htDo(t, c, "GET", htURL(t, d)+"/slow", nil); code != 200 || body != "01234567" {
		t.Errorf("slow body: %d %q", code, body)
	}
	resp, err := c.Get(htURL(t, d) + "/stall")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil || string(b) != "01234567" {
		t.Errorf("stalled body: %q, %v; want 01234567 and an error", b, err)
	}
}

func TestHTTPStreamingMemory(t *testing.T) {
	skipShort(t, "streams 256 MiB to measure allocations")
	forEachEngine(t, testHTTPStreamingMemory)
}

func testHTTPStreamingMemory(t *testing.T, engine string) {
	const size = 256 << 20
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cl" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	d := htDataplane(t, withEngine(htConfig("", be.addr()), engine))
	c := htClient(t)
	for _, path := range []string{"/cl", "/chunked"} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		resp, err := c.Get(htURL(t, d) + path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		runtime.ReadMemStats(&after)
		if err != nil || n != size {
			t.Fatalf("%s: read %d bytes, %v", path, n, err)
		}
		// Everything in the process allocated, client and server included.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
			t.Errorf("%s: moving %d MiB allocated %d MiB", path, size>>20, alloc>>20)
		}
	}
}

func TestHTTPNoServer(t *testing.T) { forEachEngine(t, testHTTPNoServer) }

func testHTTPNoServer(t *testing.T, engine string) {
	be := htNamed(t, "x")
	cfg := withEngine(htConfig("", be.addr(), be.addr()), engine)
	cfg.Backends[0].Servers[0].State = StateDisabled
	cfg.Backends[0].Servers[1].State = StateDisabled
	d := htDataplane(t, cfg)
	start := time.Now()
	code, body := htDo(t, htClient(t), "GET", htURL(t, d), nil)
	if code != 503 || body != "503 Service Unavailable: no server available for backend be\n" {
		t.Errorf("got %d %q", code, body)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("503 took %v", el)
	}
	if be.reqs.Load() != 0 {
		t.Errorf("server got %d requests", be.reqs.Load())
	}
	if got := htValue(t, d.metrics.noServer.WithLabelValues("fe", "be")); got != 1 {
		t.Errorf("no-server refusals counted: %v, want 1", got)
	}
}

func TestHTTPLimits(t *testing.T) { forEachEngine(t, testHTTPLimits) }

func testHTTPLimits(t *testing.T, engine string) {
	be := htServe(t, htEcho)
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Frontends[0].MaxHeaderBytes = 4096
	cfg.Frontends[0].MaxBodyBytes = 1000
	d := htDataplane(t, cfg)
	big := strings.Repeat("a", 5000)
	resp, _ := htRaw(t, d, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+big+"\r\n\r\n")
	if resp.StatusCode != 431 {
		t.Errorf("big header: %d, want 431", resp.StatusCode)
	}
	resp, _ = htRaw(t, d, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n"+strings.Repeat("b", 1001))
	if resp.StatusCode != 413 {
		t.Errorf("big body: %d, want 413", resp.StatusCode)
	}
	resp, body := htRaw(t, d, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("b", 1000))
	if resp.StatusCode != 200 || len(htDecode(t, body).Body) != 1000 {
		t.Errorf("body at the limit: %d", resp.StatusCode)
	}
	if be.reqs.Load() != 1 {
		t.Errorf("server got %d requests, want 1", be.reqs.Load())
	}
}

func TestHTTPAlgorithms(t *testing.T) {
	skipShort(t, "sends many requests per algorithm and engine")
	forEachEngine(t, testHTTPAlgorithms)
}

func testHTTPAlgorithms(t *testing.T, engine string) {
	var addrs []string
	for i := range 3 {
		name := "s" + strconv.Itoa(i)
		be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(5 * time.Millisecond) // so that requests overlap
			io.WriteString(w, name)
		})
		addrs = append(addrs, be.addr())
	}
	for _, algo := range []string{BalanceRoundRobin, BalanceLeastConn, BalanceLeastTime, BalanceRandom, BalanceSource, BalanceConsistent} {
		t.Run(algo, func(t *testing.T) {
			cfg := withEngine(htConfig(algo, addrs...), engine)
			if algo == BalanceConsistent {
				cfg.Backends[0].HashKey = "uri"
			}
			d := htDataplane(t, cfg)
			url := htURL(t, d)
			var mu sync.Mutex
			got := map[string]int{}
			var wg sync.WaitGroup
			for i := range 30 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each client from its own loopback address, for source.
					local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
					tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: local}).DialContext}
					defer tr.CloseIdleConnections()
					c := &http.Client{Transport: tr}
					for j := range 3 {
						code, body := htDo(t, c, "GET", url+"/k"+strconv.Itoa(i*3+j), nil)
						if code != 200 {
							t.Errorf("got %d %q", code, body)
						}
						mu.Lock()
						got[body]++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			for i := range 3 {
				if n := got["s"+strconv.Itoa(i)]; n < 5 {
					t.Errorf("s%d got %d of 90 requests: %v", i, n, got)
				}
			}
		})
	}
}

func TestHTTPDrain(t *testing.T) { forEachEngine(t, testHTTPDrain) }

func testHTTPDrain(t *testing.T, engine string) {
	s0, s1 := htNamed(t, "s0"), htNamed(t, "s1")
	cfg := withEngine(htConfig(BalanceRoundRobin, s0.addr(), s1.addr()), engine)
	d := htDataplane(t, cfg)
	url := htURL(t, d)
	c := htClient(t)
	for range 10 {
		htDo(t, c, "GET", url, nil)
	}
	if s0.reqs.Load() == 0 {
		t.Fatal("s0 got nothing while enabled")
	}
	cfg.Backends[0].Servers[0].State = StateDrain
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	before := s0.reqs.Load()
	for range 20 {
		if code, body := htDo(t, c, "GET", url, nil); code != 200 || body != "s1" {
			t.Fatalf("got %d %q, want 200 s1", code, body)
		}
	}
	if n := s0.reqs.Load() - before; n != 0 {
		t.Errorf("drained s0 got %d new requests", n)
	}
}

func TestHTTPReloadInFlight(t *testing.T) {
	skipShort(t, "holds requests in flight across reloads")
	forEachEngine(t, testHTTPReloadInFlight)
}

func testHTTPReloadInFlight(t *testing.T, engine string) {
	for _, tt := range []struct {
		name   string
		change func(*Config)
	}{
		{"add a route", func(c *Config) {
			c.Frontends[0].Routes = []Route{{PathPrefix: "/new/", Backend: "be"}}
		}},
		{"change client timeouts", func(c *Config) {
			c.Frontends[0].Timeouts.ClientIdle = 30 * time.Second
			c.Frontends[0].MaxHeaderBytes = 8192
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 200
			var entered atomic.Int64
			release := make(chan struct{})
			be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
				entered.Add(1)
				<-release
				time.Sleep(200 * time.Millisecond)
				io.WriteString(w, "done")
			})
			cfg := withEngine(htConfig("", be.addr()), engine)
			d := htDataplane(t, cfg)
			url := htURL(t, d)
			c := htClient(t)
			codes := make(chan int, n+1)
			send := func() {
				req, _ := http.NewRequest("GET", url, nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					codes <- 0
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "done" {
					codes <- -1
					return
				}
				codes <- resp.StatusCode
			}
			for range n {
				go send()
			}
			htEventually(t, "all requests in flight", func() bool { return entered.Load() == n })

			bad := cfg
			bad.Backends = nil
			if err := d.Apply(bad); err == nil {
				t.Error("Apply of a config with a missing backend succeeded")
			}
			go send() // the old config still serves
			htEventually(t, "a request after the failed Apply", func() bool { return entered.Load() == n+1 })
			next := withEngine(htConfig("", be.addr()), engine)
			tt.change(&next)
			if err := d.Apply(next); err != nil {
				t.Fatal(err)
			}
			close(release)
			for range n + 1 {
				if code := <-codes; code != 200 {
					t.Errorf("a request in flight got %d", code)
				}
			}
			if code, body := htDo(t, c, "GET", url+"/new/x", nil); code != 200 || body != "done" {
				t.Errorf("after the reload: %d %q", code, body)
			}
		})
	}
}

func TestHTTPTrailersAndHTTP10(t *testing.T) { forEachEngine(t, testHTTPTrailersAndHTTP10) }

func testHTTPTrailersAndHTTP10(t *testing.T, engine string) {
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "hello ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "world")
		w.Header().Set("X-Sum", "42")
	})
	d := htDataplane(t, withEngine(htConfig("", be.addr()), engine))
	resp, err := htClient(t).Get(htURL(t, d))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello world" || resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("got %q, trailer %v", b, resp.Trailer)
	}
	// An HTTP/1.0 client cannot take chunked encoding: it gets the body with a length.
	resp, body := htRaw(t, d, "GET / HTTP/1.0\r\nHost: a\r\n\r\n")
	if body != "hello world" || resp.ContentLength != int64(len("hello world")) {
		t.Errorf("HTTP/1.0: %q, Content-Length %d", body, resp.ContentLength)
	}
}

func TestHTTPShutdownWaits(t *testing.T) {
	skipShort(t, "waits for a request in flight at a slow server")
	forEachEngine(t, testHTTPShutdownWaits)
}

func testHTTPShutdownWaits(t *testing.T, engine string) {
	var entered atomic.Int64
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "late")
	})
	d := New(Options{Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))})
	if err := d.Apply(withEngine(htConfig("", be.addr()), engine)); err != nil {
		t.Fatal(err)
	}
	url := htURL(t, d)
	done := make(chan string)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	htEventually(t, "request in flight", func() bool { return entered.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := <-done; got != "late" {
		t.Errorf("request in flight during Close got %q", got)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(url, "http://")); err == nil {
		t.Error("frontend still accepts after Close")
	}
}

// htFastBackend is a fasthttp server on a loopback port answering every request with
// body, for benchmarks.
func htFastBackend(b testing.TB, body []byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain")
		ctx.SetBody(body)
	}}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// htBench runs GET requests against addr from parallel fasthttp clients.
func htBench(b *testing.B, addr string, want []byte) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 1024}
	b.ReportAllocs()
	b.SetParallelism(16) // 16 connections per CPU: throughput, not one client's latency
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/hello?x=1")
		req.Header.Set("User-Agent", "bench")
		req.Header.Set("Accept", "*/*")
		for pb.Next() {
			if err := c.Do(req, resp); err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode() != 200 || !bytes.Equal(resp.Body(), want) {
				b.Errorf("got %d %q", resp.StatusCode(), resp.Body())
				return
			}
		}
	})
}

// BenchmarkHTTPProxy measures a small GET through lbd: client, lbd and server all in
// this process, over loopback. Compare with BenchmarkHTTPDirect, the same without lbd:
// the difference is lbd's share.
func BenchmarkHTTPProxy(b *testing.B) { htBenchProxy(b, EngineFastHTTP) }

// BenchmarkHTTPProxyLoop is BenchmarkHTTPProxy on the loop engine.
func BenchmarkHTTPProxyLoop(b *testing.B) { htBenchProxy(b, EngineLoop) }

// htBenchProxy is BenchmarkHTTPProxy on engine.
func htBenchProxy(b *testing.B, engine string) {
	body := []byte("Hello, World!")
	d := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := d.Apply(withEngine(htConfig(BalanceRoundRobin, htFastBackend(b, body)), engine)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close(context.Background()) })
	htBench(b, d.Addr("fe").String(), body)
}

func BenchmarkHTTPDirect(b *testing.B) {
	body := []byte("Hello, World!")
	htBench(b, htFastBackend(b, body), body)
}

func TestHTTPClientStalls(t *testing.T) { forEachEngine(t, testHTTPClientStalls) }

func testHTTPClientStalls(t *testing.T, engine string) {
	// A client that stops reading a streamed response is cut after client_idle, and the
	// server connection goes with it.
	var writing, gone atomic.Bool
	chunk := bytes.Repeat([]byte("z"), 64<<10)
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		writing.Store(true)
		defer gone.Store(true)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Frontends[0].Timeouts.ClientIdle = 200 * time.Millisecond
	d := htDataplane(t, cfg)
	c, err := net.Dial("tcp", d.Addr("fe").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	htEventually(t, "the server streaming", writing.Load)
	htEventually(t, "the server connection closed", gone.Load)
	srv := d.snapshot().byName["be"].servers[0]
	htEventually(t, "the server released", func() bool { return srv.Active() == 0 })
}

func TestHTTPClientHeaderTimeout(t *testing.T) { forEachEngine(t, testHTTPClientHeaderTimeout) }

func testHTTPClientHeaderTimeout(t *testing.T, engine string) {
	be := htNamed(t, "x")
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Frontends[0].Timeouts.ClientHeader = 100 * time.Millisecond
	d := htDataplane(t, cfg)
	c, err := net.Dial("tcp", d.Addr("fe").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n") // and never the end of the head
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("got %d, want 408", resp.StatusCode)
	}
}

func TestHTTPMaxConn(t *testing.T) { forEachEngine(t, testHTTPMaxConn) }

func testHTTPMaxConn(t *testing.T, engine string) {
	be := htNamed(t, "x")
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Frontends[0].MaxConn = 1
	d := htDataplane(t, cfg)
	addr := d.Addr("fe").String()
	get := func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := get(c1); err != nil {
		t.Fatal(err)
	}
	active := d.metrics.connsActive.WithLabelValues("fe")
	if got := htValue(t, active); got != 1 {
		t.Errorf("active connections: %v, want 1", got)
	}
	// The second connection waits in the accept queue while the first is open.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	done := make(chan error, 1)
	go func() { done <- get(c2) }()
	select {
	case err := <-done:
		t.Fatalf("second connection served while the first is open (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	c1.Close()
	if err := <-done; err != nil {
		t.Fatalf("second connection: %v", err)
	}
	c2.Close()
	htEventually(t, "no active connection", func() bool { return htValue(t, active) == 0 })
	if got := htValue(t, d.metrics.connsTotal.WithLabelValues("fe")); got != 2 {
		t.Errorf("connections counted: %v, want 2", got)
	}
}

func TestHTTPPoolRetired(t *testing.T) { forEachEngine(t, testHTTPPoolRetired) }

func testHTTPPoolRetired(t *testing.T, engine string) {
	be := htNamed(t, "a")
	closed := &be.closed
	other := htNamed(t, "b")
	d := htDataplane(t, withEngine(htConfig("", be.addr()), engine))
	c := htClient(t)
	htDo(t, c, "GET", htURL(t, d), nil)
	if be.conns.Load() != 1 || closed.Load() != 0 {
		t.Fatalf("server connections: %d opened, %d closed", be.conns.Load(), closed.Load())
	}
	// A reload that removes the server closes its idle connection.
	if err := d.Apply(withEngine(htConfig("", other.addr()), engine)); err != nil {
		t.Fatal(err)
	}
	htEventually(t, "the idle connection closed", func() bool { return closed.Load() == 1 })
	if code, body := htDo(t, c, "GET", htURL(t, d), nil); code != 200 || body != "b" {
		t.Errorf("after the reload: %d %q", code, body)
	}
}
