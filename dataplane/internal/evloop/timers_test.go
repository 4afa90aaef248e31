//go:build linux

package evloop

import (
	"fmt"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// TestTimers drives the deadline heap alone: timers fire in deadline order, a timer
// whose owner was active goes back with its later deadline, and Timeout says how long a
// wait may sleep.
func TestTimers(t *testing.T) {
	type step struct {
		now     int64
		fired   string // the timers fired, in order
		timeout int    // Timeout(now) after the step
	}
	for _, tc := range []struct {
		name  string
		at    []int64 // a timer per entry, named by its index, due at at[i]
		later map[int]int64
		steps []step
	}{
		{name: "empty", steps: []step{{now: 0, fired: "[]", timeout: -1}}},
		{
			name: "deadline order",
			at:   []int64{30 * ms, 10 * ms, 20 * ms, 10 * ms},
			steps: []step{
				{now: 0, fired: "[]", timeout: 10},
				{now: 10 * ms, fired: "[1 3]", timeout: 10},
				{now: 35 * ms, fired: "[2 0]", timeout: -1},
			},
		},
		{
			name:  "a timer moved on",
			at:    []int64{10 * ms, 20 * ms},
			later: map[int]int64{0: 50 * ms},
			steps: []step{
				{now: 10 * ms, fired: "[0]", timeout: 10},
				{now: 20 * ms, fired: "[1]", timeout: 30},
				{now: 50 * ms, fired: "[0]", timeout: -1},
			},
		},
		{
			name: "timeout rounds up",
			at:   []int64{100 * ms},
			steps: []step{
				{now: 99*ms + 1, fired: "[]", timeout: 1},
				{now: 100*ms - 1, fired: "[]", timeout: 1},
				{now: 0, fired: "[]", timeout: 100},
			},
		},
		{
			name: "a late wake-up",
			at:   []int64{10 * ms, 20 * ms, 30 * ms},
			steps: []step{
				{now: time.Hour.Nanoseconds(), fired: "[0 1 2]", timeout: -1},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ts Timers
			var fired []int
			timers := make([]Timer, len(tc.at))
			for i, at := range tc.at {
				timers[i].Fire = func(now int64) int64 {
					fired = append(fired, i)
					later := tc.later[i]
					delete(tc.later, i)
					return later
				}
				ts.Add(&timers[i], at)
			}
			for _, st := range tc.steps {
				fired = nil
				ts.Expire(st.now)
				if got := fmt.Sprint(fired); got != st.fired {
					t.Errorf("at %v: fired %v, want %v", time.Duration(st.now), got, st.fired)
				}
				if got := ts.Timeout(st.now); got != st.timeout {
					t.Errorf("at %v: timeout = %dms, want %dms", time.Duration(st.now), got, st.timeout)
				}
			}
		})
	}
}

func TestTimersRemove(t *testing.T) {
	var ts Timers
	timers := make([]Timer, 5)
	var fired []int
	for i := range timers {
		timers[i].Fire = func(int64) int64 { fired = append(fired, i); return 0 }
		ts.Add(&timers[i], int64(i+1)*ms)
	}
	ts.Remove(&timers[2])
	ts.Remove(&timers[2]) // not there: nothing
	if timers[2].Pending() || !timers[3].Pending() || timers[3].Due() != 4*ms {
		t.Errorf("pending: removed %v, other %v due %v", timers[2].Pending(), timers[3].Pending(), timers[3].Due())
	}
	if ts.Len() != 4 {
		t.Errorf("Len = %d, want 4", ts.Len())
	}
	ts.Expire(time.Hour.Nanoseconds())
	if fmt.Sprint(fired) != "[0 1 3 4]" {
		t.Errorf("fired %v, want [0 1 3 4]", fired)
	}
	if ts.Len() != 0 || timers[0].Pending() {
		t.Errorf("after expiry: Len = %d, first pending %v", ts.Len(), timers[0].Pending())
	}
}

// TestTimersFireChanges: a timer that fires may remove another due at the same time,
// and add a timer that is due already, which fires in the same expiry.
func TestTimersFireChanges(t *testing.T) {
	var ts Timers
	var a, b, c Timer
	var fired []string
	a.Fire = func(now int64) int64 {
		fired = append(fired, "a")
		ts.Remove(&b)
		ts.Add(&c, now)
		return 0
	}
	b.Fire = func(int64) int64 { fired = append(fired, "b"); return 0 }
	c.Fire = func(int64) int64 { fired = append(fired, "c"); return 0 }
	ts.Add(&a, 1*ms)
	ts.Add(&b, 2*ms)
	ts.Expire(5 * ms)
	if fmt.Sprint(fired) != "[a c]" {
		t.Errorf("fired %v, want [a c]", fired)
	}
}

// TestTimersAllocs: once the heap has grown, adding, moving and firing timers
// allocates nothing (the loops' per-event path).
func TestTimersAllocs(t *testing.T) {
	var ts Timers
	timers := make([]Timer, 64)
	now := int64(0)
	for i := range timers {
		timers[i].Fire = func(n int64) int64 { return n + int64(i+1)*ms }
		ts.Add(&timers[i], int64(i)*ms)
	}
	allocs := testing.AllocsPerRun(100, func() {
		now += ms
		ts.Expire(now)
		ts.Remove(&timers[7])
		ts.Add(&timers[7], now+3*ms)
		ts.Timeout(now)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per expiry, want 0", allocs)
	}
}
