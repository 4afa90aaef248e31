package dataplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"lbd/internal/clock"
)

// udpMaxDatagram is the size of the datagram buffers; it holds the largest UDP payload.
const udpMaxDatagram = 64 << 10

var udpBufPool = sync.Pool{New: func() any {
	b := make([]byte, udpMaxDatagram)
	return &b
}}

// udpFrontend serves a udp-mode frontend. Each client address is a session: its first
// datagram picks a server and opens a connected socket to it; later datagrams go to the
// same server, and the server's replies go back to the client from the frontend's
// address. A session keeps the generation it started with (its server and idle timeout)
// across reloads. It ends when no datagram has gone either way for the idle timeout, or
// when the server refuses (ICMP port unreachable).
//
// Sources are not authenticated: a host can send datagrams from spoofed addresses, each
// of which opens a session, until maxconn sessions fill the table and real clients'
// datagrams are dropped for client_idle. So, as Linux conntrack drops a connection that
// is not yet assured to make room (early_drop), a new client that finds the table full
// takes the place of a session that is not assured: one that has not sent a second
// datagram after seeing a reply (a spoofed source never sees the reply, so never
// answers it). The victim is the least recently active of up to udpEvictSample sessions
// sampled from the table (map order is random), so the cost stays constant under a
// flood; counted in lbd_udp_sessions_evicted_total. When every sampled session is
// assured, the new datagram is dropped, as before.
type udpFrontend struct {
	d     *Dataplane
	pc    *net.UDPConn
	clock clock.Clock
	base  time.Time // origin of udpSession.last
	gen   atomic.Pointer[frontendGen]

	// dropped counts client datagrams dropped because the session limit was reached or
	// no server could take a new session; lbd_frontend_dropped_total counts them too.
	dropped atomic.Int64

	stop     chan struct{} // closed by shutdown
	stopOnce sync.Once
	wg       sync.WaitGroup // read loop, sweeper and session readers

	// mu guards sessions and closed.
	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
	closed   bool
}

func newUDPFrontend(d *Dataplane, g *frontendGen, pc *net.UDPConn) frontendRunner {
	return startUDPFrontend(d, g, pc, d.clock)
}

// startUDPFrontend is newUDPFrontend with the clock of the idle sweeper.
func startUDPFrontend(d *Dataplane, g *frontendGen, pc *net.UDPConn, clk clock.Clock) *udpFrontend {
	f := &udpFrontend{
		d:        d,
		pc:       pc,
		clock:    clk,
		base:     clk.Now(),
		stop:     make(chan struct{}),
		sessions: map[netip.AddrPort]*udpSession{},
	}
	f.gen.Store(g)
	f.wg.Add(2)
	go f.readLoop()
	go f.sweeper()
	return f
}

func (f *udpFrontend) addr() net.Addr { return f.pc.LocalAddr() }

// update serves new sessions with g; existing sessions keep their server.
func (f *udpFrontend) update(g *frontendGen) { f.gen.Store(g) }

// shutdown stops reading and ends every session. UDP has no connection to drain, so it
// only waits for its goroutines.
func (f *udpFrontend) shutdown(ctx context.Context) error {
	f.stopOnce.Do(func() {
		close(f.stop)
		f.pc.Close()
	})
	listenerClosed(ctx)
	f.mu.Lock()
	f.closed = true
	sessions := make([]*udpSession, 0, len(f.sessions))
	for _, s := range f.sessions {
		sessions = append(sessions, s)
	}
	f.mu.Unlock()
	for _, s := range sessions {
		s.end(nil)
	}
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *udpFrontend) now() int64 { return int64(f.clock.Now().Sub(f.base)) }

func (f *udpFrontend) readLoop() {
	defer f.wg.Done()
	bp := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(bp)
	buf := *bp
	for {
		n, from, err := f.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient error of one datagram
		}
		f.forward(from, buf[:n])
	}
}

