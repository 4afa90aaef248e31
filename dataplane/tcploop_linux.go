//go:build linux

package dataplane

import (
	"log/slog"
	"net"
	"syscall"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"lbd/dataplane/internal/evloop"
)

// The steady state of tcp-mode sessions on Linux: once serve has set a session up, the
// bytes move on the Dataplane's event loops (loops_linux.go), as HAProxy moves them. Per message
// that is one epoll_wait (shared by the events it returns), one read(2) and one
// write(2), and no goroutine to park and wake: on a CPU-bound host the Go scheduler's
// wake-ups and long thread runs were what made lbd's p99 latency 1.6-1.8× HAProxy's
// (docs/benchmarks.md).
//
// The choices below were measured on a prototype (0.84× HAProxy's p99): the thread lock,
// epoll_pwait through syscall.Syscall6 so that the runtime hands the P on while a loop
// sleeps, the nonblocking calls through RawSyscall, 256 events per wait, one read per
// readiness event written at once, EPOLLOUT registered only while a write is pending,
// and no reading from a source while its destination has bytes pending (backpressure).

const (
	// tcpSpliceMax bounds what one splice(2) moves into a direction's pipe.
	tcpSpliceMax = 64 << 10
	// tcpFreePipes is how many empty pipes a loop keeps for the next bulk transfer.
	tcpFreePipes = 32
)

// relay moves the bytes of c's session, connected by serve, until it ends. It hands the
// two sockets to an event loop and waits; where that fails (no descriptor left to
// duplicate), a tcpPipe relays them.
func (f *tcpFrontend) relay(c *tcpConn, g *frontendGen) {
	idle := g.cfg.Timeouts.ClientIdle
	l, err := f.d.loops.get()
	if err == nil {
		var s *tcpSession
		s, err = c.handOff(l, &tcpSessionConfig{
			idle: idle, in: g.m.bytesIn, out: g.m.bytesOut, log: f.d.log, frontend: g.cfg.Name,
			panics: f.d.metrics.panics,
		})
		if err == nil {
			if s != nil {
				<-s.done
				c.mu.Lock()
				c.loopEnd = nil // the loop closed the sockets
				c.closed = true
				c.mu.Unlock()
			}
			return
		}
	}
	f.d.log.Debug("tcp session relayed without an event loop", "frontend", g.cfg.Name, "err", err)
	newTCPPipe(c, idle).run(g.m.bytesIn, g.m.bytesOut)
}

// handOff moves c's two sockets to l: it duplicates their descriptors, closes the
// *net.TCPConns (which takes their own descriptors out of the runtime's netpoller; the
// sockets live on in the duplicates) and posts the session to l. From then on c.close
// ends the session on l. It returns a nil session when c is closed already, and an error,
// with c untouched, when a descriptor cannot be duplicated.
func (c *tcpConn) handOff(l *eventLoop, cfg *tcpSessionConfig) (*tcpSession, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil
	}
	cfd, err := tcpDup(c.client)
	if err != nil {
		return nil, err
	}
	sfd, err := tcpDup(c.server)
	if err != nil {
		unix.Close(cfd)
		return nil, err
	}
	c.client.Close()
	c.server.Close()
	s := newTCPSession(cfd, sfd, cfg)
	if !l.Post(func() { l.add(s) }) {
		s.closeFDs() // the loop has stopped: the Dataplane is closing
		close(s.done)
		return s, nil
	}
	c.loopEnd = func() { l.Post(func() { l.end(s, "", nil) }) }
	return s, nil
}

// tcpDup is dupConn; a test makes it fail to exercise the tcpPipe fallback.
var tcpDup = dupConn

// dupConn returns a duplicate of c's descriptor, close-on-exec; it shares the socket's
// O_NONBLOCK.
func dupConn(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, &net.OpError{Op: "dup", Net: "tcp", Err: derr}
	}
	return fd, nil
}

// tcpSessionConfig is what a session takes from its frontend.
type tcpSessionConfig struct {
	idle     time.Duration      // 0: no idle timeout
	in, out  prometheus.Counter // client-to-server and server-to-client bytes
	log      *slog.Logger
	frontend string
	panics   *panicMetric // panics.go
}

