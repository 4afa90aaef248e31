package balance

import "math/rand/v2"

// powerOfTwo is the power of two choices: it draws two distinct eligible servers at random,
// each with probability proportional to its weight, and keeps the one with fewer
// requests in flight per unit of weight (the first drawn on a tie). It needs no shared
// state, so picks never contend.
type powerOfTwo[S Server] struct {
	servers []S
}

func newRandom[S Server](servers []S) Balancer[S] {
	return &powerOfTwo[S]{servers: append([]S(nil), servers...)}
}

func (r *powerOfTwo[S]) Pick(p *Pick[S]) S {
	var total uint64
	var none S
	only := -1
	n := 0
	for i, s := range r.servers {
		if w := weightOf(s); w > 0 && p.eligible(s) {
			total += w
			only = i
			n++
		}
	}
	switch n {
	case 0:
		return none
	case 1:
		return r.servers[only]
	}
	i1 := r.draw(p, rand.Uint64N(total), -1)
	if i1 < 0 {
		return none
	}
	first := r.servers[i1]
	w1 := weightOf(first)
	if w1 == 0 || w1 >= total {
		// Weights changed under us; the first draw will do.
		return first
	}
	i2 := r.draw(p, rand.Uint64N(total-w1), i1)
	if i2 < 0 {
		return first
	}
	second := r.servers[i2]
	w2 := weightOf(second)
	if w2 > 0 && cmpRatio(activeOf(second), w2, activeOf(first), w1) < 0 {
		return second
	}
	return first
}

// draw returns the index of the eligible server, other than servers[skip], at which the
// running sum of weights passes x. When weights or states changed since x was drawn and
// the sum falls short, it returns the last eligible server seen, or -1 for none.
func (r *powerOfTwo[S]) draw(p *Pick[S], x uint64, skip int) int {
	last := -1
	for i, s := range r.servers {
		if i == skip {
			continue
		}
		w := weightOf(s)
		if w == 0 || !p.eligible(s) {
			continue
		}
		if x < w {
			return i
		}
		x -= w
		last = i
	}
	return last
}
