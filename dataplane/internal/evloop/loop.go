//go:build linux

package evloop

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Why the loops are built as they are (measured for tcp in lbd/dataplane's
// tcploop_linux.go): the thread lock keeps a loop's wake-ups off the Go scheduler;
// epoll_pwait goes through syscall.Syscall6 so that the runtime hands the P on while a
// loop sleeps; epoll_ctl goes through RawSyscall6, as it never blocks; one wait returns
// up to 256 events.

const (
	// maxEvents is how many events one epoll_wait returns at most.
	maxEvents = 256
	// retryMax bounds the pause after a failing epoll_wait.
	retryMax = time.Second
)

// Clock is what a loop reads the time from, once per wake-up: lbd/internal/clock's
// Clock, or its Fake in tests, serves.
type Clock interface{ Now() time.Time }

// Handler is what a loop's descriptor table holds for each descriptor in its epoll set:
// the connection, or the side of one, that the descriptor belongs to. Only the loop
// calls it, on the loop's goroutine.
type Handler interface {
	// Event handles the readiness events ev (unix.EPOLLIN, ...) that epoll reported for
	// the descriptor.
	Event(ev uint32)
	// Stop closes the connection at once, because the loop is quitting. It must take
	// every descriptor of the connection out of the table (Remove).
	Stop()
}

// Loop is one event loop.
type Loop struct {
	ep   int // the epoll set
	efd  int // an eventfd in ep that says cmds holds something
	clk  Clock
	base time.Time
	log  *slog.Logger // the loop's own errors; handlers log to their own loggers
	// done is closed when run returns.
	done chan struct{}

	// mu guards cmds and stopped.
	mu      sync.Mutex
	cmds    []func()
	stopped bool

	// The rest belongs to the loop goroutine.
	now    int64     // ns since base, read once per wake-up
	fds    []Handler // by descriptor
	timers Timers
	spare  []func()
	quit   bool
	events [maxEvents]unix.EpollEvent
}

// New creates a loop and starts its goroutine, which runs until Stop.
func New(clk Clock, log *slog.Logger) (*Loop, error) {
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
	l := &Loop{ep: ep, efd: efd, clk: clk, base: clk.Now(), log: log, done: make(chan struct{})}
	go l.run()
	return l, nil
}

// Post queues f to run on the loop and wakes it; it returns false when the loop has
// stopped. It may be called from any goroutine. Functions posted before Stop run before
// the handlers are stopped, even those posted while the loop quits.
func (l *Loop) Post(f func()) bool {
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

// Stop ends the loop: it runs what was posted, stops every handler in the table, closes
// the epoll set and waits for the loop's goroutine to return. It may be called from any
// goroutine but the loop's own, more than once.
func (l *Loop) Stop() {
	l.Post(func() { l.quit = true })
	<-l.done
}

// Done is closed once the loop has stopped.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Now is the loop's time: nanoseconds since the loop started, on its clock, read once
// per wake-up. Only the loop's goroutine may call it.
func (l *Loop) Now() int64 { return l.now }

// Timers is the loop's deadline heap, fired after each wake-up's events and posted
// functions. Only the loop's goroutine may use it.
func (l *Loop) Timers() *Timers { return &l.timers }

func (l *Loop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(l.done)
	var delay time.Duration
	for !l.quit {
		n, e := l.wait(l.timers.Timeout(l.now))
		l.now = int64(l.clk.Now().Sub(l.base))
		if e != 0 {
			if e == unix.EINTR {
				continue
			}
			delay = min(max(2*delay, 10*time.Millisecond), retryMax)
			l.log.Error("event loop: epoll_wait failed; retrying", "err", e, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		// Commands run after the events, so that no descriptor closed by one event is
		// reused by a new connection before the events of this wake-up are handled.
		cmds := false
		for i := range l.events[:n] {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.efd {
				cmds = true
				continue
			}
			if fd < len(l.fds) {
				if x := l.fds[fd]; x != nil {
					x.Event(ev.Events)
				}
			}
		}
		if cmds {
			l.commands()
		}
		l.timers.Expire(l.now)
	}
	l.close()
}

func (l *Loop) wait(msec int) (int, syscall.Errno) {
	n, _, e := syscall.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])),
		uintptr(len(l.events)), uintptr(msec), 0, 0)
	return int(n), e
}

// commands runs what Post queued.
func (l *Loop) commands() {
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

// close runs when the loop quits: it stops its handlers and closes its descriptors.
func (l *Loop) close() {
	l.mu.Lock()
	l.stopped = true
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, f := range cmds { // connections posted meanwhile are added, to be stopped below
		f()
	}
	for _, x := range l.fds {
		if x != nil {
			x.Stop()
		}
	}
	unix.Close(l.efd)
	unix.Close(l.ep)
}

// SetFD puts x in the descriptor table at fd, growing the table as needed; Register
// then makes epoll report fd's events to x.
func (l *Loop) SetFD(fd int, x Handler) {
	for fd >= len(l.fds) {
		l.fds = append(l.fds, make([]Handler, len(l.fds)+64)...)
	}
	l.fds[fd] = x
}

// Register makes epoll report events for fd, whose registered events are *reg (0: not
// in the set), and updates *reg. Level-triggered epoll reports a hang-up even for no
// events, so a descriptor that waits for nothing leaves the set.
func (l *Loop) Register(fd int, reg *uint32, events uint32) syscall.Errno {
	if events == *reg {
		return 0
	}
	op := unix.EPOLL_CTL_MOD
	switch {
	case *reg == 0:
		op = unix.EPOLL_CTL_ADD
	case events == 0:
		op = unix.EPOLL_CTL_DEL
	}
	if e := epollCtl(l.ep, op, fd, events); e != 0 {
		return e
	}
	*reg = events
	return 0
}

// Remove takes fd out of the epoll set, when *reg says it is there, and out of the
// descriptor table; it sets *reg to 0. It does not close fd.
func (l *Loop) Remove(fd int, reg *uint32) {
	if *reg != 0 {
		epollCtl(l.ep, unix.EPOLL_CTL_DEL, fd, 0)
		*reg = 0
	}
	if fd < len(l.fds) {
		l.fds[fd] = nil
	}
}

// Handlers calls f for each descriptor in the table, for tests and diagnostics. Only
// the loop's goroutine may call it.
func (l *Loop) Handlers(f func(fd int, x Handler)) {
	for fd, x := range l.fds {
		if x != nil {
			f(fd, x)
		}
	}
}

func epollCtl(ep, op, fd int, events uint32) syscall.Errno {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	_, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(ep), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(&ev)), 0, 0)
	return e
}

// Group is the loops of one owner, started together and stopped together.
type Group struct {
	loops []*Loop
}

// NewGroup starts n loops (at least one) on clk, which log their own errors to log.
func NewGroup(n int, clk Clock, log *slog.Logger) (*Group, error) {
	if n < 1 {
		return nil, errors.New("evloop: a group needs at least one loop")
	}
	g := &Group{loops: make([]*Loop, n)}
	for i := range g.loops {
		l, err := New(clk, log)
		if err != nil {
			for _, l := range g.loops[:i] {
				l.Stop()
			}
			return nil, err
		}
		g.loops[i] = l
	}
	return g, nil
}

// Loops returns the group's loops; the slice must not be changed.
func (g *Group) Loops() []*Loop { return g.loops }

// Stop stops every loop of the group and waits for them to return.
func (g *Group) Stop() {
	for _, l := range g.loops {
		l.Post(func() { l.quit = true })
	}
	for _, l := range g.loops {
		<-l.done
	}
}
