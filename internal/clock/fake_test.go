package clock_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"lbd/internal/clock"
)

var t0 = clock.FakeStart

// received returns what c holds now, without waiting.
func received(c <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-c:
		return v, true
	default:
		return time.Time{}, false
	}
}

func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", name)
		}
	}()
	f()
}

func TestFakeNowAdvanceSet(t *testing.T) {
	clk := clock.NewFake()
	if got := clk.Now(); !got.Equal(t0) {
		t.Fatalf("Now() = %v, want FakeStart %v", got, t0)
	}
	clk.Advance(3 * time.Second)
	if got, want := clk.Now(), t0.Add(3*time.Second); !got.Equal(want) {
		t.Errorf("after Advance(3s): Now() = %v, want %v", got, want)
	}
	clk.Advance(0)
	if got, want := clk.Now(), t0.Add(3*time.Second); !got.Equal(want) {
		t.Errorf("after Advance(0): Now() = %v, want %v", got, want)
	}
	back := t0.Add(-time.Hour)
	clk.Set(back)
	if got := clk.Now(); !got.Equal(back) {
		t.Errorf("after Set backward: Now() = %v, want %v", got, back)
	}
	mustPanic(t, "Advance(-1)", func() { clk.Advance(-1) })
}

func TestFakeTimerFiresAtItsDeadline(t *testing.T) {
	clk := clock.NewFake()
	tm := clk.NewTimer(5 * time.Second)
	if n := clk.Armed(); n != 1 {
		t.Fatalf("Armed() = %d, want 1", n)
	}
	clk.Advance(5*time.Second - time.Nanosecond)
	if v, ok := received(tm.C()); ok {
		t.Fatalf("fired at %v, before its deadline", v)
	}
	clk.Advance(time.Nanosecond)
	v, ok := received(tm.C())
	if want := t0.Add(5 * time.Second); !ok || !v.Equal(want) {
		t.Fatalf("after the deadline: received %v, %v; want %v, true", v, ok, want)
	}
	if n := clk.Armed(); n != 0 {
		t.Errorf("Armed() after firing = %d, want 0", n)
	}
	clk.Advance(time.Hour)
	if v, ok := received(tm.C()); ok {
		t.Errorf("a one-shot timer fired twice (again at %v)", v)
	}
}

func TestFakeTimersFireInDeadlineOrder(t *testing.T) {
	// Each timer receives the time it fired at. Had a later deadline fired before an
	// earlier one, the earlier timer would receive the later time.
	clk := clock.NewFake()
	ds := []time.Duration{3 * time.Second, time.Second, 2 * time.Second, 2 * time.Second, 7 * time.Second}
	var timers []clock.Timer
	for _, d := range ds {
		timers = append(timers, clk.NewTimer(d))
	}
	tick := clk.NewTicker(1500 * time.Millisecond)
	if next, ok := clk.Next(); !ok || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("Next() = %v, %v; want %v, true", next, ok, t0.Add(time.Second))
	}
	clk.Advance(5 * time.Second)
	for i, d := range ds {
		v, ok := received(timers[i].C())
		switch {
		case d > 5*time.Second && ok:
			t.Errorf("timer %d (%v) fired at %v, after Advance(5s)", i, d, v)
		case d <= 5*time.Second && (!ok || !v.Equal(t0.Add(d))):
			t.Errorf("timer %d (%v): received %v, %v; want %v", i, d, v, ok, t0.Add(d))
		}
	}
	// The ticker's first tick waits in its channel; the ones at 3s and 4.5s were dropped.
	if v, ok := received(tick.C()); !ok || !v.Equal(t0.Add(1500*time.Millisecond)) {
		t.Errorf("ticker: received %v, %v; want %v", v, ok, t0.Add(1500*time.Millisecond))
	}
	if got, want := clk.Now(), t0.Add(5*time.Second); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
	if next, ok := clk.Next(); !ok || !next.Equal(t0.Add(6*time.Second)) {
		t.Errorf("Next() = %v, %v; want the tick at %v", next, ok, t0.Add(6*time.Second))
	}
}

func TestFakeNonPositiveDurationFiresAtOnce(t *testing.T) {
	clk := clock.NewFake()
	for _, d := range []time.Duration{0, -time.Second} {
		tm := clk.NewTimer(d)
		if v, ok := received(tm.C()); !ok || !v.Equal(t0) {
			t.Errorf("NewTimer(%v): received %v, %v; want %v at once", d, v, ok, t0)
		}
		ran := make(chan struct{})
		clk.AfterFunc(d, func() { close(ran) })
		<-ran
	}
	if n := clk.Armed(); n != 0 {
		t.Errorf("Armed() = %d, want 0", n)
	}
	mustPanic(t, "NewTicker(0)", func() { clk.NewTicker(0) })
	mustPanic(t, "Ticker.Reset(0)", func() { clk.NewTicker(time.Second).Reset(0) })
}

