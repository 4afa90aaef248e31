package clock

import (
	"testing"
	"time"
)

// TestFakeTiesFireInArmingOrder: of timers with one deadline, the one armed first is
// the next to fire, whatever order they sit in.
func TestFakeTiesFireInArmingOrder(t *testing.T) {
	f := NewFake()
	a := f.NewTimer(time.Second).(*fakeTimer)
	b := f.NewTimer(time.Second).(*fakeTimer)
	c := f.NewTimer(time.Second).(*fakeTimer)
	a.Reset(time.Second) // re-armed last
	f.mu.Lock()
	f.timers[0], f.timers[2] = f.timers[2], f.timers[0]
	var order []*fakeTimer
	for f.earliest() != nil {
		e := f.earliest()
		order = append(order, e)
		f.fire(e)
	}
	f.mu.Unlock()
	if len(order) != 3 || order[0] != b || order[1] != c || order[2] != a {
		t.Errorf("fired in the wrong order: got %p %p %p, want b=%p c=%p a=%p", order[0], order[1], order[2], b, c, a)
	}
}
