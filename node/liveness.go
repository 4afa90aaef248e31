package node

// Liveness: a side channel that tells a backup that its master is gone sooner than VRRP
// silence (3 advert intervals + Skew_Time) does. Every node with VRRP instances listens
// on a TCP port (node.vrrp.liveness_port) on the addresses it advertises from (never the
// VIPs), takes connections only from VRRP peers (the unicast peers, or hosts on the
// instance's link with multicast), at most livenessMaxConns (livenessMaxPerSource per
// address), and holds the connections it accepts; a backup
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
// A hello must come within livenessHelloTimeout: a connection that sent part of one by
// then is closed; one that sent nothing is an lbd from before the hello and is held.
//
// With node.vrrp.liveness_key, the hello is version 2 and the session is authenticated
// (see the keyed protocol below): only an authenticated bye, or heartbeats that stop,
// count as the master's death; a FIN or a reset does not, since anyone on the path can
// forge one. Without a key on both sides, each side falls back to holding the
// connection as an older lbd would, so that no mix of versions and keys fails over
// falsely.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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
	// livenessRetryPending is the wait between connection attempts while a keyed
	// connection's silence deadline runs.
	livenessRetryPending = 10 * time.Millisecond
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

// The keyed protocol (version 2), with node.vrrp.liveness_key on both sides:
//
//	backup → master  hello:  "LBDL", 2, 0, interval ms (uint16), nonceB (16 bytes)
//	master → backup  reply:  "LBDL", 2, 0, 0, 0, nonceM (16 bytes),
//	                         HMAC-SHA256(key, "lbd liveness master" | hello | reply[:24])
//	backup → master  HMAC-SHA256(key, "lbd liveness backup" | hello | reply[:24])
//	master → backup  frames: type (1 beat, 2 bye), seq (uint64, 1, 2, ...),
//	                 HMAC-SHA256(key, "lbd liveness frame" | nonceB | nonceM | type | seq)[:16]
//
// Both nonces are fresh for each connection, so a recorded handshake or frame does not
// verify on another connection, and seq rules out a replay within one. A backup counts
// only an authenticated bye, or heartbeats that stop, as the master's death: a FIN or a
// reset cannot be authenticated (anyone on the path can forge one), so after one the
// backup connects again and takes the master for gone only if no authenticated
// heartbeat comes before the running silence deadline (liveness_multiplier intervals
// after the last one). A crash is then seen after that deadline instead of at once.
const (
	livenessVersionAuth = 2
	livenessAuthHelloN  = livenessHelloN + livenessNonceN
	livenessNonceN      = 16
	livenessReplyN      = livenessAuthHelloN + sha256.Size
	livenessFrameN      = 1 + 8 + 16
	frameBeat           = 1
	frameBye            = 2
)

// authHello encodes a keyed hello; it returns it and its nonce.
func authHello(interval time.Duration) (hello, nonce []byte) {
	hello = make([]byte, livenessAuthHelloN)
	copy(hello, livenessHello(interval))
	hello[4] = livenessVersionAuth
	rand.Read(hello[livenessHelloN:])
	return hello, hello[livenessHelloN:]
}

// isAuthHello reports whether the first livenessHelloN bytes of a hello are a keyed one.
func isAuthHello(b []byte) bool {
	return len(b) >= livenessHelloN && [4]byte(b[:4]) == livenessMagic && b[4] == livenessVersionAuth
}

// parseAuthHello returns the interval (clamped) and nonce of a keyed hello.
func parseAuthHello(b []byte) (time.Duration, []byte, bool) {
	if len(b) != livenessAuthHelloN || !isAuthHello(b) {
		return 0, nil, false
	}
	v1 := slices.Clone(b[:livenessHelloN])
	v1[4] = livenessVersion
	iv, _ := parseLivenessHello(v1)
	return iv, b[livenessHelloN:], true
}

// authReply is the master's reply to a keyed hello, and its nonce.
func authReply(key, hello []byte) (reply, nonce []byte) {
	reply = make([]byte, livenessAuthHelloN, livenessReplyN)
	copy(reply, livenessMagic[:])
	reply[4] = livenessVersionAuth
	rand.Read(reply[livenessHelloN:])
	reply = append(reply, authMAC(key, "lbd liveness master", hello, reply)...)
	return reply, reply[livenessHelloN:livenessAuthHelloN]
}

