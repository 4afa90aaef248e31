package dataplane

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lbd/dataplane/balance"
	"lbd/internal/clock"
)

// ctlQueued is a backend of n servers, each with maxconn, and its queue on a fake clock.
type ctlQueued struct {
	b        *backend
	clk      *clock.Fake
	timeouts prometheus.Counter
	full     prometheus.Counter
}

func newCtlQueued(n, maxconn int, qc QueueConfig) *ctlQueued {
	qc.setDefaults()
	c := &ctlQueued{
		clk:      clock.NewFake(),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "t"}),
		full:     prometheus.NewCounter(prometheus.CounterOpts{Name: "f"}),
	}
	b := &backend{cfg: Backend{Name: "be"}, byName: map[string]*Server{}}
	for i := range n {
		s := NewServer("s"+string(rune('0'+i)), "127.0.0.1:1", 1)
		b.servers = append(b.servers, s)
		b.byName[s.Name] = s
	}
	bal, err := balance.New(balance.RoundRobin, b.servers, balance.Options{})
	if err != nil {
		panic(err)
	}
	b.balancer = bal
	b.queue = newQueue("be", qc, c.clk, c.timeouts, c.full)
	for _, s := range b.servers {
		s.SetMaxConn(maxconn)
		s.queue.Store(b.queue)
		b.limited = maxconn > 0
	}
	c.b = b
	return c
}

type ctlResult struct {
	s   *Server
	err error
}

// start runs an acquire in the background and returns once it is queued, the queue then
// holding want requests.
func (c *ctlQueued) start(t *testing.T, want int, stop <-chan struct{}) <-chan ctlResult {
	t.Helper()
	ch := make(chan ctlResult, 1)
	go func() {
		s, err := c.b.acquire(&Pick{}, stop)
		ch <- ctlResult{s, err}
	}()
	ctlEventually(t, "the request to queue", func() bool { return c.b.queue.Len() == want })
	return ch
}

// ctlEventually waits (bounded) for cond, which other goroutines make true.
func ctlEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ctlRecv(t *testing.T, ch <-chan ctlResult) ctlResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("queued request did not return")
	}
	return ctlResult{}
}

func ctlNotYet(t *testing.T, ch <-chan ctlResult) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("queued request returned early: %+v", r)
	case <-time.After(20 * time.Millisecond):
	}
}

func TestMaxConnMakesServerIneligible(t *testing.T) {
	c := newCtlQueued(2, 1, QueueConfig{})
	s0, s1 := c.b.servers[0], c.b.servers[1]
	a, _ := c.b.acquire(&Pick{}, nil)
	b, _ := c.b.acquire(&Pick{}, nil)
	if a == nil || b == nil || a == b {
		t.Fatalf("two requests on two servers of maxconn 1 went to %v and %v", a, b)
	}
	if !s0.Full() || !s1.Full() || s0.TryAcquire() {
		t.Fatal("servers at maxconn 1 are not full")
	}
	if s := c.b.pick(&Pick{}); s != nil {
		t.Fatalf("balancer picked full server %s", s.Name)
	}
	s1.Release(0)
	if s := c.b.pick(&Pick{}); s != s1 {
		t.Fatalf("after a release the balancer picked %v, want s1", s)
	}
	// Without maxconn, nothing is ever full and nothing queues.
	s0.SetMaxConn(0)
	if s0.Full() || !s0.TryAcquire() {
		t.Fatal("a server without maxconn is full")
	}
}

func TestQueueFIFO(t *testing.T) {
	c := newCtlQueued(1, 1, QueueConfig{})
	s0 := c.b.servers[0]
	first, err := c.b.acquire(&Pick{}, nil)
	if first != s0 || err != nil {
		t.Fatalf("first request: %v %v", first, err)
	}
	r1 := c.start(t, 1, nil)
	r2 := c.start(t, 2, nil)
	r3 := c.start(t, 3, nil)
	ctlNotYet(t, r1)

	// Each release hands the slot to the longest waiting request, in order.
	for i, r := range []<-chan ctlResult{r1, r2, r3} {
		s0.Release(0)
		got := ctlRecv(t, r)
		if got.s != s0 || got.err != nil {
			t.Fatalf("waiter %d: %+v", i+1, got)
		}
		if n := c.b.queue.Len(); n != 2-i {
			t.Fatalf("after waiter %d: queue length %d, want %d", i+1, n, 2-i)
		}
		if a := s0.Active(); a != 1 {
			t.Fatalf("server has %d in flight, want its maxconn 1", a)
		}
	}
	// While the queue is empty a new request takes a free slot at once.
	s0.Release(0)
	if s, err := c.b.acquire(&Pick{}, nil); s != s0 || err != nil {
		t.Fatalf("request on an idle server: %v %v", s, err)
	}
}

func TestQueueTimeout(t *testing.T) {
	c := newCtlQueued(1, 1, QueueConfig{Timeout: 2 * time.Second})
	c.b.acquire(&Pick{}, nil)
	r := c.start(t, 1, nil)
	c.clk.BlockUntil(1) // the request's queue timer
	c.clk.Advance(1999 * time.Millisecond)
	ctlNotYet(t, r)
	c.clk.Advance(time.Millisecond)
	got := ctlRecv(t, r)
	if !errors.Is(got.err, errQueueTimeout) || got.s != nil {
		t.Fatalf("after the queue timeout: %+v", got)
	}
	if want := "queue timeout: no server of backend be had a free slot within 2s"; got.err.Error() != want {
		t.Errorf("error %q, want %q", got.err, want)
	}
	if n := c.b.queue.Len(); n != 0 {
		t.Errorf("queue length %d after the timeout", n)
	}
	if v := htValue(t, c.timeouts); v != 1 {
		t.Errorf("queue timeouts counted %v, want 1", v)
	}
	if a := c.b.servers[0].Active(); a != 1 {
		t.Errorf("timed-out request left %d in flight, want 1", a)
	}
}

