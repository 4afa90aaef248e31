package node

// Liveness: a side channel that tells a backup that its master is gone sooner than VRRP
// silence (3 advert intervals + Skew_Time) does. Every node with VRRP instances listens
// on a TCP port (node.vrrp.liveness_port) and holds the connections it accepts; a backup
// keeps one connection open to the master of each of its instances and asks it, in a
// hello, for a heartbeat every liveness interval. The backup tells the VIP manager
// (Manager.PeerGone), which takes over after Skew_Time, when
//
//   - the connection ends with a FIN or a reset: the master's lbd process died (SIGKILL,
//     OOM, a crash) and its kernel closed the socket; or
//   - no heartbeat came for liveness_multiplier intervals: the master's process hangs,
//     or its link or host is down, where nothing closes the socket.
//
// A connection that cannot be made, or one that ends any other way, proves nothing: the
// backup still has VRRP silence. A master that does not answer the hello with heartbeats
// (an lbd from before them) is watched for a FIN or a reset only, so mixed versions during
// an upgrade never see a false failover. A master that was only slow and advertises within
// the skew time keeps its role (an advertisement restarts Master_Down_Interval).
//
// Wire format: the backup sends an 8-byte hello, "LBDL", version 1, a reserved zero byte
// and the interval in milliseconds (big-endian uint16); the master then writes one byte
// (livenessBeat) at once and every interval until the connection or the process ends.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"lbd/vip"
)

// DefaultLivenessPort is node.vrrp.liveness_port's default.
const DefaultLivenessPort = 7948

// Heartbeat defaults and bounds (node.vrrp.liveness_interval, liveness_multiplier).
const (
	// DefaultLivenessMultiplier is how many intervals without a heartbeat make the
	// master gone.
	DefaultLivenessMultiplier = 4
	// livenessAutoMax caps the automatic interval (the master's advert interval / 4).
	livenessAutoMax = 50 * time.Millisecond
	// MinLivenessInterval and MaxLivenessInterval bound the interval; a hello outside
	// them is clamped by the master.
	MinLivenessInterval = 10 * time.Millisecond
	MaxLivenessInterval = 10 * time.Second
)

const (
	// livenessPoll is how often the dialer looks for a new master.
	livenessPoll = 50 * time.Millisecond
	// livenessDialTimeout bounds one connection attempt.
	livenessDialTimeout = time.Second
	// livenessBackoffMin and livenessBackoffMax bound the wait between attempts.
	livenessBackoffMin = 100 * time.Millisecond
	livenessBackoffMax = 5 * time.Second
	// livenessLateCheck is how long a backup whose heartbeat deadline passed looks once
	// more for a heartbeat that came while it was itself not running.
	livenessLateCheck = 2 * time.Millisecond
	// livenessWriteTimeout bounds one heartbeat write (a full send buffer: the backup
	// stopped reading, or the link is down for long).
	livenessWriteTimeout = 10 * time.Second
)

var livenessMagic = [4]byte{'L', 'B', 'D', 'L'}

const (
	livenessVersion = 1
	livenessBeat    = 0x01
	livenessHelloN  = 8
)

// livenessHello encodes a backup's hello asking for a heartbeat every interval.
func livenessHello(interval time.Duration) []byte {
	b := make([]byte, livenessHelloN)
	copy(b, livenessMagic[:])
	b[4] = livenessVersion
	ms := min(max(interval, MinLivenessInterval), MaxLivenessInterval) / time.Millisecond
	binary.BigEndian.PutUint16(b[6:], uint16(ms))
	return b
}

// parseLivenessHello returns the interval a hello asks for, clamped to the bounds; ok is
// false when b is not a hello this version understands (the master then only holds the
// connection).
func parseLivenessHello(b []byte) (interval time.Duration, ok bool) {
	if len(b) != livenessHelloN || [4]byte(b[:4]) != livenessMagic || b[4] != livenessVersion {
		return 0, false
	}
	d := time.Duration(binary.BigEndian.Uint16(b[6:])) * time.Millisecond
	return min(max(d, MinLivenessInterval), MaxLivenessInterval), true
}

