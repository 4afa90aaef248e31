package vip

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/internal/clock"
)

func TestEvalTracking(t *testing.T) {
	base := Instance{
		Name: "web", Interface: "eth0", Priority: 100,
		TrackInterfaces: []TrackInterface{{Name: "eth1", Weight: 20}, {Name: "eth2", Weight: -30}, {Name: "eth3"}},
		TrackScripts:    []TrackScript{{Name: "up", Weight: 10}, {Name: "down", Weight: -50}, {Name: "must"}},
		TrackChecks:     []TrackCheck{{Name: "dataplane", Weight: -60}, {Name: "share", Weight: 40}, {Name: "alive"}},
	}
	tests := []struct {
		name       string
		priority   int
		in         trackInputs
		wantPrio   int
		wantFaults []string
	}{
		{"nothing reported: every positive weight counts, nothing fails", 100, trackInputs{}, 100 + 20 + 10 + 40, nil},
		{"own interface down: fault", 100, trackInputs{links: map[string]bool{"eth0": false}}, 170, []string{"interface eth0 down"}},
		{"positive weight lost when down", 100, trackInputs{links: map[string]bool{"eth1": false}}, 150, nil},
		{"negative weight applied when down", 100, trackInputs{links: map[string]bool{"eth2": false}}, 140, nil},
		{"weight 0 interface down: fault", 100, trackInputs{links: map[string]bool{"eth3": false}}, 170, []string{"interface eth3 down"}},
		{"script weights", 100, trackInputs{scripts: map[string]bool{"up": false, "down": false}}, 100 + 20 + 40 - 50, nil},
		{"weight 0 script failed: fault", 100, trackInputs{scripts: map[string]bool{"must": false}}, 170, []string{"script must failed"}},
		{"check level scales: half healthy", 100, trackInputs{checks: map[string]float64{"dataplane": 0.5, "share": 0.5}}, 100 + 30 - 30 + 20, nil},
		{"weight 0 check at 0: fault", 100, trackInputs{checks: map[string]float64{"alive": 0}}, 170, []string{"check alive failed"}},
		{"weight 0 check partly up: no fault", 100, trackInputs{checks: map[string]float64{"alive": 0.1}}, 170, nil},
		{"clamped to 254", 240, trackInputs{}, 254, nil},
		{"clamped to 1", 10, trackInputs{links: map[string]bool{"eth1": false, "eth2": false}, checks: map[string]float64{"dataplane": 0, "share": 0}, scripts: map[string]bool{"up": false, "down": false}}, 1, nil},
		{"owner keeps 255", 255, trackInputs{checks: map[string]float64{"dataplane": 0}}, 255, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			in.Priority = tt.priority
			got := evalTracking(&in, tt.in)
			if got.priority != tt.wantPrio || !slices.Equal(got.faults, tt.wantFaults) {
				t.Errorf("got priority %d faults %q, want %d %q", got.priority, got.faults, tt.wantPrio, tt.wantFaults)
			}
		})
	}
}

func TestScriptStateRiseFall(t *testing.T) {
	tests := []struct {
		name    string
		results []bool
		want    []bool // healthy after each result
	}{
		{"first success decides", []bool{true}, []bool{true}},
		{"first failure decides", []bool{false}, []bool{false}},
		{"one failure is not enough (fall 2)", []bool{true, false, true, false}, []bool{true, true, true, true}},
		{"two failures in a row", []bool{true, false, false}, []bool{true, true, false}},
		{"three successes to rise (rise 3)", []bool{false, true, true, true}, []bool{false, false, false, true}},
		{"a success resets the fall streak", []bool{true, false, true, false, false}, []bool{true, true, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s scriptState
			var got []bool
			for _, ok := range tt.results {
				s, _ = s.observe(ok, 3, 2)
				got = append(got, s.healthy)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestScriptTrackerTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		changes := make(chan bool, 10)
		hang := func(ctx context.Context, argv []string) error {
			<-ctx.Done() // a script that never exits by itself
			return ctx.Err()
		}
		s := &scriptTracker{
			cfg: TrackScript{Name: "s", Command: []string{"hang"}, Interval: 2 * time.Second, Timeout: time.Second, Rise: 1, Fall: 1},
			run: hang, clock: clk, onChange: func(h bool) { changes <- h },
		}
		done := make(chan struct{})
		exited := make(chan struct{})
		go func() { s.loop(done); close(exited) }()
		advance(clk, 999*time.Millisecond)
		if len(changes) != 0 {
			t.Fatalf("changed before the timeout")
		}
		advance(clk, time.Millisecond)
		if h := <-changes; h {
			t.Errorf("a timed-out script counts as healthy")
		}
		close(done)
		<-exited
	})
}

func TestPollLinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		state := map[string]bool{"eth0": true, "eth1": true}
		var got []string
		done := make(chan struct{})
		exited := make(chan struct{})
		go func() {
			pollLinks(done, clk, time.Second, func() []string { return []string{"eth0", "eth1"} },
				func(n string) (bool, error) { return state[n], nil },
				func(n string, up bool, err error) {
					got = append(got, n+map[bool]string{true: " up", false: " down"}[up])
				})
			close(exited)
		}()
		synctest.Wait()
		state["eth1"] = false
		advance(clk, time.Second)
		advance(clk, time.Second) // no change, no report
		close(done)
		<-exited
		if diff := cmp.Diff([]string{"eth0 up", "eth1 up", "eth1 down"}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}
