// Package clock is lbd's one source of time: the Clock interface that every timer in
// dataplane and vip goes through, the System clock that production code uses, and Fake,
// a clock whose time moves only when a test moves it.
//
// Code that reads the time or waits for it takes a Clock from its config or constructor
// (defaulting to System() when none is given) and never calls time.Now, time.NewTimer,
// time.NewTicker or time.AfterFunc itself. Its tests pass a Fake, wait with BlockUntil
// until the code under test has armed its timers, and step time with Advance instead of
// sleeping.
//
// Files:
//
//	clock.go  Clock, Timer, Ticker, and System (the real clock)
//	fake.go   Fake: Advance, AdvanceSettled, Set, BlockUntil, Next, Armed
package clock

import "time"

// Clock is a source of time and of timers, as package time provides them.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a Timer that sends the time on its channel once, after at least d.
	NewTimer(d time.Duration) Timer
	// NewTicker returns a Ticker that sends the time on its channel every d; it drops
	// ticks for a slow receiver, as time.Ticker does. d must be greater than zero.
	NewTicker(d time.Duration) Ticker
	// AfterFunc waits for d and then calls f in its own goroutine. The Timer it returns
	// has no channel (C returns nil); its Stop cancels the call.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a one-shot timer of a Clock, as time.Timer.
type Timer interface {
	// C is the channel the time is sent on when the timer fires; nil for a timer made
	// by AfterFunc.
	C() <-chan time.Time
	// Stop prevents the timer from firing. It reports whether it stopped it: false when
	// the timer had already fired or been stopped. After Stop, no stale time is received
	// from C.
	Stop() bool
	// Reset changes the timer to fire after d, as Stop and a new start would. It reports
	// whether the timer had been active.
	Reset(d time.Duration) bool
}

// Ticker is a periodic timer of a Clock, as time.Ticker.
type Ticker interface {
	// C is the channel the ticks are sent on.
	C() <-chan time.Time
	// Stop turns the ticker off; no more ticks are sent.
	Stop()
	// Reset stops the ticker and restarts it with period d. d must be greater than zero.
	Reset(d time.Duration)
}

// System returns the real clock: package time's.
func System() Clock { return system{} }

type system struct{}

func (system) Now() time.Time                   { return time.Now() }
func (system) NewTimer(d time.Duration) Timer   { return systemTimer{time.NewTimer(d)} }
func (system) NewTicker(d time.Duration) Ticker { return systemTicker{time.NewTicker(d)} }

func (system) AfterFunc(d time.Duration, f func()) Timer {
	return systemTimer{time.AfterFunc(d, f)}
}

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time        { return t.t.C }
func (t systemTimer) Stop() bool                 { return t.t.Stop() }
func (t systemTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

type systemTicker struct{ t *time.Ticker }

func (t systemTicker) C() <-chan time.Time   { return t.t.C }
func (t systemTicker) Stop()                 { t.t.Stop() }
func (t systemTicker) Reset(d time.Duration) { t.t.Reset(d) }
