package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Helpers shared by the tcp and udp tests carry the prefix l4.

// l4Dataplane returns a Dataplane serving cfg, closed when the test ends.
func l4Dataplane(t testing.TB, cfg Config) *Dataplane {
	t.Helper()
	return testDataplane(t, cfg)
}

// l4Config is one frontend "fe" of mode on 127.0.0.1:0 sending to backend "b" with
// servers at addrs, named s0, s1, ….
func l4Config(mode, balance string, addrs ...string) Config {
	b := Backend{Name: "b", Balance: balance}
	for i, a := range addrs {
		b.Servers = append(b.Servers, ServerConfig{Name: "s" + strconv.Itoa(i), Address: a})
	}
	return Config{
		Frontends: []Frontend{{Name: "fe", Mode: mode, Bind: "127.0.0.1:0", Backend: "b"}},
		Backends:  []Backend{b},
	}
}

// l4Runner returns the runner serving frontend name.
func l4Runner(t testing.TB, d *Dataplane, name string) frontendRunner {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.snapshot().frontends {
		if g.cfg.Name == name {
			return d.runners[keyOf(g.cfg)].fe
		}
	}
	t.Fatalf("no frontend %q", name)
	return nil
}

// l4Value reads a counter or gauge.
func l4Value(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	return metricValue(t, c)
}

// l4Eventually polls cond until it holds or 5s pass. It is for events that end on their
// own (a goroutine noticing a closed socket), not for timers.
func l4Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventually(t, what, 5*time.Second, cond)
}

