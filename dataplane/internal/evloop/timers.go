//go:build linux

package evloop

import (
	"container/heap"
	"time"
)

// Timer is an entry in a Timers heap. Its zero value is not in a heap.
type Timer struct {
	at int64 // the deadline, on the loop's clock (Loop.Now)
	i  int   // 1 + the entry's index in the heap; 0: not in it
	// Fire runs on the loop once the deadline has passed, with the timer out of the
	// heap. It returns 0 once it has done what the deadline was for, or, when the
	// timer's owner was active since the deadline was set, a later deadline: the timer
	// goes back in the heap with it. It may add and remove timers, its own too when it
	// returns 0.
	Fire func(now int64) (later int64)
}

// Pending reports whether t is in a heap.
func (t *Timer) Pending() bool { return t.i > 0 }

// Due is t's deadline while it is pending.
func (t *Timer) Due() int64 { return t.at }

// Timers orders a loop's timers by deadline. It is lazy: activity does not touch the
// heap; an owner moves its deadline on only when the old one fires (a tcp session that
// moved bytes since its idle deadline was set returns its new one). Its zero value is
// empty and ready to use.
type Timers struct {
	h deadlineHeap
}

// Len is how many timers are pending.
func (ts *Timers) Len() int { return len(ts.h) }

// Add puts t in the heap, due at at; t must not be in it.
func (ts *Timers) Add(t *Timer, at int64) {
	t.at = at
	heap.Push(&ts.h, t)
}

// Remove takes t out of the heap, if it is there.
func (ts *Timers) Remove(t *Timer) {
	if t.i > 0 {
		heap.Remove(&ts.h, t.i-1)
	}
}

// Expire fires, in deadline order, every timer due at now, and puts back those that
// return a later deadline.
func (ts *Timers) Expire(now int64) {
	h := &ts.h
	for len(*h) > 0 && (*h)[0].at <= now {
		t := heap.Pop(h).(*Timer)
		if later := t.Fire(now); later > now {
			ts.Add(t, later)
		}
	}
}

// Timeout returns how long epoll_wait may sleep, in ms, for the earliest deadline to
// pass when it returns: -1 for no deadline.
func (ts *Timers) Timeout(now int64) int {
	h := ts.h
	if len(h) == 0 {
		return -1
	}
	wait := h[0].at - now
	if wait <= 0 {
		return 0
	}
	return int(min((wait+int64(time.Millisecond)-1)/int64(time.Millisecond), 1<<31-1))
}

// deadlineHeap is the heap.Interface under Timers.
type deadlineHeap []*Timer

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i+1, j+1
}
func (h *deadlineHeap) Push(x any) {
	t := x.(*Timer)
	*h = append(*h, t)
	t.i = len(*h)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.i = 0
	return t
}
