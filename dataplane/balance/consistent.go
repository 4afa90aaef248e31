package balance

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
)

// newConsistent returns consistent hashing by method, Rendezvous (the default) or
// Maglev, with the balance factor in percent, 0 for none.
//
// Consistent hashing maps a key (Pick.Key, or the client address when Key is nil) to a
// server so that the same key keeps going to the same server, and a server leaving or
// coming back moves only the keys that belong on it. Servers are hashed by name, not
// address, so changing a server's address keeps its keys. Every hash is fixed (FNV-1a
// and a fixed mixer, no random seed), so all nodes of the cluster, and a node after a
// restart, send a key to the same server.
//
// With a balance factor (HAProxy's hash-balance-factor) the load is bounded: a server
// already holding its share of the requests in flight is passed over, and the key walks
// on to its next server in preference order.
func newConsistent[S Server](servers []S, method string, factor int) (Balancer[S], error) {
	if factor < 0 || factor > 0 && factor < MinBalanceFactor {
		return nil, fmt.Errorf("hash_balance_factor (%d) must be 0 (off) or at least %d", factor, MinBalanceFactor)
	}
	switch method {
	case Rendezvous, "":
		return &rendezvous[S]{hrw: newHRW(servers), factor: uint64(factor)}, nil
	case Maglev:
		return newMaglev(servers, uint64(factor)), nil
	}
	return nil, fmt.Errorf("hash_method must be %s or %s, not %q", Rendezvous, Maglev, method)
}

// pickKeyHash returns the hash of what p is to be hashed on: Key, or ClientIP when Key
// is nil.
func pickKeyHash[S Server](p *Pick[S]) uint64 {
	if p.Key != nil {
		return keyHash(p.Key)
	}
	return addrHash(p)
}

// addrHash returns the hash of p.ClientIP as 16 bytes, so an IPv4 client hashes the same
// whether it arrives as IPv4 or IPv4-mapped IPv6.
func addrHash[S Server](p *Pick[S]) uint64 {
	a := p.ClientIP.As16()
	return keyHash(a[:])
}

// keyHash is FNV-1a 64 of b, finished by mix64 so that every bit of b reaches every bit
// of the result.
func keyHash(b []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return mix64(h)
}