// tcpServer runs handle for each connection accepted on a loopback port until the test
// ends.
func tcpServer(t testing.TB, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[*net.TCPConn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// tcpEcho sends back what it reads, then half-closes.
func tcpEcho(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// tcpID writes its id and closes.
func tcpID(id string) func(c *net.TCPConn) {
	return func(c *net.TCPConn) { io.WriteString(c, id) }
}

func tcpDial(t testing.TB, d *Dataplane) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, d.Addr("fe").(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tcpRoundTrip sends msg and expects it echoed within 5s.
func tcpRoundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// tcpReadAll reads c to EOF, failing after 5s.
func tcpReadAll(t testing.TB, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// tcpEchoData pushes data through c while reading the echo, and returns the echo.
func tcpEchoData(t testing.TB, c *net.TCPConn, data []byte) []byte {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

func TestTCPEcho(t *testing.T) {
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, tcpServer(t, tcpEcho)))
	data := make([]byte, 8<<20+123)
	rand.Read(data)
	c := tcpDial(t, d)
	if got := tcpEchoData(t, c, data); !bytes.Equal(got, data) {
		t.Fatalf("echo of %d bytes differs: got %d bytes", len(data), len(got))
	}
	c.Close()

	m := d.metrics
	l4Eventually(t, "connection closed", func() bool { return l4Value(t, m.connsActive.WithLabelValues("fe")) == 0 })
	for _, tc := range []struct {
		name string
		c    prometheus.Metric
		want float64
	}{
		{"bytes in", m.bytesIn.WithLabelValues("fe"), float64(len(data))},
		{"bytes out", m.bytesOut.WithLabelValues("fe"), float64(len(data))},
		{"connections", m.connsTotal.WithLabelValues("fe"), 1},
		{"sessions", m.sessions.WithLabelValues("b", "s0"), 1},
	} {
		if got := l4Value(t, tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := d.snapshot().byName["b"].servers[0].Active(); got != 0 {
		t.Errorf("server active = %d after the connection closed, want 0", got)
	}
}

// TestTCPSplice checks that the proxy moves bytes by splice(2) rather than through user
// space: the kernel counts in rchar the bytes that read(2) and friends return to the
// process, which splice does not. The client's reads count the echoed bytes once; a
// proxy copying through user space would add two more (client to server and back).
func TestTCPSplice(t *testing.T) {
	if _, err := os.ReadFile("/proc/self/io"); err != nil {
		t.Skipf("no per-process I/O accounting: %v", err)
	}
	// The echo server splices too (io.Copy between one *net.TCPConn), adding nothing.
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, tcpServer(t, tcpEcho)))
	const n = 32 << 20
	data := make([]byte, n)
	c := tcpDial(t, d)
	before := procRchar(t)
	got := tcpEchoData(t, c, data)
	delta := procRchar(t) - before
	if len(got) != n {
		t.Fatalf("echoed %d bytes, want %d", len(got), n)
	}
	t.Logf("rchar grew by %d for %d bytes echoed (%.2f×)", delta, n, float64(delta)/n)
	if delta > 2*n {
		t.Errorf("the process read %d bytes through user space for %d bytes echoed; the proxy does not splice", delta, n)
	}
}

func procRchar(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

func TestTCPHalfClose(t *testing.T) {
	// The server reads the request to EOF, then answers in two writes and closes.
	srv := tcpServer(t, func(c *net.TCPConn) {
		req, err := io.ReadAll(c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %q;", req)
		time.Sleep(10 * time.Millisecond)
		io.WriteString(c, " and the rest")
	})
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, srv))
	c := tcpDial(t, d)
	io.WriteString(c, "request")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got, want := tcpReadAll(t, c), `got "request"; and the rest`; got != want {
		t.Errorf("answer = %q, want %q", got, want)
	}
}

func TestTCPIdleRule(t *testing.T) {
	const ms = int64(time.Millisecond)
	const idle = 100 * ms
	for _, tc := range []struct {
		name              string
		c0, c1, last, now int64
		want              bool
	}{
		{"fresh", 0, 0, 0, 10 * ms, false},
		{"both silent for idle", 100 * ms, 105 * ms, 0, 110 * ms, true},
		{"both silent, not yet idle", 90 * ms, 95 * ms, 0, 110 * ms, false},
		{"one call in flight since before idle", 20 * ms, 140 * ms, 0, 150 * ms, false},
		{"bytes moved recently", 130 * ms, 140 * ms, 125 * ms, 150 * ms, false},
		{"half-closed and silent", tcpDone, 230 * ms, 120 * ms, 240 * ms, true},
		{"half-closed and moving", tcpDone, 230 * ms, 229 * ms, 240 * ms, false},
		{"both ended", tcpDone, tcpDone, 0, 999 * ms, false},
		{"stuck writing", 10 * ms, 205 * ms, 10 * ms, 211 * ms, true},
		{"slow write within twice idle", 10 * ms, 200 * ms, 10 * ms, 209 * ms, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tcpIdle(tc.c0, tc.c1, tc.last, tc.now, idle); got != tc.want {
				t.Errorf("tcpIdle(%d, %d, %d, %d) = %v, want %v", tc.c0, tc.c1, tc.last, tc.now, got, tc.want)
			}
		})
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	skipShort(t, "trickles bytes across real idle timeouts")
	const idle = 200 * time.Millisecond
	const trickles, every = 20, 40 * time.Millisecond // 800ms: four idle timeouts
	// gaps receives the time between the server's trickled bytes.
	gaps := make(chan time.Duration, 1)
	// The server reads and discards; if told "trickle" it first writes a byte every 40ms.
	// It never closes first.
	hold := make(chan struct{})
	srv := tcpServer(t, func(c *net.TCPConn) {
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if line == "trickle\n" {
			gaps <- tcpTrickle(every, trickles, func() error {
				_, err := c.Write([]byte{'.'})
				return err
			})
		}
		io.Copy(io.Discard, r)
		<-hold
	})
	t.Cleanup(func() { close(hold) }) // before the server's cleanup waits for handlers
	cfg := l4Config(ModeTCP, BalanceRoundRobin, srv)
	cfg.Frontends[0].Timeouts.ClientIdle = idle
	d := l4Dataplane(t, cfg)

	// closed expects the proxy to close c no sooner than idle after from. from is taken
	// just before the last byte is written: the proxy cannot have moved it earlier, while
	// a time taken after the write may be late by however long this goroutine waited to
	// run again.
	closed := func(c net.Conn, from time.Time) error {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			return fmt.Errorf("connection not closed: %v", err)
		}
		if el := time.Since(from); el < idle {
			return fmt.Errorf("connection closed %v after the last byte, before the idle timeout %v", el, idle)
		}
		return nil
	}

	t.Run("idle", func(t *testing.T) {
		c := tcpDial(t, d)
		from := time.Now()
		tcpWriteString(t, c, "hello\n")
		if err := closed(c, from); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("half-closed", func(t *testing.T) {
		// The client is done sending; the server never answers nor closes.
		c := tcpDial(t, d)
		from := time.Now()
		tcpWriteString(t, c, "hello\n")
		c.CloseWrite()
		if err := closed(c, from); err != nil {
			t.Fatal(err)
		}
	})
	// A trickle keeps the connection open only if it really runs every 40ms; on a
	// loaded machine a goroutine may sleep past the idle timeout, and then the proxy is
	// right to close. Such a run proves nothing and is tried again.
	t.Run("client trickles", func(t *testing.T) {
		l4Retry(t, idle, func() (time.Duration, error) {
			c := tcpDial(t, d)
			tcpWriteString(t, c, "hello\n")
			var last time.Time
			gap := tcpTrickle(every, trickles, func() error {
				last = time.Now()
				_, err := c.Write([]byte{'.'})
				return err
			})
			if gap < 0 {
				return -gap, errors.New("closed while the client trickled")
			}
			return gap, closed(c, last)
		})
	})
	t.Run("server trickles", func(t *testing.T) {
		l4Retry(t, idle, func() (time.Duration, error) {
			c := tcpDial(t, d)
			tcpWriteString(t, c, "trickle\n")
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, c)
			gap := <-gaps
			switch {
			case err != nil:
				return max(gap, -gap), err
			case gap < 0 || n != trickles:
				return -gap, fmt.Errorf("got %d bytes before the close, want all %d", n, trickles)
			}
			return gap, nil
		})
	})
}

// tcpTrickle calls write n times, every period, and returns the longest time between two
// calls; negated if a write failed.
func tcpTrickle(period time.Duration, n int, write func() error) time.Duration {
	var gap time.Duration
	prev := time.Now()
	for i := 0; i < n; i++ {
		time.Sleep(period)
		now := time.Now()
		gap = max(gap, now.Sub(prev))
		prev = now
		if write() != nil {
			return -gap
		}
	}
	return gap
}

// l4Retry runs attempt up to three times while it fails after a pause as long as the
// idle timeout: a machine too loaded to run the test, not a failure of the proxy.
func l4Retry(t *testing.T, idle time.Duration, attempt func() (maxGap time.Duration, err error)) {
	t.Helper()
	for i := 1; ; i++ {
		gap, err := attempt()
		if err == nil {
			return
		}
		if gap < idle*3/4 || i == 3 {
			t.Fatalf("attempt %d (longest pause %v): %v", i, gap, err)
		}
		t.Logf("attempt %d paused %v, near the idle timeout; trying again: %v", i, gap, err)
	}
}

func tcpWriteString(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

func TestTCPMaxConn(t *testing.T) {
	cfg := l4Config(ModeTCP, BalanceRoundRobin, tcpServer(t, tcpEcho))
	cfg.Frontends[0].MaxConn = 2
	d := l4Dataplane(t, cfg)
	c1, c2 := tcpDial(t, d), tcpDial(t, d)
	tcpRoundTrip(t, c1, "one")
	tcpRoundTrip(t, c2, "two")

	// The kernel completes the third handshake, but lbd does not accept it.
	c3 := tcpDial(t, d)
	io.WriteString(c3, "three")
	c3.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c3.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection answered (%d bytes, %v) while two are open", n, err)
	}
	if got := l4Value(t, d.metrics.connsTotal.WithLabelValues("fe")); got != 2 {
		t.Errorf("connections accepted = %v, want 2", got)
	}

	c1.Close()
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(c3, got); err != nil || string(got) != "three" {
		t.Fatalf("third connection after one closed: %q, %v", got, err)
	}
}

func TestTCPRetry(t *testing.T) {
	dead := deadAddr(t)
	live := tcpServer(t, tcpID("live"))
	cfg := l4Config(ModeTCP, BalanceRoundRobin, dead, live)
	d := l4Dataplane(t, cfg)
	for i := 0; i < 4; i++ { // round robin sends two of them to the dead server first
		if got := tcpReadAll(t, tcpDial(t, d)); got != "live" {
			t.Fatalf("connection %d got %q, want %q", i, got, "live")
		}
	}
	m := d.metrics
	if got := l4Value(t, m.errors.WithLabelValues("b", "s0", "connect")); got != 2 {
		t.Errorf("connect errors of the dead server = %v, want 2", got)
	}
	if got := l4Value(t, m.retries.WithLabelValues("b")); got != 2 {
		t.Errorf("retries = %v, want 2", got)
	}
	if got := l4Value(t, m.sessions.WithLabelValues("b", "s1")); got != 4 {
		t.Errorf("sessions of the live server = %v, want 4", got)
	}

	t.Run("no retries", func(t *testing.T) {
		zero := 0
		cfg := l4Config(ModeTCP, BalanceRoundRobin, dead)
		cfg.Backends[0].Retries = &zero
		d := l4Dataplane(t, cfg)
		if got := tcpReadAll(t, tcpDial(t, d)); got != "" {
			t.Fatalf("got %q from a dead server", got)
		}
		if got := l4Value(t, d.metrics.errors.WithLabelValues("b", "s0", "connect")); got != 1 {
			t.Errorf("connect errors = %v, want 1", got)
		}
	})
	t.Run("no server", func(t *testing.T) {
		d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, live))
		d.snapshot().byName["b"].servers[0].SetState(Disabled)
		if got := tcpReadAll(t, tcpDial(t, d)); got != "" {
			t.Fatalf("got %q from a disabled server", got)
		}
		if got := l4Value(t, d.metrics.noServer.WithLabelValues("fe", "b")); got != 1 {
			t.Errorf("no-server count = %v, want 1", got)
		}
	})
}

func TestTCPRoundRobinSpreads(t *testing.T) {
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin,
		tcpServer(t, tcpID("a")), tcpServer(t, tcpID("b")), tcpServer(t, tcpID("c"))))
	got := map[string]int{}
	for i := 0; i < 9; i++ {
		got[tcpReadAll(t, tcpDial(t, d))]++
	}
	if want := map[string]int{"a": 3, "b": 3, "c": 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("connections per server = %v, want %v", got, want)
	}
}

