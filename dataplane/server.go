package dataplane

import (
	"fmt"
	"sync/atomic"
	"time"
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
}

// NewServer returns an enabled, up server with the given weight.
func NewServer(name, addr string, weight int) *Server {
	s := &Server{Name: name, Addr: addr}
	s.weight.Store(int32(weight))
	return s
}

// Weight returns the server's current weight.
func (s *Server) Weight() int { return int(s.weight.Load()) }

// SetWeight changes the server's weight.
func (s *Server) SetWeight(w int) { s.weight.Store(int32(w)) }

// State returns the administrative state.
func (s *Server) State() ServerState { return ServerState(s.state.Load()) }

// SetState changes the administrative state.
func (s *Server) SetState(st ServerState) { s.state.Store(int32(st)) }

// Up reports whether health checking considers the server able to serve.
func (s *Server) Up() bool { return !s.down.Load() }

// SetUp records the health-check verdict.
func (s *Server) SetUp(up bool) { s.down.Store(!up) }

// Available reports whether the server may take a new session: enabled, up, and with a
// weight above zero.
func (s *Server) Available() bool {
	return s.State() == Enabled && !s.down.Load() && s.weight.Load() > 0
}

// Active returns the number of requests or connections in flight.
func (s *Server) Active() int64 { return s.active.Load() }

// Acquire counts a request or connection starting on the server.
func (s *Server) Acquire() { s.active.Add(1) }

// Release counts a request or connection ending on the server. A positive elapsed time is
// a response-time sample for least_time.
func (s *Server) Release(elapsed time.Duration) {
	s.active.Add(-1)
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