// nameHash is keyHash of a string.
func nameHash(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return mix64(h)
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// mix64 is the splitmix64 finalizer, a bijection with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// loadBound is the bounded-load test of one pick, HAProxy's hash-balance-factor
// (Mirrokni, Thorup and Zadimoghaddam's consistent hashing with bounded loads): the
// requests in flight, plus the one being placed, times factor/100, are shared among the
// available servers by weight, and a server whose requests in flight have reached its
// share, rounded up, is full. With equal weights a server takes a new request only while
// Active()+1 <= ceil(factor/100 × (in flight+1) / servers), exactly as HAProxy. With
// unequal weights HAProxy rounds the total up and hands out the remainder by the
// servers' places in the list; rounding each share up instead keeps a server's bound
// independent of its place and never above ceil(factor/100 × in flight × its weight /
// total weight).
type loadBound[S Server] struct {
	num uint64 // (in flight+1) × factor, 0 for no bound
	den uint64 // 100 × the total weight of the available servers
}

func newLoadBound[S Server](servers []S, factor uint64) loadBound[S] {
	if factor == 0 {
		return loadBound[S]{}
	}
	var inFlight, weight uint64
	for _, s := range servers {
		// As HAProxy's proxy->served, count every request in flight, draining and
		// disabled servers' too.
		inFlight += activeOf(s)
		if s.Available() {
			weight += weightOf(s)
		}
	}
	return loadBound[S]{num: (inFlight + 1) * factor, den: 100 * weight}
}

// full reports whether s holds its share: Active() >= ceil(num × Weight() / den).
func (b *loadBound[S]) full(s S) bool {
	if b.num == 0 || b.den == 0 {
		return false
	}
	hi, lo := bits.Mul64(b.num, weightOf(s))
	if hi >= b.den {
		return false // a share beyond 2^64
	}
	share, rem := bits.Div64(hi, lo, b.den)
	if rem != 0 {
		share++
	}
	return activeOf(s) >= share
}

// hrw is weighted rendezvous hashing (highest random weight): each server scores a key
// as weight / -ln(u), u a uniform number in (0, 1) from the hash of the key and the
// server's name, and the key's preference order is by falling score. The weighted score
// gives each server exactly its weight's share of the keys, and removing a server
// moves only the keys it held.
type hrw[S Server] struct {
	servers []S
	names   []uint64 // nameHash of each server's name
}

func newHRW[S Server](servers []S) hrw[S] {
	h := hrw[S]{servers: append([]S(nil), servers...), names: make([]uint64, len(servers))}
	for i, s := range servers {
		h.names[i] = nameHash(s.HashName())
	}
	return h
}

// pick returns the eligible server first in the key's preference order that b does not
// find full, or, when b finds all full, the first eligible one; the zero S when none is
// eligible.
func (h *hrw[S]) pick(p *Pick[S], key uint64, b *loadBound[S]) S {
	first, open := -1, -1
	firstScore, openScore := -1.0, -1.0
	for i, s := range h.servers {
		w := weightOf(s)
		if w == 0 || !p.eligible(s) {
			continue
		}
		score := hrwScore(key, h.names[i], w)
		if score > firstScore {
			first, firstScore = i, score
		}
		if score > openScore && !b.full(s) {
			open, openScore = i, score
		}
	}
	switch {
	case open >= 0:
		return h.servers[open]
	case first >= 0:
		return h.servers[first]
	}
	var none S
	return none
}

// hrwScore is the weighted rendezvous score of a key on a server.
func hrwScore(key, name, weight uint64) float64 {
	h := mix64(key ^ name)
	u := (float64(h>>11) + 0.5) * 0x1p-53 // in (0, 1)
	return float64(weight) / -math.Log(u)
}

// rendezvous is consistent hashing by weighted rendezvous hashing.
type rendezvous[S Server] struct {
	hrw[S]
	factor uint64
}

func (r *rendezvous[S]) Pick(p *Pick[S]) S {
	b := newLoadBound(r.servers, r.factor)
	return r.pick(p, pickKeyHash(p), &b)
}

// maglev is consistent hashing by a Maglev lookup table (Eisenbud et al., NSDI 2016):
// a table of prime size where each server fills slots in the order of its own
// permutation, in turns proportional to its weight. A key indexes the table by its hash;
// when that slot's server is not eligible (or is full under the balance factor) the key
// walks on through the table to the next slot whose server is, which spreads a missing
// server's keys over the others by their weights and leaves every other key in place.
//
// The table is built from the weights at construction. A weight changing to another
// value above zero rebuilds it on the next pick; a weight dropping to zero leaves it
// alone, since the server is then not available and its keys walk on, coming back when
// the weight does.
type maglev[S Server] struct {
	servers []S
	names   []string // each server's HashName, the order of turns in build
	factor  uint64
	size    uint64
	offset  []uint64 // where each server's permutation starts
	skip    []uint64 // its step, in [1, size)

	table atomic.Pointer[maglevTable]
	// rebuild guards building a new table; picks never wait for it.
	rebuild sync.Mutex
}

type maglevTable struct {
	slots   []int32 // server index per slot; empty when every weight was 0
	weights []uint64
}

// maglevMinSize is the smallest table: prime, and at least a hundred times the servers,
// so each server's share stays within about 1% of its weight's.
const maglevMinSize = 65537

func newMaglev[S Server](servers []S, factor uint64) *maglev[S] {
	m := &maglev[S]{
		servers: append([]S(nil), servers...),
		names:   make([]string, len(servers)),
		factor:  factor,
		size:    nextPrime(max(maglevMinSize, 100*uint64(len(servers)))),
		offset:  make([]uint64, len(servers)),
		skip:    make([]uint64, len(servers)),
	}
	for i, s := range servers {
		m.names[i] = s.HashName()
		h := nameHash(m.names[i])
		m.offset[i] = mix64(h^0x9e3779b97f4a7c15) % m.size
		m.skip[i] = mix64(h^0x6a09e667f3bcc909)%(m.size-1) + 1
	}
	m.table.Store(m.build())
	return m
}

func (m *maglev[S]) Pick(p *Pick[S]) S {
	var none S
	t := m.current()
	if len(t.slots) == 0 {
		return none
	}
	b := newLoadBound(m.servers, m.factor)
	eligible, open := 0, 0
	for _, s := range m.servers {
		if p.eligible(s) {
			eligible++
			if !b.full(s) {
				open++
			}
		}
	}
	if eligible == 0 {
		return none
	}
	first := -1
	i := pickKeyHash(p) % m.size
	for range m.size {
		s := m.servers[t.slots[i]]
		if p.eligible(s) {
			if open == 0 || !b.full(s) {
				return s
			}
			if first < 0 {
				first = int(t.slots[i])
			}
		}
		if i++; i == m.size {
			i = 0
		}
	}
	// Loads moved since they were counted and every eligible server is full.
	if first < 0 {
		return none
	}
	return m.servers[first]
}

// current returns the table, rebuilt first if a weight changed to a value above zero.
// While one goroutine rebuilds, the others keep using the old table.
func (m *maglev[S]) current() *maglevTable {
	t := m.table.Load()
	if !m.stale(t) || !m.rebuild.TryLock() {
		return t
	}
	defer m.rebuild.Unlock()
	if t = m.table.Load(); m.stale(t) {
		t = m.build()
		m.table.Store(t)
	}
	return t
}

// stale reports whether a server's weight changed from t's to a value above zero.
func (m *maglev[S]) stale(t *maglevTable) bool {
	for i, s := range m.servers {
		if w := weightOf(s); w > 0 && w != t.weights[i] {
			return true
		}
	}
	return false
}

// build fills a table from the servers' current weights. In each round, in the order of
// their names, a server takes its next free preferred slot when the slots it holds are
// fewer than round × its weight / the largest weight, so the heaviest server takes one
// slot a round and the others in proportion.
func (m *maglev[S]) build() *maglevTable {
	t := &maglevTable{weights: make([]uint64, len(m.servers))}
	var maxW uint64
	for i, s := range m.servers {
		t.weights[i] = weightOf(s)
		maxW = max(maxW, t.weights[i])
	}
	if maxW == 0 {
		return t
	}
	t.slots = make([]int32, m.size)
	for i := range t.slots {
		t.slots[i] = -1
	}
	// Take turns in the order of the names, so the order of the list does not matter.
	order := make([]int, len(m.servers))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(m.names[i], m.names[j]) })
	pos := append([]uint64(nil), m.offset...)
	held := make([]uint64, len(m.servers))
	filled := uint64(0)
	for round := uint64(1); filled < m.size; round++ {
		for _, i := range order {
			w := t.weights[i]
			if held[i]*maxW >= round*w {
				continue
			}
			for t.slots[pos[i]] >= 0 {
				pos[i] = (pos[i] + m.skip[i]) % m.size
			}
			t.slots[pos[i]] = int32(i)
			held[i]++
			if filled++; filled == m.size {
				break
			}
		}
	}
	return t
}

// nextPrime returns the smallest prime at least n.
func nextPrime(n uint64) uint64 {
	for ; ; n++ {
		prime := n >= 2
		for d := uint64(2); d*d <= n && prime; d++ {
			prime = n%d != 0
		}
		if prime {
			return n
		}
	}
}
