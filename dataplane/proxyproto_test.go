package dataplane

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/dataplane/balance"
	"lbd/dataplane/internal/proxyproto"
	"lbd/internal/testutil"
)

func TestProxyValidate(t *testing.T) {
	base := func() Config {
		return Config{
			Frontends: []Frontend{
				{Name: "web", Mode: ModeHTTP, Bind: "127.0.0.1:0", Backend: "app",
					Routes: []Route{{PathPrefix: "/api/", Backend: "api"}}},
				{Name: "db", Mode: ModeTCP, Bind: "127.0.0.1:1", Backend: "db"},
				{Name: "dns", Mode: ModeUDP, Bind: "127.0.0.1:2", Backend: "dns"},
			},
			Backends: []Backend{
				{Name: "app", Servers: []ServerConfig{{Address: "127.0.0.1:8080"}}},
				{Name: "api", Servers: []ServerConfig{{Address: "127.0.0.1:8081"}}},
				{Name: "db", Servers: []ServerConfig{{Address: "127.0.0.1:5432"}}},
				{Name: "dns", Servers: []ServerConfig{{Address: "127.0.0.1:53"}}},
			},
		}
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"good", func(c *Config) {
			c.Frontends[0].AcceptProxy = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:10.1.0.0/112"}
			c.Frontends[1].AcceptProxy = []string{"127.0.0.1/32"}
			c.Backends[2].SendProxy = ProxyV2
		}, nil},
		{"bad prefixes", func(c *Config) {
			c.Frontends[1].AcceptProxy = []string{"10.0.0.1/8", "10.0.0.0/33", "example.com", "fe80::1%eth0"}
		}, []string{
			`frontends[1].accept_proxy[0]: "10.0.0.1/8" has host bits set; the prefix is 10.0.0.0/8`,
			`frontends[1].accept_proxy[1]: "10.0.0.0/33" is not an address or CIDR prefix`,
			`frontends[1].accept_proxy[2]: "example.com" is not an address or CIDR prefix`,
			`frontends[1].accept_proxy[3]: "fe80::1%eth0" is not an address or CIDR prefix`,
		}},
		{"udp", func(c *Config) { c.Frontends[2].AcceptProxy = []string{"10.0.0.0/8"} },
			[]string{`frontends[2].accept_proxy: needs mode http or tcp, not udp`}},
		{"bad version", func(c *Config) { c.Backends[2].SendProxy = "2" },
			[]string{`backends[2].send_proxy: must be v1 or v2, not "2"`}},
		{"http default backend", func(c *Config) { c.Backends[0].SendProxy = ProxyV1 },
			[]string{`backends[0].send_proxy: backend "app" is used by http frontend "web"; send_proxy applies to tcp frontends only (http server connections are pooled and shared by clients)`}},
		{"http route backend", func(c *Config) { c.Backends[1].SendProxy = ProxyV2 },
			[]string{`backends[1].send_proxy: backend "api" is used by http frontend "web"; send_proxy applies to tcp frontends only (http server connections are pooled and shared by clients)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(&c)
			c.SetDefaults()
			var got []string
			if err := c.Validate(); err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					got = append(got, e.Error())
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// ppConfig is l4Config with accept_proxy on the frontend and send_proxy on the backend.
func ppConfig(mode string, accept []string, send string, addrs ...string) Config {
	cfg := l4Config(mode, BalanceRoundRobin, addrs...)
	cfg.Frontends[0].AcceptProxy = accept
	cfg.Backends[0].SendProxy = send
	return cfg
}

var loopbackTrusted = []string{"127.0.0.0/8"}

// ppTellServer is a server that reads the PROXY header its connections start with,
// answers with "SRC DST\n" (or "local\n", or "error: …\n"), then echoes.
func ppTellServer(t testing.TB) string {
	return tcpServer(t, func(c *net.TCPConn) {
		h, err := readProxyHeader(c, time.Now().Add(5*time.Second))
		switch {
		case err != nil:
			fmt.Fprintf(c, "error: %v\n", err)
			return
		case h.Local:
			io.WriteString(c, "local\n")
		default:
			fmt.Fprintf(c, "%s %s\n", h.Src, h.Dst)
		}
		tcpEcho(c)
	})
}

// ppReadLine reads one line from c, byte by byte so nothing after it is consumed.
func ppReadLine(t testing.TB, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("reading a line (%q so far): %v", line, err)
		}
		if b[0] == '\n' {
			return string(line)
		}
		line = append(line, b[0])
	}
}

// TestProxyAcceptTCP sends headers of every kind from a trusted source: the server gets
// the payload alone, and the addresses the header gives (sent on as v2).
func TestProxyAcceptTCP(t *testing.T) {
	d := l4Dataplane(t, ppConfig(ModeTCP, loopbackTrusted, ProxyV2, ppTellServer(t)))
	fe := d.Addr("fe").String()
	inet6 := testutil.ProxyInet6("2001:db8::7", "2001:db8::1", 40000, 8443)
	tests := []struct {
		name   string
		header string
		split  bool   // send the header a few bytes at a time
		want   string // what the server says it got; "self" for the connection's own addresses
	}{
		{"v1 tcp4", "PROXY TCP4 203.0.113.7 198.51.100.1 4444 443\r\n", false, "203.0.113.7:4444 198.51.100.1:443"},
		{"v1 tcp6", "PROXY TCP6 2001:db8::7 2001:db8::1 40000 8443\r\n", false, "[2001:db8::7]:40000 [2001:db8::1]:8443"},
		{"v1 in pieces", "PROXY TCP4 203.0.113.7 198.51.100.1 4444 443\r\n", true, "203.0.113.7:4444 198.51.100.1:443"},
		{"v1 unknown", "PROXY UNKNOWN\r\n", false, "self"},
		{"v2 tcp4", testutil.ProxyV2(0x21, 0x11, testutil.ProxyInet("203.0.113.8", "198.51.100.1", 5555, 443)), false, "203.0.113.8:5555 198.51.100.1:443"},
		{"v2 tcp6 with tlvs", testutil.ProxyV2(0x21, 0x21, inet6, testutil.ProxyTLV(0x04, strings.Repeat("z", 300))), false, "[2001:db8::7]:40000 [2001:db8::1]:8443"},
		{"v2 in pieces", testutil.ProxyV2(0x21, 0x11, testutil.ProxyInet("203.0.113.8", "198.51.100.1", 5555, 443)), true, "203.0.113.8:5555 198.51.100.1:443"},
		{"v2 local", testutil.ProxyV2(0x20, 0x00), false, "self"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tcpDial(t, d)
			// A payload that itself looks like a header: only the first is taken.
			payload := tt.header + "then the payload"
			if tt.split {
				for i := 0; i < len(tt.header); i += 5 {
					tcpWriteString(t, c, tt.header[i:min(i+5, len(tt.header))])
					time.Sleep(2 * time.Millisecond)
				}
				tcpWriteString(t, c, payload)
			} else {
				tcpWriteString(t, c, tt.header+payload)
			}
			want := tt.want
			if want == "self" {
				want = c.LocalAddr().String() + " " + fe
			}
			if got := ppReadLine(t, c); got != want {
				t.Fatalf("server saw %q, want %q", got, want)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("reading the echo: %v", err)
			}
			if string(got) != payload {
				t.Fatalf("echo = %q, want %q", got, payload)
			}
		})
	}
}

// TestProxySendTCP checks the header a send_proxy backend's servers get from a plain
// client: the client's address and the frontend's.
func TestProxySendTCP(t *testing.T) {
	for _, v := range []string{ProxyV1, ProxyV2} {
		t.Run(v, func(t *testing.T) {
			d := l4Dataplane(t, ppConfig(ModeTCP, nil, v, ppTellServer(t)))
			c := tcpDial(t, d)
			// The header goes out on connecting, before the client sends anything.
			want := c.LocalAddr().String() + " " + d.Addr("fe").String()
			if got := ppReadLine(t, c); got != want {
				t.Fatalf("server saw %q, want %q", got, want)
			}
			tcpRoundTrip(t, c, "hello")
		})
	}
	// The v1 line itself, as a server reading it with a line reader sees it.
	lines := make(chan string, 1)
	addr := tcpServer(t, func(c *net.TCPConn) {
		l, _ := bufio.NewReader(c).ReadString('\n')
		lines <- l
	})
	d := l4Dataplane(t, ppConfig(ModeTCP, nil, ProxyV1, addr))
	c := tcpDial(t, d)
	la, fa := c.LocalAddr().(*net.TCPAddr), d.Addr("fe").(*net.TCPAddr)
	want := fmt.Sprintf("PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n", la.Port, fa.Port)
	select {
	case got := <-lines:
		if got != want {
			t.Fatalf("server got %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no line")
	}
}

// TestProxyBalancesOnRealClient checks that source balancing hashes the address the
// header gives, not the connection's.
func TestProxyBalancesOnRealClient(t *testing.T) {
	a0, a1 := tcpServer(t, tcpID("s0")), tcpServer(t, tcpID("s1"))
	cfg := ppConfig(ModeTCP, loopbackTrusted, "", a0, a1)
	cfg.Backends[0].Balance = BalanceSource
	d := l4Dataplane(t, cfg)
	ref, err := balance.New(balance.Source, []*Server{NewServer("s0", a0, 1), NewServer("s1", a1, 1)}, balance.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range 16 {
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)})
		want := ref.Pick(&Pick{ClientIP: ip}).Name
		seen[want] = true
		c := tcpDial(t, d)
		tcpWriteString(t, c, fmt.Sprintf("PROXY TCP4 %s 198.51.100.1 1234 443\r\n", ip))
		if got := tcpReadAll(t, c); got != want {
			t.Errorf("client %s went to %s, want %s", ip, got, want)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("the 16 addresses all hash to %v; the test shows nothing", seen)
	}
}

// TestProxyMalformedTCP: a trusted source with a bad header is closed and counted, while
// a connection already proxying is unaffected; a source that sends nothing is closed at
// client_header.
func TestProxyMalformedTCP(t *testing.T) {
	cfg := ppConfig(ModeTCP, loopbackTrusted, "", tcpServer(t, tcpEcho))
	cfg.Frontends[0].Timeouts.ClientHeader = 200 * time.Millisecond
	d := l4Dataplane(t, cfg)
	good := tcpDial(t, d)
	tcpWriteString(t, good, "PROXY TCP4 203.0.113.7 198.51.100.1 4444 443\r\n")
	tcpRoundTrip(t, good, "before")

	tests := []struct{ name, send, reason string }{
		{"bad port", "PROXY TCP4 203.0.113.7 198.51.100.1 99999 443\r\nGET / HTTP/1.0\r\n\r\n", proxyproto.ReasonMalformed},
		{"bad v2 version", testutil.ProxyV2(0x11, 0x11, testutil.ProxyInet("203.0.113.7", "198.51.100.1", 1, 2)), proxyproto.ReasonMalformed},
		{"no header", "GET / HTTP/1.0\r\n\r\n", proxyproto.ReasonMissing},
		{"closed half way", "PROXY TCP4 203.0", proxyproto.ReasonClosed},
		{"silent", "", proxyproto.ReasonTimeout},
	}
	var wg sync.WaitGroup
	for _, tt := range tests {
		c := tcpDial(t, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tt.send != "" {
				io.WriteString(c, tt.send)
			}
			if tt.reason == proxyproto.ReasonClosed {
				c.CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil // a reset is a close too
			}
			if err != nil || len(b) > 0 {
				t.Errorf("%s: read %q, %v; want the connection closed with nothing sent", tt.name, b, err)
			}
		}()
	}
	tcpRoundTrip(t, good, "during")
	wg.Wait()
	tcpRoundTrip(t, good, "after")
	for _, tt := range tests {
		c := d.metrics.proxyErrors.WithLabelValues("fe", tt.reason)
		l4Eventually(t, tt.reason+" counted", func() bool { return l4Value(t, c) >= 1 })
	}
	if got := l4Value(t, d.metrics.proxyErrors.WithLabelValues("fe", proxyproto.ReasonMalformed)); got != 2 {
		t.Errorf("malformed errors = %v, want 2", got)
	}
}

// TestProxyUntrustedTCP: outside the trusted prefixes, a header is just data.
func TestProxyUntrustedTCP(t *testing.T) {
	d := l4Dataplane(t, ppConfig(ModeTCP, []string{"10.0.0.0/8", "::1/128"}, "", tcpServer(t, tcpEcho)))
	c := tcpDial(t, d)
	tcpRoundTrip(t, c, "PROXY TCP4 10.1.2.3 198.51.100.1 4444 443\r\nhello")
	tcpRoundTrip(t, c, testutil.ProxyV2(0x21, 0x11, testutil.ProxyInet("10.1.2.3", "198.51.100.1", 1, 2)))
	if got := l4Value(t, d.metrics.proxyErrors.WithLabelValues("fe", proxyproto.ReasonMissing)); got != 0 {
		t.Errorf("missing errors = %v, want 0", got)
	}
}

// TestProxySplice is TestTCPSplice behind a PROXY header: reading the header leaves the
// connection one that the proxy splices.
func TestProxySplice(t *testing.T) {
	if _, err := os.ReadFile("/proc/self/io"); err != nil {
		t.Skipf("no per-process I/O accounting: %v", err)
	}
	d := l4Dataplane(t, ppConfig(ModeTCP, loopbackTrusted, "", tcpServer(t, tcpEcho)))
	const n = 32 << 20
	data := make([]byte, n)
	c := tcpDial(t, d)
	tcpWriteString(t, c, testutil.ProxyV2(0x21, 0x11, testutil.ProxyInet("203.0.113.7", "198.51.100.1", 1, 2)))
	before := procRchar(t)
	got := tcpEchoData(t, c, data)
	delta := procRchar(t) - before
	if len(got) != n {
		t.Fatalf("echoed %d bytes, want %d", len(got), n)
	}
	t.Logf("rchar grew by %d for %d bytes echoed (%.2f×)", delta, n, float64(delta)/n)
	if delta > 2*n {
		t.Errorf("the process read %d bytes through user space for %d bytes echoed; the proxy does not splice after a PROXY header", delta, n)
	}
}

// TestProxyAcceptHTTP: X-Forwarded-For and X-Real-IP carry the address of the header.
func TestProxyAcceptHTTP(t *testing.T) { forEachEngine(t, testProxyAcceptHTTP) }

func testProxyAcceptHTTP(t *testing.T, engine string) {
	be := htServe(t, htEcho)
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Frontends[0].AcceptProxy = loopbackTrusted
	d := htDataplane(t, cfg)
	const req = "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n"
	tests := []struct{ name, header, want string }{
		{"v1", "PROXY TCP4 203.0.113.7 198.51.100.1 4444 80\r\n", "203.0.113.7"},
		{"v1 tcp6", "PROXY TCP6 2001:db8::7 2001:db8::1 4444 80\r\n", "2001:db8::7"},
		{"v2", testutil.ProxyV2(0x21, 0x11, testutil.ProxyInet("203.0.113.8", "198.51.100.1", 5555, 80)), "203.0.113.8"},
		{"v2 local", testutil.ProxyV2(0x20, 0x00), "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, body := htRaw(t, d, tt.header+req)
			e := htDecode(t, body)
			got := http.Header{"X-Forwarded-For": e.Header.Values("X-Forwarded-For"), "X-Real-Ip": e.Header.Values("X-Real-Ip")}
			want := http.Header{"X-Forwarded-For": {"10.9.9.9, " + tt.want}, "X-Real-Ip": {tt.want}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("forwarded headers (-want +got):\n%s", diff)
			}
		})
	}

	// A bad header closes the connection without an answer, and is counted.
	c, err := net.Dial("tcp", d.Addr("fe").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, req)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); len(b) > 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a request without a header got %q, %v; want the connection closed", b, err)
	}
	if got := htValue(t, d.metrics.proxyErrors.WithLabelValues("fe", proxyproto.ReasonMissing)); got != 1 {
		t.Errorf("missing errors = %v, want 1", got)
	}
	// The frontend's connection count went back down.
	htEventually(t, "connections closed", func() bool { return l4Runner(t, d, "fe").(*httpFrontend).open.Load() == 0 })
}

// TestProxyUntrustedHTTP: outside the trusted prefixes, a header line is the request line.
func TestProxyUntrustedHTTP(t *testing.T) { forEachEngine(t, testProxyUntrustedHTTP) }

func testProxyUntrustedHTTP(t *testing.T, engine string) {
	be := htServe(t, htEcho)
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Frontends[0].AcceptProxy = []string{"10.0.0.0/8"}
	d := htDataplane(t, cfg)
	resp, _ := htRaw(t, d, "PROXY TCP4 10.1.2.3 198.51.100.1 4444 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400", resp.StatusCode)
	}
	_, body := htRaw(t, d, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if got := htDecode(t, body).Header.Get("X-Real-Ip"); got != "127.0.0.1" {
		t.Errorf("X-Real-IP = %q, want 127.0.0.1", got)
	}
}