func TestTCPReload(t *testing.T) {
	// Each server says its name, then echoes.
	named := func(id string) func(*net.TCPConn) {
		return func(c *net.TCPConn) {
			io.WriteString(c, id)
			tcpEcho(c)
		}
	}
	a, b := tcpServer(t, named("a")), tcpServer(t, named("b"))
	readID := func(t *testing.T, c net.Conn) string {
		t.Helper()
		buf := make([]byte, 1)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		return string(buf)
	}
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, a))
	addr := d.Addr("fe").String()
	old := tcpDial(t, d)
	if id := readID(t, old); id != "a" {
		t.Fatalf("server = %q, want a", id)
	}

	t.Run("changed backend", func(t *testing.T) {
		cfg := l4Config(ModeTCP, BalanceRoundRobin, b) // same bind: the listener stays
		cfg.Frontends[0].MaxConn = 5
		if err := d.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		tcpRoundTrip(t, old, "still there")
		c := tcpDial(t, d)
		if id := readID(t, c); id != "b" {
			t.Fatalf("new connection went to %q, want b", id)
		}
		tcpRoundTrip(t, c, "new")
	})

	t.Run("removed frontend drains", func(t *testing.T) {
		cfg := l4Config(ModeTCP, BalanceRoundRobin, b)
		cfg.Frontends[0].Name = "other"
		cfg.Frontends[0].ReusePort = true // another listener key: a new socket, on another port
		if err := d.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		// The old listener closes at once; its connections go on.
		l4Eventually(t, "the old listener to close", func() bool {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return true
			}
			c.Close()
			return false
		})
		tcpRoundTrip(t, old, "draining")
		old.CloseWrite()
		if got := tcpReadAll(t, old); got != "" {
			t.Errorf("after half-close read %q, want EOF", got)
		}
		// Close waits for the retired runner, which ends once old has.
	})
}

