package balance

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func BenchmarkPickRoundRobin(b *testing.B) { benchPick(b, newRoundRobin) }

func TestRoundRobinSequence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		setup   func([]*testServer) *testPick
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
			setup:   func(s []*testServer) *testPick { s[1].SetUp(false); return &testPick{} },
			n:       12,
			want:    []string{"a", "a", "a", "c", "a", "a", "a", "a", "a", "c", "a", "a"},
		},
		{
			name:    "c excluded",
			weights: []int{1, 2, 3},
			setup:   func(s []*testServer) *testPick { return &testPick{Exclude: s[2:]} },
			n:       6,
			want:    []string{"b", "a", "b", "b", "a", "b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := balServers(tc.weights...)
			p := &testPick{}
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
	balSequence(b, &testPick{}, 3) // start mid-cycle
	servers[1].SetUp(false)
	got := balCounts(b, &testPick{}, 60)
	want := map[string]int{"a": 50, "c": 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts over 60 picks with b unavailable (-want +got):\n%s", diff)
	}
}

func TestRoundRobinExactShares(t *testing.T) {
	got := balCounts(newRoundRobin(balServers(1, 2, 3)), &testPick{}, 6000)
	want := map[string]int{"a": 1000, "b": 2000, "c": 3000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts over 6000 picks (-want +got):\n%s", diff)
	}
}

func TestRoundRobinWeightChange(t *testing.T) {
	servers := balServers(1, 1)
	b := newRoundRobin(servers)
	balCounts(b, &testPick{}, 10)
	servers[1].SetWeight(3)
	got := balCounts(b, &testPick{}, 400)
	if got["a"] < 98 || got["a"] > 102 || got["a"]+got["b"] != 400 {
		t.Errorf("counts over 400 picks after b's weight went to 3: %v, want about a:100 b:300", got)
	}
}
