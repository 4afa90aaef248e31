package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// livenessLoopback is the "master": a loopback listener whose accepted connections the
// test closes as a killed process's kernel would.
func livenessLoopback(t *testing.T) (net.Listener, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, netip.MustParseAddrPort(ln.Addr().String())
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, ap := livenessLoopback(t)
	ln.Close()
	return ap
}

func TestProbePeer(t *testing.T) {
	const iv = 10 * time.Millisecond
	// beats writes n heartbeats, one per interval, as a live master does.
	beats := func(c net.Conn, n int) {
		for range n {
			c.Write([]byte{livenessBeat})
			time.Sleep(iv)
		}
	}
	tests := []struct {
		name     string
		master   func(t *testing.T, c net.Conn) // what the master does with the accepted conn
		refused  bool
		cancel   bool          // the watcher stops (ctx done) while connected
		interval time.Duration // asked of the master; 0: no heartbeats
		want     peerEnd
	}{
		{
			name:   "master process killed: FIN",
			master: func(t *testing.T, c net.Conn) { c.Close() },
			want:   peerClosed,
		},
		{
			name: "master process killed with unread data: RST",
			master: func(t *testing.T, c net.Conn) {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			},
			want: peerClosed,
		},
		{
			name:    "connect refused: proves nothing",
			refused: true,
			want:    peerUnreachable,
		},
		{
			name:   "watcher stopped while connected: not a death",
			master: func(t *testing.T, c net.Conn) {},
			cancel: true,
			want:   peerLost,
		},
		{
			name:     "heartbeats stop (hung master, dead link): silent",
			master:   func(t *testing.T, c net.Conn) { beats(c, 3) },
			interval: iv,
			want:     peerSilent,
		},
		{
			name: "heartbeats, then the process dies: FIN wins",
			master: func(t *testing.T, c net.Conn) {
				beats(c, 2)
				c.Close()
			},
			interval: time.Second, // the deadline is far away
			want:     peerClosed,
		},
		{
			name: "a master without heartbeats (an older lbd) is never silent",
			master: func(t *testing.T, c net.Conn) {
				time.Sleep(10 * iv) // many multiples of the interval asked for
				c.Close()
			},
			interval: iv,
			want:     peerClosed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var ap netip.AddrPort
			connected := make(chan struct{})
			if tt.refused {
				ap = closedPort(t)
			} else {
				var ln net.Listener
				ln, ap = livenessLoopback(t)
				go func() {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					t.Cleanup(func() { c.Close() })
					<-connected // the watcher's dial returned
					tt.master(t, c)
					if tt.cancel {
						cancel()
					}
				}()
			}
			done := make(chan peerEnd, 1)
			go func() {
				done <- probePeer(ctx, probeOptions{ap: ap, interval: tt.interval, multiplier: 3, onConnect: func() { close(connected) }}).end
			}()
			select {
			case end := <-done:
				if end != tt.want {
					t.Errorf("probePeer = %v, want %v", end, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("probePeer did not return")
			}
		})
	}
}

func TestLivenessHello(t *testing.T) {
	for _, tt := range []struct {
		ask, want time.Duration
	}{
		{25 * time.Millisecond, 25 * time.Millisecond},
		{time.Millisecond, MinLivenessInterval},
		{time.Minute, MaxLivenessInterval},
	} {
		got, ok := parseLivenessHello(livenessHello(tt.ask))
		if !ok || got != tt.want {
			t.Errorf("hello(%v) parses as %v, %v; want %v", tt.ask, got, ok, tt.want)
		}
	}
	bad := livenessHello(time.Second)
	bad[0] = 'X'
	if _, ok := parseLivenessHello(bad); ok {
		t.Error("a hello with a wrong magic was accepted")
	}
	future := livenessHello(time.Second)
	future[4] = livenessVersion + 1
	if _, ok := parseLivenessHello(future); ok {
		t.Error("a hello of an unknown version was accepted")
	}
}

func TestLivenessInterval(t *testing.T) {
	off, set := time.Duration(0), 30*time.Millisecond
	for _, tt := range []struct {
		configured *time.Duration
		advert     time.Duration
		want       time.Duration
	}{
		{nil, 100 * time.Millisecond, 25 * time.Millisecond},
		{nil, time.Second, 50 * time.Millisecond},
		{nil, 20 * time.Millisecond, MinLivenessInterval},
		{nil, 0, 50 * time.Millisecond}, // unknown: the default advert interval
		{&set, time.Second, set},
		{&off, time.Second, 0},
	} {
		if got := livenessInterval(tt.configured, tt.advert); got != tt.want {
			t.Errorf("livenessInterval(%v, %v) = %v, want %v", tt.configured, tt.advert, got, tt.want)
		}
	}
}

// TestLivenessDialer runs the dialer against a loopback "master": closing the master's
// side reports the master gone, with its address; a master that refuses connections
// is never reported.
func TestLivenessDialer(t *testing.T) {
	master := netip.MustParseAddr("127.0.0.1")
	ln, ap := livenessLoopback(t)
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	gone := make(chan netip.Addr, 4)
	d := &livenessDialer{
		port: int(ap.Port()), log: slog.New(slog.NewTextHandler(io.Discard, nil)), poll: 10 * time.Millisecond,
		masters: func() []livenessTarget { return []livenessTarget{{Addr: master}} },
		gone:    func(a netip.Addr) { gone <- a },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.run(ctx) }()
	defer func() { cancel(); <-done }()

	var c net.Conn
	select {
	case c = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the dialer did not connect to the master")
	}
	select {
	case a := <-gone:
		t.Fatalf("PeerGone(%v) while the master holds the connection", a)
	default:
	}
	c.Close() // the master's process died: its kernel closes the socket
	select {
	case a := <-gone:
		if a != master {
			t.Errorf("PeerGone(%v), want %v", a, master)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the master's side did not report it gone")
	}
	cancel()
	<-done

	// A master whose port refuses: the dialer keeps trying, and reports nothing.
	d2 := &livenessDialer{port: int(closedPort(t).Port()), log: d.log, poll: time.Millisecond,
		masters: d.masters, gone: d.gone}
	ctx2, cancel2 := context.WithCancel(t.Context())
	done2 := make(chan struct{})
	go func() { defer close(done2); d2.run(ctx2) }()
	// probePeer with a refused port returns at once (TestProbePeer), so the first
	// attempt has been made well within this bound; nothing may be reported.
	deadline := time.After(300 * time.Millisecond)
	select {
	case a := <-gone:
		t.Errorf("PeerGone(%v) on a refused connection", a)
	case <-deadline:
	}
	cancel2()
	<-done2
}

func TestLivenessListener(t *testing.T) {
	l, err := listenLiveness(livenessOptions{addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dial := func() net.Conn {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// An older backup sends no hello: the listener holds the connection and sends
	// nothing, so a read times out.
	old := dial()
	old.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := old.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
		t.Fatalf("read = %v, want a timeout (connection held)", err)
	}
	// A backup that asks for heartbeats gets them.
	c := dial()
	if _, err := c.Write(livenessHello(MinLivenessInterval)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 3)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != livenessBeat || b[2] != livenessBeat {
		t.Fatalf("heartbeats: read %x, %v", b, err)
	}
	// Closing the listener (the process ending) closes the held connections.
	l.Close()
	old.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := old.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after Close = %v, want EOF", err)
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("heartbeat connection after Close: %v, want EOF", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestLivenessDialerSilent: a master that asked for heartbeats sends some, then stops
// (it hangs, or its link went down) without closing: the dialer reports it gone.
func TestLivenessDialerSilent(t *testing.T) {
	master := netip.MustParseAddr("127.0.0.1")
	ln, ap := livenessLoopback(t)
	hellos := make(chan time.Duration, 4)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		b := make([]byte, livenessHelloN)
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		iv, _ := parseLivenessHello(b)
		hellos <- iv
		for range 3 {
			c.Write([]byte{livenessBeat})
		}
		// ... and nothing more, the connection left open.
	}()
	gone := make(chan netip.Addr, 4)
	d := &livenessDialer{
		port: int(ap.Port()), log: slog.New(slog.NewTextHandler(io.Discard, nil)), poll: 10 * time.Millisecond,
		multiplier: 3,
		masters:    func() []livenessTarget { return []livenessTarget{{Addr: master, Interval: 20 * time.Millisecond}} },
		gone:       func(a netip.Addr) { gone <- a },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case iv := <-hellos:
		if iv != 20*time.Millisecond {
			t.Errorf("the hello asked for %v, want 20ms", iv)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no hello")
	}
	select {
	case a := <-gone:
		if a != master {
			t.Errorf("PeerGone(%v), want %v", a, master)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a master whose heartbeats stopped was not reported gone")
	}
}
