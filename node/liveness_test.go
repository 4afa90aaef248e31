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
	tests := []struct {
		name          string
		master        func(t *testing.T, c net.Conn) // what the master does with the accepted conn
		refused       bool
		cancel        bool // the watcher stops (ctx done) while connected
		wantConnected bool
		wantClosed    bool
	}{
		{
			name:          "master process killed: FIN",
			master:        func(t *testing.T, c net.Conn) { c.Close() },
			wantConnected: true, wantClosed: true,
		},
		{
			name: "master process killed with unread data: RST",
			master: func(t *testing.T, c net.Conn) {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			},
			wantConnected: true, wantClosed: true,
		},
		{
			name:    "connect refused: proves nothing",
			refused: true,
		},
		{
			name:          "watcher stopped while connected: not a death",
			master:        func(t *testing.T, c net.Conn) {},
			cancel:        true,
			wantConnected: true,
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
			type result struct{ connected, closed bool }
			done := make(chan result, 1)
			go func() {
				c, cl := probePeer(ctx, ap, func() { close(connected) })
				done <- result{c, cl}
			}()
			select {
			case r := <-done:
				if r.connected != tt.wantConnected || r.closed != tt.wantClosed {
					t.Errorf("probePeer = connected %v, closed %v; want %v, %v", r.connected, r.closed, tt.wantConnected, tt.wantClosed)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("probePeer did not return")
			}
		})
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
		masters: func() []netip.Addr { return []netip.Addr{master} },
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
	l, err := listenLiveness(0)
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	defer c.Close()
	// The listener holds the connection: a read times out.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
		t.Fatalf("read = %v, want a timeout (connection held)", err)
	}
	// Closing the listener (the process ending) closes the held connection.
	l.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after Close = %v, want EOF", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