func authMAC(key []byte, label string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// authFrame encodes a heartbeat or bye frame.
func authFrame(key, nonceB, nonceM []byte, typ byte, seq uint64) []byte {
	b := make([]byte, 9, livenessFrameN)
	b[0] = typ
	binary.BigEndian.PutUint64(b[1:], seq)
	return append(b, authMAC(key, "lbd liveness frame", nonceB, nonceM, b)[:16]...)
}

// Listener limits (see docs/security.md).
const (
	// livenessMaxConns caps the connections held at once, and livenessMaxPerSource
	// those from one address (a backup holds one per master).
	livenessMaxConns     = 64
	livenessMaxPerSource = 4
	// livenessHelloTimeout bounds the hello (and, with a key, the handshake). A
	// connection that sent nothing by then is an lbd from before the hello: it is
	// held without heartbeats, as before; one that sent part of a hello is closed.
	livenessHelloTimeout = time.Second
	// livenessLogEvery is how often the listener logs the connections it refused.
	livenessLogEvery = 10 * time.Second
	// livenessRefuseLinger bounds how long a refused connection is kept to deliver
	// livenessRefused.
	livenessRefuseLinger = 100 * time.Millisecond
)

// livenessRefused is what the listener writes to a connection it refuses before it
// closes it: not a heartbeat (0x01) nor a keyed reply ("LBDL").
var livenessRefused = [4]byte{'L', 'B', 'D', 'R'}

// livenessOptions configures listenLiveness.
type livenessOptions struct {
	// addrs are the addresses to listen on: the node's own VRRP source addresses,
	// never the VIPs. None: every address (tests).
	addrs []netip.Addr
	port  int
	// allow reports whether a remote address may connect (a VRRP peer); nil: any.
	allow func(netip.Addr) bool
	// key is node.vrrp.liveness_key; nil: no authentication.
	key []byte
	log *slog.Logger
}

// livenessSession is one held connection.
type livenessSession struct {
	c   net.Conn
	src netip.Addr
	// auth is set once a keyed handshake succeeded: frames carry a MAC, and a
	// graceful close sends an authenticated bye.
	auth           atomic.Bool
	nonceB, nonceM []byte // set before auth
	seq            atomic.Uint64
}

// livenessListener accepts liveness connections and holds them, reading until EOF and
// sending the heartbeats a hello asks for, for as long as this process lives.
type livenessListener struct {
	o   livenessOptions
	lns []net.Listener
	// mu guards conns, perSrc, refused and lastLog.
	mu      sync.Mutex
	conns   map[net.Conn]*livenessSession
	perSrc  map[netip.Addr]int
	refused map[string]int // reason → count since the last log line
	lastLog time.Time
	wg      sync.WaitGroup
	// refusing bounds the goroutines that close refused connections (refuse).
	refusing chan struct{}
}

// listenLiveness listens on o.port on each of o.addrs (on every address when there are
// none). An address it cannot listen on is skipped with a warning; it fails only when
// it listens on none.
func listenLiveness(o livenessOptions) (*livenessListener, error) {
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	l := &livenessListener{o: o, conns: map[net.Conn]*livenessSession{}, perSrc: map[netip.Addr]int{},
		refused: map[string]int{}, refusing: make(chan struct{}, livenessMaxConns)}
	hosts := []string{""}
	if len(o.addrs) > 0 {
		hosts = hosts[:0]
		for _, a := range o.addrs {
			hosts = append(hosts, a.String())
		}
	}
	var errs []error
	for _, h := range hosts {
		ln, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(o.port)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l.lns = append(l.lns, ln)
	}
	if len(l.lns) == 0 {
		return nil, errors.Join(errs...)
	}
	if len(errs) > 0 {
		o.log.Warn("vrrp liveness port: cannot listen on some addresses", "err", errors.Join(errs...))
	}
	for _, ln := range l.lns {
		l.wg.Go(func() { l.accept(ln) })
	}
	return l, nil
}

func (l *livenessListener) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		src := netip.Addr{}
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			src = ap.Addr().Unmap().WithZone("")
		}
		if l.o.allow != nil && !l.o.allow(src) {
			l.refuse(c, "not a vrrp peer")
			continue
		}
		l.mu.Lock()
		switch {
		case l.conns == nil: // closed meanwhile
			l.mu.Unlock()
			c.Close()
			return
		case len(l.conns) >= livenessMaxConns:
			l.mu.Unlock()
			l.refuse(c, "too many connections")
			continue
		case l.perSrc[src] >= livenessMaxPerSource:
			l.mu.Unlock()
			l.refuse(c, "too many connections from one address")
			continue
		}
		s := &livenessSession{c: c, src: src}
		l.conns[c] = s
		l.perSrc[src]++
		l.mu.Unlock()
		l.wg.Go(func() {
			l.hold(s)
			c.Close()
			l.mu.Lock()
			if l.conns != nil {
				delete(l.conns, c)
			}
			if l.perSrc[src]--; l.perSrc[src] <= 0 {
				delete(l.perSrc, src)
			}
			l.mu.Unlock()
		})
	}
}

