//go:build linux

package evloop

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lbd/internal/clock"
)

// testLog sends a loop's log to t.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// testLoop returns a running loop on clk, stopped when the test ends.
func testLoop(t *testing.T, clk Clock) *Loop {
	t.Helper()
	l, err := New(clk, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	return l
}

// do runs f on l and waits for it; false when l has stopped.
func do(l *Loop, f func()) bool {
	ran := make(chan struct{})
	if !l.Post(func() { f(); close(ran) }) {
		return false
	}
	<-ran
	return true
}

func TestPostRunsInOrder(t *testing.T) {
	l := testLoop(t, clock.NewFake())
	var got []int // touched on the loop only
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		if !l.Post(func() { got = append(got, i); wg.Done() }) {
			t.Fatal("Post on a running loop returned false")
		}
	}
	wg.Wait()
	var n int
	do(l, func() {
		n = len(got)
		for i, v := range got {
			if v != i {
				t.Errorf("function %d ran as number %d", v, i)
			}
		}
	})
	if n != 100 {
		t.Errorf("%d functions ran, want 100", n)
	}
}

// recorder is a Handler that records what the loop calls, and takes its descriptor out
// of the table when stopped.
type recorder struct {
	l      *Loop
	fd     int
	reg    uint32
	mu     sync.Mutex
	events []uint32
	stops  int
}

func (r *recorder) Event(ev uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	var b [64]byte
	unix.Read(r.fd, b[:]) // level-triggered: drain it
}

func (r *recorder) Stop() {
	r.mu.Lock()
	r.stops++
	r.mu.Unlock()
	r.l.Remove(r.fd, &r.reg)
}

func (r *recorder) seen() (events []uint32, stops int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint32(nil), r.events...), r.stops
}

// testPipe returns a nonblocking pipe, closed when the test ends.
func testPipe(t *testing.T) (rd, wr int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p[0], p[1]
}

// waitEvents waits until r has seen n events.
func waitEvents(t *testing.T, r *recorder, n int) []uint32 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev, _ := r.seen()
		if len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events after 5s, want %d", len(ev), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRegister(t *testing.T) {
	l := testLoop(t, clock.NewFake())
	rd, wr := testPipe(t)
	r := &recorder{l: l, fd: rd}
	do(l, func() {
		l.SetFD(rd, r)
		if e := l.Register(rd, &r.reg, unix.EPOLLIN); e != 0 {
			t.Errorf("Register: %v", e)
		}
	})
	unix.Write(wr, []byte("x"))
	if ev := waitEvents(t, r, 1); ev[0]&unix.EPOLLIN == 0 {
		t.Errorf("event %#x, want EPOLLIN", ev[0])
	}

	// Waiting for nothing takes the descriptor out of the epoll set: no event.
	do(l, func() {
		if e := l.Register(rd, &r.reg, 0); e != 0 || r.reg != 0 {
			t.Errorf("Register(0): %v, reg %#x", e, r.reg)
		}
	})
	unix.Write(wr, []byte("y"))
	do(l, func() {}) // a wake-up after the write
	do(l, func() {})
	if ev, _ := r.seen(); len(ev) != 1 {
		t.Errorf("%d events while registered for none, want 1 in all", len(ev))
	}

	// Registered again, the pending byte is reported; Remove ends it.
	do(l, func() { l.Register(rd, &r.reg, unix.EPOLLIN) })
	waitEvents(t, r, 2)
	var handlers []string
	do(l, func() {
		l.Handlers(func(fd int, x Handler) { handlers = append(handlers, fmt.Sprint(fd, x == r)) })
		l.Remove(rd, &r.reg)
	})
	if want := fmt.Sprint(rd, true); fmt.Sprint(handlers) != "["+want+"]" {
		t.Errorf("handlers %v, want [%s]", handlers, want)
	}
	unix.Write(wr, []byte("z"))
	do(l, func() {})
	do(l, func() {})
	var left int
	do(l, func() { l.Handlers(func(int, Handler) { left++ }) })
	if ev, _ := r.seen(); len(ev) != 2 || r.reg != 0 || left != 0 {
		t.Errorf("after Remove: %d events (want 2), reg %#x, %d handlers", len(ev), r.reg, left)
	}
}

