package clock

import (
	"slices"
	"sync"
	"time"
)

// Fake is a Clock whose time moves only when a test moves it, with Advance or Set. Its
// timers fire in deadline order (ties in the order they were armed), each seeing Now at
// its own deadline, and each Timer sends the deadline it fired at. AfterFunc callbacks
// run in their own goroutine, as with time.AfterFunc.
//
// Advance holds the clock while it fires: code that a firing sets off (a goroutine
// receiving from a timer's channel, an AfterFunc callback) reads the time and arms new
// timers only after Advance has returned, at the new time. A test that drives such code
// waits for it with BlockUntil before it moves time again, so it never races the
// goroutine it drives:
//
//	clk := clock.NewFake()
//	go run(clk)       // arms a timer for 5s
//	clk.BlockUntil(1) // run has armed it
//	clk.Advance(5 * time.Second)
//
// A Fake is safe for concurrent use. Its zero value is not; use NewFake.
type Fake struct {
	// mu guards now, seq and timers; armed (on mu) is signalled when a timer is armed.
	mu     sync.Mutex
	armed  *sync.Cond
	now    time.Time
	seq    uint64
	timers []*fakeTimer // the armed ones, in no particular order
}

// FakeStart is the time a new Fake starts at.
var FakeStart = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// NewFake returns a Fake whose time is FakeStart.
func NewFake() *Fake {
	f := &Fake{now: FakeStart}
	f.armed = sync.NewCond(&f.mu)
	return f
}

var _ Clock = (*Fake)(nil)

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires when the fake time reaches Now()+d; at once if d
// is not positive.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, ch: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arm(t, d)
	return t
}

// AfterFunc returns a timer that calls fn in its own goroutine when the fake time
// reaches Now()+d; at once if d is not positive.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arm(t, d)
	return t
}

// NewTicker returns a ticker that ticks every d of fake time. It panics if d is not
// positive, as time.NewTicker does.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for Fake.NewTicker")
	}
	t := &fakeTimer{f: f, ch: make(chan time.Time, 1), period: d}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arm(t, d)
	return fakeTicker{t}
}

// Advance moves the fake time forward by d, firing every timer whose deadline it
// passes (or reaches), in deadline order. A ticker fires once for each of its periods
// that Advance passes; ticks its receiver has not taken are dropped, as time.Ticker
// drops them. Advance panics if d is negative.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: negative duration for Fake.Advance")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moveTo(f.now.Add(d))
}

// AdvanceSettled moves the fake time forward by d as Advance does, but one deadline at
// a time, calling settle before each step and after the last. With synctest.Wait as
// settle, in a synctest bubble, every goroutine has finished what a firing set off
// (arming new timers included, which fire within the same call when they fall due by
// its end) before the next firing, each at the time of its own deadline:
//
//	synctest.Test(t, func(t *testing.T) {
//		clk := clock.NewFake()
//		go run(clk)
//		clk.AdvanceSettled(time.Minute, synctest.Wait)
//	})
func (f *Fake) AdvanceSettled(d time.Duration, settle func()) {
	if d < 0 {
		panic("clock: negative duration for Fake.AdvanceSettled")
	}
	f.mu.Lock()
	end := f.now.Add(d)
	f.mu.Unlock()
	for {
		settle()
		f.mu.Lock()
		t := f.earliest()
		if t == nil || t.when.After(end) {
			f.moveTo(end)
			f.mu.Unlock()
			settle()
			return
		}
		f.moveTo(t.when)
		f.mu.Unlock()
	}
}

// Set moves the fake time to t. Forward, it fires timers as Advance does; backward (a
// clock step, as NTP makes), it fires nothing and every armed timer keeps its deadline.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moveTo(t)
}

// BlockUntil waits until at least n timers and tickers are armed: created or reset and
// neither fired nor stopped. A ticker stays armed until it is stopped.
func (f *Fake) BlockUntil(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.timers) < n {
		f.armed.Wait()
	}
}

// Armed returns how many timers and tickers are armed.
func (f *Fake) Armed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Next returns the earliest deadline of the armed timers and tickers, and false when
// none is armed. A test that must let the code under test react to each firing before
// the next one steps with it: Set(next), wait for the code, repeat.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.earliest(); t != nil {
		return t.when, true
	}
	return time.Time{}, false
}

// moveTo fires the timers due by end, in deadline order, and leaves the time at end.
// f.mu is held.
func (f *Fake) moveTo(end time.Time) {
	for {
		t := f.earliest()
		if t == nil || t.when.After(end) {
			break
		}
		if t.when.After(f.now) {
			f.now = t.when
		}
		f.fire(t)
	}
	f.now = end
}

// earliest returns the armed timer that fires first, or nil. f.mu is held.
func (f *Fake) earliest() *fakeTimer {
	var first *fakeTimer
	for _, t := range f.timers {
		if first == nil || t.when.Before(first.when) || (t.when.Equal(first.when) && t.seq < first.seq) {
			first = t
		}
	}
	return first
}

// arm starts t to fire after d, firing it at once if d is not positive. f.mu is held.
func (f *Fake) arm(t *fakeTimer, d time.Duration) {
	f.seq++
	t.seq = f.seq
	t.when = f.now.Add(d)
	if d <= 0 && t.period == 0 {
		f.fire(t)
		return
	}
	f.timers = append(f.timers, t)
	f.armed.Broadcast()
}

// disarm stops t and takes any time it sent but nobody received, so that no stale
// value is received after Stop or Reset (as with package time since Go 1.23). It
// reports whether t was armed. f.mu is held.
func (f *Fake) disarm(t *fakeTimer) bool {
	i := slices.Index(f.timers, t)
	if i >= 0 {
		f.timers = slices.Delete(f.timers, i, i+1)
	}
	if t.ch != nil {
		select {
		case <-t.ch:
		default:
		}
	}
	return i >= 0
}

// fire sends the time on t's channel or starts its callback, and re-arms a ticker for
// its next period. f.mu is held.
func (f *Fake) fire(t *fakeTimer) {
	if t.ch != nil {
		select {
		case t.ch <- f.now:
		default: // a ticker whose receiver is behind drops the tick
		}
	}
	if t.fn != nil {
		go t.fn()
	}
	if t.period > 0 {
		t.when = t.when.Add(t.period)
		return
	}
	if i := slices.Index(f.timers, t); i >= 0 {
		f.timers = slices.Delete(f.timers, i, i+1)
	}
}

// fakeTimer is a timer, an AfterFunc or (with a period) a ticker of a Fake.
type fakeTimer struct {
	f  *Fake
	ch chan time.Time // nil for AfterFunc
	fn func()         // nil unless AfterFunc

	// period, when and seq are guarded by f.mu.
	period time.Duration // > 0 for a ticker
	when   time.Time
	seq    uint64
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.disarm(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.f.disarm(t)
	t.f.arm(t, d)
	return was
}

// fakeTicker is the Ticker face of a fakeTimer with a period.
type fakeTicker struct{ t *fakeTimer }

func (k fakeTicker) C() <-chan time.Time { return k.t.ch }
func (k fakeTicker) Stop()               { k.t.Stop() }

func (k fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	k.t.f.mu.Lock()
	defer k.t.f.mu.Unlock()
	k.t.period = d
	k.t.f.disarm(k.t)
	k.t.f.arm(k.t, d)
}
