package dataplane

import (
	"fmt"
	"net/netip"
)

// Balancer chooses a server for a new request or connection. Implementations are safe for
// concurrent use. The server list a balancer is built with never changes; availability
// (state, health, weight) is read from each Server at pick time.
type Balancer interface {
	// Pick returns an available server that is not in pick.Exclude, or nil when there is
	// none.
	Pick(pick *Pick) *Server
}

// Pick is what a balancer may look at to choose.
type Pick struct {
	// ClientIP is the client's address (source and, by default, consistent hashing).
	ClientIP netip.Addr
	// Key is the hash key for consistent hashing, as the backend's hash_key extracts it
	// from the request; nil means hash ClientIP.
	Key []byte
	// Exclude holds servers already tried for this request.
	Exclude []*Server
}

func (p *Pick) excluded(s *Server) bool {
	for _, e := range p.Exclude {
		if e == s {
			return true
		}
	}
	return false
}

// eligible reports whether s may be picked for p: available, not at its maxconn, and
// not excluded.
func (p *Pick) eligible(s *Server) bool { return s.Available() && !s.Full() && !p.excluded(s) }

// BalancerOptions are the backend settings some algorithms need.
type BalancerOptions struct {
	// HashMethod is HashRendezvous or HashMaglev (consistent).
	HashMethod string
	// HashBalanceFactor is the bounded-load factor in percent, 0 for none (consistent).
	HashBalanceFactor int
}

// NewBalancer returns the balancer for algorithm algo over servers.
func NewBalancer(algo string, servers []*Server, opts BalancerOptions) (Balancer, error) {
	switch algo {
	case BalanceRoundRobin:
		return newRoundRobin(servers), nil
	case BalanceLeastConn:
		return newLeastConn(servers), nil
	case BalanceLeastTime:
		return newLeastTime(servers), nil
	case BalanceRandom:
		return newRandom(servers), nil
	case BalanceSource:
		return newSource(servers), nil
	case BalanceConsistent:
		return newConsistent(servers, opts.HashMethod, opts.HashBalanceFactor)
	}
	return nil, fmt.Errorf("unknown balancing algorithm %q", algo)
}