func TestQueueTimeoutKeepsOrder(t *testing.T) {
	// The head times out; the next in line gets the next slot.
	c := newCtlQueued(1, 1, QueueConfig{Timeout: time.Second})
	c.b.acquire(&Pick{}, nil)
	r1 := c.start(t, 1, nil)
	c.clk.BlockUntil(1) // r1's queue timer
	c.clk.Advance(500 * time.Millisecond)
	r2 := c.start(t, 2, nil)
	c.clk.BlockUntil(2) // and r2's
	c.clk.Advance(500 * time.Millisecond)
	if got := ctlRecv(t, r1); !errors.Is(got.err, errQueueTimeout) {
		t.Fatalf("head: %+v", got)
	}
	ctlNotYet(t, r2)
	c.b.servers[0].Release(0)
	if got := ctlRecv(t, r2); got.s == nil || got.err != nil {
		t.Fatalf("second: %+v", got)
	}
}

func TestQueueFull(t *testing.T) {
	c := newCtlQueued(1, 1, QueueConfig{Size: 2})
	c.b.acquire(&Pick{}, nil)
	stop := make(chan struct{})
	r1 := c.start(t, 1, stop)
	r2 := c.start(t, 2, stop)
	defer func() { // the two waiters leave the queue, not the test's goroutines
		close(stop)
		ctlRecv(t, r1)
		ctlRecv(t, r2)
	}()
	s, err := c.b.acquire(&Pick{}, nil)
	if s != nil || !errors.Is(err, errQueueFull) {
		t.Fatalf("third waiter in a queue of 2: %v %v", s, err)
	}
	if !strings.Contains(err.Error(), "queue full") {
		t.Errorf("error %q", err)
	}
	if v := htValue(t, c.full); v != 1 {
		t.Errorf("queue full counted %v, want 1", v)
	}
}

func TestQueueServerGoesAway(t *testing.T) {
	c := newCtlQueued(1, 1, QueueConfig{})
	s0 := c.b.servers[0]
	c.b.acquire(&Pick{}, nil)
	r := c.start(t, 1, nil)
	// The only server goes down: nothing will free a slot, the waiter learns at once.
	s0.SetUp(false)
	c.b.queue.kick()
	if got := ctlRecv(t, r); got.s != nil || got.err != nil {
		t.Fatalf("waiter after the server went down: %+v, want no server", got)
	}
	// And with no server at all a request does not queue.
	if s, err := c.b.acquire(&Pick{}, nil); s != nil || err != nil || c.b.queue.Len() != 0 {
		t.Fatalf("request with no server up: %v %v", s, err)
	}
}

func TestQueueStop(t *testing.T) {
	c := newCtlQueued(1, 1, QueueConfig{})
	c.b.acquire(&Pick{}, nil)
	stop := make(chan struct{})
	r := c.start(t, 1, stop)
	close(stop)
	if got := ctlRecv(t, r); !errors.Is(got.err, errQueueStopped) {
		t.Fatalf("waiter after stop: %+v", got)
	}
	if n := c.b.queue.Len(); n != 0 {
		t.Errorf("queue length %d", n)
	}
}

func TestQueueConfig(t *testing.T) {
	c := Config{Backends: []Backend{{Name: "be", Servers: []ServerConfig{{Address: "127.0.0.1:1", MaxConn: -1}}}}}
	c.Backends[0].Queue.Size = -3
	c.SetDefaults()
	c.Backends[0].Queue.Timeout = time.Microsecond
	err := c.Validate()
	for _, want := range []string{
		"backends[0].servers[0].maxconn: must be between 0 (unlimited) and 1000000, not -1",
		"backends[0].queue.size: must be between 1 and 1000000, not -3",
		"backends[0].queue.timeout: (1µs) must be at least 1ms",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors %v\nwant %q", err, want)
		}
	}
	var d Config
	d.Backends = []Backend{{}}
	d.SetDefaults()
	if q := d.Backends[0].Queue; q.Size != DefaultQueueSize || q.Timeout != DefaultQueueTimeout {
		t.Errorf("queue defaults: %+v", q)
	}
}

func TestTCPMaxConnQueue(t *testing.T) {
	cfg := l4Config(ModeTCP, BalanceRoundRobin, tcpServer(t, tcpEcho))
	cfg.Backends[0].Servers[0].MaxConn = 1
	cfg.Backends[0].Queue.Timeout = 5 * time.Second
	d := l4Dataplane(t, cfg)
	first := tcpDial(t, d)
	tcpRoundTrip(t, first, "one")
	// The second connection waits in the queue while the first holds the only slot.
	second := tcpDial(t, d)
	io.WriteString(second, "two")
	b := d.snapshot().byName["b"]
	ctlEventually(t, "the second connection to queue", func() bool { return b.queue.Len() == 1 })
	first.Close()
	got := make([]byte, 3)
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(second, got); err != nil || string(got) != "two" {
		t.Fatalf("queued connection after the slot freed: %q %v", got, err)
	}
}
