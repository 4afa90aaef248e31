package dataplane

// Server connection limits and the backend queue.
//
// A server's maxconn bounds the requests (http) or connections (tcp) in flight to it. A
// server at its limit is full: balancers pass it over (Pick.eligible) as they pass over a
// drained one. When every server that could take the request is full, the request waits
// in the backend's queue, first in first out, as in HAProxy: it is woken when a server
// frees a slot (Server.Release) and proceeds; after the queue's timeout (HAProxy's
// "timeout queue") it gets 503. While anyone is waiting, new requests queue behind them
// instead of taking a freed slot first. A queue holds at most size requests; over it a
// request gets 503 at once. With no maxconn on any server of a backend, none of this
// runs: a request picks and goes.
//
// Only the head of the queue tries for a slot: when it joins at the head, and whenever
// it is signalled, by a Release, a run-time change of a server, or the departure of the
// waiter before it. That passes a freed slot down the queue in order, and a signal is
// never lost: a Release that comes between a try and the wait is in the head's buffered
// channel.
//
// UDP sessions count against maxconn too (a full server takes no new session), but do
// not queue: a datagram that finds every server full is dropped.

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lbd/internal/clock"
)

// QueueConfig is a backend's queue for requests waiting for a server under its maxconn.
type QueueConfig struct {
	// Size bounds the requests waiting; over it, requests get 503 at once. Default: 1024.
	Size int `yaml:"size"`
	// Timeout bounds a request's wait in the queue (HAProxy's timeout queue); then it gets
	// 503. Default: 5s.
	Timeout time.Duration `yaml:"timeout"`
}

// Defaults and bounds of the queue and of a server's maxconn.
const (
	DefaultQueueSize    = 1024
	DefaultQueueTimeout = 5 * time.Second
	maxQueueSize        = 1000000
	maxServerMaxConn    = 1000000
)

func (q *QueueConfig) setDefaults() {
	if q.Size == 0 {
		q.Size = DefaultQueueSize
	}
	if q.Timeout == 0 {
		q.Timeout = DefaultQueueTimeout
	}
}

// validateQueue checks the queue of backend b (at path p) and its servers' maxconn.
func validateQueue(errs *errList, p string, b Backend) {
	if b.Queue.Size < 0 || b.Queue.Size > maxQueueSize {
		errs.add(p+".queue.size", "must be between 1 and %d, not %d", maxQueueSize, b.Queue.Size)
	}
	checkTimeout(errs, p+".queue.timeout", b.Queue.Timeout)
	for j, s := range b.Servers {
		if s.MaxConn < 0 || s.MaxConn > maxServerMaxConn {
			errs.add(fmt.Sprintf("%s.servers[%d].maxconn", p, j), "must be between 0 (unlimited) and %d, not %d", maxServerMaxConn, s.MaxConn)
		}
	}
}

// MaxConn returns the server's limit of requests or connections in flight; 0 is none.
func (s *Server) MaxConn() int { return int(s.maxconn.Load()) }

// SetMaxConn changes the server's limit; 0 removes it.
func (s *Server) SetMaxConn(n int) { s.maxconn.Store(int64(n)) }

// Full reports whether the server is at its maxconn.
func (s *Server) Full() bool {
	m := s.maxconn.Load()
	return m > 0 && s.active.Load() >= m
}

// TryAcquire counts a request or connection starting on the server, unless the server is
// at its maxconn; it reports whether it did.
func (s *Server) TryAcquire() bool {
	m := s.maxconn.Load()
	if m <= 0 {
		s.active.Add(1)
		return true
	}
	for {
		a := s.active.Load()
		if a >= m {
			return false
		}
		if s.active.CompareAndSwap(a, a+1) {
			return true
		}
	}
}

// notifyFreed wakes the queue of the server's backend after a slot freed.
func (s *Server) notifyFreed() {
	if q := s.queue.Load(); q != nil {
		q.kick()
	}
}

// Errors of a queued request; the text goes into the 503's body.
var (
	errQueueFull    = errors.New("queue full")
	errQueueTimeout = errors.New("queue timeout")
	errQueueStopped = errors.New("frontend stopping")
)