func BenchmarkTCPProxy(b *testing.B) {
	// The sink splices into /dev/null, to leave the CPU to the client and the proxy, and
	// closes at EOF, so a client that reads EOF knows everything arrived.
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	sink := func(c *net.TCPConn) { devNull.ReadFrom(c) }
	for _, bc := range []struct {
		name  string
		conns int
		proxy bool
	}{
		{"direct/1conn", 1, false},
		{"proxy/1conn", 1, true},
		{"direct/8conns", 8, false},
		{"proxy/8conns", 8, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr := tcpServer(b, sink)
			if bc.proxy {
				cfg := l4Config(ModeTCP, BalanceRoundRobin, addr)
				cfg.Frontends[0].Timeouts.ClientIdle = time.Minute
				addr = l4Dataplane(b, cfg).Addr("fe").String()
			}
			const chunk = 1 << 20
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / bc.conns
			for i := 0; i < bc.conns; i++ {
				n := per
				if i == 0 {
					n += b.N % bc.conns
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					for j := 0; j < n; j++ {
						if _, err := c.Write(buf); err != nil {
							b.Error(err)
							return
						}
					}
					c.(*net.TCPConn).CloseWrite()
					io.Copy(io.Discard, c)
				}()
			}
			wg.Wait()
		})
	}
}

