package dataplane

import "time"

// clock is the time source of the dataplane's timers. Tests substitute a fake so that
// they move time forward instead of sleeping.
type clock interface {
	Now() time.Time
	// NewTicker returns a channel that receives the time every d, and a function that
	// stops it.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