// forward sends a client's datagram to the server of its session, opening the session
// if there is none.
func (f *udpFrontend) forward(from netip.AddrPort, b []byte) {
	for {
		s := f.session(from)
		if s == nil {
			f.dropped.Add(1)
			f.gen.Load().m.dropped.Inc()
			return
		}
		_, err := s.conn.Write(b)
		if err == nil {
			s.last.Store(f.now())
			if !s.assuredFlag.Load() && s.replied.Load() {
				s.assuredFlag.Store(true) // it answers what it was sent
			}
			s.g.m.bytesIn.Add(float64(len(b)))
			return
		}
		s.end(err)
		if !errors.Is(err, net.ErrClosed) {
			return // refused: the next datagram picks again
		}
		// The sweeper ended the session just now: open another.
	}
}

// session returns the client's session, opening one when there is none and the limit
// allows; nil means drop the datagram. Only the read loop calls it, so two sessions for
// one client are never opened at once.
func (f *udpFrontend) session(from netip.AddrPort) *udpSession {
	f.mu.Lock()
	s := f.sessions[from]
	n := len(f.sessions)
	f.mu.Unlock()
	if s != nil {
		return s
	}
	g := f.gen.Load()
	if limit := g.cfg.MaxConn; limit > 0 && n >= limit && !f.evictOne(g) {
		return nil
	}
	s = f.open(from, g)
	if s == nil {
		return nil
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		s.end(nil)
		return nil
	}
	f.sessions[from] = s
	f.wg.Add(1) // under mu while not closed: before shutdown's Wait
	f.mu.Unlock()
	go s.readLoop()
	return s
}

// udpEvictSample is how many sessions evictOne looks at.
const udpEvictSample = 16

// evictOne ends the least recently active session that is not assured among up to
// udpEvictSample sessions, to make room for a new one. It returns false when it found
// none.
func (f *udpFrontend) evictOne(g *frontendGen) bool {
	var victim *udpSession
	f.mu.Lock()
	i := 0
	for _, s := range f.sessions {
		if !s.assured() && (victim == nil || s.last.Load() < victim.last.Load()) {
			victim = s
		}
		if i++; i >= udpEvictSample {
			break
		}
	}
	f.mu.Unlock()
	if victim == nil {
		return false
	}
	victim.end(nil)
	g.m.evicted.Inc()
	return true
}

// open picks a server for a new session and opens a socket connected to it, trying up
// to backend.retries other servers when the socket cannot be opened.
func (f *udpFrontend) open(from netip.AddrPort, g *frontendGen) *udpSession {
	b := g.backend
	var tried [4]*Server
	p := Pick{ClientIP: from.Addr().Unmap(), Exclude: tried[:0]}
	dialer := net.Dialer{Timeout: b.cfg.Timeouts.Connect} // bounds resolving a name
	for attempt := 0; ; attempt++ {
		srv := b.pick(&p)
		if srv == nil {
			if attempt == 0 {
				g.metrics.noServer.WithLabelValues(g.cfg.Name, b.cfg.Name).Inc()
			}
			return nil
		}
		if attempt > 0 {
			g.metrics.retries.WithLabelValues(b.cfg.Name).Inc()
		}
		conn, err := dialer.Dial("udp", srv.Addr)
		if err == nil {
			srv.Acquire()
			g.m.connsTotal.Inc()
			g.m.connsActive.Inc()
			g.metrics.sessions.WithLabelValues(b.cfg.Name, srv.Name).Inc()
			s := &udpSession{f: f, client: from, g: g, server: srv, conn: conn.(*net.UDPConn)}
			s.last.Store(f.now())
			return s
		}
		g.metrics.errors.WithLabelValues(b.cfg.Name, srv.Name, "connect").Inc()
		f.d.log.Debug("opening udp socket to server failed", "frontend", g.cfg.Name,
			"backend", b.cfg.Name, "server", srv.Name, "err", err)
		if attempt >= b.retries {
			return nil
		}
		p.Exclude = append(p.Exclude, srv)
	}
}

