package vip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Fakes of the kernel and the clock for the manager tests. Every test that uses them
// runs inside synctest.Test, so that fakeClock.Advance can wait (synctest.Wait) until
// every goroutine has handled what a timer set off before firing the next one: time is
// stepped, never slept.

// fakeClock is a Clock whose time moves only by Advance.
type fakeClock struct {
	// mu guards now and timers.
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

type fakeTimer struct {
	c     *fakeClock
	when  time.Time
	ch    chan time.Time
	fired bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) ClockTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.fired = true
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return !t.fired
}

// Advance moves time forward by d, firing the timers in deadline order and letting the
// goroutines settle after each (synctest.Wait).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		synctest.Wait()
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.when.After(end) && (next == nil || t.when.Before(next.when)) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			synctest.Wait()
			return
		}
		if next.when.After(c.now) {
			c.now = next.when
		}
		var keep []*fakeTimer
		for _, t := range c.timers {
			if !t.when.After(c.now) {
				t.fired = true
				t.ch <- c.now
			} else {
				keep = append(keep, t)
			}
		}
		c.timers = keep
		c.mu.Unlock()
	}
}

// fakeBus is a LAN segment: every port hears the multicast others send, and unicast sent
// to its address. Cut partitions it.
type fakeBus struct {
	// mu guards ports and cut.
	mu    sync.Mutex
	ports []*fakePort
	cut   map[[2]netip.Addr]bool // from → to dropped
}

func newFakeBus() *fakeBus { return &fakeBus{cut: map[[2]netip.Addr]bool{}} }

// partition drops traffic both ways between a and b; heal restores it.
func (b *fakeBus) partition(a, c netip.Addr, cut bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut[[2]netip.Addr{a, c}] = cut
	b.cut[[2]netip.Addr{c, a}] = cut
}

// port opens a transport on the bus with source address src.
func (b *fakeBus) port(src netip.Addr) *fakePort {
	p := &fakePort{bus: b, src: src, in: make(chan Received, 256), closed: make(chan struct{})}
	b.mu.Lock()
	b.ports = append(b.ports, p)
	b.mu.Unlock()
	return p
}

type fakePort struct {
	bus    *fakeBus
	src    netip.Addr
	in     chan Received
	closed chan struct{}
	once   sync.Once
}

func (p *fakePort) Send(b []byte, dst netip.Addr) error {
	select {
	case <-p.closed:
		return net.ErrClosed
	default:
	}
	p.bus.mu.Lock()
	defer p.bus.mu.Unlock()
	for _, q := range p.bus.ports {
		if (!dst.IsMulticast() && dst != q.src) || p.bus.cut[[2]netip.Addr{p.src, q.src}] {
			continue
		}
		select {
		case <-q.closed:
			continue
		default:
		}
		// Multicast loops back to the sender too, as the kernel's IP_MULTICAST_LOOP.
		select {
		case q.in <- Received{Payload: slices.Clone(b), Src: p.src, Dst: dst, TTL: RequiredTTL, IfIndex: 1}:
		default: // a full queue drops, as a socket buffer does
		}
	}
	return nil
}

func (p *fakePort) Receive() (Received, error) {
	select {
	case r := <-p.in:
		return r, nil
	case <-p.closed:
		return Received{}, fmt.Errorf("fake port: %w", net.ErrClosed)
	}
}

func (p *fakePort) Source() netip.Addr { return p.src }

func (p *fakePort) Close() error {
	p.once.Do(func() {
		close(p.closed)
		p.bus.mu.Lock()
		p.bus.ports = slices.DeleteFunc(p.bus.ports, func(q *fakePort) bool { return q == p })
		p.bus.mu.Unlock()
	})
	return nil
}

// fakeAddrs is one node's interfaces' addresses.
type fakeAddrs struct {
	// mu guards have.
	mu   sync.Mutex
	have map[string]map[netip.Prefix]string // interface → prefix → label
}

func newFakeAddrs() *fakeAddrs { return &fakeAddrs{have: map[string]map[netip.Prefix]string{}} }

func (a *fakeAddrs) Add(ifname string, p netip.Prefix, label string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.have[ifname] == nil {
		a.have[ifname] = map[netip.Prefix]string{}
	}
	a.have[ifname][p] = label
	return nil
}

func (a *fakeAddrs) Remove(ifname string, p netip.Prefix) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.have[ifname], p)
	return nil
}

func (a *fakeAddrs) List(ifname, label string) ([]netip.Prefix, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ps []netip.Prefix
	for p, l := range a.have[ifname] {
		if l == label {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// String is the addresses as text: "eth0 198.18.0.100/24 lbd" lines, sorted.
func (a *fakeAddrs) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var lines []string
	for ifname, ps := range a.have {
		for p, l := range ps {
			lines = append(lines, fmt.Sprintf("%s %s %s", ifname, p, l))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// fakeAnnouncer records the announcements with the fake time they were made at.
type fakeAnnouncer struct {
	clock *fakeClock
	// mu guards sent.
	mu   sync.Mutex
	sent []string // "+1.5s eth0 198.18.0.100"
	t0   time.Time
}

func (f *fakeAnnouncer) Announce(ifname string, addr netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, fmt.Sprintf("+%v %s %s", f.clock.Now().Sub(f.t0), ifname, addr))
	return nil
}

func (f *fakeAnnouncer) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sent
	f.sent = nil
	return s
}

// fakeRunner records the commands run and fails those whose program is in fail.
type fakeRunner struct {
	// mu guards ran and fail.
	mu   sync.Mutex
	ran  []string
	fail map[string]bool
}

func (r *fakeRunner) Run(ctx context.Context, argv []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ran = append(r.ran, strings.Join(argv, " "))
	if r.fail[argv[0]] {
		return fmt.Errorf("exit status 1")
	}
	return nil
}

func (r *fakeRunner) setFail(prog string, fail bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = map[string]bool{}
	}
	r.fail[prog] = fail
}

func (r *fakeRunner) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.ran
	r.ran = nil
	return s
}

// testLogger sends a manager's log to t.Log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