func TestTCPShutdownCuts(t *testing.T) {
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, tcpServer(t, tcpEcho)))
	c := tcpDial(t, d)
	tcpRoundTrip(t, c, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a connection open = %v, want %v", err, context.DeadlineExceeded)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after Close = %d, %v; want the connection closed", n, err)
	}
	if got := d.snapshot().byName["b"].servers[0].Active(); got != 0 {
		t.Errorf("server active after Close = %d, want 0", got)
	}
	if got := l4Value(t, d.metrics.connsActive.WithLabelValues("fe")); got != 0 {
		t.Errorf("active connections after Close = %v, want 0", got)
	}
}

// TestTCPPipeRelays checks the relay that platforms without the event loops use.
func TestTCPPipeRelays(t *testing.T) {
	client, cp := tcpPair(t)
	sp, server := tcpPair(t)
	c := &tcpConn{client: cp, server: sp}
	in := prometheus.NewCounter(prometheus.CounterOpts{Name: "in"})
	out := prometheus.NewCounter(prometheus.CounterOpts{Name: "out"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		newTCPPipe(c, time.Minute).run(in, out)
	}()
	go tcpEcho(server)
	data := make([]byte, 4<<20+5)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if got := tcpEchoData(t, client, data); !bytes.Equal(got, data) {
		t.Fatalf("echo of %d bytes differs: got %d bytes", len(data), len(got))
	}
	<-done
	if got := l4Value(t, in); got != float64(len(data)) {
		t.Errorf("bytes in = %v, want %d", got, len(data))
	}
}

// tcpPair returns both ends of a loopback connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b
}
