package dataplane

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// This file also holds the helpers every balancer's tests share.

// balAlgos builds each algorithm over servers, by name.
var balAlgos = []struct {
	name string
	new  func([]*Server) Balancer
}{
	{"roundrobin", newRoundRobin},
	{"leastconn", newLeastConn},
	{"least_time", newLeastTime},
	{"random", newRandom},
	{"source", newSource},
	{"consistent_rendezvous", balConsistent(HashRendezvous, 0)},
	{"consistent_rendezvous_bounded", balConsistent(HashRendezvous, 125)},
	{"consistent_maglev", balConsistent(HashMaglev, 0)},
	{"consistent_maglev_bounded", balConsistent(HashMaglev, 125)},
}

func balConsistent(method string, factor int) func([]*Server) Balancer {
	return func(servers []*Server) Balancer {
		b, err := newConsistent(servers, method, factor)
		if err != nil {
			panic(err)
		}
		return b
	}
}

// balServers returns servers named a, b, c, … with the given weights.
func balServers(weights ...int) []*Server {
	servers := make([]*Server, len(weights))
	for i, w := range weights {
		name := string(rune('a' + i))
		servers[i] = NewServer(name, fmt.Sprintf("192.0.2.%d:80", i+1), w)
	}
	return servers
}

// balIP returns a distinct client address for each i.
func balIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// balSequence returns the names of n picks, each from a different client address.
func balSequence(b Balancer, p *Pick, n int) []string {
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
func balCounts(b Balancer, p *Pick, n int) map[string]int {
	counts := map[string]int{}
	for _, name := range balSequence(b, p, n) {
		counts[name]++
	}
	return counts
}

// balCountsHeld is balCounts with every pick kept in flight, as under load; least_time
// needs it to spread, since idle it sends everything to the best server.
func balCountsHeld(b Balancer, p *Pick, n int) map[string]int {
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
func balCheckShares(t *testing.T, b Balancer, n int, tol float64) {
	t.Helper()
	counts := balCountsHeld(b, &Pick{}, n)
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
				exclude []*Server
				want    []string // the servers that may be picked
			}{
				{servers[:1], []string{"b", "c"}},
				{servers[1:2], []string{"a", "c"}},
				{servers[:2], []string{"c"}},
				{servers[1:], []string{"a"}},
			} {
				counts := balCountsHeld(b, &Pick{Exclude: tc.exclude}, 600)
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

func balNamesOf(servers []*Server) []string {
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
				setup func([]*Server) *Pick
			}{
				{"no servers", nil},
				{"all excluded", func(s []*Server) *Pick { return &Pick{Exclude: s} }},
				{"all disabled", func(s []*Server) *Pick { balEach(s, func(s *Server) { s.SetState(Disabled) }); return &Pick{} }},
				{"all drained", func(s []*Server) *Pick { balEach(s, func(s *Server) { s.SetState(Drain) }); return &Pick{} }},
				{"all down", func(s []*Server) *Pick { balEach(s, func(s *Server) { s.SetUp(false) }); return &Pick{} }},
				{"all weight 0", func(s []*Server) *Pick { balEach(s, func(s *Server) { s.SetWeight(0) }); return &Pick{} }},
				{"mixed", func(s []*Server) *Pick {
					s[0].SetUp(false)
					s[1].SetWeight(0)
					return &Pick{Exclude: s[2:]}
				}},
			} {
				servers := balServers(1, 2, 3)
				p := &Pick{}
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

func balEach(servers []*Server, f func(*Server)) {
	for _, s := range servers {
		f(s)
	}
}

func TestBalancerUnavailableNeverPicked(t *testing.T) {
	for _, algo := range balAlgos {
		for _, tc := range []struct {
			name string
			set  func(*Server)
		}{
			{"drain", func(s *Server) { s.SetState(Drain) }},
			{"disabled", func(s *Server) { s.SetState(Disabled) }},
			{"weight 0", func(s *Server) { s.SetWeight(0) }},
			{"down", func(s *Server) { s.SetUp(false) }},
		} {
			t.Run(algo.name+"/"+tc.name, func(t *testing.T) {
				servers := balServers(1, 2, 3)
				b := algo.new(servers)
				balCountsHeld(b, &Pick{}, 100) // some history before the change
				tc.set(servers[1])
				counts := balCountsHeld(b, &Pick{}, 1000)
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
					p := &Pick{Key: make([]byte, 2)}
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
					d.SetState(ServerState(i % 3))
					d.SetUp(i%2 == 0)
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
			p := &Pick{ClientIP: balIP(7), Exclude: servers[:1]}
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
func benchPick(b *testing.B, newBalancer func([]*Server) Balancer) {
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
	p := &Pick{}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.ClientIP = keys[i&255]
		i++
		bal.Pick(p)
	}
}

func BenchmarkPickRoundRobin(b *testing.B) { benchPick(b, newRoundRobin) }

func TestRoundRobinSequence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		setup   func([]*Server) *Pick
		n       int
		want    []string
	}{
		{
			name:    "nginx smooth 5 1 1",
			weights: []int{5, 1, 1},
			n:       21,
			want:    balRepeat("a a b a c a a", 3),
		},
		{
			name:    "equal weights",
			weights: []int{1, 1, 1},
			n:       6,
			want:    []string{"a", "b", "c", "a", "b", "c"},
		},
		{
			name:    "b down keeps a and c at 5:1, smoothly",
			weights: []int{5, 1, 1},
			setup:   func(s []*Server) *Pick { s[1].SetUp(false); return &Pick{} },
			n:       12,
			want:    []string{"a", "a", "a", "c", "a", "a", "a", "a", "a", "c", "a", "a"},
		},
		{
			name:    "c excluded",
			weights: []int{1, 2, 3},
			setup:   func(s []*Server) *Pick { return &Pick{Exclude: s[2:]} },
			n:       6,
			want:    []string{"b", "a", "b", "b", "a", "b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := balServers(tc.weights...)
			p := &Pick{}
			if tc.setup != nil {
				p = tc.setup(servers)
			}
			got := balSequence(newRoundRobin(servers), p, tc.n)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("picks (-want +got):\n%s", diff)
			}
		})
	}
}

// balRepeat returns the space-separated names in s, n times over.
func balRepeat(s string, n int) []string {
	var names []string
	for range n {
		names = append(names, strings.Fields(s)...)
	}
	return names
}

func TestRoundRobinDownKeepsRatio(t *testing.T) {
	servers := balServers(5, 1, 1)
	b := newRoundRobin(servers)
	balSequence(b, &Pick{}, 3) // start mid-cycle
	servers[1].SetState(Disabled)
	got := balCounts(b, &Pick{}, 60)
	want := map[string]int{"a": 50, "c": 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts over 60 picks with b disabled (-want +got):\n%s", diff)
	}
}

func TestRoundRobinExactShares(t *testing.T) {
	got := balCounts(newRoundRobin(balServers(1, 2, 3)), &Pick{}, 6000)
	want := map[string]int{"a": 1000, "b": 2000, "c": 3000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts over 6000 picks (-want +got):\n%s", diff)
	}
}

func TestRoundRobinWeightChange(t *testing.T) {
	servers := balServers(1, 1)
	b := newRoundRobin(servers)
	balCounts(b, &Pick{}, 10)
	servers[1].SetWeight(3)
	got := balCounts(b, &Pick{}, 400)
	if got["a"] < 98 || got["a"] > 102 || got["a"]+got["b"] != 400 {
		t.Errorf("counts over 400 picks after b's weight went to 3: %v, want about a:100 b:300", got)
	}
}
