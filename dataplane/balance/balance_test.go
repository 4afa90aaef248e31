package balance

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is a server as the tests drive it. Its fields are atomics so that
// TestBalancerConcurrent may change them under picks.
type testServer struct {
	Name   string
	weight atomic.Int64
	down   atomic.Bool // not available: drained, disabled or down, to a balancer all one
	full   atomic.Bool // at its maxconn
	active atomic.Int64
	rt     atomic.Int64 // the response time in nanoseconds
}

type (
	testPick     = Pick[*testServer]
	testBalancer = Balancer[*testServer]
)

func newTestServer(name string, weight int) *testServer {
	s := &testServer{Name: name}
	s.weight.Store(int64(weight))
	return s
}

func (s *testServer) HashName() string            { return s.Name }
func (s *testServer) Available() bool             { return !s.down.Load() && s.Weight() > 0 }
func (s *testServer) Full() bool                  { return s.full.Load() }
func (s *testServer) Weight() int                 { return int(s.weight.Load()) }
func (s *testServer) Active() int64               { return s.active.Load() }
func (s *testServer) ResponseTime() time.Duration { return time.Duration(s.rt.Load()) }

func (s *testServer) SetWeight(w int)   { s.weight.Store(int64(w)) }
func (s *testServer) SetUp(up bool)     { s.down.Store(!up) }
func (s *testServer) SetFull(full bool) { s.full.Store(full) }
func (s *testServer) Acquire()          { s.active.Add(1) }

// Release ends a request; a positive rt becomes the server's response time (a real
// server keeps a moving average, which is not the balancers' business).
func (s *testServer) Release(rt time.Duration) {
	s.active.Add(-1)
	if rt > 0 {
		s.rt.Store(int64(rt))
	}
}

// balAlgos builds each algorithm over servers, by name.
var balAlgos = []struct {
	name string
	new  func([]*testServer) testBalancer
}{
	{"roundrobin", newRoundRobin[*testServer]},
	{"leastconn", newLeastConn[*testServer]},
	{"least_time", newLeastTime[*testServer]},
	{"random", newRandom[*testServer]},
	{"source", newSource[*testServer]},
	{"consistent_rendezvous", balConsistent(Rendezvous, 0)},
	{"consistent_rendezvous_bounded", balConsistent(Rendezvous, 125)},
	{"consistent_maglev", balConsistent(Maglev, 0)},
	{"consistent_maglev_bounded", balConsistent(Maglev, 125)},
}

func balConsistent(method string, factor int) func([]*testServer) testBalancer {
	return func(servers []*testServer) testBalancer {
		b, err := newConsistent(servers, method, factor)
		if err != nil {
			panic(err)
		}
		return b
	}
}

// balServers returns servers named a, b, c, … with the given weights.
func balServers(weights ...int) []*testServer {
	servers := make([]*testServer, len(weights))
	for i, w := range weights {
		name := string(rune('a' + i))
		servers[i] = newTestServer(name, w)
	}
	return servers
}

// balIP returns a distinct client address for each i.
func balIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// balSequence returns the names of n picks, each from a different client address.
func balSequence(b testBalancer, p *testPick, n int) []string {
	var seq []string
	for i := range n {
		p.ClientIP = balIP(i)
		s := b.Pick(p)
		if s == nil {
			seq = append(seq, "<nil>")
			continue
		}
		seq = append(seq, s.Name)
	}
	return seq
}

// balCounts counts the picks per server name over n picks from different clients.
func balCounts(b testBalancer, p *testPick, n int) map[string]int {
	counts := map[string]int{}
	for _, name := range balSequence(b, p, n) {
		counts[name]++
	}
	return counts
}

// balCountsHeld is balCounts with every pick kept in flight, as under load; least_time
// needs it to spread, since idle it sends everything to the best server.
func balCountsHeld(b testBalancer, p *testPick, n int) map[string]int {
	counts := map[string]int{}
	for i := range n {
		p.ClientIP = balIP(i)
		s := b.Pick(p)
		if s == nil {
			counts["<nil>"]++
			continue
		}
		s.Acquire()
		counts[s.Name]++
	}
	return counts
}

