package balance

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// balSample gives each server a response-time average (0 leaves it without a sample).
func balSample(servers []*testServer, rt ...time.Duration) {
	for i, d := range rt {
		if d > 0 {
			servers[i].Acquire()
			servers[i].Release(d)
		}
	}
}

func TestLeastTimePick(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name    string
		weights []int
		rt      []time.Duration
		active  []int
		want    string
	}{
		{"fastest", []int{1, 1, 1}, []time.Duration{30 * ms, 10 * ms, 20 * ms}, nil, "b"},
		{"fast but busy", []int{1, 1}, []time.Duration{30 * ms, 10 * ms}, []int{0, 3}, "a"},
		{"weight divides", []int{1, 4}, []time.Duration{10 * ms, 30 * ms}, nil, "b"},
		{"weight and load", []int{1, 4}, []time.Duration{10 * ms, 30 * ms}, []int{0, 1}, "a"},
		{"no samples is least connections", []int{1, 1, 1}, nil, []int{2, 0, 1}, "b"},
		{"unsampled counts as fastest, then load decides", []int{1, 1, 1}, []time.Duration{10 * ms, 0, 20 * ms}, []int{0, 1, 0}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := balServers(tc.weights...)
			balSample(servers, tc.rt...)
			balLoad(servers, tc.active...)
			b := newLeastTime(servers)
			for i := range 5 {
				if got := b.Pick(&testPick{}); got == nil || got.Name != tc.want {
					t.Fatalf("pick %d = %v, want %s", i, got, tc.want)
				}
			}
		})
	}
}

func TestLeastTimeTiesSmoothWRR(t *testing.T) {
	servers := balServers(5, 1, 1)
	// 50ms / 5 = 10ms / 1: all three tie.
	balSample(servers, 50*time.Millisecond, 10*time.Millisecond, 10*time.Millisecond)
	want := balRepeat("a a b a c a a", 2)
	got := balSequence(newLeastTime(servers), &testPick{}, len(want))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("picks (-want +got):\n%s", diff)
	}
}

// TestLeastTimeTriesUnsampled checks that a server with no sample yet is tried at once,
// beside a server known to be fast.
func TestLeastTimeTriesUnsampled(t *testing.T) {
	servers := balServers(1, 1)
	balSample(servers, time.Millisecond)
	got := balSequence(newLeastTime(servers), &testPick{}, 2)
	want := []string{"a", "b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("picks (-want +got):\n%s", diff)
	}
}

// TestLeastTimeNoStarvation checks that one slow sample does not starve a server: as
// requests pile up on the fast one, the slow one gets its turn.
func TestLeastTimeNoStarvation(t *testing.T) {
	servers := balServers(1, 1)
	balSample(servers, 100*time.Millisecond, 10*time.Millisecond)
	b := newLeastTime(servers)
	var seq []string
	for range 12 {
		s := b.Pick(&testPick{})
		s.Acquire()
		seq = append(seq, s.Name)
	}
	// b scores 10ms × (n+1) against a's 100ms: b takes nine, ties on the tenth, and a is
	// picked on the tie or right after.
	want := balRepeat("b b b b b b b b b", 1)
	if diff := cmp.Diff(want, seq[:9]); diff != "" {
		t.Errorf("first picks (-want +got):\n%s", diff)
	}
	if servers[0].Active() == 0 {
		t.Errorf("picks %v never reached the slow server", seq)
	}
}

// TestLeastTimeFollowsSamples checks that the pick follows response times as they
// change.
func TestLeastTimeFollowsSamples(t *testing.T) {
	servers := balServers(1, 1)
	balSample(servers, 10*time.Millisecond, 20*time.Millisecond)
	b := newLeastTime(servers)
	if got := b.Pick(&testPick{}); got != servers[0] {
		t.Fatalf("pick = %v, want a", got)
	}
	for range 30 {
		balSample(servers, 50*time.Millisecond)
	}
	if got := b.Pick(&testPick{}); got != servers[1] {
		t.Fatalf("pick after a slowed down = %v, want b", got)
	}
}

func BenchmarkPickLeastTime(b *testing.B) { benchPick(b, newLeastTime) }
