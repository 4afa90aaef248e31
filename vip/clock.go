package vip

import "time"

// Clock is the time source of every timer in the package: the VRRP timers, the
// announcement bursts, the track script intervals and the link polling. Tests
// substitute a fake that moves time forward instead of sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on its channel once, after d.
	NewTimer(d time.Duration) ClockTimer
}

// ClockTimer is a one-shot timer of a Clock.
type ClockTimer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped it.
	Stop() bool
}

// SystemClock is the real clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) ClockTimer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }
