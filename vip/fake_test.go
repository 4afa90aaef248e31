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

	"lbd/internal/clock"
)

// Fakes of the kernel for the manager tests, which run on a clock.Fake. Every test that
// uses them runs inside synctest.Test, so that advance can wait (synctest.Wait) until
// every goroutine has handled what a timer set off before firing the next one: time is
// stepped, never slept.

// advance moves clk forward by d one timer at a time, letting every goroutine settle
// after each firing.
func advance(clk *clock.Fake, d time.Duration) { clk.AdvanceSettled(d, synctest.Wait) }

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
	// addErr, when set, is what Add returns (adding nothing).
	addErr error
}

func (a *fakeAddrs) setAddErr(err error) {
	a.mu.Lock()
	a.addErr = err
	a.mu.Unlock()
}

func newFakeAddrs() *fakeAddrs { return &fakeAddrs{have: map[string]map[netip.Prefix]string{}} }

func (a *fakeAddrs) Add(ifname string, p netip.Prefix, label string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.addErr != nil {
		return a.addErr
	}
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
	clock *clock.Fake
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
