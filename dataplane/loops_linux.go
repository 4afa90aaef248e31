//go:build linux

package dataplane

import (
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"lbd/dataplane/internal/evloop"
)

// The event loops of a Dataplane on Linux (lbd/dataplane/internal/evloop): one per
// GOMAXPROCS, each a goroutine locked to its thread around an epoll set. Tcp sessions
// (tcploop_linux.go) and the http loop engine (httploop_linux.go) run on them, and keep
// what they need per loop beside the loop, in eventLoop.

// errLoopsClosed is what eventLoops.get returns once the Dataplane has closed.
var errLoopsClosed = errors.New("event loops stopped")

// eventLoop is one event loop of a Dataplane, with what its users keep per loop. Only
// the loop's goroutine touches the fields.
type eventLoop struct {
	*evloop.Loop
	tcpLoop           // tcp sessions' spare pipes and counts (tcploop_linux.go)
	http    *loopHTTP // the http engine's scratch space and server pools (httploop_linux.go)
	n       int       // how many loops the Dataplane has: they share out the server pools
}

// eventLoops are the event loops of one Dataplane. They start with the first connection
// handed to one, and Close stops them once the frontends have drained.
type eventLoops struct {
	clk evloop.Clock
	log *slog.Logger
	// list is set while the loops run; next is the round robin over it.
	list atomic.Pointer[[]*eventLoop]
	next atomic.Uint32

	// mu guards starting and stopping: group and stopped.
	mu      sync.Mutex
	group   *evloop.Group
	stopped bool
}

func newEventLoops(clk evloop.Clock, log *slog.Logger) *eventLoops {
	return &eventLoops{clk: clk, log: log}
}

// get returns a loop for a new connection, round robin, starting the loops on the first
// call; errLoopsClosed once they have stopped.
func (ls *eventLoops) get() (*eventLoop, error) {
	list := ls.list.Load()
	if list == nil {
		var err error
		if list, err = ls.start(); err != nil {
			return nil, err
		}
	}
	return (*list)[int(ls.next.Add(1)-1)%len(*list)], nil
}

// start starts the loops, unless they run already, and returns them.
func (ls *eventLoops) start() (*[]*eventLoop, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if list := ls.list.Load(); list != nil {
		return list, nil
	}
	if ls.stopped {
		return nil, errLoopsClosed
	}
	g, err := evloop.NewGroup(runtime.GOMAXPROCS(0), ls.clk, ls.log)
	if err != nil {
		return nil, err
	}
	loops := make([]*eventLoop, len(g.Loops()))
	for i, l := range g.Loops() {
		loops[i] = &eventLoop{Loop: l, n: len(loops)}
	}
	ls.group = g
	ls.list.Store(&loops)
	return &loops, nil
}

// running returns the loops, nil unless they run.
func (ls *eventLoops) running() []*eventLoop {
	if list := ls.list.Load(); list != nil {
		return *list
	}
	return nil
}

// stop stops the loops, which closes the connections still on them, and keeps them from
// starting again. Connections handed to a loop after it stopped are closed by their
// user (Post fails).
func (ls *eventLoops) stop() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.stopped = true
	list := ls.list.Swap(nil)
	if ls.group == nil {
		return
	}
	ls.group.Stop()
	ls.group = nil
	for _, l := range *list { // the loops have returned: their state is ours
		l.closePipes()
	}
}
