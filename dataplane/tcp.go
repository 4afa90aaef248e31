package dataplane

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// tcpChunk is how many bytes one direction of a tcpPipe moves per splice call. Bytes
// are counted and the idle clock advanced between calls. It also bounds what one call
// holds in flight to a peer that stops reading: a peer that takes longer than twice the
// idle timeout to accept one chunk counts as idle (see tcpPipe).
const tcpChunk = 256 << 10

// tcpSmall is the buffer through which a direction of a TCP session copies in user
// space; a read that fills it switches the direction to splice(2) (see tcpPipe, and
// tcpSession in tcploop_linux.go).
const tcpSmall = 16 << 10

// tcpBufs holds the tcpSmall buffers. A direction takes one only once its source is
// readable and gives it back once the bytes are written, so idle sessions hold none.
var tcpBufs = sync.Pool{New: func() any { b := make([]byte, tcpSmall); return &b }}

// tcpIdleTicks is how many times per idle timeout each direction of a tcpPipe
// reports its progress, and the watchdog looks at it.
const tcpIdleTicks = 8

// tcpFrontend serves a tcp-mode frontend: it accepts client connections and relays
// each to a server of the default backend (or of its sni route).
//
// A goroutine per connection sets the session up (PROXY header, rate limit, sni routing,
// balancing, connecting with retries) and then waits while relay moves the bytes: on
// Linux an event loop shared by many sessions (tcploop_linux.go), elsewhere a tcpPipe.
// A backend with TLS is relayed by relayTLS instead (tls.go).
type tcpFrontend struct {
	d *Dataplane
	// acceptor holds the listener, the open connections' count and the stop channel
	// (accept.go).
	acceptor
	gen atomic.Pointer[frontendGen]

	// ctx is cancelled when shutdown gives up waiting, to abort dials in progress.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts connection goroutines.
	wg sync.WaitGroup

	// mu guards conns.
	mu    sync.Mutex
	conns map[*tcpConn]struct{}
}

func newTCPFrontend(d *Dataplane, g *frontendGen, ln *net.TCPListener) frontendRunner {
	f := &tcpFrontend{d: d, conns: map[*tcpConn]struct{}{}}
	f.acceptor.init(ln, d.clock)
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.gen.Store(g)
	go f.acceptLoop(d.log, f.gen.Load, f.accepted)
	return f
}

func (f *tcpFrontend) addr() net.Addr { return f.ln.Addr() }

// update serves new connections with g; connections already open keep their generation.
func (f *tcpFrontend) update(g *frontendGen) {
	f.gen.Store(g)
	f.wake() // MaxConn may have grown
}

// shutdown closes the listener, waits until ctx is done for the connections to end,
// then closes those left.
func (f *tcpFrontend) shutdown(ctx context.Context) error {
	f.stopAccepting(ctx)
	done := waitDone(&f.wg)
	select {
	case <-done:
		f.cancel()
		return nil
	case <-ctx.Done():
	}
	f.cancel()
	f.mu.Lock()
	for c := range f.conns {
		c.close()
	}
	f.mu.Unlock()
	<-done
	return ctx.Err()
}

// accepted starts serving c, which the accept loop has counted as open. It always
// returns true: the accept loop goes on.
func (f *tcpFrontend) accepted(c *net.TCPConn) bool {
	tc := &tcpConn{client: c}
	f.mu.Lock()
	f.conns[tc] = struct{}{}
	f.mu.Unlock()
	f.wg.Add(1)
	go f.serve(tc, f.gen.Load())
	return true
}

