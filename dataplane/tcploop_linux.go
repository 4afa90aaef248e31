//go:build linux

package dataplane

import (
	"container/heap"
	"encoding/binary"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// The steady state of tcp-mode sessions on Linux: once serve has set a session up, the
// bytes move on event loops, one per GOMAXPROCS, each a goroutine locked to its OS
// thread around a level-triggered epoll set, as HAProxy moves them. Per message that is
// one epoll_wait (shared by the events it returns), one read(2) and one write(2), and no
// goroutine to park and wake: on a CPU-bound host the Go scheduler's wake-ups and long
// thread runs were what made lbd's p99 latency 1.6-1.8× HAProxy's (docs/benchmarks.md).
//
// The choices below were measured on a prototype (0.84× HAProxy's p99): the thread lock,
// epoll_pwait through syscall.Syscall6 so that the runtime hands the P on while a loop
// sleeps, the nonblocking calls through RawSyscall, 256 events per wait, one read per
// readiness event written at once, EPOLLOUT registered only while a write is pending,
// and no reading from a source while its destination has bytes pending (backpressure).

const (
	// tcpLoopEvents is how many events one epoll_wait returns at most.
	tcpLoopEvents = 256
	// tcpSpliceMax bounds what one splice(2) moves into a direction's pipe.
	tcpSpliceMax = 64 << 10
	// tcpFreePipes is how many empty pipes a loop keeps for the next bulk transfer.
	tcpFreePipes = 32
	// tcpLoopRetryMax bounds the pause after a failing epoll_wait.
	tcpLoopRetryMax = time.Second
)

// tcpLoops are the event loops of the process. They start with the first tcp session
// and run for the life of the process, as the runtime's own netpoller does: sessions of
// every Dataplane share them.
var tcpLoops struct {
	// mu guards starting them; list is set once they run.
	mu   sync.Mutex
	list atomic.Pointer[[]*tcpLoop]
	next atomic.Uint32
}

// nextTCPLoop returns a loop for a new session, round robin, starting the loops on the
// first call.
func nextTCPLoop() (*tcpLoop, error) {
	list := tcpLoops.list.Load()
	if list == nil {
		var err error
		if list, err = startTCPLoops(); err != nil {
			return nil, err
		}
	}
	return (*list)[int(tcpLoops.next.Add(1)-1)%len(*list)], nil
}

func startTCPLoops() (*[]*tcpLoop, error) {
	tcpLoops.mu.Lock()
	defer tcpLoops.mu.Unlock()
	if list := tcpLoops.list.Load(); list != nil {
		return list, nil
	}
	loops := make([]*tcpLoop, runtime.GOMAXPROCS(0))
	for i := range loops {
		l, err := newTCPLoop(systemClock{}, slog.Default())
		if err != nil {
			for _, l := range loops[:i] {
				l.stop()
			}
			return nil, err
		}
		loops[i] = l
	}
	tcpLoops.list.Store(&loops)
	return &loops, nil
}

// relay moves the bytes of c's session, connected by serve, until it ends. It hands the
// two sockets to an event loop and waits; where that fails (no descriptor left to
// duplicate), a tcpPipe relays them.
func (f *tcpFrontend) relay(c *tcpConn, g *frontendGen) {
	idle := g.cfg.Timeouts.ClientIdle
	l, err := nextTCPLoop()
	if err == nil {
		var s *tcpSession
		s, err = c.handOff(l, &tcpSessionConfig{
			idle: idle, in: g.m.bytesIn, out: g.m.bytesOut, log: f.d.log, frontend: g.cfg.Name,
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
func (c *tcpConn) handOff(l *tcpLoop, cfg *tcpSessionConfig) (*tcpSession, error) {
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
	if !l.post(func() { l.add(s) }) {
		s.closeFDs() // the loop has stopped: only test loops do
		close(s.done)
		return s, nil
	}
	c.loopEnd = func() { l.post(func() { l.end(s, "", nil) }) }
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
}

// tcpSession is one tcp session on a loop. Only the loop touches it once posted, except
// done.
type tcpSession struct {
	cfg  *tcpSessionConfig
	side [2]tcpSide // the client's socket, then the server's
	// dir[d] moves bytes from side[d] to side[1-d]: 0 client to server, 1 back.
	dir [2]tcpDir
	// last is when a byte last moved either way, on the loop's clock.
	last int64
	idle int64 // cfg.idle in ns
	// deadline and heapAt are the session's entry in the loop's idle heap; heapAt is -1
	// when it has none.
	deadline int64
	heapAt   int
	ended    bool
	// done is closed once the session has ended and its sockets are closed.
	done chan struct{}
}

// tcpSide is one socket of a session.
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
	s := &tcpSession{cfg: cfg, idle: int64(cfg.idle), heapAt: -1, done: make(chan struct{})}
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

// loopClock is what an event loop reads the time from, once per wake-up.
type loopClock interface{ Now() time.Time }

// tcpLoop is one event loop.
type tcpLoop struct {
	ep   int // the epoll set
	efd  int // an eventfd in ep that says cmds holds something
	clk  loopClock
	base time.Time
	log  *slog.Logger // the loop's own errors; sessions log to their frontend's logger
	// done is closed when run returns.
	done chan struct{}

	// mu guards cmds and stopped.
	mu      sync.Mutex
	cmds    []func()
	stopped bool

	// The rest belongs to the loop goroutine.
	now    int64       // ns since base, read once per wake-up
	fds    []*tcpSide  // by descriptor
	idle   tcpIdleHeap // sessions with an idle timeout
	pipes  []*splicePipe
	spare  []func()
	quit   bool
	stats  tcpLoopStats
	events [tcpLoopEvents]unix.EpollEvent
}

// tcpLoopStats count what a loop did, for tests.
type tcpLoopStats struct {
	sessions int // open
	toSplice int // directions switched to splice
	toCopy   int // directions switched back to read/write
}

// newTCPLoop creates a loop and starts its goroutine.
func newTCPLoop(clk loopClock, log *slog.Logger) (*tcpLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, &net.OpError{Op: "epoll_create1", Err: err}
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, &net.OpError{Op: "eventfd", Err: err}
	}
	if e := epollCtl(ep, unix.EPOLL_CTL_ADD, efd, unix.EPOLLIN); e != 0 {
		unix.Close(ep)
		unix.Close(efd)
		return nil, &net.OpError{Op: "epoll_ctl", Err: e}
	}
	l := &tcpLoop{ep: ep, efd: efd, clk: clk, base: clk.Now(), log: log, done: make(chan struct{})}
	go l.run()
	return l, nil
}

// post queues f to run on the loop and wakes it; it returns false when the loop has
// stopped. It may be called from any goroutine.
func (l *tcpLoop) post(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.cmds = append(l.cmds, f)
	if len(l.cmds) == 1 {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(l.efd, one[:]) // fails only if the counter would overflow: it is awake
	}
	return true
}

// stop ends the loop's sessions, closes it and waits for its goroutine to return.
func (l *tcpLoop) stop() {
	l.post(func() { l.quit = true })
	<-l.done
}

func (l *tcpLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(l.done)
	var delay time.Duration
	for !l.quit {
		n, e := l.wait(l.idle.timeout(l.now))
		l.now = int64(l.clk.Now().Sub(l.base))
		if e != 0 {
			if e == unix.EINTR {
				continue
			}
			delay = min(max(2*delay, 10*time.Millisecond), tcpLoopRetryMax)
			l.log.Error("tcp event loop: epoll_wait failed; retrying", "err", e, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		// Commands run after the events, so that no descriptor closed by one event is
		// reused by a new session before the events of this wake-up are handled.
		cmds := false
		for i := range l.events[:n] {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.efd {
				cmds = true
				continue
			}
			if fd < len(l.fds) && l.fds[fd] != nil {
				l.event(l.fds[fd], ev.Events)
			}
		}
		if cmds {
			l.commands()
		}
		l.idle.expire(l.now, l.endIdle)
	}
	l.close()
}

// endIdle ends a session that the idle heap found idle.
func (l *tcpLoop) endIdle(s *tcpSession) { l.end(s, "", nil) }

func (l *tcpLoop) wait(msec int) (int, syscall.Errno) {
	n, _, e := syscall.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])),
		uintptr(len(l.events)), uintptr(msec), 0, 0)
	return int(n), e
}

// commands runs what post queued.
func (l *tcpLoop) commands() {
	var b [8]byte
	unix.Read(l.efd, b[:]) // reset the eventfd before taking the queue: no post is missed
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = l.spare
	l.mu.Unlock()
	for i, f := range cmds {
		f()
		cmds[i] = nil
	}
	l.spare = cmds[:0]
}

// close runs when the loop quits: it ends its sessions and closes its descriptors.
func (l *tcpLoop) close() {
	l.mu.Lock()
	l.stopped = true
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, f := range cmds { // sessions posted meanwhile are added, to be ended below
		f()
	}
	for _, x := range l.fds {
		if x != nil {
			l.end(x.s, "", nil)
		}
	}
	for _, p := range l.pipes {
		closePipe(p)
	}
	unix.Close(l.efd)
	unix.Close(l.ep)
}

// add registers a new session.
func (l *tcpLoop) add(s *tcpSession) {
	for i := range s.side {
		x := &s.side[i]
		for x.fd >= len(l.fds) {
			l.fds = append(l.fds, make([]*tcpSide, len(l.fds)+64)...)
		}
		l.fds[x.fd] = x
	}
	l.stats.sessions++
	s.last = l.now
	if s.idle > 0 {
		l.idle.add(s)
	}
	l.update(s)
}

// end closes a session, at once: why and err say why when it failed, for the log.
func (l *tcpLoop) end(s *tcpSession, why string, err error) {
	if s.ended {
		return
	}
	s.ended = true
	for i := range s.side {
		x := &s.side[i]
		if x.reg != 0 {
			epollCtl(l.ep, unix.EPOLL_CTL_DEL, x.fd, 0)
		}
		l.fds[x.fd] = nil
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
	l.idle.remove(s)
	l.stats.sessions--
	if err != nil {
		s.cfg.log.Debug("tcp session failed", "frontend", s.cfg.frontend, "op", why, "err", err)
	}
	close(s.done)
}

// event handles the readiness of one socket.
func (l *tcpLoop) event(x *tcpSide, ev uint32) {
	s := x.s
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

// readable reads once from the source of direction d and writes what it got at once.
func (l *tcpLoop) readable(s *tcpSession, d int) {
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
	s.last = l.now
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
func (l *tcpLoop) spliceIn(s *tcpSession, d int) {
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
	s.last = l.now
	dir.count.Add(float64(n))
	dir.piped = n
	l.flush(s, d)
}

// flush writes once what direction d holds for its destination; once nothing waits, it
// half-closes the destination after the source's EOF. It keeps epoll's registration of
// the session in step.
func (l *tcpLoop) flush(s *tcpSession, d int) {
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
			s.last = l.now
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
func (l *tcpLoop) eof(s *tcpSession, d int) {
	dir := &s.dir[d]
	dir.eof, dir.bulk = true, false
	l.flush(s, d) // writes nothing: shuts the destination down unless bytes wait
}

// update makes epoll's registration of s's sockets match what the session waits for:
// each socket's readiness to read, unless it sent EOF or its direction has bytes
// waiting, and to write, while the other direction has bytes waiting for it.
func (l *tcpLoop) update(s *tcpSession) {
	for i := range s.side {
		x := &s.side[i]
		var want uint32
		if !s.dir[i].eof && !s.dir[i].pending() {
			want |= unix.EPOLLIN
		}
		if s.dir[1-i].pending() {
			want |= unix.EPOLLOUT
		}
		if want == x.reg {
			continue
		}
		// Level-triggered epoll reports a hang-up even for no events, so a socket that
		// waits for nothing leaves the set.
		op := unix.EPOLL_CTL_MOD
		switch {
		case x.reg == 0:
			op = unix.EPOLL_CTL_ADD
		case want == 0:
			op = unix.EPOLL_CTL_DEL
		}
		if e := epollCtl(l.ep, op, x.fd, want); e != 0 {
			l.end(s, "epoll_ctl", e)
			return
		}
		x.reg = want
	}
}

func (l *tcpLoop) getPipe() (*splicePipe, error) {
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
func (l *tcpLoop) putPipe(p *splicePipe) {
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

func epollCtl(ep, op, fd int, events uint32) syscall.Errno {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	_, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(ep), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(&ev)), 0, 0)
	return e
}

// tcpIdleHeap orders a loop's sessions by idle deadline: a session is idle when no byte
// has moved either way for its idle timeout, now-last >= idle. The heap is lazy: a
// session's deadline is last+idle as of when it was pushed, and moving bytes does not
// touch the heap; a session found active since its deadline was set goes back in with
// its new one.
type tcpIdleHeap []*tcpSession

func (h tcpIdleHeap) Len() int           { return len(h) }
func (h tcpIdleHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h tcpIdleHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapAt, h[j].heapAt = i, j
}
func (h *tcpIdleHeap) Push(x any) {
	s := x.(*tcpSession)
	s.heapAt = len(*h)
	*h = append(*h, s)
}
func (h *tcpIdleHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.heapAt = -1
	return s
}

// add puts s in the heap, its deadline counted from its last activity.
func (h *tcpIdleHeap) add(s *tcpSession) {
	s.deadline = s.last + s.idle
	heap.Push(h, s)
}

// remove takes s out of the heap, if it is there.
func (h *tcpIdleHeap) remove(s *tcpSession) {
	if s.heapAt >= 0 {
		heap.Remove(h, s.heapAt)
	}
}

// expire calls idle, in deadline order, with every session idle at now, after taking it
// out of the heap, and pushes back those active since their deadline was set.
func (h *tcpIdleHeap) expire(now int64, idle func(*tcpSession)) {
	for len(*h) > 0 && (*h)[0].deadline <= now {
		s := (*h)[0]
		if at := s.last + s.idle; at > now {
			s.deadline = at
			heap.Fix(h, 0)
			continue
		}
		heap.Pop(h)
		idle(s)
	}
}

// timeout returns how long epoll_wait may sleep, in ms, for the earliest deadline to
// pass when it returns: -1 for no deadline.
func (h tcpIdleHeap) timeout(now int64) int {
	if len(h) == 0 {
		return -1
	}
	wait := h[0].deadline - now
	if wait <= 0 {
		return 0
	}
	return int(min((wait+int64(time.Millisecond)-1)/int64(time.Millisecond), 1<<31-1))
}
