package dataplane

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"lbd/dataplane/balance"
)

// srvAlgos is every algorithm, as a backend configures it.
var srvAlgos = []struct {
	name string
	algo string
	opts balance.Options
}{
	{"roundrobin", BalanceRoundRobin, balance.Options{}},
	{"leastconn", BalanceLeastConn, balance.Options{}},
	{"least_time", BalanceLeastTime, balance.Options{}},
	{"random", BalanceRandom, balance.Options{}},
	{"source", BalanceSource, balance.Options{}},
	{"consistent_rendezvous", BalanceConsistent, balance.Options{HashMethod: HashRendezvous}},
	{"consistent_maglev_bounded", BalanceConsistent, balance.Options{HashMethod: HashMaglev, HashBalanceFactor: 125}},
}

// srvBalancer builds algo over servers named s0, s1, … with the given weights.
func srvBalancer(t testing.TB, algo string, opts balance.Options, weights ...int) (balance.Balancer[*Server], []*Server) {
	t.Helper()
	servers := make([]*Server, len(weights))
	for i, w := range weights {
		servers[i] = NewServer(fmt.Sprintf("s%d", i), fmt.Sprintf("192.0.2.%d:80", i+1), w)
	}
	b, err := balance.New(algo, servers, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, servers
}

// srvIP returns a distinct client address for each i.
func srvIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}) }

// TestServerBalanceView checks that *Server gives the balancers what they need to pass
// over a server that may not take a new session, whatever the reason.
func TestServerBalanceView(t *testing.T) {
	for _, a := range srvAlgos {
		for _, tc := range []struct {
			name string
			set  func(*Server)
		}{
			{"drain", func(s *Server) { s.SetState(Drain) }},
			{"disabled", func(s *Server) { s.SetState(Disabled) }},
			{"down", func(s *Server) { s.SetUp(false) }},
			{"weight 0", func(s *Server) { s.SetWeight(0) }},
			{"agent drain", func(s *Server) { s.health.agentMode.Store(agentDrain) }},
			{"agent maint", func(s *Server) { s.health.agentMode.Store(agentMaint) }},
			{"at maxconn", func(s *Server) { s.SetMaxConn(1); s.Acquire() }},
		} {
			t.Run(a.name+"/"+tc.name, func(t *testing.T) {
				b, servers := srvBalancer(t, a.algo, a.opts, 1, 2, 3)
				tc.set(servers[1])
				counts := map[*Server]int{}
				for i := range 300 {
					s := b.Pick(&Pick{ClientIP: srvIP(i)})
					if s != nil {
						s.Acquire() // kept in flight, so that least_time spreads
					}
					counts[s]++
				}
				if counts[servers[1]] > 0 || counts[nil] > 0 {
					t.Errorf("picked s1 %d times and nothing %d times of 300", counts[servers[1]], counts[nil])
				}
				if counts[servers[0]] == 0 || counts[servers[2]] == 0 {
					t.Errorf("s0 picked %d times, s2 %d times, want both", counts[servers[0]], counts[servers[2]])
				}
			})
		}
	}
}

// TestServerHashName checks that servers are hashed by name, not address: the same
// names at new addresses keep every client.
func TestServerHashName(t *testing.T) {
	for _, a := range srvAlgos {
		if a.algo != BalanceSource && a.algo != BalanceConsistent {
			continue // only the hashing algorithms map a client to a server
		}
		t.Run(a.name, func(t *testing.T) {
			b1, _ := srvBalancer(t, a.algo, a.opts, 1, 1, 1, 1)
			servers := []*Server{NewServer("s0", "198.51.100.1:80", 1), NewServer("s1", "198.51.100.2:80", 1),
				NewServer("s2", "198.51.100.3:80", 1), NewServer("s3", "198.51.100.4:80", 1)}
			b2, err := balance.New(a.algo, servers, a.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				p := &Pick{ClientIP: srvIP(i)}
				if s1, s2 := b1.Pick(p), b2.Pick(p); s1.Name != s2.Name {
					t.Fatalf("client %v: %s, but %s at the new addresses", p.ClientIP, s1.Name, s2.Name)
				}
			}
		})
	}
}

// TestServerPickAllocs checks that picks over the dataplane's own servers allocate
// nothing: the balancers are generic over *Server, nothing is boxed.
func TestServerPickAllocs(t *testing.T) {
	for _, a := range srvAlgos {
		t.Run(a.name, func(t *testing.T) {
			b, servers := srvBalancer(t, a.algo, a.opts, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
			servers[4].SetUp(false) // make hashes walk on
			p := &Pick{Exclude: servers[:1]}
			i := 0
			allocs := testing.AllocsPerRun(200, func() {
				i++
				p.ClientIP = srvIP(i)
				s := b.Pick(p)
				s.Acquire()
				s.Release(0)
			})
			if allocs != 0 {
				t.Errorf("Pick allocates %v times, want 0", allocs)
			}
		})
	}
}

// BenchmarkServerPick measures Pick over ten of the dataplane's servers with different
// weights, loads and response times, from changing clients (package balance's benchmarks use a fake
// server).
func BenchmarkServerPick(b *testing.B) {
	for _, a := range srvAlgos {
		b.Run(a.name, func(b *testing.B) {
			bal, servers := srvBalancer(b, a.algo, a.opts, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
			for i, s := range servers {
				for range i % 3 {
					s.Acquire()
				}
				s.Acquire()
				s.Release(time.Duration(i+1) * time.Millisecond) // a response time for least_time
			}
			p := &Pick{}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.ClientIP = srvIP(i & 255)
				i++
				bal.Pick(p)
			}
		})
	}
}
