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

	"golang.org/x/sys/unix"
)

// The event loops of the process on Linux: one per GOMAXPROCS, each a goroutine locked
// to its OS thread around a level-triggered epoll set. A loop is not tied to what it
// serves: its descriptor table holds any connection that implements loopFD, and its
// deadlineHeap any deadline with what to do when it passes. Tcp sessions
// (tcploop_linux.go), their sockets and idle timeouts, are the first such users; that
// file says why the loops are built as they are (the thread lock, epoll_pwait through
// syscall.Syscall6, 256 events per wait), as measured for tcp.

const (
	// loopEvents is how many events one epoll_wait returns at most.
	loopEvents = 256
	// loopRetryMax bounds the pause after a failing epoll_wait.
	loopRetryMax = time.Second
)

// eventLoops are the event loops of the process. They start with the first connection
// handed to one and run for the life of the process, as the runtime's own netpoller
// does: connections of every Dataplane share them.
var eventLoops struct {
	// mu guards starting them; list is set once they run.
	mu   sync.Mutex
	list atomic.Pointer[[]*eventLoop]
	next atomic.Uint32
}

// nextEventLoop returns a loop for a new connection, round robin, starting the loops on
// the first call.
func nextEventLoop() (*eventLoop, error) {
	list := eventLoops.list.Load()
	if list == nil {
		var err error
		if list, err = startEventLoops(); err != nil {
			return nil, err
		}
	}
	return (*list)[int(eventLoops.next.Add(1)-1)%len(*list)], nil
}

func startEventLoops() (*[]*eventLoop, error) {
	eventLoops.mu.Lock()
	defer eventLoops.mu.Unlock()
	if list := eventLoops.list.Load(); list != nil {
		return list, nil
	}
	loops := make([]*eventLoop, runtime.GOMAXPROCS(0))
	for i := range loops {
		l, err := newEventLoop(systemClock{}, slog.Default())
		if err != nil {
			for _, l := range loops[:i] {
				l.stop()
			}
			return nil, err
		}
		loops[i] = l
	}
	eventLoops.list.Store(&loops)
	return &loops, nil
}

// loopClock is what an event loop reads the time from, once per wake-up.
type loopClock interface{ Now() time.Time }

// loopFD is what a loop's descriptor table holds for each descriptor in its epoll set:
// the connection, or the side of one, that the descriptor belongs to. Only the loop
// calls it, on the loop's goroutine.
type loopFD interface {
	// event handles the readiness events ev that epoll reported for the descriptor.
	event(l *eventLoop, ev uint32)
	// stop closes the connection at once, because the loop is quitting. It must take
	// every descriptor of the connection out of the table.
	stop(l *eventLoop)
}

// eventLoop is one event loop.
type eventLoop struct {
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
	now    int64        // ns since base, read once per wake-up
	fds    []loopFD     // by descriptor
	timers deadlineHeap // the deadlines of the loop's connections
	pipes  []*splicePipe
	spare  []func()
	quit   bool
	stats  tcpLoopStats
	http   *loopHTTP // the http engine's scratch space and server pools (httploop_linux.go)
	events [loopEvents]unix.EpollEvent
}

// newEventLoop creates a loop and starts its goroutine.
func newEventLoop(clk loopClock, log *slog.Logger) (*eventLoop, error) {
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
	l := &eventLoop{ep: ep, efd: efd, clk: clk, base: clk.Now(), log: log, done: make(chan struct{})}
	go l.run()
	return l, nil
}

// post queues f to run on the loop and wakes it; it returns false when the loop has
// stopped. It may be called from any goroutine.
func (l *eventLoop) post(f func()) bool {
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

// stop ends the loop's connections, closes it and waits for its goroutine to return.
func (l *eventLoop) stop() {
	l.post(func() { l.quit = true })
	<-l.done
}

func (l *eventLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(l.done)
	var delay time.Duration
	for !l.quit {
		n, e := l.wait(l.timers.timeout(l.now))
		l.now = int64(l.clk.Now().Sub(l.base))
		if e != 0 {
			if e == unix.EINTR {
				continue
			}
			delay = min(max(2*delay, 10*time.Millisecond), loopRetryMax)
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
					x.event(l, ev.Events)
				}
			}
		}
		if cmds {
			l.commands()
		}
		l.timers.expire(l.now)
	}
	l.close()
}