func TestFakeStop(t *testing.T) {
	clk := clock.NewFake()
	tm := clk.NewTimer(time.Second)
	if !tm.Stop() {
		t.Error("Stop of an armed timer = false, want true")
	}
	if tm.Stop() {
		t.Error("second Stop = true, want false")
	}
	clk.Advance(time.Hour)
	if v, ok := received(tm.C()); ok {
		t.Errorf("a stopped timer fired at %v", v)
	}

	// A timer that fired and was not received from: Stop reports false and takes the
	// stale time, as time.Timer does since Go 1.23.
	tm = clk.NewTimer(time.Second)
	clk.Advance(time.Second)
	if tm.Stop() {
		t.Error("Stop of a fired timer = true, want false")
	}
	if v, ok := received(tm.C()); ok {
		t.Errorf("received the stale time %v after Stop", v)
	}

	tick := clk.NewTicker(time.Second)
	clk.Advance(time.Second)
	tick.Stop()
	if v, ok := received(tick.C()); ok {
		t.Errorf("received the stale tick %v after Stop", v)
	}
	clk.Advance(time.Hour)
	if v, ok := received(tick.C()); ok {
		t.Errorf("a stopped ticker ticked at %v", v)
	}
	if n := clk.Armed(); n != 0 {
		t.Errorf("Armed() = %d, want 0", n)
	}
}

func TestFakeReset(t *testing.T) {
	clk := clock.NewFake()
	tm := clk.NewTimer(time.Second)
	clk.Advance(500 * time.Millisecond)
	if !tm.Reset(time.Second) {
		t.Error("Reset of an armed timer = false, want true")
	}
	clk.Advance(999 * time.Millisecond)
	if v, ok := received(tm.C()); ok {
		t.Fatalf("fired at %v, before its new deadline", v)
	}
	clk.Advance(time.Millisecond)
	if v, ok := received(tm.C()); !ok || !v.Equal(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("received %v, %v; want %v", v, ok, t0.Add(1500*time.Millisecond))
	}
	if tm.Reset(time.Second) {
		t.Error("Reset of a fired timer = true, want false")
	}
	clk.Advance(time.Second)
	if v, ok := received(tm.C()); !ok || !v.Equal(t0.Add(2500*time.Millisecond)) {
		t.Errorf("after a second Reset: received %v, %v; want %v", v, ok, t0.Add(2500*time.Millisecond))
	}

	tick := clk.NewTicker(time.Second)
	clk.Advance(time.Second) // a tick waits in the channel
	tick.Reset(10 * time.Second)
	if v, ok := received(tick.C()); ok {
		t.Errorf("received the stale tick %v after Reset", v)
	}
	clk.Advance(9 * time.Second)
	if v, ok := received(tick.C()); ok {
		t.Errorf("ticked at %v, before the new period ended", v)
	}
	clk.Advance(time.Second)
	if v, ok := received(tick.C()); !ok || !v.Equal(t0.Add(13500*time.Millisecond)) {
		t.Errorf("received %v, %v; want %v", v, ok, t0.Add(13500*time.Millisecond))
	}
}

func TestFakeSetBackwardKeepsDeadlines(t *testing.T) {
	clk := clock.NewFake()
	tm := clk.NewTimer(5 * time.Second)
	clk.Set(t0.Add(-time.Hour))
	if v, ok := received(tm.C()); ok {
		t.Fatalf("fired at %v on a backward step", v)
	}
	clk.Set(t0.Add(5*time.Second - time.Nanosecond))
	if v, ok := received(tm.C()); ok {
		t.Fatalf("fired at %v, before its deadline", v)
	}
	clk.Set(t0.Add(time.Minute))
	if v, ok := received(tm.C()); !ok || !v.Equal(t0.Add(5*time.Second)) {
		t.Errorf("received %v, %v; want %v", v, ok, t0.Add(5*time.Second))
	}
}