// queueError is a queued request's failure, with the backend and its settings.
type queueError struct {
	err     error
	backend string
	size    int
	timeout time.Duration
}

func (e *queueError) Error() string {
	switch e.err {
	case errQueueFull:
		return fmt.Sprintf("queue full: every server of backend %s is at its maxconn and %d requests are waiting", e.backend, e.size)
	case errQueueTimeout:
		return fmt.Sprintf("queue timeout: no server of backend %s had a free slot within %v", e.backend, e.timeout)
	}
	return e.err.Error()
}

func (e *queueError) Unwrap() error { return e.err }

// queue is a backend's FIFO of requests waiting for a server slot. It lives across
// reloads while its backend keeps its name.
type queue struct {
	clock    clock.Clock // of the waiters' timeouts
	timeouts prometheus.Counter
	full     prometheus.Counter

	// n is the number of waiters, read without the lock on the request path.
	n atomic.Int64

	// mu guards the fields below.
	mu      sync.Mutex
	backend string
	size    int
	timeout time.Duration
	// waiters holds *qwaiter, first come first.
	waiters list.List
}

// qwaiter is one queued request; ready is signalled (buffered, never blocking) when it
// should try for a slot, or, for a request on an event loop, wake is called (it must
// not block: it posts to the loop).
type qwaiter struct {
	ready chan struct{}
	wake  func()
}

func newQueue(backend string, cfg QueueConfig, clk clock.Clock, timeouts, full prometheus.Counter) *queue {
	q := &queue{clock: clk, timeouts: timeouts, full: full}
	q.configure(backend, cfg)
	return q
}

// configure sets the queue's size and timeout; requests already waiting keep the timeout
// they joined with.
func (q *queue) configure(backend string, cfg QueueConfig) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.backend, q.size, q.timeout = backend, cfg.Size, cfg.Timeout
}

// Len returns the number of requests waiting.
func (q *queue) Len() int { return int(q.n.Load()) }

// kick signals the head of the queue to try for a slot.
func (q *queue) kick() {
	if q.n.Load() == 0 {
		return
	}
	q.mu.Lock()
	q.signalHead()
	q.mu.Unlock()
}

// signalHead signals the first waiter; q.mu is held.
func (q *queue) signalHead() {
	if e := q.waiters.Front(); e != nil {
		w := e.Value.(*qwaiter)
		if w.wake != nil {
			w.wake()
			return
		}
		select {
		case w.ready <- struct{}{}:
		default:
		}
	}
}

// join adds a waiter at the tail; it fails with errQueueFull when size are waiting.
func (q *queue) join() (*list.Element, *queueError) {
	return q.joinWaiter(&qwaiter{ready: make(chan struct{}, 1)})
}

func (q *queue) joinWaiter(w *qwaiter) (*list.Element, *queueError) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.waiters.Len() >= q.size {
		return nil, &queueError{err: errQueueFull, backend: q.backend, size: q.size, timeout: q.timeout}
	}
	e := q.waiters.PushBack(w)
	q.n.Add(1)
	return e, nil
}

// joinLoop is join for a request on an event loop, which wait cannot block: wake is
// called when it should try for a slot (as head), and the loop times the wait out with
// the error it returns. It counts a full queue.
func (q *queue) joinLoop(wake func()) (*list.Element, *queueError, *queueError) {
	e, qerr := q.joinWaiter(&qwaiter{wake: wake})
	if qerr != nil {
		if q.full != nil {
			q.full.Inc()
		}
		return nil, nil, qerr
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return e, &queueError{err: errQueueTimeout, backend: q.backend, size: q.size, timeout: q.timeout}, nil
}

// timedOut removes e, a loop's waiter whose wait has timed out, and counts it.
func (q *queue) timedOut(e *list.Element) {
	q.leave(e)
	if q.timeouts != nil {
		q.timeouts.Inc()
	}
}

// leave removes waiter e and lets the next one try: a slot e did not take, or one freed
// meanwhile, is then not left unused.
func (q *queue) leave(e *list.Element) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiters.Remove(e)
	q.n.Add(-1)
	q.signalHead()
}

