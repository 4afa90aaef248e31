package balance

import (
	"fmt"
	"net/netip"
	"time"
)

// The algorithms' names, the values of a backend's balance setting.
const (
	RoundRobin = "roundrobin"
	LeastConn  = "leastconn"
	LeastTime  = "least_time"
	Random     = "random"
	Source     = "source"
	Consistent = "consistent"
)

// The hash methods of Consistent, the values of Options.HashMethod.
const (
	Rendezvous = "rendezvous"
	Maglev     = "maglev"
)

// MinBalanceFactor is the smallest Options.HashBalanceFactor above 0 (off).
const MinBalanceFactor = 100

// Server is what a balancer reads of a server. Every method but HashName is called at
// pick time, possibly from many goroutines at once, and must be quick and safe for
// concurrent use. S is comparable so that Pick.Exclude can be matched; its zero value
// (nil for a pointer) is never a server.
type Server interface {
	comparable
	// HashName returns the name source and consistent hashing place the server by: unique
	// in its backend and the same on every node and across restarts (a name, not an
	// address, so that a new address keeps the server's clients). It is read once, by New.
	HashName() string
	// Available reports whether the server may take a new session: enabled, up and with
	// a weight above zero.
	Available() bool
	// Full reports whether the server is at its maxconn.
	Full() bool
	// Weight returns the server's weight as the balancers use it now (slow start and the
	// agent's percentage included); only ratios between servers matter.
	Weight() int
	// Active returns the number of requests or connections in flight on the server.
	Active() int64
	// ResponseTime returns the moving average of the server's response time, 0 before
	// its first sample (least_time).
	ResponseTime() time.Duration
}

// Balancer chooses a server for a new request or connection. Implementations are safe for
// concurrent use. The server list a balancer is built with never changes; availability
// (state, health, weight, load) is read from each Server at pick time.
type Balancer[S Server] interface {
	// Pick returns an available server that is neither full nor in pick.Exclude, or the
	// zero S (nil) when there is none.
	Pick(pick *Pick[S]) S
}

// Pick is what a balancer may look at to choose.
type Pick[S Server] struct {
	// ClientIP is the client's address (source and, by default, consistent hashing).
	ClientIP netip.Addr
	// Key is the hash key for consistent hashing, as the backend's hash_key extracts it
	// from the request; nil means hash ClientIP.
	Key []byte
	// Exclude holds servers already tried for this request.
	Exclude []S
}

// Excluded reports whether s is in p.Exclude.
func (p *Pick[S]) Excluded(s S) bool {
	for _, e := range p.Exclude {
		if e == s {
			return true
		}
	}
	return false
}

// eligible reports whether s may be picked for p: available, not at its maxconn, and
// not excluded.
func (p *Pick[S]) eligible(s S) bool { return s.Available() && !s.Full() && !p.Excluded(s) }

// Options are the backend settings some algorithms need.
type Options struct {
	// HashMethod is Rendezvous (the default) or Maglev (Consistent).
	HashMethod string
	// HashBalanceFactor is the bounded-load factor in percent, 0 for none, otherwise at
	// least MinBalanceFactor (Consistent).
	HashBalanceFactor int
}

// New returns the balancer for algorithm algo over servers.
func New[S Server](algo string, servers []S, opts Options) (Balancer[S], error) {
	switch algo {
	case RoundRobin:
		return newRoundRobin(servers), nil
	case LeastConn:
		return newLeastConn(servers), nil
	case LeastTime:
		return newLeastTime(servers), nil
	case Random:
		return newRandom(servers), nil
	case Source:
		return newSource(servers), nil
	case Consistent:
		return newConsistent(servers, opts.HashMethod, opts.HashBalanceFactor)
	}
	return nil, fmt.Errorf("unknown balancing algorithm %q", algo)
}