// serve proxies one client connection, on the generation it was accepted under.
func (f *tcpFrontend) serve(c *tcpConn, g *frontendGen) {
	defer f.wg.Done()
	defer func() {
		c.close()
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		f.open.Add(-1)
		f.wake()
	}()
	g.m.connsTotal.Inc()
	g.m.connsActive.Inc()
	defer g.m.connsActive.Dec()

	if !f.acceptProxy(c, g) { // sets c.src and c.dst (proxyproto.go)
		return
	}
	if g.limit != nil && !f.limitTCP(c, g) { // rejected: closed (ratelimit.go)
		return
	}
	b, hello, ok := f.routeSNI(c, g) // the backend by sni, and the ClientHello read (sni.go)
	if !ok {
		return
	}
	s, sc := f.connect(c, g, b)
	if sc == nil {
		return
	}
	defer s.Release(0)
	g.metrics.sessions.WithLabelValues(b.cfg.Name, s.Name).Inc()
	if !f.startServerSide(c, g, b, s, sc, hello) { // writes hello; TLS to the server (tls.go)
		return
	}
	f.relay(c, g) // tcploop_linux.go, tcploop_other.go
}

// connect picks a server for c and connects to it, trying up to backend.retries other
// servers when a connection fails. It returns a nil connection when no server could be
// reached; the server it returns has been acquired.
func (f *tcpFrontend) connect(c *tcpConn, g *frontendGen, b *backend) (*Server, *net.TCPConn) {
	ip := c.src.Addr()
	var tried [4]*Server
	p := Pick{ClientIP: ip, Exclude: tried[:0]}
	dialer := net.Dialer{Timeout: b.cfg.Timeouts.Connect}
	var ps persistScratch
	for attempt := 0; ; attempt++ {
		var s *Server
		if attempt == 0 && b.persist != nil {
			s = b.persist.chooseConn(ip, &ps) // persist.go
			if s != nil && !s.TryAcquire() {
				s = nil // at its maxconn: balanced, or queued, as a new session (queue.go)
			}
		}
		if s == nil {
			// Picks and acquires, waiting in the backend's queue while every server
			// is at its maxconn (queue.go).
			var qerr error
			if s, qerr = b.acquire(&p, f.stop); qerr != nil {
				f.d.log.Debug("connection refused", "frontend", g.cfg.Name, "backend", b.cfg.Name, "err", qerr)
				return nil, nil
			}
		}
		if s == nil {
			if attempt == 0 {
				g.metrics.noServer.WithLabelValues(g.cfg.Name, b.cfg.Name).Inc()
			}
			return nil, nil
		}
		if attempt > 0 {
			g.metrics.retries.WithLabelValues(b.cfg.Name).Inc()
		}
		conn, err := dialer.DialContext(f.ctx, "tcp", s.Addr)
		if err == nil {
			err = b.sendProxy(conn, c) // closes conn on failure (proxyproto.go)
		}
		if err == nil {
			sc := conn.(*net.TCPConn)
			if c.setServer(sc) {
				if b.persist != nil {
					b.persist.recordConn(s, &ps)
				}
				b.reportSuccess(s) // passive health (health_passive.go)
				return s, sc
			}
			s.Release(0) // shut down while dialing
			return nil, nil
		}
		s.Release(0)
		if f.ctx.Err() != nil {
			return nil, nil
		}
		g.metrics.errors.WithLabelValues(b.cfg.Name, s.Name, "connect").Inc()
		b.reportFailure(s, "connect") // passive health (health_passive.go)
		f.d.log.Debug("connecting to server failed", "frontend", g.cfg.Name, "backend", b.cfg.Name,
			"server", s.Name, "attempt", attempt+1, "err", err)
		if attempt >= b.retries {
			return nil, nil
		}
		p.Exclude = append(p.Exclude, s)
	}
}

// tcpConn is one client connection and, once connected, its server connection.
type tcpConn struct {
	client *net.TCPConn
	// src is the client's address and dst the one it connected to: the connection's
	// own, or those of its PROXY header (set by acceptProxy before connect).
	src, dst netip.AddrPort

	// mu guards server, closed and loopEnd.
	mu     sync.Mutex
	server *net.TCPConn
	closed bool
	// loopEnd, set once relay has handed both sockets to an event loop and closed
	// client and server, ends the session there (tcploop_linux.go).
	loopEnd func()
}

// setServer records the server connection, or closes it and returns false when the
// client connection is already closed.
func (c *tcpConn) setServer(sc *net.TCPConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		sc.Close()
		return false
	}
	c.server = sc
	return true
}