// sweep ends the sessions that have been idle since before now minus the idle timeout.
func (f *udpFrontend) sweep(now time.Time) {
	t := int64(now.Sub(f.base))
	var expired []*udpSession
	f.mu.Lock()
	for _, s := range f.sessions {
		if t-s.last.Load() >= int64(s.g.cfg.Timeouts.ClientIdle) {
			expired = append(expired, s)
		}
	}
	f.mu.Unlock()
	for _, s := range expired {
		s.end(nil)
	}
}

// sweepPeriod is how often the sweeper looks for idle sessions: a quarter of the idle
// timeout, between 10ms and 1s.
func sweepPeriod(g *frontendGen) time.Duration {
	return min(max(g.cfg.Timeouts.ClientIdle/4, 10*time.Millisecond), time.Second)
}

// sweeper sweeps every sweepPeriod of the current generation, counted from the end of
// the last sweep (a timer re-armed after each), until shutdown. A test that steps the
// clock knows a sweep is over when the timer is armed again.
func (f *udpFrontend) sweeper() {
	defer f.wg.Done()
	t := f.clock.NewTimer(sweepPeriod(f.gen.Load()))
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C():
		}
		f.sweep(f.clock.Now())
		t.Reset(sweepPeriod(f.gen.Load()))
	}
}

// udpSession is one client's traffic to its server.
type udpSession struct {
	f      *udpFrontend
	client netip.AddrPort
	g      *frontendGen // the generation the session started with
	server *Server
	conn   *net.UDPConn // connected to server
	// last is when a datagram last went either way, in ns since f.base.
	last atomic.Int64
	// replied is set when the server's first reply went to the client; assuredFlag when
	// the client sent a datagram after that, which a spoofed source cannot (evictOne).
	replied     atomic.Bool
	assuredFlag atomic.Bool
	endOnce     sync.Once
}

// assured reports whether the session has seen traffic both ways: a reply, and the
// client's datagram after it.
func (s *udpSession) assured() bool { return s.assuredFlag.Load() }

// readLoop sends the server's replies to the client until the session ends. It holds a
// buffer only while a datagram is ready, so idle sessions cost no buffer.
func (s *udpSession) readLoop() {
	defer s.f.wg.Done()
	rc, err := s.conn.SyscallConn()
	if err != nil {
		s.end(err)
		return
	}
	var (
		bp   *[]byte
		n    int
		rerr error
	)
	read := func(fd uintptr) bool {
		b := udpBufPool.Get().(*[]byte)
		for {
			n, rerr = syscall.Read(int(fd), *b)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			udpBufPool.Put(b)
			return false // wait until readable
		}
		bp = b
		return true
	}
	for {
		bp, rerr = nil, nil
		err := rc.Read(read)
		if err == nil && rerr != nil {
			err = rerr
		}
		if err != nil {
			if bp != nil {
				udpBufPool.Put(bp)
			}
			s.end(err)
			return
		}
		if !s.replied.Load() {
			// Before the write: the client may answer, and forward look, before this
			// goroutine runs again.
			s.replied.Store(true)
		}
		_, err = s.f.pc.WriteToUDPAddrPort((*bp)[:n], s.client)
		udpBufPool.Put(bp)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.end(nil)
				return
			}
			continue // the reply is lost, as UDP may lose it anyway
		}
		s.last.Store(s.f.now())
		s.g.m.bytesOut.Add(float64(n))
	}
}

// end closes the session, once; err is why (nil for idle or shutdown). A server that
// refused counts as a connect error, and the client's next datagram picks again.
func (s *udpSession) end(err error) {
	s.endOnce.Do(func() {
		f := s.f
		f.mu.Lock()
		if f.sessions[s.client] == s {
			delete(f.sessions, s.client)
		}
		f.mu.Unlock()
		s.conn.Close()
		s.server.Release(0)
		s.g.m.connsActive.Dec()
		if errors.Is(err, syscall.ECONNREFUSED) {
			s.g.metrics.errors.WithLabelValues(s.g.backend.cfg.Name, s.server.Name, "connect").Inc()
		}
	})
}