// livenessInterval is the heartbeat interval a backup asks of a master advertising
// every advert: configured (0: no heartbeats), or a quarter of the advert interval,
// between MinLivenessInterval and livenessAutoMax.
func livenessInterval(configured *time.Duration, advert time.Duration) time.Duration {
	if configured != nil {
		return *configured
	}
	if advert <= 0 {
		advert = vip.DefaultAdvertInterval
	}
	return min(max(advert/4, MinLivenessInterval), livenessAutoMax)
}

// livenessListener accepts liveness connections and holds them, reading until EOF and
// sending the heartbeats a hello asks for, for as long as this process lives.
type livenessListener struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// listenLiveness listens on port on every address.
func listenLiveness(port int) (*livenessListener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	l := &livenessListener{ln: ln, conns: map[net.Conn]bool{}}
	l.wg.Go(l.accept)
	return l, nil
}

func (l *livenessListener) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		l.mu.Lock()
		if l.conns == nil { // closed meanwhile
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = true
		l.mu.Unlock()
		l.wg.Go(func() {
			l.hold(c)
			c.Close()
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		})
	}
}

// hold reads c until it ends; after a valid hello it writes heartbeats meanwhile.
func (l *livenessListener) hold(c net.Conn) {
	hello := make([]byte, livenessHelloN)
	if _, err := io.ReadFull(c, hello); err != nil {
		return
	}
	if interval, ok := parseLivenessHello(hello); ok {
		done := make(chan struct{})
		defer close(done)
		l.wg.Go(func() { beat(c, interval, done) })
	}
	_, _ = io.Copy(io.Discard, c)
}