// close closes both connections; it may be called any number of times, from anywhere.
func (c *tcpConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.loopEnd != nil {
		c.loopEnd()
		return
	}
	c.client.Close()
	if c.server != nil {
		c.server.Close()
	}
}

// tcpDone marks a direction of a tcpPipe that has ended.
const tcpDone = math.MaxInt64

// tcpPipe moves bytes both ways between a client and a server connection, and closes
// both when no byte has moved either way for the idle timeout. It relays tcp sessions
// where the event loops do not (tcploop_other.go, or when relay cannot hand a session
// over); a goroutine per direction blocks in Go's netpoller.
//
// Small transfers are copied through user space and bulk ones spliced, as HAProxy does
// (it splices only what does not fit its buffer). A direction reads into a pooled
// tcpSmall buffer and writes what it got: one read(2) and one write(2) per message. A
// read that fills the buffer means more is coming, and the direction switches to
// splice(2) for whole tcpChunk calls until a call ends at its read deadline. Splicing
// every message instead costs three splice calls through a pipe per message, and some
// 5-7 % more CPU per request, which on a CPU-bound host feeds lbd's p99 tail (see
// docs/benchmarks.md). Splicing means calling (*net.TCPConn).ReadFrom with an
// *io.LimitedReader around the bare source *net.TCPConn, the one shape the net package
// splices (see net/splice_linux.go); any wrapper around either connection would turn it
// into a user-space copy, so counting and the idle clock live between calls.
//
// Idle detection cannot see bytes that a direction moves inside a call, only what each
// call returns. So every call is bounded in time by a read deadline of at most idle/8,
// as well as in size by tcpChunk or tcpSmall, and a direction records when its current
// call started (callStart) and, whenever a call moved bytes, when it returned (last).
// Small calls come often, so a direction pushes its deadline only once half of it has
// passed, rather than update a timer per message. Every call that started after last
// moved nothing until it returned, so the session has certainly been silent
// from last to the start of the earliest call in flight; the watchdog closes it when that
// span reaches the idle timeout. A call does not end at its read deadline while it waits
// to write to a peer that does not read; one that lasts twice the idle timeout counts as
// idle too (twice, so that timers firing late on a loaded machine never trip it).
type tcpPipe struct {
	c    *tcpConn
	idle time.Duration // 0: no idle timeout
	tick time.Duration
	base time.Time // origin of last and callStart

	last      atomic.Int64    // ns since base: latest return of a call that moved bytes
	callStart [2]atomic.Int64 // ns since base: start of each direction's call in flight, or tcpDone
	timer     *time.Timer
	ended     atomic.Bool
}

func newTCPPipe(c *tcpConn, idle time.Duration) *tcpPipe {
	return &tcpPipe{c: c, idle: idle, tick: max(idle/tcpIdleTicks, time.Millisecond), base: time.Now()}
}

// run copies until both directions end; in counts client-to-server bytes and out
// server-to-client bytes.
func (p *tcpPipe) run(in, out prometheus.Counter) {
	if p.idle > 0 {
		// Armed by Reset after the assignment, so that check sees p.timer set.
		p.timer = time.AfterFunc(time.Duration(math.MaxInt64), p.check)
		p.timer.Reset(p.tick)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.copy(1, p.c.client, p.c.server, out)
	}()
	p.copy(0, p.c.server, p.c.client, in)
	<-done
	p.ended.Store(true)
	if p.timer != nil {
		p.timer.Stop()
	}
}

