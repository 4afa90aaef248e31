package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"
)

// The liveness port against hosts on the LAN (issue 11): it listens on the node's own
// addresses only, takes only VRRP peers, caps its connections, deadlines the hello,
// and, with node.vrrp.liveness_key, authenticates the session so that only the real
// master's bye or silence counts as its death.

var testLivenessKey = []byte("0123456789abcdef-test-key")

func startLiveness(t *testing.T, o livenessOptions) (*livenessListener, int) {
	t.Helper()
	if o.addrs == nil {
		o.addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	l, err := listenLiveness(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l, l.Addr().(*net.TCPAddr).Port
}

// dialFrom connects from local address src (loopback: 127.0.0.0/8 is all ours) to
// 127.0.0.1:port.
func dialFrom(t *testing.T, src string, port int) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the listener closed c within d (a read returns EOF or
// a reset), rather than holding it.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

func TestLivenessListenerOwnAddressOnly(t *testing.T) {
	_, port := startLiveness(t, livenessOptions{})
	// 127.0.0.2 is an address of this host too (a VIP, say): nothing listens there.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)), time.Second); err == nil {
		c.Close()
		t.Fatal("the liveness port answers on an address that is not the node's own")
	}
}

func TestLivenessListenerPeersOnly(t *testing.T) {
	_, port := startLiveness(t, livenessOptions{allow: func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") }})
	if !closedWithin(dialFrom(t, "127.0.0.3", port), 500*time.Millisecond) {
		t.Error("a connection from a host that is not a VRRP peer was held")
	}
	if closedWithin(dialFrom(t, "127.0.0.1", port), 100*time.Millisecond) {
		t.Error("a connection from a VRRP peer was closed")
	}
}

func TestLivenessListenerCaps(t *testing.T) {
	_, port := startLiveness(t, livenessOptions{})
	for range livenessMaxPerSource {
		c := dialFrom(t, "127.0.0.1", port)
		c.Write(livenessHello(time.Second))
	}
	if !closedWithin(dialFrom(t, "127.0.0.1", port), 500*time.Millisecond) {
		t.Errorf("connection %d from one address was held, want at most %d", livenessMaxPerSource+1, livenessMaxPerSource)
	}
	// Fill the rest from other addresses; one more is refused.
	n := livenessMaxPerSource
	for i := 2; n < livenessMaxConns; i++ {
		for j := 0; j < livenessMaxPerSource && n < livenessMaxConns; j++ {
			dialFrom(t, "127.0.0."+strconv.Itoa(i), port).Write(livenessHello(time.Second))
			n++
		}
	}
	time.Sleep(100 * time.Millisecond) // let the listener account for them
	if !closedWithin(dialFrom(t, "127.0.1.1", port), 500*time.Millisecond) {
		t.Errorf("connection %d was held, want at most %d", livenessMaxConns+1, livenessMaxConns)
	}
}

func TestLivenessListenerHelloDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping with -short: waits out the real hello deadline")
	}
	_, port := startLiveness(t, livenessOptions{})
	part := dialFrom(t, "127.0.0.1", port)
	part.Write(livenessHello(time.Second)[:3])
	if !closedWithin(part, livenessHelloTimeout+time.Second) {
		t.Error("a connection that sent part of a hello was held past the hello deadline")
	}
	// One that sends nothing is an lbd from before the hello: held, as before (its
	// close would count as this node's death).
	if closedWithin(dialFrom(t, "127.0.0.1", port), livenessHelloTimeout+200*time.Millisecond) {
		t.Error("a connection without a hello was closed")
	}
}

// keyedDialer watches the master at 127.0.0.1:port with key, heartbeats every 10ms.
func keyedDialer(t *testing.T, port int, key []byte) chan netip.Addr {
	t.Helper()
	gone := make(chan netip.Addr, 8)
	d := &livenessDialer{
		port: port, log: slog.New(slog.NewTextHandler(testLogWriter{t}, nil)), poll: 10 * time.Millisecond,
		multiplier: 4, key: key,
		masters: func() []livenessTarget {
			return []livenessTarget{{Addr: netip.MustParseAddr("127.0.0.1"), Interval: 10 * time.Millisecond}}
		},
		gone: func(a netip.Addr) { gone <- a },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return gone
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// waitHeld waits until l holds n authenticated sessions.
func waitHeld(t *testing.T, l *livenessListener, n int) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(5 * time.Millisecond) {
		l.mu.Lock()
		k := 0
		for _, s := range l.conns {
			if s.auth.Load() {
				k++
			}
		}
		l.mu.Unlock()
		if k == n {
			return
		}
	}
	t.Fatalf("the listener does not hold %d authenticated sessions", n)
}

func noGone(t *testing.T, gone chan netip.Addr, d time.Duration, what string) {
	t.Helper()
	select {
	case a := <-gone:
		t.Fatalf("%s: master %v reported gone", what, a)
	case <-time.After(d):
	}
}

func isGone(t *testing.T, gone chan netip.Addr, d time.Duration, what string) {
	t.Helper()
	select {
	case <-gone:
	case <-time.After(d):
		t.Fatalf("%s: the master was not reported gone within %v", what, d)
	}
}

// TestLivenessKeyedReset: with a key, a reset of the connection (forged on the path)
// is not the master's death: the backup connects again, and the heartbeats go on.
func TestLivenessKeyedReset(t *testing.T) {
	l, port := startLiveness(t, livenessOptions{key: testLivenessKey})
	gone := keyedDialer(t, port, testLivenessKey)
	waitHeld(t, l, 1)
	for range 3 {
		l.mu.Lock()
		for c := range l.conns {
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // a reset, without the bye
		}
		l.mu.Unlock()
		noGone(t, gone, 200*time.Millisecond, "after a reset")
		waitHeld(t, l, 1)
	}
}

// TestLivenessKeyedCrash: a master that dies without its bye (SIGKILL: its kernel
// closes the sockets) is gone once the heartbeats have been silent for the
// multiplier, not at the FIN; a master that stops gracefully (bye) is gone at once.
func TestLivenessKeyedCrash(t *testing.T) {
	t.Run("crash", func(t *testing.T) {
		l, port := startLiveness(t, livenessOptions{key: testLivenessKey})
		gone := keyedDialer(t, port, testLivenessKey)
		waitHeld(t, l, 1)
		killed := time.Now()
		for _, ln := range l.lns {
			ln.Close()
		}
		l.mu.Lock()
		for c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		isGone(t, gone, 2*time.Second, "after the crash")
		if d := time.Since(killed); d > time.Second {
			t.Errorf("a crash was seen after %v, want about 4 × 10ms", d)
		}
	})
	t.Run("graceful", func(t *testing.T) {
		l, port := startLiveness(t, livenessOptions{key: testLivenessKey})
		gone := keyedDialer(t, port, testLivenessKey)
		waitHeld(t, l, 1)
		l.Close()
		isGone(t, gone, 2*time.Second, "after the bye")
	})
}

// TestLivenessKeyedWrongKey: a backup with another key does not authenticate the
// master, and a master's close then proves nothing.
func TestLivenessKeyedWrongKey(t *testing.T) {
	l, port := startLiveness(t, livenessOptions{key: testLivenessKey})
	res := probePeer(t.Context(), probeOptions{ap: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
		interval: 10 * time.Millisecond, multiplier: 4, key: []byte("another-key-of-16-bytes")})
	if res.end != peerUnauthenticated {
		t.Errorf("probe with another key = %v, want peerUnauthenticated", res.end)
	}
	gone := keyedDialer(t, port, []byte("another-key-of-16-bytes"))
	noGone(t, gone, 100*time.Millisecond, "while held")
	l.Close()
	noGone(t, gone, 200*time.Millisecond, "after the master closed")
}

// TestLivenessKeyedReplay: a recorded handshake does not verify on a new connection.
func TestLivenessKeyedReplay(t *testing.T) {
	_, port := startLiveness(t, livenessOptions{key: testLivenessKey})
	hello, _ := authHello(10 * time.Millisecond)
	c := dialFrom(t, "127.0.0.1", port)
	c.Write(hello)
	reply := make([]byte, livenessReplyN)
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatal(err)
	}
	mac := authMAC(testLivenessKey, "lbd liveness backup", hello, reply[:livenessAuthHelloN])
	c.Write(mac)
	frame := make([]byte, livenessFrameN)
	if _, err := io.ReadFull(c, frame); err != nil || frame[0] != frameBeat {
		t.Fatalf("the genuine handshake got no heartbeat: %x, %v", frame, err)
	}
	// The same hello and MAC on a new connection: the master's nonce differs.
	r := dialFrom(t, "127.0.0.1", port)
	r.Write(hello)
	if _, err := io.ReadFull(r, reply); err != nil {
		t.Fatal(err)
	}
	r.Write(mac)
	r.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := io.ReadFull(r, frame); err == nil {
		t.Fatalf("a replayed handshake got a heartbeat (%d bytes)", n)
	}
}

// TestLivenessMixedVersions: a backup with a key and a master without one (or an
// older lbd), and the other way round, never see a false failover.
func TestLivenessMixedVersions(t *testing.T) {
	t.Run("keyed backup, unkeyed master", func(t *testing.T) {
		l, port := startLiveness(t, livenessOptions{})
		gone := keyedDialer(t, port, testLivenessKey)
		noGone(t, gone, 200*time.Millisecond, "while held")
		l.Close()
		noGone(t, gone, 200*time.Millisecond, "after the unauthenticated close")
	})
	t.Run("unkeyed backup, keyed master", func(t *testing.T) {
		l, port := startLiveness(t, livenessOptions{key: testLivenessKey})
		gone := keyedDialer(t, port, nil)
		// The master holds it without heartbeats: never silent.
		noGone(t, gone, 300*time.Millisecond, "while held")
		// And its close is the master's death, as before.
		l.Close()
		isGone(t, gone, 2*time.Second, "after the close")
	})
}

// TestLivenessDialsFromSource: the backup connects from its VRRP source address (what
// the master knows as its unicast peer), not from the kernel's choice.
func TestLivenessDialsFromSource(t *testing.T) {
	l, port := startLiveness(t, livenessOptions{allow: func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.5") }})
	for _, tt := range []struct {
		local netip.Addr
		want  peerEnd
	}{
		{netip.Addr{}, peerLost},                       // from 127.0.0.1: refused, which proves nothing
		{netip.MustParseAddr("127.0.0.5"), peerClosed}, // held, then the listener closes
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		res := probePeer(ctx, probeOptions{ap: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
			local: tt.local, onConnect: func() {
				if tt.local.IsValid() {
					time.AfterFunc(300*time.Millisecond, l.Close)
				}
			}})
		cancel()
		if res.end != tt.want {
			t.Errorf("from %v: %v, want %v", tt.local, res.end, tt.want)
		}
	}
}

// TestLivenessRefusedIsNoDeath: a backup that the master refuses (not a peer there,
// or over its caps) does not take the refusal for the master's death.
func TestLivenessRefusedIsNoDeath(t *testing.T) {
	_, port := startLiveness(t, livenessOptions{allow: func(netip.Addr) bool { return false }})
	for _, key := range [][]byte{nil, testLivenessKey} {
		gone := keyedDialer(t, port, key)
		noGone(t, gone, 300*time.Millisecond, "refused")
	}
}