func TestFakeAfterFunc(t *testing.T) {
	clk := clock.NewFake()
	// The callback reads the clock: had Advance called it while holding the clock, it
	// would deadlock; in its own goroutine it runs once Advance has returned.
	got := make(chan time.Time, 1)
	tm := clk.AfterFunc(time.Second, func() { got <- clk.Now() })
	if tm.C() != nil {
		t.Error("AfterFunc's timer has a channel")
	}
	clk.Advance(3 * time.Second)
	if v := <-got; !v.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("the callback read %v, want the time after Advance, %v", v, t0.Add(3*time.Second))
	}
	if tm.Stop() {
		t.Error("Stop after the call = true, want false")
	}

	var calls atomic.Int32
	tm = clk.AfterFunc(time.Second, func() { calls.Add(1) })
	if !tm.Stop() {
		t.Error("Stop before the call = false, want true")
	}
	clk.Advance(time.Hour)
	clk.AfterFunc(0, func() {}) // run a goroutine through, so a wrong call would show
	if n := calls.Load(); n != 0 {
		t.Errorf("a stopped AfterFunc ran %d times", n)
	}
}

// TestFakeCallbackArmsAfterAdvance: a timer armed by a callback that a firing set off
// counts from the time Advance left, so a chain of timers is stepped one link at a time.
func TestFakeCallbackArmsAfterAdvance(t *testing.T) {
	clk := clock.NewFake()
	clk.AfterFunc(time.Second, func() { clk.AfterFunc(time.Second, func() {}) })
	clk.Advance(5 * time.Second)
	clk.BlockUntil(1)
	if next, ok := clk.Next(); !ok || !next.Equal(t0.Add(6*time.Second)) {
		t.Errorf("Next() = %v, %v; want %v", next, ok, t0.Add(6*time.Second))
	}
}

// TestFakeBlockUntil drives workers that each arm a timer, wait for it and arm the next:
// BlockUntil keeps the driver from moving time before every worker has armed.
func TestFakeBlockUntil(t *testing.T) {
	const workers, rounds = 8, 50
	clk := clock.NewFake()
	clk.BlockUntil(0) // returns at once
	var fired atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				if w%2 == 0 {
					tm := clk.NewTimer(time.Second)
					<-tm.C()
				} else {
					done := make(chan struct{})
					clk.AfterFunc(time.Second, func() { close(done) })
					<-done
				}
				fired.Add(1)
			}
		})
	}
	for range rounds {
		clk.BlockUntil(workers)
		clk.Advance(time.Second)
	}
	wg.Wait()
	if n := fired.Load(); n != workers*rounds {
		t.Errorf("fired %d times, want %d", n, workers*rounds)
	}
	if got, want := clk.Now(), t0.Add(rounds*time.Second); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
}

// chain runs three timers in a row, each armed only after the previous one fired, and
// returns when each fired, counted from FakeStart.
func chain(clk *clock.Fake) <-chan []time.Duration {
	out := make(chan []time.Duration, 1)
	go func() {
		var seen []time.Duration
		for _, d := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
			fired := make(chan struct{})
			clk.AfterFunc(d, func() { close(fired) })
			<-fired
			seen = append(seen, clk.Now().Sub(t0))
		}
		out <- seen
	}()
	return out
}

func sameDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFakeInSynctestBubble steps a Fake one deadline at a time with Next and lets the
// goroutines settle between steps with synctest.Wait.
func TestFakeInSynctestBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		out := chain(clk)
		end := t0.Add(time.Minute)
		for {
			synctest.Wait()
			next, ok := clk.Next()
			if !ok || next.After(end) {
				clk.Set(end)
				break
			}
			clk.Set(next)
		}
		want := []time.Duration{time.Second, 3 * time.Second, 6 * time.Second}
		if seen := <-out; !sameDurations(seen, want) {
			t.Errorf("seen %v, want %v", seen, want)
		}
	})
}

// TestFakeAdvanceSettled: the same stepping, by AdvanceSettled.
func TestFakeAdvanceSettled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		out := chain(clk)
		settles := 0
		clk.AdvanceSettled(5*time.Second, func() { settles++; synctest.Wait() })
		if got, want := clk.Now(), t0.Add(5*time.Second); !got.Equal(want) {
			t.Errorf("Now() = %v, want %v", got, want)
		}
		if settles != 4 { // before the firings at 1s and 3s, before the end, after it
			t.Errorf("settle called %d times, want 4", settles)
		}
		clk.AdvanceSettled(time.Minute, synctest.Wait)
		want := []time.Duration{time.Second, 3 * time.Second, 6 * time.Second}
		if seen := <-out; !sameDurations(seen, want) {
			t.Errorf("seen %v, want %v", seen, want)
		}
		mustPanic(t, "AdvanceSettled(-1)", func() { clk.AdvanceSettled(-1, func() {}) })
	})
}
