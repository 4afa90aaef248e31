package balance

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var balMethods = []string{Rendezvous, Maglev}

// balNamedServers returns n servers of weight 1 named like real ones.
func balNamedServers(n int) []*testServer {
	servers := make([]*testServer, n)
	for i := range servers {
		servers[i] = newTestServer(fmt.Sprintf("web-%d", i+1), 1)
	}
	return servers
}

// balKeyed picks for keys 0 … n-1 as 8-byte keys.
func balKeyed(b testBalancer, n int) []*testServer {
	got := make([]*testServer, n)
	p := &testPick{Key: make([]byte, 8)}
	for i := range got {
		binary.BigEndian.PutUint64(p.Key, uint64(i))
		got[i] = b.Pick(p)
	}
	return got
}

func TestConsistentNewErrors(t *testing.T) {
	for _, tc := range []struct {
		method string
		factor int
		want   string // "" for no error
	}{
		{Rendezvous, 0, ""},
		{Maglev, 150, ""},
		{"", 100, ""},
		{"ring", 0, `hash_method must be rendezvous or maglev, not "ring"`},
		{Maglev, 50, "hash_balance_factor (50) must be 0 (off) or at least 100"},
		{Rendezvous, -1, "hash_balance_factor (-1) must be 0 (off) or at least 100"},
	} {
		_, err := newConsistent(balServers(1, 1), tc.method, tc.factor)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("newConsistent(%q, %d) error %q, want %q", tc.method, tc.factor, got, tc.want)
		}
	}
}

// TestConsistentMinimalDisruption checks, for both methods and 5 and 10 servers, that
// taking a server out moves only its keys (fewer than 1.2/N of them) and bringing it back
// restores every key.
func TestConsistentMinimalDisruption(t *testing.T) {
	const keys = 100000
	for _, method := range balMethods {
		for _, n := range []int{5, 10} {
			gone := n / 2
			t.Run(fmt.Sprintf("%s/%d/without_%d", method, n, gone), func(t *testing.T) {
				servers := balNamedServers(n)
				b, err := newConsistent(servers, method, 0)
				if err != nil {
					t.Fatal(err)
				}
				before := balKeyed(b, keys)
				removed := servers[gone]
				removed.SetUp(false)
				during := balKeyed(b, keys)
				moved, held := 0, 0
				for i := range keys {
					if before[i] == removed {
						held++
					}
					if during[i] == before[i] {
						continue
					}
					moved++
					if before[i] != removed {
						t.Fatalf("key %d moved from %s to %s, but %s was removed", i, before[i].Name, during[i].Name, removed.Name)
					}
				}
				if moved != held {
					t.Errorf("%d keys moved, want the %d that were on %s", moved, held, removed.Name)
				}
				if limit := 1.2 / float64(n) * keys; float64(moved) >= limit {
					t.Errorf("%d keys moved, want fewer than %.0f", moved, limit)
				}
				t.Logf("%d of %d keys moved", moved, keys)
				removed.SetUp(true)
				after := balKeyed(b, keys)
				for i := range keys {
					if after[i] != before[i] {
						t.Fatalf("key %d on %s after %s came back, was on %s", i, after[i].Name, removed.Name, before[i].Name)
					}
				}
			})
		}
	}
}