// beat writes a heartbeat to c at once and then every interval until done is closed or
// a write fails (which closes c, ending hold's read).
func beat(c net.Conn, interval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	b := []byte{livenessBeat}
	for {
		c.SetWriteDeadline(time.Now().Add(livenessWriteTimeout))
		if _, err := c.Write(b); err != nil {
			c.Close()
			return
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// Addr is the listening address.
func (l *livenessListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting and closes every held connection (the peers see a FIN).
func (l *livenessListener) Close() {
	l.ln.Close()
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.conns = nil
	l.mu.Unlock()
	l.wg.Wait()
}

// livenessTarget is a master to watch, and the heartbeat interval to ask it for (0:
// none, watch for a FIN or a reset only).
type livenessTarget struct {
	Addr     netip.Addr
	Interval time.Duration
}

// livenessDialer keeps one connection to each current master.
type livenessDialer struct {
	port int
	log  *slog.Logger
	// masters returns the masters to watch (zoned when link-local).
	masters func() []livenessTarget
	// multiplier is how many intervals without a heartbeat make a master gone.
	multiplier int
	// gone is called with a master's address (without zone) when its connection ended
	// with EOF or a reset, or its heartbeats stopped.
	gone func(netip.Addr)
	poll time.Duration
}

// run watches the masters until ctx is done.
func (d *livenessDialer) run(ctx context.Context) {
	type peer struct {
		interval time.Duration
		cancel   context.CancelFunc
		done     chan struct{}
	}
	peers := map[netip.Addr]peer{}
	stop := func(p peer) {
		p.cancel()
		<-p.done
	}
	defer func() {
		for _, p := range peers {
			stop(p)
		}
	}()
	t := time.NewTicker(d.poll)
	defer t.Stop()
	for {
		want := map[netip.Addr]time.Duration{}
		for _, m := range d.masters() {
			if iv, ok := want[m.Addr]; !ok || (m.Interval > 0 && (iv == 0 || m.Interval < iv)) {
				want[m.Addr] = m.Interval // the shortest of the instances it masters
			}
		}
		for a, p := range peers {
			if iv, ok := want[a]; !ok || iv != p.interval {
				stop(p)
				delete(peers, a)
			}
		}
		for a, iv := range want {
			if _, ok := peers[a]; ok {
				continue
			}
			pctx, cancel := context.WithCancel(ctx)
			p := peer{interval: iv, cancel: cancel, done: make(chan struct{})}
			peers[a] = p
			go func() {
				defer close(p.done)
				d.watch(pctx, a, iv)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watch connects to addr again and again until ctx is done, reporting each connection
// that the master's kernel closed or whose heartbeats stopped.
func (d *livenessDialer) watch(ctx context.Context, addr netip.Addr, interval time.Duration) {
	backoff := livenessBackoffMin
	for {
		end := probePeer(ctx, netip.AddrPortFrom(addr, uint16(d.port)), interval, d.multiplier, nil)
		if ctx.Err() != nil {
			return
		}
		switch end {
		case peerClosed:
			d.log.Warn("the master's lbd process closed the liveness connection: it died", "master", addr.WithZone(""))
			d.gone(addr.WithZone(""))
		case peerSilent:
			d.log.Warn("the master's liveness heartbeats stopped: it hangs or its link is down",
				"master", addr.WithZone(""), "silent_for", time.Duration(d.multiplier)*interval)
			d.gone(addr.WithZone(""))
		}
		if end != peerUnreachable {
			backoff = livenessBackoffMin
		} else {
			backoff = min(2*backoff, livenessBackoffMax)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// peerEnd is how a liveness connection ended.
type peerEnd int

const (
	// peerUnreachable: no connection was made. Proves nothing.
	peerUnreachable peerEnd = iota
	// peerLost: connected, then ended otherwise (the watcher stopped, a TCP timeout,
	// heartbeats never started). Proves nothing.
	peerLost
	// peerClosed: the master's kernel sent a FIN or a reset; its process died.
	peerClosed
	// peerSilent: heartbeats came and then stopped for multiplier intervals.
	peerSilent
)

// probePeer connects to ap, asks for a heartbeat every interval (0: none) and reads
// until the connection ends. Only the peer's kernel sends a FIN or a reset (peerClosed);
// once a heartbeat has come, multiplier intervals without one are peerSilent. A backup
// that was itself not running when the deadline passed looks once more before it says
// so. onConnect, when not nil, is called once connected.
func probePeer(ctx context.Context, ap netip.AddrPort, interval time.Duration, multiplier int, onConnect func()) peerEnd {
	dctx, cancel := context.WithTimeout(ctx, livenessDialTimeout)
	var nd net.Dialer
	c, err := nd.DialContext(dctx, "tcp", ap.String())
	cancel()
	if err != nil {
		return peerUnreachable
	}
	if onConnect != nil {
		onConnect()
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	dead := time.Duration(max(multiplier, 1)) * interval
	if interval > 0 {
		c.SetWriteDeadline(time.Now().Add(livenessDialTimeout))
		if _, err := c.Write(livenessHello(interval)); err != nil {
			return peerLost
		}
	}
	buf := make([]byte, 64)
	armed := false
	for {
		if armed {
			c.SetReadDeadline(time.Now().Add(dead))
		}
		n, err := c.Read(buf)
		if n > 0 {
			armed = interval > 0
			continue
		}
		switch {
		case ctx.Err() != nil:
			return peerLost
		case err == io.EOF || errors.Is(err, syscall.ECONNRESET):
			return peerClosed
		case armed && errors.Is(err, os.ErrDeadlineExceeded):
			c.SetReadDeadline(time.Now().Add(livenessLateCheck))
			if n, _ := c.Read(buf); n > 0 {
				continue
			}
			if ctx.Err() != nil {
				return peerLost
			}
			return peerSilent
		case err == nil:
			continue
		}
		return peerLost
	}
}

// vipMasters returns the masters of m's instances in BACKUP, link-local ones zoned with
// the instance's interface, each with the heartbeat interval to ask it for (configured:
// node.vrrp.liveness_interval, nil for automatic).
func vipMasters(m *vip.Manager, configured *time.Duration) []livenessTarget {
	var out []livenessTarget
	for _, st := range m.Status() {
		if st.State != vip.Backup || !st.Master.IsValid() {
			continue
		}
		a := st.Master
		if a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
			a = a.WithZone(st.Interface)
		}
		out = append(out, livenessTarget{Addr: a, Interval: livenessInterval(configured, st.MasterAdvertInterval)})
	}
	return out
}
