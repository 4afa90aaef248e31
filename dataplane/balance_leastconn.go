package dataplane

import "math/bits"

// leastConn picks the eligible server with the fewest requests in flight per unit of
// weight, Active()/Weight(); servers tied for least loaded share the pick by smooth
// weighted round robin, so idle servers are spread by weight.
type leastConn struct {
	servers []*Server
	rr      wrr
}

func newLeastConn(servers []*Server) Balancer {
	return &leastConn{servers: append([]*Server(nil), servers...), rr: newWRR(servers)}
}

func (l *leastConn) Pick(p *Pick) *Server {
	return pickLeast(l.servers, &l.rr, p, activeOf)
}

// pickLeast returns the eligible server with the lowest load(s)/Weight(), or nil when no
// server is eligible. Servers tied for the lowest share the pick by smooth weighted round
// robin through rr, which must be built over servers. Ratios are compared by
// cross-multiplication in 128 bits, so no load overflows or loses precision.
func pickLeast(servers []*Server, rr *wrr, p *Pick, load func(*Server) uint64) *Server {
	var best *Server
	var bestLoad, bestWeight uint64
	for _, s := range servers {
		if !p.eligible(s) {
			continue
		}
		w := weightOf(s)
		if w == 0 {
			continue
		}
		l := load(s)
		if best == nil || cmpRatio(l, w, bestLoad, bestWeight) < 0 {
			best, bestLoad, bestWeight = s, l, w
		}
	}
	if best == nil {
		return nil
	}
	tied := rr.next(func(s *Server) bool {
		if !p.eligible(s) {
			return false
		}
		w := weightOf(s)
		return w > 0 && cmpRatio(load(s), w, bestLoad, bestWeight) == 0
	})
	if tied == nil {
		// Loads moved between the two passes and nothing ties any more.
		return best
	}
	return tied
}

// activeOf returns s.Active(), never below zero.
func activeOf(s *Server) uint64 { return uint64(max(s.Active(), 0)) }

// weightOf returns s.Weight(), never below zero.
func weightOf(s *Server) uint64 { return uint64(max(s.Weight(), 0)) }

// cmpRatio compares a/b with c/d, for b and d above zero, returning -1, 0 or +1.
func cmpRatio(a, b, c, d uint64) int {
	hi1, lo1 := bits.Mul64(a, d)
	hi2, lo2 := bits.Mul64(c, b)
	switch {
	case hi1 < hi2 || hi1 == hi2 && lo1 < lo2:
		return -1
	case hi1 == hi2 && lo1 == lo2:
		return 0
	}
	return 1
}