// TestConsistentStable pins where keys go on both methods, so a change to the hashes,
// which would move keys between servers across a rolling upgrade, fails here first.
func TestConsistentStable(t *testing.T) {
	keys := []string{"", "a", "/index.html", "/api/v1/users/42", "session=5f2b9c", "user@example.com"}
	for _, method := range balMethods {
		t.Run(method, func(t *testing.T) {
			b, err := newConsistent(balNamedServers(7), method, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range keys {
				got = append(got, k+" → "+b.Pick(&testPick{Key: []byte(k)}).Name)
			}
			want := map[string][]string{
				Rendezvous: {
					" → web-3", "a → web-4", "/index.html → web-7",
					"/api/v1/users/42 → web-2", "session=5f2b9c → web-3",
					"user@example.com → web-1",
				},
				Maglev: {
					" → web-6", "a → web-3", "/index.html → web-1",
					"/api/v1/users/42 → web-1", "session=5f2b9c → web-4",
					"user@example.com → web-7",
				},
			}[method]
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("servers by key (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConsistentByName checks that servers are hashed by name (HashName): a new order
// of the same names keeps every key in place.
func TestConsistentByName(t *testing.T) {
	for _, method := range balMethods {
		t.Run(method, func(t *testing.T) {
			servers := balNamedServers(6)
			moved := make([]*testServer, len(servers))
			for i, s := range servers {
				moved[len(servers)-1-i] = newTestServer(s.Name, 1)
			}
			b1, _ := newConsistent(servers, method, 0)
			b2, _ := newConsistent(moved, method, 0)
			for i, s := range balKeyed(b1, 5000) {
				p := &testPick{Key: binary.BigEndian.AppendUint64(nil, uint64(i))}
				if got := b2.Pick(p); got.Name != s.Name {
					t.Fatalf("key %d: %s, but %s after the order changed", i, s.Name, got.Name)
				}
			}
		})
	}
}

// TestConsistentClientIPKey checks that a nil Key hashes the client address.
func TestConsistentClientIPKey(t *testing.T) {
	for _, method := range balMethods {
		t.Run(method, func(t *testing.T) {
			b, _ := newConsistent(balNamedServers(8), method, 0)
			spread := map[string]bool{}
			for i := range 500 {
				ip := balIP(i * 31)
				a := ip.As16()
				byIP := b.Pick(&testPick{ClientIP: ip})
				byKey := b.Pick(&testPick{ClientIP: netip.IPv6Loopback(), Key: a[:]})
				if byIP != byKey {
					t.Fatalf("%v: %s by address, %s by the same bytes as Key", ip, byIP.Name, byKey.Name)
				}
				spread[byIP.Name] = true
			}
			if len(spread) != 8 {
				t.Errorf("500 addresses reached only %d of 8 servers", len(spread))
			}
		})
	}
}

// TestConsistentBoundedLoad checks HAProxy's bound: with every pick kept in flight, no
// server ever holds more than ceil(factor/100 × in flight × its weight / total weight),
// for a single hot key and for spread keys; and below the bound keys stay at home.
func TestConsistentBoundedLoad(t *testing.T) {
	for _, method := range balMethods {
		for _, factor := range []int{100, 125, 150, 200} {
			for _, weights := range [][]int{{1, 1, 1, 1, 1}, {1, 2, 3, 1}} {
				for _, hot := range []bool{true, false} {
					name := fmt.Sprintf("%s/factor_%d/weights_%v/hot_%t", method, factor, weights, hot)
					t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
						servers := balServers(weights...)
						b, err := newConsistent(servers, method, factor)
						if err != nil {
							t.Fatal(err)
						}
						home := b.Pick(&testPick{Key: []byte("hot")})
						total := 0
						for _, w := range weights {
							total += w
						}
						p := &testPick{Key: []byte("hot")}
						for i := range 2000 {
							if !hot {
								p.Key = binary.BigEndian.AppendUint64(p.Key[:0], uint64(i))
							}
							s := b.Pick(p)
							if hot && i == 0 && s != home {
								t.Fatalf("first pick of the hot key on %s, want its home %s", s.Name, home.Name)
							}
							s.Acquire()
							inFlight := i + 1
							for _, s := range servers {
								limit := int64((factor*inFlight*s.Weight() + 100*total - 1) / (100 * total))
								if s.Active() > limit {
									t.Fatalf("after %d picks %s holds %d, over ceil(%d%% × %d × %d/%d) = %d", inFlight, s.Name, s.Active(), factor, inFlight, s.Weight(), total, limit)
								}
							}
						}
						if hot && home.Active() == 0 {
							t.Errorf("the hot key's home %s got nothing", home.Name)
						}
					})
				}
			}
		}
	}
}

// TestConsistentBoundEqualWeights checks the brief rule with equal weights: a server
// takes a new request only while Active()+1 <= ceil(factor/100 × (in flight+1) / n).
func TestConsistentBoundEqualWeights(t *testing.T) {
	servers := balServers(1, 1, 1, 1)
	balLoad(servers, 3, 2, 0, 0)
	// 5 in flight, factor 150: ceil(1.5 × 6 / 4) = 3 slots each, so a (3) is full and
	// b (2) is not.
	b := newLoadBound(servers, 150)
	for _, tc := range []struct {
		s    *testServer
		full bool
	}{{servers[0], true}, {servers[1], false}, {servers[2], false}} {
		if got := b.full(tc.s); got != tc.full {
			t.Errorf("%s with %d in flight: full = %t, want %t", tc.s.Name, tc.s.Active(), got, tc.full)
		}
	}
}

// TestConsistentBoundIdleKeepsHome checks that a balance factor changes nothing while
// servers are below their bound.
func TestConsistentBoundIdleKeepsHome(t *testing.T) {
	for _, method := range balMethods {
		t.Run(method, func(t *testing.T) {
			servers := balNamedServers(6)
			plain, _ := newConsistent(servers, method, 0)
			bounded, _ := newConsistent(servers, method, 125)
			if diff := cmp.Diff(balNamesOf(balKeyed(plain, 2000)), balNamesOf(balKeyed(bounded, 2000))); diff != "" {
				t.Errorf("bounded picks differ from plain ones with nothing in flight (-plain +bounded):\n%s", diff)
			}
		})
	}
}

// TestMaglevTableShares checks that the table gives each server its weight's share of
// the slots, within 1%.
func TestMaglevTableShares(t *testing.T) {
	for _, weights := range [][]int{{1, 1, 1, 1, 1}, {1, 2, 3}, {10, 1, 5, 256}} {
		m := newMaglev(balServers(weights...), 0)
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			held := make([]int, len(weights))
			for _, i := range m.table.Load().slots {
				held[i]++
			}
			total := 0
			for _, w := range weights {
				total += w
			}
			for i, w := range weights {
				want := float64(m.size) * float64(w) / float64(total)
				if math.Abs(float64(held[i])-want) > 0.01*want+1 {
					t.Errorf("server %d (weight %d) holds %d slots of %d, want %.0f", i, w, held[i], m.size, want)
				}
			}
		})
	}
}

// TestMaglevWeightChange checks that a new weight rebuilds the table, and that a weight
// going to 0 and back does not.
func TestMaglevWeightChange(t *testing.T) {
	servers := balNamedServers(4)
	m := newMaglev(servers, 0)
	first := m.table.Load()
	servers[1].SetWeight(0)
	m.Pick(&testPick{})
	servers[1].SetWeight(1)
	m.Pick(&testPick{})
	if m.table.Load() != first {
		t.Errorf("weight 1 → 0 → 1 rebuilt the table")
	}
	servers[1].SetWeight(3)
	balKeyed(m, 1)
	held := 0
	for _, i := range m.table.Load().slots {
		if i == 1 {
			held++
		}
	}
	if want := int(m.size) / 2; held < want*99/100 || held > want*101/100 {
		t.Errorf("after weight 3 of 6 the server holds %d slots, want about %d", held, want)
	}
}

func TestMaglevNextPrime(t *testing.T) {
	for n, want := range map[uint64]uint64{0: 2, 2: 2, 4: 5, 65536: 65537, 65537: 65537, 100000: 100003} {
		if got := nextPrime(n); got != want {
			t.Errorf("nextPrime(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestRendezvousWeightedShares(t *testing.T) {
	servers := balServers(1, 2, 3)
	for _, method := range balMethods {
		b, _ := newConsistent(servers, method, 0)
		counts := map[string]int{}
		for _, s := range balKeyed(b, 60000) {
			counts[s.Name]++
		}
		for name, w := range map[string]int{"a": 1, "b": 2, "c": 3} {
			if want := 10000 * w; math.Abs(float64(counts[name]-want)) > 0.03*float64(want) {
				t.Errorf("%s: %s (weight %d) got %d of 60000 keys, want %d ± 3%%", method, name, w, counts[name], want)
			}
		}
	}
}

// TestBalanceHashVectors pins the key hash to FNV-1a 64 (before the mixer).
func TestBalanceHashVectors(t *testing.T) {
	for in, fnv := range map[string]uint64{
		"":       0xcbf29ce484222325,
		"a":      0xaf63dc4c8601ec8c,
		"foobar": 0x85944171f73967e8,
	} {
		if got, want := keyHash([]byte(in)), mix64(fnv); got != want {
			t.Errorf("keyHash(%q) = %#x, want mix64(%#x) = %#x", in, got, fnv, want)
		}
		if got, want := nameHash(in), mix64(fnv); got != want {
			t.Errorf("nameHash(%q) = %#x, want %#x", in, got, want)
		}
	}
}

func BenchmarkPickConsistent(b *testing.B) {
	for _, method := range balMethods {
		for _, factor := range []int{0, 125} {
			b.Run(fmt.Sprintf("%s/factor_%d", method, factor), func(b *testing.B) {
				benchPick(b, balConsistent(method, factor))
			})
		}
	}
}
