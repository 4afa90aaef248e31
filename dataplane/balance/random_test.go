package balance

import (
	"testing"
)

// TestRandomTwoChoices checks that of two servers, both always drawn, the less loaded
// per unit of weight wins.
func TestRandomTwoChoices(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		active  []int
		want    string
	}{
		{"fewer in flight", []int{1, 1}, []int{10, 0}, "b"},
		{"per unit of weight", []int{4, 1}, []int{3, 1}, "a"},
		{"one eligible", []int{1, 0}, []int{10, 0}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := balServers(tc.weights...)
			balLoad(servers, tc.active...)
			counts := balCounts(newRandom(servers), &testPick{}, 200)
			if counts[tc.want] != 200 {
				t.Errorf("counts %v, want every pick on %s", counts, tc.want)
			}
		})
	}
}

// TestRandomSpreadsLoad checks that picks which stay in flight end up close to the
// servers' weights: the two choices correct what the draws get wrong.
func TestRandomSpreadsLoad(t *testing.T) {
	servers := balServers(1, 2, 3, 2)
	b := newRandom(servers)
	for range 8000 {
		b.Pick(&testPick{}).Acquire()
	}
	for _, s := range servers {
		want := int64(1000 * s.Weight())
		if d := s.Active() - want; d < -want/10 || d > want/10 {
			t.Errorf("server %s (weight %d): %d in flight, want %d ± 10%%", s.Name, s.Weight(), s.Active(), want)
		}
	}
}

// TestRandomTwoDistinct checks that the second draw never repeats the first: with one
// idle and two busy servers, the idle one wins whenever it is drawn, and it is drawn in
// about two picks of three.
func TestRandomTwoDistinct(t *testing.T) {
	servers := balServers(1, 1, 1)
	balLoad(servers, 5, 0, 5)
	counts := balCounts(newRandom(servers), &testPick{}, 3000)
	if n := counts["b"]; n < 1800 || n > 2200 {
		t.Errorf("idle server picked %d times of 3000, want about 2000; counts %v", n, counts)
	}
}

func BenchmarkPickRandom(b *testing.B) { benchPick(b, newRandom) }
