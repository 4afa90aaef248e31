package balance

import "sync"

// roundRobin is nginx's smooth weighted round robin over every eligible server.
type roundRobin[S Server] struct {
	rr wrr[S]
}

func newRoundRobin[S Server](servers []S) Balancer[S] {
	return &roundRobin[S]{rr: newWRR(servers)}
}

func (r *roundRobin[S]) Pick(p *Pick[S]) S { return r.rr.at(r.rr.next(p.eligible)) }

// wrr is nginx's smooth weighted round robin: at each pick every candidate's current
// weight grows by its weight, the candidate with the highest current weight is chosen,
// and the chosen one's current weight drops by the candidates' total. Weights 5, 1, 1 give
// a a b a c a a, spreading the heavy server's turns instead of bunching them.
//
// Only the candidates of a pick take part in it: a server left out (down, excluded, or
// not tied for least loaded) keeps its current weight untouched, so the others keep
// their exact proportions among themselves. Roundrobin uses it over all eligible
// servers; leastconn and least_time use it to break ties.
type wrr[S Server] struct {
	servers []S

	// mu guards current.
	mu sync.Mutex
	// current holds each server's current weight, nginx's peer->current_weight, indexed
	// like servers.
	current []int64
}

func newWRR[S Server](servers []S) wrr[S] {
	return wrr[S]{
		servers: append([]S(nil), servers...),
		current: make([]int64, len(servers)),
	}
}

// next returns the index in servers of the candidate whose turn it is, or -1 when there
// is none. Candidates are the servers with a weight above zero for which candidate
// returns true; candidate is called with the lock held and must be quick.
func (r *wrr[S]) next(candidate func(S) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	best := -1
	var total int64
	for i, s := range r.servers {
		if !candidate(s) {
			continue
		}
		w := int64(s.Weight())
		if w <= 0 {
			continue
		}
		r.current[i] += w
		total += w
		if best < 0 || r.current[i] > r.current[best] {
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	r.current[best] -= total
	return best
}

// at returns servers[i], or the zero S for -1.
func (r *wrr[S]) at(i int) S {
	if i < 0 {
		var none S
		return none
	}
	return r.servers[i]
}
