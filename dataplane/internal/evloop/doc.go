// Package evloop runs epoll event loops on Linux: each Loop is one goroutine locked to
// its OS thread around a level-triggered epoll set, with a descriptor table and a lazy
// deadline heap. It knows nothing of what it serves: its users (the dataplane's tcp
// sessions and its HTTP/1.1 loop engine) put a Handler in the table for each descriptor
// they register, and a Timer in the heap for each deadline, and keep whatever else they
// need per loop themselves.
//
// Data flows one way: a Loop waits in epoll_pwait for its earliest deadline, reads its
// clock once, calls the Handler of each ready descriptor, then runs the functions other
// goroutines posted to it, then fires the timers that are due. Only the loop's goroutine
// touches its table, its timers and what its handlers own; other goroutines reach a
// loop through Post.
//
// The files:
//
//   - loop.go: Loop (New, Post, Stop, the run loop, descriptor registration) and Group,
//     the loops of one owner, started and stopped together.
//   - timers.go: Timer and Timers, the deadline heap, which a test can drive alone.
//
// Every file but this one is Linux-only, as are the package's users.
package evloop