func (q *queue) isHead(e *list.Element) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiters.Front() == e
}

// wait queues the request until try returns a server (which it has acquired), until
// try says no server will come (ok false: none could serve, full or not), until the
// timeout, or until stop is closed.
func (q *queue) wait(try func() (s *Server, ok bool), stop <-chan struct{}) (*Server, error) {
	e, qerr := q.join()
	if qerr != nil {
		if q.full != nil {
			q.full.Inc()
		}
		return nil, qerr
	}
	q.mu.Lock()
	timeoutErr := &queueError{err: errQueueTimeout, backend: q.backend, size: q.size, timeout: q.timeout}
	q.mu.Unlock()
	timer := q.clock.NewTimer(timeoutErr.timeout)
	defer timer.Stop()
	w := e.Value.(*qwaiter)
	for {
		if q.isHead(e) {
			s, ok := try()
			if s != nil || !ok {
				q.leave(e)
				return s, nil
			}
		}
		select {
		case <-w.ready:
		case <-timer.C():
			q.leave(e)
			if q.timeouts != nil {
				q.timeouts.Inc()
			}
			return nil, timeoutErr
		case <-stop:
			q.leave(e)
			return nil, &queueError{err: errQueueStopped}
		}
	}
}

// acquire picks a server for p and counts the request on it (Server.Acquire), queueing
// while every server that could take it is at its maxconn. It returns nil, nil when no
// server is available, and a *queueError when the request cannot wait longer.
func (b *backend) acquire(p *Pick, stop <-chan struct{}) (*Server, error) {
	if !b.limited {
		s := b.pick(p)
		if s != nil {
			s.Acquire()
		}
		return s, nil
	}
	q := b.queue
	if q.n.Load() == 0 {
		if s := b.tryPick(p); s != nil {
			return s, nil
		}
		if !b.anyFull(p) {
			return nil, nil
		}
	}
	return q.wait(func() (*Server, bool) {
		if s := b.tryPick(p); s != nil {
			return s, true
		}
		return nil, b.anyFull(p)
	}, stop)
}

// tryPick picks a server that is under its maxconn and acquires it; nil when none is.
func (b *backend) tryPick(p *Pick) *Server {
	// A server picked as not full may fill up before TryAcquire; it is then full for the
	// next pick, so the loop ends.
	for range len(b.servers) + 1 {
		s := b.pick(p)
		if s == nil {
			return nil
		}
		if s.TryAcquire() {
			return s
		}
	}
	return nil
}

// anyFull reports whether a server that could take p is at its maxconn, so that waiting
// may give it a slot.
func (b *backend) anyFull(p *Pick) bool {
	for _, s := range b.servers {
		if s.Available() && s.Full() && !p.Excluded(s) {
			return true
		}
	}
	return false
}

// setupLimits gives the backend b (built from bc) its queue: prev's when there is one,
// so that requests waiting across a reload stay in line. The queue's new settings and
// the servers' maxconn touch what the running generation shares, so they go to p, for
// Apply to run when it commits.
func (d *Dataplane) setupLimits(b *backend, bc Backend, prev *backend, p *pending) {
	q := prev.queueOrNil()
	if q != nil {
		p.add(func() { q.configure(bc.Name, bc.Queue) })
	} else {
		m := d.metrics.ctl
		q = newQueue(bc.Name, bc.Queue, d.clock,
			m.queueTimeouts.WithLabelValues(bc.Name), m.queueFull.WithLabelValues(bc.Name))
	}
	b.queue = q
	for i, s := range b.servers {
		n := bc.Servers[i].MaxConn
		p.add(func() {
			s.SetMaxConn(n)
			s.queue.Store(q)
		})
		if n > 0 {
			b.limited = true
		}
	}
}

// queueOrNil returns b's queue, nil when b is nil.
func (b *backend) queueOrNil() *queue {
	if b == nil {
		return nil
	}
	return b.queue
}
