package balance

import (
	"math"
	"math/bits"
)

// leastTime picks the eligible server with the lowest expected wait per unit of weight,
// ResponseTime() × (Active()+1) / Weight(); servers tied for the lowest share the pick by
// smooth weighted round robin.
//
// The Active()+1 factor keeps one slow sample from starving a server: as requests pile
// up on the fast servers their score grows until the slow one's turn comes, and its next
// response refreshes its average. A server with no sample yet is scored as if it were
// as fast as the fastest eligible server, so it is tried at once but not flooded until
// its first response comes back; when no server has a sample, the pick is least
// connections on (Active()+1)/Weight().
type leastTime[S Server] struct {
	rr wrr[S]
}

func newLeastTime[S Server](servers []S) Balancer[S] {
	return &leastTime[S]{rr: newWRR(servers)}
}

func (l *leastTime[S]) Pick(p *Pick[S]) S {
	var fastest uint64 = math.MaxUint64
	for _, s := range l.rr.servers {
		if rt := s.ResponseTime(); rt > 0 && uint64(rt) < fastest && p.eligible(s) {
			fastest = uint64(rt)
		}
	}
	if fastest == math.MaxUint64 {
		fastest = 1
	}
	return pickLeast(&l.rr, p, func(s S) uint64 {
		rt := fastest
		if r := s.ResponseTime(); r > 0 {
			rt = uint64(r)
		}
		hi, lo := bits.Mul64(rt, activeOf(s)+1)
		if hi != 0 {
			return math.MaxUint64
		}
		return lo
	})
}
