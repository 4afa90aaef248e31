//go:build linux

package dataplane

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// injectPanic makes the first entry at where on d's loops panic, once.
func injectPanic(d *Dataplane, where string) *atomic.Bool {
	var done atomic.Bool
	f := func(w string) {
		if w == where && done.CompareAndSwap(false, true) {
			panic("injected by the test at " + w)
		}
	}
	d.metrics.panics.inject.Store(&f)
	return &done
}

// TestLoopPanicClosesOneConnection: a panic (a bug) on the loop engine closes the
// connection it met, is counted in lbd_panics_total{where} and logged; the process and
// the loops carry on serving the other connections. Before, it killed the process (and
// moved the node's VIPs).
func TestLoopPanicClosesOneConnection(t *testing.T) {
	t.Run("http_loop", func(t *testing.T) {
		be := htServe(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
		d := htDataplane(t, withEngine(hlOneConfig(be.addr()), EngineLoop))
		injected := injectPanic(d, panicHTTPLoop)
		closedWithoutAnswer(t, d)
		if !injected.Load() {
			t.Fatal("the panic was not injected")
		}
		if got := metricValue(t, d.metrics.panics.total.WithLabelValues(panicHTTPLoop)); got != 1 {
			t.Errorf("lbd_panics_total{where=%q} = %v, want 1", panicHTTPLoop, got)
		}
		for i := range 8 { // every loop still serves
			r := hlDial(t, d).roundTrip("GET", "GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
			if r.status != 200 || r.body != "/after" {
				t.Fatalf("request %d after the panic: %d %q", i, r.status, r.body)
			}
		}
	})
	t.Run("http_loop_server", func(t *testing.T) {
		be := htServe(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
		d := htDataplane(t, withEngine(hlOneConfig(be.addr()), EngineLoop))
		injectPanic(d, panicHTTPLoopSrv)
		closedWithoutAnswer(t, d)
		if got := metricValue(t, d.metrics.panics.total.WithLabelValues(panicHTTPLoopSrv)); got != 1 {
			t.Errorf("lbd_panics_total{where=%q} = %v, want 1", panicHTTPLoopSrv, got)
		}
		r := hlDial(t, d).roundTrip("GET", "GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		if r.status != 200 || r.body != "/after" {
			t.Fatalf("request after the panic: %d %q", r.status, r.body)
		}
	})
	t.Run("tcp_loop", func(t *testing.T) {
		srv := tcpServer(t, func(c *net.TCPConn) { io.Copy(c, c) })
		d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, srv))
		injectPanic(d, panicTCPLoop)
		c := tcpDial(t, d)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("ping"))
		if b, err := io.ReadAll(c); len(b) != 0 && err == nil {
			t.Errorf("the session that met the panic went on: read %q", b)
		}
		if got := metricValue(t, d.metrics.panics.total.WithLabelValues(panicTCPLoop)); got != 1 {
			t.Errorf("lbd_panics_total{where=%q} = %v, want 1", panicTCPLoop, got)
		}
		for i := range 8 {
			c := tcpDial(t, d)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte("ping"))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("session %d after the panic: %q, %v", i, buf, err)
			}
		}
	})
}

// closedWithoutAnswer sends a request to d's frontend and checks that the connection
// closes (a FIN or a reset) without an answer.
func closedWithoutAnswer(t *testing.T, d *Dataplane) {
	t.Helper()
	c, err := net.Dial("tcp", d.Addr("fe").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
	b, err := io.ReadAll(c)
	if len(b) != 0 || (err != nil && !strings.Contains(err.Error(), "reset")) {
		t.Errorf("the connection that met the panic: read %q, %v; want it closed without an answer", b, err)
	}
}

// TestPanicLoggedOnce: the first panic at a place is logged with its stack, the next
// ones without it; the counter counts every one.
func TestPanicLoggedOnce(t *testing.T) {
	p := newPanicMetric(nil)
	var log strings.Builder
	l := slog.New(slog.NewTextHandler(&log, nil))
	p.recovered(l, panicTCPLoop, "boom")
	p.recovered(l, panicTCPLoop, "boom")
	if n := strings.Count(log.String(), "[running]"); n != 1 {
		t.Errorf("%d stacks logged for two panics, want 1:\n%s", n, log.String())
	}
	if got := metricValue(t, p.total.WithLabelValues(panicTCPLoop)); got != 2 {
		t.Errorf("counted %v, want 2", got)
	}
}
