package dataplane

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// silentAddr returns a loopback address that accepts connections and never answers.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
			close(done)
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

func runProbe(t *testing.T, hc HealthCheck, addr string) string {
	t.Helper()
	b := Backend{Name: "b", Servers: []ServerConfig{{Address: addr}}, HealthCheck: &hc}
	cfg := Config{Backends: []Backend{b}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	hcp := cfg.Backends[0].HealthCheck
	ctx, cancel := context.WithTimeout(context.Background(), hcp.Timeout)
	defer cancel()
	if err := newProbe(hcp, addr)(ctx); err != nil {
		return checkReason(err, hcp.Timeout)
	}
	return "passed"
}

func TestProbes(t *testing.T) {
	var mu sync.Mutex
	var gotReq string
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotReq = r.Method + " " + r.URL.RequestURI() + " " + r.Host + " " + r.UserAgent()
		mu.Unlock()
		switch r.URL.Path {
		case "/health":
			fmt.Fprint(w, "status: healthy")
		case "/sick":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/moved":
			http.Redirect(w, r, "/health", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer web.Close()
	tlsWeb := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer tlsWeb.Close()
	webAddr := web.Listener.Addr().String()
	tlsAddr := tlsWeb.Listener.Addr().String()
	_, webPort, _ := net.SplitHostPort(webAddr)
	var port int
	fmt.Sscan(webPort, &port)
	dead := deadAddr(t)
	silent := silentAddr(t)
	ms50 := 50 * time.Millisecond

	tests := []struct {
		name string
		hc   HealthCheck
		addr string
		want string
	}{
		{"tcp up", HealthCheck{}, webAddr, "passed"},
		{"tcp refused", HealthCheck{}, dead, "connect: connection refused"},
		{"tcp on the check port", HealthCheck{Port: port}, dead, "passed"},
		{"http 200", HealthCheck{Type: CheckHTTP, HTTP: HTTPCheck{Path: "/health"}}, webAddr, "passed"},
		{"http 503", HealthCheck{Type: CheckHTTP, HTTP: HTTPCheck{Path: "/sick"}}, webAddr, "http status 503"},
		{"http 404", HealthCheck{Type: CheckHTTP, HTTP: HTTPCheck{Path: "/nope"}}, webAddr, "http status 404"},
		{"http 302 passes 200-399", HealthCheck{Type: CheckHTTP, HTTP: HTTPCheck{Path: "/moved"}}, webAddr, "passed"},
		{"http 302 fails 200", HealthCheck{Type: CheckHTTP, HTTP: HTTPCheck{Path: "/moved", ExpectStatus: "200"}}, webAddr, "http status 302"},
		{"http 404 expected", HealthCheck{Type: CheckHTTP, HTTP: HTTPCheck{Path: "/nope", ExpectStatus: "200,404"}}, webAddr, "passed"},
		{"http body", HealthCheck{Type: CheckHTTP, HTTP: HTTPCheck{Path: "/health", ExpectBody: "healthy"}}, webAddr, "passed"},
		{"http body missing", HealthCheck{Type: CheckHTTP, HTTP: HTTPCheck{Path: "/health", ExpectBody: "ready"}}, webAddr, `body does not contain "ready"`},
		{"http refused", HealthCheck{Type: CheckHTTP}, dead, "connect: connection refused"},
		{"http timeout", HealthCheck{Type: CheckHTTP, Interval: time.Second, Timeout: ms50}, silent, "timeout after 50ms"},
		{"https", HealthCheck{Type: CheckHTTPS}, tlsAddr, "passed"},
		{"tls", HealthCheck{Type: CheckTLS}, tlsAddr, "passed"},
		{"tls to a plain server", HealthCheck{Type: CheckTLS}, webAddr, "tls handshake"},
		{"tls timeout", HealthCheck{Type: CheckTLS, Interval: time.Second, Timeout: ms50}, silent, "timeout after 50ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runProbe(t, tc.hc, tc.addr)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("check: %q, want %q", got, tc.want)
			}
		})
	}

	// The request carries the method, path and host of the config.
	runProbe(t, HealthCheck{Type: CheckHTTP, HTTP: HTTPCheck{Method: "HEAD", Path: "/health?full=1", Host: "app.example"}}, webAddr)
	mu.Lock()
	defer mu.Unlock()
	if want := "HEAD /health?full=1 app.example lbd-health-check"; gotReq != want {
		t.Errorf("request %q, want %q", gotReq, want)
	}
}
