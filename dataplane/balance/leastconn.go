package balance

import "math/bits"

// leastConn picks the eligible server with the fewest requests in flight per unit of
// weight, Active()/Weight(); servers tied for least loaded share the pick by smooth
// weighted round robin, so idle servers are spread by weight.
type leastConn[S Server] struct {
	rr wrr[S]
}

func newLeastConn[S Server](servers []S) Balancer[S] {
	return &leastConn[S]{rr: newWRR(servers)}
}

func (l *leastConn[S]) Pick(p *Pick[S]) S {
	return pickLeast(&l.rr, p, activeOf[S])
}

// pickLeast returns the eligible server of rr.servers with the lowest load(s)/Weight(),
// or the zero S when no server is eligible. Servers tied for the lowest share the pick by
// smooth weighted round robin through rr. Ratios are compared by cross-multiplication in
// 128 bits, so no load overflows or loses precision.
func pickLeast[S Server](rr *wrr[S], p *Pick[S], load func(S) uint64) S {
	best := -1
	var bestLoad, bestWeight uint64
	for i, s := range rr.servers {
		if !p.eligible(s) {
			continue
		}
		w := weightOf(s)
		if w == 0 {
			continue
		}
		l := load(s)
		if best < 0 || cmpRatio(l, w, bestLoad, bestWeight) < 0 {
			best, bestLoad, bestWeight = i, l, w
		}
	}
	if best < 0 {
		return rr.at(-1)
	}
	tied := rr.next(func(s S) bool {
		if !p.eligible(s) {
			return false
		}
		w := weightOf(s)
		return w > 0 && cmpRatio(load(s), w, bestLoad, bestWeight) == 0
	})
	if tied < 0 {
		// Loads moved between the two passes and nothing ties any more.
		return rr.at(best)
	}
	return rr.at(tied)
}

// activeOf returns s.Active(), never below zero.
func activeOf[S Server](s S) uint64 { return uint64(max(s.Active(), 0)) }

// weightOf returns s.Weight(), never below zero.
func weightOf[S Server](s S) uint64 { return uint64(max(s.Weight(), 0)) }

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