// tcpSession is one tcp session on a loop. Only the loop touches it once posted, except
// done.
type tcpSession struct {
	cfg  *tcpSessionConfig
	l    *eventLoop // set when the loop adds it
	side [2]tcpSide // the client's socket, then the server's
	// dir[d] moves bytes from side[d] to side[1-d]: 0 client to server, 1 back.
	dir [2]tcpDir
	// last is when a byte last moved either way, on the loop's clock.
	last int64
	idle int64 // cfg.idle in ns
	// idleTimer is the session's entry in the loop's deadline heap, while it has an idle
	// timeout.
	idleTimer evloop.Timer
	ended     bool
	// done is closed once the session has ended and its sockets are closed.
	done chan struct{}
}

// tcpSide is one socket of a session; it is the session's evloop.Handler for that
// socket.
type tcpSide struct {
	s   *tcpSession
	i   int    // index in s.side
	fd  int    // the duplicate the loop owns
	reg uint32 // the events registered with epoll; 0: not registered
}

// tcpDir is one direction of a session. Bytes read and not yet written wait in buf or in
// pipe, never both; while they wait, the source is not read.
type tcpDir struct {
	buf    *[]byte // from tcpBufs: (*buf)[off:n] waits
	off, n int
	pipe   *splicePipe // held while splicing, and while it holds piped bytes
	piped  int
	bulk   bool // a read filled the buffer: splice until a call moves less than tcpSmall
	eof    bool // the source sent EOF
	shut   bool // the destination is shut down for writing: the direction has ended
	count  prometheus.Counter
}

func (d *tcpDir) pending() bool { return d.buf != nil || d.piped > 0 }

func newTCPSession(cfd, sfd int, cfg *tcpSessionConfig) *tcpSession {
	s := &tcpSession{cfg: cfg, idle: int64(cfg.idle), done: make(chan struct{})}
	s.side[0] = tcpSide{s: s, i: 0, fd: cfd}
	s.side[1] = tcpSide{s: s, i: 1, fd: sfd}
	s.dir[0].count, s.dir[1].count = cfg.in, cfg.out
	return s
}

func (s *tcpSession) closeFDs() {
	unix.Close(s.side[0].fd)
	unix.Close(s.side[1].fd)
}

// splicePipe is a nonblocking pipe through which a direction splices.
type splicePipe struct {
	r, w int
	size int // its capacity: what one splice moves in at most, with tcpSpliceMax
}

// tcpLoop is what tcp sessions keep per event loop.
type tcpLoop struct {
	pipes []*splicePipe // empty pipes for the next bulk transfer
	stats tcpLoopStats
}

// closePipes closes the spare pipes, once the loop has stopped.
func (t *tcpLoop) closePipes() {
	for _, p := range t.pipes {
		closePipe(p)
	}
	t.pipes = nil
}

// tcpLoopStats count what a loop did with tcp sessions, for tests.
type tcpLoopStats struct {
	sessions int // open
	toSplice int // directions switched to splice
	toCopy   int // directions switched back to read/write
}

// add registers a new session.
func (l *eventLoop) add(s *tcpSession) {
	s.l = l
	for i := range s.side {
		x := &s.side[i]
		l.SetFD(x.fd, x)
	}
	l.stats.sessions++
	s.last = l.Now()
	if s.idle > 0 {
		s.startIdle(l.Timers(), l.endIdle)
	}
	l.update(s)
}

// startIdle puts s's idle timer in h, due at s's idle timeout from its last activity:
// once s has been idle that long, the timer calls idle.
func (s *tcpSession) startIdle(h *evloop.Timers, idle func(*tcpSession)) {
	s.idleTimer.Fire = func(now int64) (later int64) {
		defer s.recoverPanic()
		if at := s.last + s.idle; at > now {
			return at // active since the deadline was set
		}
		idle(s)
		return 0
	}
	h.Add(&s.idleTimer, s.last+s.idle)
}

// endIdle ends a session found idle.
func (l *eventLoop) endIdle(s *tcpSession) { l.end(s, "", nil) }

