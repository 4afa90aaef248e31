package dataplane

import (
	"fmt"
	"sync/atomic"
	"time"

	"lbd/dataplane/balance"
)

// ServerState is the administrative state of a server.
type ServerState int32

// The administrative states: enabled servers take new sessions; drained servers keep the
// sessions they have and take no new ones; disabled servers take nothing.
const (
	Enabled ServerState = iota
	Drain
	Disabled
)

func (s ServerState) String() string {
	switch s {
	case Enabled:
		return StateEnabled
	case Drain:
		return StateDrain
	case Disabled:
		return StateDisabled
	}
	return fmt.Sprintf("ServerState(%d)", int32(s))
}

// ParseServerState reads enabled, drain or disabled.
func ParseServerState(s string) (ServerState, error) {
	switch s {
	case StateEnabled:
		return Enabled, nil
	case StateDrain:
		return Drain, nil
	case StateDisabled:
		return Disabled, nil
	}
	return 0, fmt.Errorf("must be enabled, drain or disabled, not %q", s)
}

// ewmaWeight is the weight of a new sample in a server's moving average of response time.
const ewmaWeight = 0.1

// Server is the run-time view of one backend server. Its counters and state are read and
// written concurrently by the request path, so they are atomics; Name and Addr never
// change after construction.
type Server struct {
	Name string
	Addr string

	weight atomic.Int32
	state  atomic.Int32 // a ServerState
	down   atomic.Bool  // set by health checking; false means up
	active atomic.Int64 // requests or connections in flight
	// ewma is the moving average of response time in nanoseconds, 0 until the first
	// sample.
	ewma atomic.Int64
	// maxconn bounds active, 0 for no bound; queue is the backend's queue, woken when a
	// slot frees (queue.go).
	maxconn atomic.Int64
	queue   atomic.Pointer[queue]
	// health is the state of health checking, agent and slow start (health.go).
	health serverHealth
}

// Pick is what a backend's balancer chooses a server by (package balance).
type Pick = balance.Pick[*Server]

// NewServer returns an enabled, up server with the given weight.
func NewServer(name, addr string, weight int) *Server {
	s := &Server{Name: name, Addr: addr}
	s.weight.Store(int32(weight))
	return s
}

// HashName returns s.Name, which source and consistent hashing place the server by (it
// makes *Server a balance.Server).
func (s *Server) HashName() string { return s.Name }

// Weight returns the server's effective weight, the one balancers use: the configured
// weight × the agent's percentage × the slow-start factor, in units of 1/100 of the
// configured weight (slowstart.go). ConfiguredWeight returns the configured one.
func (s *Server) Weight() int { return s.effectiveWeight() }

// SetWeight changes the server's configured weight.
func (s *Server) SetWeight(w int) { s.weight.Store(int32(w)) }

// State returns the administrative state.
func (s *Server) State() ServerState { return ServerState(s.state.Load()) }

// SetState changes the administrative state. A server enabled again starts slow start.
func (s *Server) SetState(st ServerState) {
	if old := ServerState(s.state.Swap(int32(st))); old != Enabled && st == Enabled {
		s.startRamp(s.health.now())
	}
}

// Up reports whether health checking considers the server able to serve.
func (s *Server) Up() bool { return !s.down.Load() }

// SetUp records the health-check verdict.
func (s *Server) SetUp(up bool) { s.down.Store(!up) }

// Available reports whether the server may take a new session: enabled, up, with a
// weight above zero, and not drained or in maintenance by its agent.
func (s *Server) Available() bool {
	return s.State() == Enabled && !s.down.Load() && s.Weight() > 0 && s.health.agentMode.Load() == agentReady
}

// Serving reports whether the server may still serve sessions that persistence (a
// cookie, a sticky entry) sends to it: up and not disabled. A drained server is Serving
// but not Available.
func (s *Server) Serving() bool {
	return s.State() != Disabled && !s.down.Load()
}

// Active returns the number of requests or connections in flight.
func (s *Server) Active() int64 { return s.active.Load() }

// Acquire counts a request or connection starting on the server.
func (s *Server) Acquire() { s.active.Add(1) }

// Release counts a request or connection ending on the server. A positive elapsed time is
// a response-time sample for least_time.
func (s *Server) Release(elapsed time.Duration) {
	s.active.Add(-1)
	s.notifyFreed()
	if elapsed > 0 {
		s.observe(elapsed)
	}
}

// ResponseTime returns the moving average of response time, 0 before any sample.
func (s *Server) ResponseTime() time.Duration { return time.Duration(s.ewma.Load()) }

func (s *Server) observe(d time.Duration) {
	for {
		old := s.ewma.Load()
		next := int64(d)
		if old != 0 {
			next = old + int64(ewmaWeight*float64(int64(d)-old))
		}
		if s.ewma.CompareAndSwap(old, next) {
			return
		}
	}
}