// balCheckShares checks that the servers' shares of picks over weights 1, 2, 3, each
// pick kept in flight, are within tol percentage points of 1/6, 2/6 and 3/6.
func balCheckShares(t *testing.T, b testBalancer, n int, tol float64) {
	t.Helper()
	counts := balCountsHeld(b, &testPick{}, n)
	for name, w := range map[string]int{"a": 1, "b": 2, "c": 3} {
		got := 100 * float64(counts[name]) / float64(n)
		want := 100 * float64(w) / 6
		if math.Abs(got-want) > tol {
			t.Errorf("server %s (weight %d) got %.2f%% of %d picks, want %.2f%% ± %.1f", name, w, got, n, want, tol)
		}
	}
	t.Logf("counts over %d picks: %v", n, counts)
}

func TestBalancerShares(t *testing.T) {
	const n = 10000
	tolerance := map[string]float64{
		// Smooth WRR and filling by load are exact: 10000 picks are off their shares by
		// at most a few picks.
		"roundrobin": 0.02,
		"leastconn":  0.02,
		"least_time": 0.05,
		// Random draws and hashed keys: the standard deviation of a share is at most
		// 0.5 points over 10000 picks.
		"random":                        3,
		"source":                        3,
		"consistent_rendezvous":         3,
		"consistent_rendezvous_bounded": 3,
		"consistent_maglev":             3,
		"consistent_maglev_bounded":     3,
	}
	for _, algo := range balAlgos {
		t.Run(algo.name, func(t *testing.T) {
			balCheckShares(t, algo.new(balServers(1, 2, 3)), n, tolerance[algo.name])
		})
	}
}

func TestBalancerExclude(t *testing.T) {
	for _, algo := range balAlgos {
		t.Run(algo.name, func(t *testing.T) {
			servers := balServers(1, 2, 3)
			b := algo.new(servers)
			for _, tc := range []struct {
				exclude []*testServer
				want    []string // the servers that may be picked
			}{
				{servers[:1], []string{"b", "c"}},
				{servers[1:2], []string{"a", "c"}},
				{servers[:2], []string{"c"}},
				{servers[1:], []string{"a"}},
			} {
				counts := balCountsHeld(b, &testPick{Exclude: tc.exclude}, 600)
				for _, e := range tc.exclude {
					if counts[e.Name] > 0 {
						t.Errorf("excluding %v: picked excluded %s %d times", balNamesOf(tc.exclude), e.Name, counts[e.Name])
					}
				}
				for _, name := range tc.want {
					if counts[name] == 0 {
						t.Errorf("excluding %v: never picked %s; counts %v", balNamesOf(tc.exclude), name, counts)
					}
				}
			}
		})
	}
}

func balNamesOf(servers []*testServer) []string {
	var names []string
	for _, s := range servers {
		names = append(names, s.Name)
	}
	return names
}

func TestBalancerNoneEligible(t *testing.T) {
	for _, algo := range balAlgos {
		t.Run(algo.name, func(t *testing.T) {
			for _, tc := range []struct {
				name  string
				setup func([]*testServer) *testPick
			}{
				{"no servers", nil},
				{"all excluded", func(s []*testServer) *testPick { return &testPick{Exclude: s} }},
				{"all unavailable", func(s []*testServer) *testPick {
					balEach(s, func(s *testServer) { s.SetUp(false) })
					return &testPick{}
				}},
				{"all full", func(s []*testServer) *testPick {
					balEach(s, func(s *testServer) { s.SetFull(true) })
					return &testPick{}
				}},
				{"all weight 0", func(s []*testServer) *testPick {
					balEach(s, func(s *testServer) { s.SetWeight(0) })
					return &testPick{}
				}},
				{"mixed", func(s []*testServer) *testPick {
					s[0].SetUp(false)
					s[1].SetWeight(0)
					return &testPick{Exclude: s[2:]}
				}},
			} {
				servers := balServers(1, 2, 3)
				p := &testPick{}
				if tc.setup == nil {
					servers = nil
				} else {
					p = tc.setup(servers)
				}
				b := algo.new(servers)
				for i, name := range balSequence(b, p, 20) {
					if name != "<nil>" {
						t.Errorf("%s: pick %d = %s, want nil", tc.name, i, name)
					}
				}
			}
		})
	}
}

