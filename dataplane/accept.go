package dataplane

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"lbd/internal/clock"
)

// acceptor is what the stream frontends (tcp.go, http.go) share: the listener and the
// accept loop, which leaves new connections in the kernel's accept queue while MaxConn
// are open and backs off when accept fails.
type acceptor struct {
	ln  *net.TCPListener
	clk clock.Clock // of the back-off after a failed accept

	// open counts the client connections accepted and not yet closed, against MaxConn.
	open atomic.Int64
	// freed wakes the accept loop when a connection closes or the limit changes.
	freed chan struct{}
	// stop is closed by stopAccepting; the accept loop exits.
	stop       chan struct{}
	stopOnce   sync.Once
	acceptDone chan struct{}
}

// init readies a for ln, before its accept loop starts.
func (a *acceptor) init(ln *net.TCPListener, clk clock.Clock) {
	a.ln, a.clk = ln, clk
	a.freed = make(chan struct{}, 1)
	a.stop = make(chan struct{})
	a.acceptDone = make(chan struct{})
}

// wake tells the accept loop that a connection closed or MaxConn may have grown.
func (a *acceptor) wake() {
	select {
	case a.freed <- struct{}{}:
	default:
	}
}

// stopAccepting closes stop and the listener, tells ctx so (listenerClosed) and waits
// for the accept loop to return.
func (a *acceptor) stopAccepting(ctx context.Context) {
	a.stopOnce.Do(func() {
		close(a.stop)
		a.ln.Close()
	})
	listenerClosed(ctx)
	<-a.acceptDone
}

// acceptLoop accepts connections, counts each as open and hands it to handle, until the
// listener closes, stop is closed or handle returns false. gen is the frontend's current
// generation, read for its MaxConn before each accept and for its name in the log.
func (a *acceptor) acceptLoop(log *slog.Logger, gen func() *frontendGen, handle func(*net.TCPConn) bool) {
	defer close(a.acceptDone)
	var delay time.Duration
	for a.waitSlot(gen) {
		c, err := a.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or memory, or an aborted handshake: back off
			// as net/http does, and try again.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", "frontend", gen().cfg.Name, "err", err, "delay", delay)
			t := a.clk.NewTimer(delay)
			select {
			case <-t.C():
			case <-a.stop:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		a.open.Add(1)
		if !handle(c) {
			return
		}
	}
}

// waitSlot blocks while MaxConn connections are open, so that new ones wait in the
// kernel's accept queue. It returns false when the frontend stops.
func (a *acceptor) waitSlot(gen func() *frontendGen) bool {
	for {
		limit := gen().cfg.MaxConn
		if limit <= 0 || a.open.Load() < int64(limit) {
			return true
		}
		select {
		case <-a.freed:
		case <-a.stop:
			return false
		}
	}
}

// waitDone returns a channel that is closed once wg's count is zero, for a shutdown to
// wait on beside its ctx.
func waitDone(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}
