package dataplane

import "math/rand/v2"

// powerOfTwo is the power of two choices: it draws two distinct eligible servers at random,
// each with probability proportional to its weight, and keeps the one with fewer
// requests in flight per unit of weight (the first drawn on a tie). It needs no shared
// state, so picks never contend.
type powerOfTwo struct {
	servers []*Server
}

func newRandom(servers []*Server) Balancer {
	return &powerOfTwo{servers: append([]*Server(nil), servers...)}
}

func (r *powerOfTwo) Pick(p *Pick) *Server {
	var total uint64
	var only *Server
	n := 0
	for _, s := range r.servers {
		if w := weightOf(s); w > 0 && p.eligible(s) {
			total += w
			only = s
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case 1:
		return only
	}
	first := r.draw(p, rand.Uint64N(total), nil)
	if first == nil {
		return nil
	}
	w1 := weightOf(first)
	if w1 == 0 || w1 >= total {
		// Weights changed under us; the first draw will do.
		return first
	}
	second := r.draw(p, rand.Uint64N(total-w1), first)
	if second == nil {
		return first
	}
	w2 := weightOf(second)
	if w2 > 0 && cmpRatio(activeOf(second), w2, activeOf(first), w1) < 0 {
		return second
	}
	return first
}

// draw returns the eligible server, other than skip, at which the running sum of weights
// passes x. When weights or states changed since x was drawn and the sum falls short, it
// returns the last eligible server seen, or nil for none.
func (r *powerOfTwo) draw(p *Pick, x uint64, skip *Server) *Server {
	var last *Server
	for _, s := range r.servers {
		if s == skip {
			continue
		}
		w := weightOf(s)
		if w == 0 || !p.eligible(s) {
			continue
		}
		if x < w {
			return s
		}
		x -= w
		last = s
	}
	return last
}