// TestStop: Stop runs what was posted, stops every handler once, and returns once the
// loop's goroutine has; Post fails from then on, and Stop may be called again.
func TestStop(t *testing.T) {
	l, err := New(clock.NewFake(), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]*recorder, 3)
	for i := range rs {
		rd, _ := testPipe(t)
		rs[i] = &recorder{l: l, fd: rd}
		r := rs[i]
		if i == 2 {
			continue // added by a function posted just before Stop
		}
		do(l, func() {
			l.SetFD(r.fd, r)
			l.Register(r.fd, &r.reg, unix.EPOLLIN)
		})
	}
	var ranLate bool
	l.Post(func() {
		ranLate = true
		l.SetFD(rs[2].fd, rs[2])
	})
	l.Stop()
	select {
	case <-l.Done():
	default:
		t.Fatal("Done open after Stop")
	}
	if !ranLate {
		t.Error("a function posted before Stop did not run")
	}
	for i, r := range rs {
		if _, stops := r.seen(); stops != 1 {
			t.Errorf("handler %d stopped %d times, want 1", i, stops)
		}
	}
	if l.Post(func() { t.Error("ran after Stop") }) {
		t.Error("Post after Stop returned true")
	}
	l.Stop()
}

// TestTimersFireOnLoop: the loop fires its timers in deadline order once its clock has
// passed them, and not before.
func TestTimersFireOnLoop(t *testing.T) {
	clk := clock.NewFake()
	l := testLoop(t, clk)
	var mu sync.Mutex
	var fired []string
	timers := map[string]*Timer{}
	do(l, func() {
		for name, at := range map[string]time.Duration{"c": 30 * time.Millisecond, "a": 10 * time.Millisecond, "b": 20 * time.Millisecond, "b2": 20 * time.Millisecond} {
			tm := &Timer{Fire: func(now int64) int64 {
				mu.Lock()
				defer mu.Unlock()
				fired = append(fired, fmt.Sprintf("%s@%v", name, time.Duration(now)))
				return 0
			}}
			timers[name] = tm
			l.Timers().Add(tm, l.Now()+int64(at))
		}
	})
	// settle returns once the loop has finished a wake-up that began after the call:
	// timers fire after a wake-up's posted functions.
	settle := func() { do(l, func() {}); do(l, func() {}) }
	got := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(fired)
	}

	settle()
	if s := got(); s != "[]" {
		t.Fatalf("fired %s before the clock moved", s)
	}
	clk.Advance(9 * time.Millisecond)
	settle()
	if s := got(); s != "[]" {
		t.Fatalf("fired %s at 9ms", s)
	}
	clk.Advance(11 * time.Millisecond) // 20ms
	settle()
	if s := got(); s != "[a@20ms b@20ms b2@20ms]" && s != "[a@20ms b2@20ms b@20ms]" {
		t.Fatalf("fired %s at 20ms, want a, then b and b2", s)
	}
	var pending int
	do(l, func() { pending = l.Timers().Len() })
	if pending != 1 {
		t.Errorf("%d timers pending at 20ms, want 1", pending)
	}
	clk.Advance(time.Hour)
	settle()
	if s := got(); s != "[a@20ms b@20ms b2@20ms c@1h0m0.02s]" && s != "[a@20ms b2@20ms b@20ms c@1h0m0.02s]" {
		t.Fatalf("fired %s after an hour", s)
	}
}

func TestGroup(t *testing.T) {
	if _, err := NewGroup(0, clock.NewFake(), testLog(t)); err == nil {
		t.Error("NewGroup(0) returned no error")
	}
	g, err := NewGroup(3, clock.NewFake(), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	loops := g.Loops()
	if len(loops) != 3 {
		t.Fatalf("%d loops, want 3", len(loops))
	}
	for i, l := range loops {
		if !do(l, func() {}) {
			t.Errorf("loop %d does not run", i)
		}
	}
	g.Stop()
	for i, l := range loops {
		select {
		case <-l.Done():
		default:
			t.Errorf("loop %d runs after the group's Stop", i)
		}
	}
}