// refuse closes c and counts why; the log shows the counts at most every
// livenessLogEvery.
//
// A refused connection gets livenessRefused and a FIN, so that a backup of this
// version does not take the close for this node's death (an older one does: it must
// not be refused, see docs/security.md). The close waits for the FIN to go out after
// the marker (a close with the hello unread would send a reset, which may discard it),
// at most livenessRefuseLinger, in at most livenessMaxConns goroutines at once; past
// that a refused connection is closed at once.
func (l *livenessListener) refuse(c net.Conn, why string) {
	remote := c.RemoteAddr().String()
	select {
	case l.refusing <- struct{}{}:
		l.wg.Go(func() {
			defer func() { <-l.refusing }()
			c.SetDeadline(time.Now().Add(livenessRefuseLinger))
			c.Write(livenessRefused[:])
			if tc, ok := c.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		})
	default:
		c.Close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused[why]++
	if now := time.Now(); now.Sub(l.lastLog) >= livenessLogEvery {
		l.o.log.Warn("vrrp liveness port: refused connections", "last_from", remote, "reasons", maps.Clone(l.refused))
		l.lastLog = now
		clear(l.refused)
	}
}

// hold reads the hello within livenessHelloTimeout, then reads c until it ends; it
// writes heartbeats meanwhile when the hello asks for them (and, with a key, once the
// handshake succeeded).
func (l *livenessListener) hold(s *livenessSession) {
	c := s.c
	c.SetReadDeadline(time.Now().Add(livenessHelloTimeout))
	hello := make([]byte, livenessHelloN)
	if n, err := io.ReadFull(c, hello); err != nil {
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			// No hello: an lbd from before the hello. Held as before.
			c.SetReadDeadline(time.Time{})
			_, _ = io.Copy(io.Discard, c)
		}
		return
	}
	interval, ok := parseLivenessHello(hello)
	switch {
	case ok && l.o.key == nil:
		// Version 1 without a key: heartbeats without a MAC, as before.
	case ok:
		// Version 1 with a key: the backup has no key (or is older). Held without
		// heartbeats: it still sees this process's death by the FIN, as before.
		interval = 0
	case isAuthHello(hello) && l.o.key != nil:
		var err error
		if interval, err = l.handshake(s, hello); err != nil {
			return
		}
	default:
		// Unknown, or a keyed hello without a key here: held without heartbeats.
		interval = 0
	}
	c.SetReadDeadline(time.Time{})
	if interval > 0 {
		done := make(chan struct{})
		defer close(done)
		l.wg.Go(func() { beat(s, l.o.key, interval, done) })
	}
	_, _ = io.Copy(io.Discard, c)
}

// handshake runs the master's side of a keyed hello (hello holds its first
// livenessHelloN bytes) and returns the interval asked for.
func (l *livenessListener) handshake(s *livenessSession, hello []byte) (time.Duration, error) {
	c := s.c
	full := make([]byte, livenessAuthHelloN)
	copy(full, hello)
	if _, err := io.ReadFull(c, full[livenessHelloN:]); err != nil {
		return 0, err
	}
	interval, nonceB, _ := parseAuthHello(full)
	reply, nonceM := authReply(l.o.key, full)
	c.SetWriteDeadline(time.Now().Add(livenessHelloTimeout))
	if _, err := c.Write(reply); err != nil {
		return 0, err
	}
	mac := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, mac); err != nil {
		return 0, err
	}
	if !hmac.Equal(mac, authMAC(l.o.key, "lbd liveness backup", full, reply[:livenessAuthHelloN])) {
		l.refuse(c, "authentication failed")
		return 0, errors.New("liveness handshake: bad MAC")
	}
	s.nonceB, s.nonceM = nonceB, nonceM
	s.auth.Store(true)
	return interval, nil
}