// end closes a session, at once: why and err say why when it failed, for the log.
func (l *eventLoop) end(s *tcpSession, why string, err error) {
	if s.ended {
		return
	}
	s.ended = true
	for i := range s.side {
		x := &s.side[i]
		l.Remove(x.fd, &x.reg)
	}
	s.closeFDs()
	for i := range s.dir {
		d := &s.dir[i]
		if d.buf != nil {
			tcpBufs.Put(d.buf)
			d.buf = nil
		}
		if d.pipe != nil {
			if d.piped == 0 {
				l.putPipe(d.pipe)
			} else {
				closePipe(d.pipe)
			}
			d.pipe = nil
		}
	}
	l.Timers().Remove(&s.idleTimer)
	l.stats.sessions--
	if err != nil {
		s.cfg.log.Debug("tcp session failed", "frontend", s.cfg.frontend, "op", why, "err", err)
	}
	close(s.done)
}

// event handles the readiness of one socket of a session.
func (x *tcpSide) Event(ev uint32) {
	defer x.s.recoverPanic()
	x.s.cfg.panics.injected(panicTCPLoop)
	s, l := x.s, x.s.l
	if ev&unix.EPOLLERR != 0 {
		err, _ := unix.GetsockoptInt(x.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		l.end(s, "socket", syscall.Errno(err))
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLHUP) != 0 && x.reg&unix.EPOLLIN != 0 {
		l.readable(s, x.i)
		if s.ended {
			return
		}
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP) != 0 && x.reg&unix.EPOLLOUT != 0 {
		l.flush(s, 1-x.i)
	}
}

// recoverPanic, deferred at each entry into the session's code on the loop, turns a
// panic (a bug) into the end of this session (panics.go).
func (s *tcpSession) recoverPanic() {
	r := recover()
	if r == nil {
		return
	}
	s.cfg.panics.recovered(s.cfg.log, panicTCPLoop, r, "frontend", s.cfg.frontend)
	closeAfterPanic(func() { s.l.end(s, "panic", nil) }, func() {
		// Its own state is broken: take the descriptors out of the loop at least.
		for i := range s.side {
			s.l.Remove(s.side[i].fd, &s.side[i].reg)
		}
		s.l.Timers().Remove(&s.idleTimer)
		s.closeFDs()
		s.ended = true
		select {
		case <-s.done:
		default:
			close(s.done) // relay waits for it
		}
	})
}

// stop ends x's session as the loop quits.
func (x *tcpSide) Stop() { x.s.l.end(x.s, "", nil) }

// readable reads once from the source of direction d and writes what it got at once.
func (l *eventLoop) readable(s *tcpSession, d int) {
	dir := &s.dir[d]
	if dir.bulk {
		l.spliceIn(s, d)
		return
	}
	b := tcpBufs.Get().(*[]byte)
	n, e := rawIO(unix.SYS_READ, s.side[d].fd, *b)
	if e != 0 || n == 0 {
		tcpBufs.Put(b)
		switch e {
		case 0:
			l.eof(s, d)
		case unix.EAGAIN, unix.EINTR:
		default:
			l.end(s, "read", e)
		}
		return
	}
	s.last = l.Now()
	dir.count.Add(float64(n))
	dir.buf, dir.off, dir.n = b, 0, n
	if n == len(*b) {
		dir.bulk = true // more is coming: splice it
		l.stats.toSplice++
	}
	l.flush(s, d)
}

// spliceIn moves what the source of direction d holds, up to its pipe's size, into the
// pipe, and on to the destination.
func (l *eventLoop) spliceIn(s *tcpSession, d int) {
	dir := &s.dir[d]
	if dir.pipe == nil {
		p, err := l.getPipe()
		if err != nil {
			s.cfg.log.Debug("tcp session copies without splice", "frontend", s.cfg.frontend, "err", err)
			dir.bulk = false
			l.readable(s, d)
			return
		}
		dir.pipe = p
	}
	n, e := rawSplice(s.side[d].fd, dir.pipe.w, min(tcpSpliceMax, dir.pipe.size))
	switch e {
	case 0:
	case unix.EAGAIN, unix.EINTR:
		n = 0
	default:
		l.end(s, "splice", e)
		return
	}
	if n == 0 && e == 0 {
		l.eof(s, d) // releases the pipe
		return
	}
	if n < tcpSmall {
		dir.bulk = false // the transfer has slowed down: back to read and write
		l.stats.toCopy++
	}
	if n == 0 {
		l.putPipe(dir.pipe)
		dir.pipe = nil
		return
	}
	s.last = l.Now()
	dir.count.Add(float64(n))
	dir.piped = n
	l.flush(s, d)
}

// flush writes once what direction d holds for its destination; once nothing waits, it
// half-closes the destination after the source's EOF. It keeps epoll's registration of
// the session in step.
func (l *eventLoop) flush(s *tcpSession, d int) {
	dir := &s.dir[d]
	dst := s.side[1-d].fd
	var w int
	var e syscall.Errno
	switch {
	case dir.buf != nil:
		if w, e = rawIO(unix.SYS_WRITE, dst, (*dir.buf)[dir.off:dir.n]); e == 0 {
			if dir.off += w; dir.off == dir.n {
				tcpBufs.Put(dir.buf)
				dir.buf = nil
			}
		}
	case dir.piped > 0:
		if w, e = rawSplice(dir.pipe.r, dst, dir.piped); e == 0 {
			dir.piped -= w
		}
	}
	switch e {
	case 0:
		if w > 0 {
			s.last = l.Now()
		}
	case unix.EAGAIN, unix.EINTR:
	default:
		l.end(s, "write", e)
		return
	}
	if dir.pending() {
		l.update(s)
		return
	}
	if dir.pipe != nil && !dir.bulk {
		l.putPipe(dir.pipe)
		dir.pipe = nil
	}
	if dir.eof && !dir.shut {
		dir.shut = true
		unix.Shutdown(dst, unix.SHUT_WR)
		if s.dir[1-d].shut {
			l.end(s, "", nil) // both directions have ended
			return
		}
	}
	l.update(s)
}

// eof marks that the source of direction d has sent EOF.
func (l *eventLoop) eof(s *tcpSession, d int) {
	dir := &s.dir[d]
	dir.eof, dir.bulk = true, false
	l.flush(s, d) // writes nothing: shuts the destination down unless bytes wait
}

// update makes epoll's registration of s's sockets match what the session waits for:
// each socket's readiness to read, unless it sent EOF or its direction has bytes
// waiting, and to write, while the other direction has bytes waiting for it.
func (l *eventLoop) update(s *tcpSession) {
	for i := range s.side {
		x := &s.side[i]
		var want uint32
		if !s.dir[i].eof && !s.dir[i].pending() {
			want |= unix.EPOLLIN
		}
		if s.dir[1-i].pending() {
			want |= unix.EPOLLOUT
		}
		if e := l.Register(x.fd, &x.reg, want); e != 0 {
			l.end(s, "epoll_ctl", e)
			return
		}
	}
}

func (l *eventLoop) getPipe() (*splicePipe, error) {
	if n := len(l.pipes); n > 0 {
		p := l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		return p, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, &net.OpError{Op: "pipe2", Err: err}
	}
	p := &splicePipe{r: fds[0], w: fds[1], size: tcpSpliceMax}
	if size, err := unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0); err == nil && size > 0 {
		p.size = size
	}
	return p, nil
}

// putPipe keeps an empty pipe for reuse, or closes it.
func (l *eventLoop) putPipe(p *splicePipe) {
	if len(l.pipes) < tcpFreePipes {
		l.pipes = append(l.pipes, p)
		return
	}
	closePipe(p)
}

func closePipe(p *splicePipe) {
	unix.Close(p.r)
	unix.Close(p.w)
}

// rawIO calls read(2) or write(2) (trap) on a nonblocking descriptor.
func rawIO(trap uintptr, fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// rawSplice moves up to n bytes from in to out without blocking on either.
func rawSplice(in, out, n int) (int, syscall.Errno) {
	m, _, e := syscall.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
		unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	if e != 0 {
		return 0, e
	}
	return int(m), 0
}