// copy moves bytes from src to dst until src sends EOF, then half-closes dst. On any
// other error it closes both connections, which ends the other direction too.
func (p *tcpPipe) copy(d int, dst, src *net.TCPConn, count prometheus.Counter) {
	defer p.callStart[d].Store(tcpDone)
	r, err := newTCPReader(src)
	if err != nil {
		p.c.close()
		return
	}
	lr := &io.LimitedReader{R: src}
	var deadline time.Time
	bulk := false
	for {
		if p.idle > 0 {
			now := time.Now()
			p.callStart[d].Store(int64(now.Sub(p.base)))
			if bulk || deadline.Sub(now) < p.tick/2 {
				deadline = now.Add(p.tick)
				src.SetReadDeadline(deadline)
			}
		}
		var n int64
		var err error
		eof := false
		if bulk {
			lr.N = tcpChunk
			n, err = dst.ReadFrom(lr) // splice(2) on Linux
			eof = err == nil && lr.N > 0
			bulk = err == nil && lr.N == 0 // a full chunk: keep splicing
		} else {
			b, rerr := r.read()
			if len(b) > 0 {
				_, err = dst.Write(b)
				n = int64(len(b))
				bulk = len(b) == tcpSmall
				r.release()
			} else {
				err, eof = rerr, rerr == nil
			}
		}
		if n > 0 {
			count.Add(float64(n))
			if p.idle > 0 {
				p.last.Store(int64(time.Since(p.base)))
			}
		}
		switch {
		case eof:
			dst.CloseWrite()
			return
		case err == nil:
		case p.idle > 0 && errors.Is(err, os.ErrDeadlineExceeded):
			bulk = false // the transfer slowed down: back to small copies
		default:
			p.c.close()
			return
		}
	}
}

// tcpReader reads from a connection into a tcpBufs buffer that it takes only once the
// connection is readable, so that a direction waiting for bytes holds no buffer.
type tcpReader struct {
	rc     syscall.RawConn
	fillFn func(fd uintptr) bool // r.fill, bound once
	buf    *[]byte               // taken by fill, given back by release
	n      int
	err    error
}

func newTCPReader(c *net.TCPConn) (*tcpReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &tcpReader{rc: rc}
	r.fillFn = r.fill
	return r, nil
}

// read waits until the connection is readable, under its read deadline, and returns
// what one read(2) got: some bytes, or none and an error, or none and nil at EOF. The
// bytes stay valid until release.
func (r *tcpReader) read() ([]byte, error) {
	r.n, r.err = 0, nil
	if err := r.rc.Read(r.fillFn); err != nil {
		return nil, err
	}
	if r.buf == nil {
		return nil, r.err
	}
	return (*r.buf)[:r.n], nil
}

// fill is called by RawConn.Read when the connection may be readable; it returns
// false to wait for it to become readable.
func (r *tcpReader) fill(fd uintptr) bool {
	b := tcpBufs.Get().(*[]byte)
	var n int
	var err error
	for {
		n, err = syscall.Read(int(fd), *b)
		if err != syscall.EINTR {
			break
		}
	}
	switch {
	case err == syscall.EAGAIN:
		tcpBufs.Put(b)
		return false
	case err != nil:
		r.err = os.NewSyscallError("read", err)
	case n > 0:
		r.buf, r.n = b, n
		return true
	}
	tcpBufs.Put(b) // EOF or error
	return true
}

func (r *tcpReader) release() {
	if r.buf != nil {
		tcpBufs.Put(r.buf)
		r.buf = nil
	}
}

// check is the idle watchdog; it runs every tick until the session ends.
func (p *tcpPipe) check() {
	if p.ended.Load() {
		return
	}
	// Read callStart before last: a direction stores last before the callStart of its
	// next call, so a callStart seen here is never newer than the last seen after it.
	c0, c1 := p.callStart[0].Load(), p.callStart[1].Load()
	last := p.last.Load()
	if tcpIdle(c0, c1, last, int64(time.Since(p.base)), int64(p.idle)) {
		p.c.close()
		return
	}
	p.timer.Reset(p.tick)
}

// tcpIdle is the idle rule of a tcpPipe, in ns since its base: c0 and c1 are when the
// directions' calls in flight started (tcpDone for a direction that has ended), last is
// when a call that moved bytes last returned.
func tcpIdle(c0, c1, last, now, idle int64) bool {
	// Every call that started after last moved nothing until it returned, so nothing
	// moved from last to the earliest start of a call in flight.
	if s := min(c0, c1); s != tcpDone && s-last >= idle {
		return true
	}
	// A call that outlives its read deadline this long is waiting to write to a peer
	// that does not read.
	for _, s := range [2]int64{c0, c1} {
		if s != tcpDone && now-s > 2*idle {
			return true
		}
	}
	return false
}
