package clock_test

import (
	"testing"
	"time"

	"lbd/internal/clock"
)

// TestSystem checks that the real clock's timers reach package time's: the waits are
// on the timers under test, a millisecond each.
func TestSystem(t *testing.T) {
	clk := clock.System()
	before := time.Now()
	if now := clk.Now(); now.Before(before) {
		t.Errorf("Now() = %v, before time.Now() %v", now, before)
	}
	tm := clk.NewTimer(time.Millisecond)
	if v := <-tm.C(); v.Before(before) {
		t.Errorf("timer sent %v, before it was made (%v)", v, before)
	}
	if tm.Stop() {
		t.Error("Stop of a fired timer = true")
	}
	if tm.Reset(time.Hour) {
		t.Error("Reset of a fired timer = true")
	}
	if !tm.Stop() {
		t.Error("Stop of a reset timer = false")
	}

	ran := make(chan struct{})
	af := clk.AfterFunc(time.Millisecond, func() { close(ran) })
	if af.C() != nil {
		t.Error("AfterFunc's timer has a channel")
	}
	<-ran

	tick := clk.NewTicker(time.Millisecond)
	<-tick.C()
	tick.Reset(time.Millisecond)
	<-tick.C()
	tick.Stop()
}
