package balance

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// balLoad gives each server its number of requests in flight.
func balLoad(servers []*testServer, active ...int) {
	for i, n := range active {
		for range n {
			servers[i].Acquire()
		}
	}
}

func TestLeastConnPick(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		active  []int
		exclude []int
		want    string
	}{
		{"fewest in flight", []int{1, 1, 1}, []int{3, 1, 2}, nil, "b"},
		{"per unit of weight", []int{1, 2}, []int{1, 1}, nil, "b"},
		{"heavier server with more in flight", []int{1, 3}, []int{1, 2}, nil, "b"},
		{"lighter server when the heavy one is fuller", []int{1, 3}, []int{1, 4}, nil, "a"},
		{"idle beats busy whatever the weight", []int{1, 100}, []int{0, 1}, nil, "a"},
		{"least loaded excluded", []int{1, 1, 1}, []int{3, 1, 2}, []int{1}, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := balServers(tc.weights...)
			balLoad(servers, tc.active...)
			p := &testPick{}
			for _, i := range tc.exclude {
				p.Exclude = append(p.Exclude, servers[i])
			}
			b := newLeastConn(servers)
			for i := range 5 {
				if got := b.Pick(p); got == nil || got.Name != tc.want {
					t.Fatalf("pick %d = %v, want %s", i, got, tc.want)
				}
			}
		})
	}
}

func TestLeastConnTiesSmoothWRR(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		active  []int
		want    []string
	}{
		{"all idle", []int{5, 1, 1}, []int{0, 0, 0}, balRepeat("a a b a c a a", 2)},
		{"only the tied take part", []int{5, 1, 1, 1}, []int{5, 1, 1, 9}, balRepeat("a a b a c a a", 2)},
		{"tied at a ratio above zero", []int{2, 1, 1}, []int{2, 1, 5}, balRepeat("a b a", 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := balServers(tc.weights...)
			balLoad(servers, tc.active...)
			got := balSequence(newLeastConn(servers), &testPick{}, len(tc.want))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("picks (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLeastConnFills checks that picks which stay in flight fill the servers in
// proportion to their weights.
func TestLeastConnFills(t *testing.T) {
	servers := balServers(1, 2, 3)
	b := newLeastConn(servers)
	for range 600 {
		b.Pick(&testPick{}).Acquire()
	}
	got := map[string]int64{}
	for _, s := range servers {
		got[s.Name] = s.Active()
	}
	want := map[string]int64{"a": 100, "b": 200, "c": 300}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("in flight after 600 picks (-want +got):\n%s", diff)
	}
}

func TestBalanceCmpRatio(t *testing.T) {
	const big = math.MaxUint64
	for _, tc := range []struct {
		a, b, c, d uint64
		want       int
	}{
		{1, 2, 1, 3, 1},
		{1, 3, 1, 2, -1},
		{2, 4, 1, 2, 0},
		{0, 1, 0, 7, 0},
		{big, 1, big, 2, 1},
		{big, 3, big - 1, 3, 1},
		{big, big, 1, 1, 0},
	} {
		if got := cmpRatio(tc.a, tc.b, tc.c, tc.d); got != tc.want {
			t.Errorf("cmpRatio(%d, %d, %d, %d) = %d, want %d", tc.a, tc.b, tc.c, tc.d, got, tc.want)
		}
	}
}

func BenchmarkPickLeastConn(b *testing.B) { benchPick(b, newLeastConn) }