func (l *eventLoop) wait(msec int) (int, syscall.Errno) {
	n, _, e := syscall.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])),
		uintptr(len(l.events)), uintptr(msec), 0, 0)
	return int(n), e
}

// commands runs what post queued.
func (l *eventLoop) commands() {
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

// close runs when the loop quits: it ends its connections and closes its descriptors.
func (l *eventLoop) close() {
	l.mu.Lock()
	l.stopped = true
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, f := range cmds { // connections posted meanwhile are added, to be ended below
		f()
	}
	for _, x := range l.fds {
		if x != nil {
			x.stop(l)
		}
	}
	for _, p := range l.pipes {
		closePipe(p)
	}
	unix.Close(l.efd)
	unix.Close(l.ep)
}

// setFD puts x in the descriptor table at fd, growing the table as needed.
func (l *eventLoop) setFD(fd int, x loopFD) {
	for fd >= len(l.fds) {
		l.fds = append(l.fds, make([]loopFD, len(l.fds)+64)...)
	}
	l.fds[fd] = x
}

// register makes epoll report events for fd, whose registered events are *reg (0: not
// in the set), and updates *reg. Level-triggered epoll reports a hang-up even for no
// events, so a descriptor that waits for nothing leaves the set.
func (l *eventLoop) register(fd int, reg *uint32, events uint32) syscall.Errno {
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

func epollCtl(ep, op, fd int, events uint32) syscall.Errno {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	_, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(ep), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(&ev)), 0, 0)
	return e
}

// loopTimer is an entry in a loop's deadlineHeap. Its zero value is not in a heap.
type loopTimer struct {
	at int64 // the deadline, on the loop's clock
	i  int   // 1 + the entry's index in the heap; 0: not in it
	// fire runs on the loop once the deadline has passed, with the timer out of the
	// heap. It returns 0 once it has done what the deadline was for, or, when the
	// timer's owner was active since the deadline was set, a later deadline: the timer
	// goes back in the heap with it. It may add and remove timers, its own too when it
	// returns 0.
	fire func(now int64) (later int64)
}

// deadlineHeap orders a loop's timers by deadline. It is lazy: activity does not touch
// the heap; an owner moves its deadline on only when the old one fires (a tcp session
// that moved bytes since its idle deadline was set returns its new one).
type deadlineHeap []*loopTimer

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i+1, j+1
}
func (h *deadlineHeap) Push(x any) {
	t := x.(*loopTimer)
	*h = append(*h, t)
	t.i = len(*h)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.i = 0
	return t
}

// add puts t in the heap, due at at; t must not be in it.
func (h *deadlineHeap) add(t *loopTimer, at int64) {
	t.at = at
	heap.Push(h, t)
}

// remove takes t out of the heap, if it is there.
func (h *deadlineHeap) remove(t *loopTimer) {
	if t.i > 0 {
		heap.Remove(h, t.i-1)
	}
}

// expire fires, in deadline order, every timer due at now, and puts back those that
// return a later deadline.
func (h *deadlineHeap) expire(now int64) {
	for len(*h) > 0 && (*h)[0].at <= now {
		t := heap.Pop(h).(*loopTimer)
		if later := t.fire(now); later > now {
			h.add(t, later)
		}
	}
}

// timeout returns how long epoll_wait may sleep, in ms, for the earliest deadline to
// pass when it returns: -1 for no deadline.
func (h deadlineHeap) timeout(now int64) int {
	if len(h) == 0 {
		return -1
	}
	wait := h[0].at - now
	if wait <= 0 {
		return 0
	}
	return int(min((wait+int64(time.Millisecond)-1)/int64(time.Millisecond), 1<<31-1))
}