// beat writes a heartbeat to s at once and then every interval until done is closed
// or a write fails (which closes the connection, ending hold's read). With a key each
// heartbeat is an authenticated frame.
func beat(s *livenessSession, key []byte, interval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		b := []byte{livenessBeat}
		if s.auth.Load() {
			b = authFrame(key, s.nonceB, s.nonceM, frameBeat, s.seq.Add(1))
		}
		s.c.SetWriteDeadline(time.Now().Add(livenessWriteTimeout))
		if _, err := s.c.Write(b); err != nil {
			s.c.Close()
			return
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// Addr is the first listening address.
func (l *livenessListener) Addr() net.Addr { return l.lns[0].Addr() }

// Close stops accepting and closes every held connection (the peers see a FIN); an
// authenticated one gets a bye first, so that its backup takes it for this node's
// death at once.
func (l *livenessListener) Close() {
	for _, ln := range l.lns {
		ln.Close()
	}
	l.mu.Lock()
	for c, s := range l.conns {
		if s.auth.Load() {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write(authFrame(l.o.key, s.nonceB, s.nonceM, frameBye, s.seq.Add(1)))
		}
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
	// Local is the address to connect from: the instance's VRRP source, which is what
	// the master knows as its peer (invalid: the kernel's choice).
	Local netip.Addr
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
	// key is node.vrrp.liveness_key; nil: the unkeyed protocol.
	key []byte
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
		local := map[netip.Addr]netip.Addr{}
		for _, m := range d.masters() {
			if iv, ok := want[m.Addr]; !ok || (m.Interval > 0 && (iv == 0 || m.Interval < iv)) {
				want[m.Addr] = m.Interval // the shortest of the instances it masters
			}
			if _, ok := local[m.Addr]; !ok {
				local[m.Addr] = m.Local
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
				d.watch(pctx, a, iv, local[a])
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
// that the master's kernel closed (without a key) or that the master closed with an
// authenticated bye (with a key), and heartbeats that stopped. With a key, a
// connection cut without a bye (a crash, or a forged reset) leaves its silence deadline
// running: the next connections must bring an authenticated heartbeat before it.
func (d *livenessDialer) watch(ctx context.Context, addr netip.Addr, interval time.Duration, local netip.Addr) {
	backoff := livenessBackoffMin
	var pending time.Time
	warned := false
	for {
		res := probePeer(ctx, probeOptions{ap: netip.AddrPortFrom(addr, uint16(d.port)), local: local, interval: interval,
			multiplier: d.multiplier, key: d.key, pending: pending})
		if ctx.Err() != nil {
			return
		}
		pending = res.pending
		switch res.end {
		case peerClosed:
			d.log.Warn("the master's lbd process closed the liveness connection: it died", "master", addr.WithZone(""))
			d.gone(addr.WithZone(""))
		case peerSilent:
			d.log.Warn("the master's liveness heartbeats stopped: it hangs, its link is down, or it died",
				"master", addr.WithZone(""), "silent_for", time.Duration(d.multiplier)*interval)
			d.gone(addr.WithZone(""))
		case peerUnauthenticated:
			if !warned {
				d.log.Warn("the master does not authenticate the liveness connection (an older lbd, or no or another node.vrrp.liveness_key there): watching VRRP only",
					"master", addr.WithZone(""))
				warned = true
			}
		}
		if !pending.IsZero() && !time.Now().Before(pending) {
			d.log.Warn("the master's liveness heartbeats stopped after its connection was cut: it died, or its link is down",
				"master", addr.WithZone(""))
			d.gone(addr.WithZone(""))
			pending = time.Time{}
		}
		switch res.end {
		case peerUnreachable, peerUnauthenticated:
			backoff = min(2*backoff, livenessBackoffMax)
		default:
			backoff = livenessBackoffMin
		}
		wait := backoff
		if !pending.IsZero() {
			// A keyed connection was cut: connect again at once, and keep trying
			// until the silence deadline.
			wait = min(livenessRetryPending, max(time.Until(pending), 0))
			if res.end == peerLost {
				wait = 0
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// peerEnd is how a liveness connection ended.
type peerEnd int

const (
	// peerUnreachable: no connection was made. Proves nothing.
	peerUnreachable peerEnd = iota
	// peerLost: connected, then ended otherwise (the watcher stopped, a TCP timeout,
	// heartbeats never started; with a key, a FIN or a reset without a bye). Proves
	// nothing.
	peerLost
	// peerClosed: without a key, the master's kernel sent a FIN or a reset (its
	// process died); with a key, the master sent an authenticated bye.
	peerClosed
	// peerSilent: heartbeats came and then stopped for multiplier intervals.
	peerSilent
	// peerUnauthenticated: with a key, the master did not complete the handshake
	// (an older lbd, no key or another key there). Proves nothing.
	peerUnauthenticated
)

// probeOptions is one connection attempt of probePeer.
type probeOptions struct {
	ap         netip.AddrPort
	local      netip.Addr    // the address to connect from; invalid: the kernel's choice
	interval   time.Duration // asked of the master; 0: none
	multiplier int
	key        []byte // node.vrrp.liveness_key; nil: the unkeyed protocol
	// pending is a silence deadline left by a keyed connection cut without a bye:
	// an authenticated heartbeat must come before it.
	pending time.Time
	// onConnect, when not nil, is called once connected.
	onConnect func()
}

// probeResult is how a probe ended, and the silence deadline it leaves running (keyed,
// cut without a bye after heartbeats; zero otherwise).
type probeResult struct {
	end     peerEnd
	pending time.Time
}

// probePeer connects to o.ap, asks for a heartbeat every interval (0: none) and reads
// until the connection ends. Without a key, only the peer's kernel sends a FIN or a
// reset (peerClosed); with a key, only an authenticated bye is peerClosed. Once a
// heartbeat has come, multiplier intervals without one are peerSilent. A backup that
// was itself not running when the deadline passed looks once more before it says so.
func probePeer(ctx context.Context, o probeOptions) probeResult {
	lost := probeResult{end: peerLost, pending: o.pending}
	dialTimeout := livenessDialTimeout
	if !o.pending.IsZero() {
		dialTimeout = min(dialTimeout, max(time.Until(o.pending), time.Millisecond))
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	var nd net.Dialer
	if o.local.IsValid() {
		nd.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(o.local, 0))
	}
	c, err := nd.DialContext(dctx, "tcp", o.ap.String())
	cancel()
	if err != nil {
		return probeResult{end: peerUnreachable, pending: o.pending}
	}
	if o.onConnect != nil {
		o.onConnect()
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	dead := time.Duration(max(o.multiplier, 1)) * o.interval
	if o.key != nil {
		return probeKeyed(ctx, c, o, dead)
	}
	if o.interval > 0 {
		c.SetWriteDeadline(time.Now().Add(livenessDialTimeout))
		if _, err := c.Write(livenessHello(o.interval)); err != nil {
			return lost
		}
	}
	buf := make([]byte, 64)
	armed := false
	first := true
	for {
		if armed {
			c.SetReadDeadline(time.Now().Add(dead))
		}
		n, err := c.Read(buf)
		if n > 0 {
			if first && buf[0] == livenessRefused[0] {
				return lost // refused: this node is not a peer there, or over its caps
			}
			first = false
			armed = o.interval > 0
			continue
		}
		switch {
		case ctx.Err() != nil:
			return lost
		case err == io.EOF || errors.Is(err, syscall.ECONNRESET):
			return probeResult{end: peerClosed}
		case armed && errors.Is(err, os.ErrDeadlineExceeded):
			c.SetReadDeadline(time.Now().Add(livenessLateCheck))
			if n, _ := c.Read(buf); n > 0 {
				continue
			}
			if ctx.Err() != nil {
				return lost
			}
			return probeResult{end: peerSilent}
		case err == nil:
			continue
		}
		return lost
	}
}

// probeKeyed is probePeer with a key: the handshake, then authenticated frames.
func probeKeyed(ctx context.Context, c net.Conn, o probeOptions, dead time.Duration) probeResult {
	lost := probeResult{end: peerLost, pending: o.pending}
	hello, nonceB := authHello(max(o.interval, MinLivenessInterval))
	c.SetDeadline(time.Now().Add(livenessHelloTimeout))
	if _, err := c.Write(hello); err != nil {
		return lost
	}
	reply := make([]byte, livenessReplyN)
	if _, err := io.ReadFull(c, reply); err != nil {
		if ctx.Err() != nil {
			return lost
		}
		return probeResult{end: peerUnauthenticated, pending: o.pending}
	}
	if !isAuthHello(reply) || !hmac.Equal(reply[livenessAuthHelloN:], authMAC(o.key, "lbd liveness master", hello, reply[:livenessAuthHelloN])) {
		return probeResult{end: peerUnauthenticated, pending: o.pending}
	}
	nonceM := reply[livenessHelloN:livenessAuthHelloN]
	if _, err := c.Write(authMAC(o.key, "lbd liveness backup", hello, reply[:livenessAuthHelloN])); err != nil {
		return lost
	}
	c.SetWriteDeadline(time.Time{})
	if o.interval <= 0 {
		dead = 0
	}
	// The silence deadline: the one left running by a cut connection (but at least an
	// interval from now, for the first heartbeat to come), else none until the first
	// heartbeat.
	deadline := o.pending
	if !deadline.IsZero() {
		deadline = later(deadline, time.Now().Add(o.interval))
	}
	var seq uint64
	frame := make([]byte, livenessFrameN)
	for {
		c.SetReadDeadline(deadline)
		_, err := io.ReadFull(c, frame)
		if err == nil {
			s := binary.BigEndian.Uint64(frame[1:9])
			if s != seq+1 || !hmac.Equal(frame[9:], authFrame(o.key, nonceB, nonceM, frame[0], s)[9:]) {
				return probeResult{end: peerLost, pending: deadline} // forged or replayed
			}
			seq = s
			switch frame[0] {
			case frameBye:
				return probeResult{end: peerClosed}
			case frameBeat:
				if dead > 0 {
					deadline = time.Now().Add(dead)
				}
			}
			continue
		}
		switch {
		case ctx.Err() != nil:
			return probeResult{end: peerLost, pending: deadline}
		case errors.Is(err, os.ErrDeadlineExceeded) && !deadline.IsZero():
			c.SetReadDeadline(time.Now().Add(livenessLateCheck))
			if _, err := io.ReadFull(c, frame[:1]); err == nil {
				// A frame came while we were not running: read the rest and verify it.
				if _, err := io.ReadFull(c, frame[1:]); err == nil {
					s := binary.BigEndian.Uint64(frame[1:9])
					if s == seq+1 && hmac.Equal(frame[9:], authFrame(o.key, nonceB, nonceM, frame[0], s)[9:]) {
						seq = s
						if frame[0] == frameBye {
							return probeResult{end: peerClosed}
						}
						deadline = time.Now().Add(dead)
						continue
					}
				}
			}
			if ctx.Err() != nil {
				return probeResult{end: peerLost, pending: deadline}
			}
			return probeResult{end: peerSilent}
		}
		// A FIN or a reset: not authenticated, so not a death by itself; the silence
		// deadline keeps running.
		return probeResult{end: peerLost, pending: deadline}
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
		src := st.Source
		if src.Is6() && src.IsLinkLocalUnicast() && src.Zone() == "" {
			src = src.WithZone(st.Interface)
		}
		out = append(out, livenessTarget{Addr: a, Interval: livenessInterval(configured, st.MasterAdvertInterval), Local: src})
	}
	return out
}

// vipSources returns the addresses m's instances advertise from, link-local ones zoned
// with the instance's interface: where the liveness port listens (never the VIPs), and
// what the peers dial (the master's advertisement source).
func vipSources(m *vip.Manager) []netip.Addr {
	var out []netip.Addr
	for _, st := range m.Status() {
		a := st.Source
		if !a.IsValid() {
			continue
		}
		if a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
			a = a.WithZone(st.Interface)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// livenessPeer reports whether a may connect to the liveness port: one of the unicast
// peers of an instance that has them, or, for an instance on multicast, an address on
// its interface's link (in one of the interface's IPv4 prefixes, or IPv6 link-local or
// in one of its IPv6 prefixes). Backups send no advertisements, so a master cannot
// know them by the adverts it hears; a router's adverts reach it only from the link
// (TTL 255).
func (n *Node) livenessPeer(a netip.Addr) bool {
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	if cfg == nil {
		return false
	}
	for _, in := range cfg.VIPConfig().Instances {
		if peers := in.Peers(); len(peers) > 0 {
			if slices.Contains(peers, a) {
				return true
			}
			continue
		}
		if onLink(in.Interface, a) {
			return true
		}
	}
	return false
}

// onLink reports whether a is on the link of interface ifname.
func onLink(ifname string, a netip.Addr) bool {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return false
	}
	if a.Is6() && a.IsLinkLocalUnicast() {
		return true // the kernel accepted it on some interface; the zone is not known here
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, ad := range addrs {
		if p, err := netip.ParsePrefix(ad.String()); err == nil && p.Masked().Contains(a) {
			return true
		}
	}
	return false
}
