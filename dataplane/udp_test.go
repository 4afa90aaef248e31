package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"lbd/internal/clock"
	"lbd/internal/testutil"
)

// udpServer answers each datagram with "id:" and the datagram, until the test ends.
func udpServer(t testing.TB, id string) string {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, udpMaxDatagram)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort(append([]byte(id+":"), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

// udpDeadAddr returns a loopback address where datagrams draw ICMP port unreachable,
// held so until t ends.
func udpDeadAddr(t testing.TB) string {
	t.Helper()
	return testutil.DeadUDPAddr(t)
}

func udpClient(t testing.TB, addr net.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpAsk sends msg and returns the first answer within wait.
func udpAsk(c *net.UDPConn, msg string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// udpMustAsk sends msg and fails the test without an answer within 5s.
func udpMustAsk(t testing.TB, c *net.UDPConn, msg string) string {
	t.Helper()
	got, err := udpAsk(c, msg, 5*time.Second)
	if err != nil {
		t.Fatalf("asking %q: %v", msg, err)
	}
	return got
}

func udpSessions(u *udpFrontend) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.sessions)
}

// udpFakeFrontend serves the generation of frontend "fe" of cfg with a fake clock, on
// its own socket.
func udpFakeFrontend(t *testing.T, cfg Config) (*udpFrontend, *clock.Fake) {
	t.Helper()
	d := l4Dataplane(t, cfg)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake()
	u := startUDPFrontend(d, d.snapshot().frontends[0], pc, clk)
	clk.BlockUntil(1) // the sweeper's timer
	t.Cleanup(func() {
		if err := u.shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return u, clk
}

func TestUDPEcho(t *testing.T) {
	d := l4Dataplane(t, l4Config(ModeUDP, BalanceRoundRobin,
		udpServer(t, "a"), udpServer(t, "b"), udpServer(t, "c")))
	perServer := map[string]int{}
	var in, out int
	for i := 0; i < 6; i++ {
		c := udpClient(t, d.Addr("fe"))
		var server string
		for j := 0; j < 5; j++ {
			msg := fmt.Sprintf("client %d datagram %d", i, j)
			got := udpMustAsk(t, c, msg)
			id, echo, _ := strings.Cut(got, ":")
			if echo != msg {
				t.Fatalf("answer %q does not echo %q", got, msg)
			}
			if j == 0 {
				server = id
				perServer[id]++
			} else if id != server {
				t.Fatalf("client %d moved from server %s to %s", i, server, id)
			}
			in += len(msg)
			out += len(got)
		}
	}
	if want := map[string]int{"a": 2, "b": 2, "c": 2}; fmt.Sprint(perServer) != fmt.Sprint(want) {
		t.Errorf("clients per server = %v, want %v", perServer, want)
	}
	m := d.metrics
	// The proxy counts a datagram once it has passed it on, maybe after the client has
	// its answer.
	l4Eventually(t, "the byte counters", func() bool {
		return l4Value(t, m.bytesIn.WithLabelValues("fe")) == float64(in) &&
			l4Value(t, m.bytesOut.WithLabelValues("fe")) == float64(out)
	})
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"sessions", l4Value(t, m.connsTotal.WithLabelValues("fe")), 6},
		{"active sessions", l4Value(t, m.connsActive.WithLabelValues("fe")), 6},
		{"sessions of s1", l4Value(t, m.sessions.WithLabelValues("b", "s1")), 2},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	for _, s := range d.snapshot().byName["b"].servers {
		if s.Active() != 2 {
			t.Errorf("server %s active = %d, want 2", s.Name, s.Active())
		}
	}
}

func TestUDPSweep(t *testing.T) {
	cfg := l4Config(ModeUDP, BalanceRoundRobin, udpServer(t, "a"))
	cfg.Frontends[0].Timeouts.ClientIdle = time.Minute
	u, clk := udpFakeFrontend(t, cfg)
	c1, c2 := udpClient(t, u.addr()), udpClient(t, u.addr())
	udpMustAsk(t, c1, "one")
	udpMustAsk(t, c2, "two")

	clk.Advance(40 * time.Second) // the sweeper runs once, at 40s
	clk.BlockUntil(1)             // and is done
	udpMustAsk(t, c2, "two again")
	u.sweep(clk.Now())
	if n := udpSessions(u); n != 2 {
		t.Fatalf("sessions after 40s = %d, want 2", n)
	}

	clk.Advance(20 * time.Second) // c1 idle for 60s, c2 for 20s
	clk.BlockUntil(1)
	u.sweep(clk.Now())
	if n := udpSessions(u); n != 1 {
		t.Fatalf("sessions after c1 idled for a minute = %d, want 1", n)
	}
	u.mu.Lock()
	_, kept := u.sessions[c2.LocalAddr().(*net.UDPAddr).AddrPort()]
	u.mu.Unlock()
	if !kept {
		t.Fatal("the session swept is c2's, the active one")
	}

	// The sweeper runs on the clock's timer.
	clk.Advance(time.Minute)
	clk.BlockUntil(1) // the sweep is over: the sweeper armed its timer again
	if n := udpSessions(u); n != 0 {
		t.Fatalf("sessions after the sweeper ran = %d, want 0", n)
	}
	m := u.gen.Load().m
	if got := l4Value(t, m.connsActive); got != 0 {
		t.Errorf("active sessions = %v, want 0", got)
	}
	if got := u.gen.Load().backend.servers[0].Active(); got != 0 {
		t.Errorf("server active = %d, want 0", got)
	}

	// A swept client starts a new session.
	if got := udpMustAsk(t, c1, "back"); got != "a:back" {
		t.Fatalf("answer = %q", got)
	}
	if got := l4Value(t, m.connsTotal); got != 3 {
		t.Errorf("sessions opened = %v, want 3", got)
	}
}

func TestUDPRefused(t *testing.T) {
	d := l4Dataplane(t, l4Config(ModeUDP, BalanceRoundRobin, udpDeadAddr(t), udpServer(t, "live")))
	u := l4Runner(t, d, "fe").(*udpFrontend)
	live := d.snapshot().byName["b"].servers[1]
	live.SetWeight(0) // the first session goes to the dead server
	c := udpClient(t, d.Addr("fe"))
	if got, err := udpAsk(c, "ping", 200*time.Millisecond); err == nil {
		t.Fatalf("answer %q from a dead server", got)
	}
	l4Eventually(t, "the refused session to end", func() bool { return udpSessions(u) == 0 })
	m := d.metrics
	if got := l4Value(t, m.errors.WithLabelValues("b", "s0", "connect")); got != 1 {
		t.Errorf("connect errors of the dead server = %v, want 1", got)
	}

	// Each datagram after a refusal picks again; round robin soon reaches the live one.
	live.SetWeight(1)
	var got string
	var err error
	for i := 0; i < 10; i++ {
		if got, err = udpAsk(c, "ping", 300*time.Millisecond); err == nil {
			break
		}
	}
	if got != "live:ping" {
		t.Fatalf("answer = %q, %v; want live:ping", got, err)
	}
	if n := l4Value(t, m.connsTotal.WithLabelValues("fe")); n < 2 {
		t.Errorf("sessions opened = %v, want at least 2", n)
	}
}

func TestUDPMaxConn(t *testing.T) {
	cfg := l4Config(ModeUDP, BalanceRoundRobin, udpServer(t, "a"))
	cfg.Frontends[0].MaxConn = 1
	d := l4Dataplane(t, cfg)
	u := l4Runner(t, d, "fe").(*udpFrontend)
	c1, c2 := udpClient(t, d.Addr("fe")), udpClient(t, d.Addr("fe"))
	udpMustAsk(t, c1, "one")
	udpMustAsk(t, c1, "one more") // traffic both ways: c1's session is assured (udp.go)
	if got, err := udpAsk(c2, "two", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second client answered (%q, %v) over the limit of one session", got, err)
	}
	if got := u.dropped.Load(); got != 1 {
		t.Errorf("dropped = %d, want 1", got)
	}
	udpMustAsk(t, c1, "one again")

	u.sweep(time.Now().Add(time.Hour)) // ends c1's session
	if got := udpMustAsk(t, c2, "two"); got != "a:two" {
		t.Fatalf("answer = %q", got)
	}
}

func TestUDPReload(t *testing.T) {
	a, b := udpServer(t, "a"), udpServer(t, "b")
	d := l4Dataplane(t, l4Config(ModeUDP, BalanceRoundRobin, a))
	old := udpClient(t, d.Addr("fe"))
	if got := udpMustAsk(t, old, "x"); got != "a:x" {
		t.Fatalf("answer = %q", got)
	}
	if err := d.Apply(l4Config(ModeUDP, BalanceRoundRobin, b)); err != nil {
		t.Fatal(err)
	}
	if got := udpMustAsk(t, old, "y"); got != "a:y" {
		t.Errorf("existing session answered %q, want a:y from its server", got)
	}
	if got := udpMustAsk(t, udpClient(t, d.Addr("fe")), "z"); got != "b:z" {
		t.Errorf("new session answered %q, want b:z", got)
	}
}

func TestUDPShutdown(t *testing.T) {
	d := l4Dataplane(t, l4Config(ModeUDP, BalanceRoundRobin, udpServer(t, "a")))
	u := l4Runner(t, d, "fe").(*udpFrontend)
	udpMustAsk(t, udpClient(t, d.Addr("fe")), "x")
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := udpSessions(u); n != 0 {
		t.Errorf("sessions after Close = %d", n)
	}
	if got := d.snapshot().byName["b"].servers[0].Active(); got != 0 {
		t.Errorf("server active after Close = %d", got)
	}
}

// TestUDPSpoofedSources: sources that send one datagram and never answer (as spoofed
// ones cannot) fill the session table; a new client still gets a session, in place of
// one of them, and a session with traffic both ways is not evicted.
func TestUDPSpoofedSources(t *testing.T) {
	const limit = 50
	cfg := l4Config(ModeUDP, BalanceRoundRobin, udpServer(t, "a"))
	cfg.Frontends[0].MaxConn = limit
	d := l4Dataplane(t, cfg)
	u := l4Runner(t, d, "fe").(*udpFrontend)
	real := udpClient(t, d.Addr("fe"))
	udpMustAsk(t, real, "hello")
	udpMustAsk(t, real, "again") // assured
	for range limit {
		c := udpClient(t, d.Addr("fe"))
		if _, err := c.Write([]byte("spoofed")); err != nil {
			t.Fatal(err)
		}
	}
	evicted := d.metrics.evicted.WithLabelValues("fe")
	// The table is full, and the last source found it so (dropped, or in place of one).
	htEventually(t, "the table full", func() bool {
		return udpSessions(u) == limit && float64(u.dropped.Load())+htValue(t, evicted) >= 1
	})
	for i := range 3 {
		c := udpClient(t, d.Addr("fe"))
		if got, err := udpAsk(c, "new", 2*time.Second); err != nil || got != "a:new" {
			t.Fatalf("new client %d with the table full of one-datagram sessions: %q, %v", i, got, err)
		}
	}
	u.mu.Lock()
	_, kept := u.sessions[netip.MustParseAddrPort(real.LocalAddr().String())]
	u.mu.Unlock()
	if !kept {
		t.Error("the assured session was evicted")
	}
	if got := htValue(t, evicted); got < 3 {
		t.Errorf("evictions counted: %v, want at least 3", got)
	}
}