func balEach(servers []*testServer, f func(*testServer)) {
	for _, s := range servers {
		f(s)
	}
}

func TestBalancerUnavailableNeverPicked(t *testing.T) {
	for _, algo := range balAlgos {
		for _, tc := range []struct {
			name string
			set  func(*testServer)
		}{
			{"unavailable", func(s *testServer) { s.SetUp(false) }},
			{"weight 0", func(s *testServer) { s.SetWeight(0) }},
			{"full", func(s *testServer) { s.SetFull(true) }},
		} {
			t.Run(algo.name+"/"+tc.name, func(t *testing.T) {
				servers := balServers(1, 2, 3)
				b := algo.new(servers)
				balCountsHeld(b, &testPick{}, 100) // some history before the change
				tc.set(servers[1])
				counts := balCountsHeld(b, &testPick{}, 1000)
				if counts["b"] > 0 {
					t.Errorf("picked b %d times", counts["b"])
				}
				if counts["a"] == 0 || counts["c"] == 0 {
					t.Errorf("counts %v, want picks of both a and c", counts)
				}
			})
		}
	}
}

// TestBalancerConcurrent runs picks, acquires and releases from many goroutines while
// another flips a server's weight and state; run it with -race.
func TestBalancerConcurrent(t *testing.T) {
	const (
		goroutines = 8
		picks      = 1000
		flips      = 12
	)
	for _, algo := range balAlgos {
		t.Run(algo.name, func(t *testing.T) {
			servers := balServers(1, 2, 3, 1)
			b := algo.new(servers)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					p := &testPick{Key: make([]byte, 2)}
					for i := range picks {
						p.ClientIP = balIP(g*picks + i)
						p.Key[0], p.Key[1] = byte(g), byte(i)
						s := b.Pick(p)
						if s == nil {
							t.Errorf("pick %d: nil with servers a, b, c always available", i)
							return
						}
						s.Acquire()
						s.Release(time.Duration(1+i%7) * time.Millisecond)
					}
				})
			}
			wg.Go(func() {
				d := servers[3]
				for i := range flips {
					d.SetWeight(1 + i%3)
					d.SetUp(i%2 == 0)
					d.SetFull(i%3 == 1)
				}
			})
			wg.Wait()
			for _, s := range servers {
				if s.Active() != 0 {
					t.Errorf("server %s: %d active after every release", s.Name, s.Active())
				}
			}
		})
	}
}

func TestBalancerPickAllocs(t *testing.T) {
	for _, algo := range balAlgos {
		t.Run(algo.name, func(t *testing.T) {
			servers := balServers(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
			servers[4].SetUp(false) // make hashes walk on
			b := algo.new(servers)
			p := &testPick{ClientIP: balIP(7), Exclude: servers[:1]}
			i := 0
			allocs := testing.AllocsPerRun(200, func() {
				i++
				p.ClientIP = balIP(i)
				b.Pick(p).Acquire()
			})
			if allocs != 0 {
				t.Errorf("Pick allocates %v times, want 0", allocs)
			}
		})
	}
}

// benchPick measures Pick over ten servers with different weights, from changing
// clients.
func benchPick(b *testing.B, newBalancer func([]*testServer) testBalancer) {
	servers := balServers(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	for i, s := range servers {
		for range i % 3 {
			s.Acquire()
		}
		s.Acquire()
		s.Release(time.Duration(i+1) * time.Millisecond)
	}
	bal := newBalancer(servers)
	var keys [256]netip.Addr
	for i := range keys {
		keys[i] = balIP(i * 7919)
	}
	p := &testPick{}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.ClientIP = keys[i&255]
		i++
		bal.Pick(p)
	}
}
