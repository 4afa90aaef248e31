//go:build linux

package dataplane

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"lbd/dataplane/internal/evloop"
	"lbd/internal/clock"
)

// testTCPLoops returns d's event loops, started if need be.
func testTCPLoops(t testing.TB, d *Dataplane) []*eventLoop {
	t.Helper()
	list, err := d.loops.start()
	if err != nil {
		t.Fatal(err)
	}
	return *list
}

// do runs f on the loop and waits for it; false when the loop has stopped.
func (l *eventLoop) do(f func()) bool {
	ran := make(chan struct{})
	if !l.Post(func() { f(); close(ran) }) {
		return false
	}
	<-ran
	return true
}

// loopStats reads the stats of each loop: on the loop while it runs, and directly once
// it has stopped.
func loopStats(t testing.TB, loops []*eventLoop) []tcpLoopStats {
	t.Helper()
	st := make([]tcpLoopStats, len(loops))
	for i, l := range loops {
		if !l.do(func() { st[i] = l.stats }) {
			<-l.Done()
			st[i] = l.stats
		}
	}
	return st
}

// loopSessions counts the sessions open on loops.
func loopSessions(t testing.TB, loops []*eventLoop) int {
	n := 0
	for _, st := range loopStats(t, loops) {
		n += st.sessions
	}
	return n
}

// tcpHashWriter writes n random bytes to w in writes of random sizes, from a few bytes
// to a few hundred KiB, so that the proxy switches between copying and splicing, and
// returns their sha256.
func tcpHashWriter(w io.Writer, n int, seed uint64) ([32]byte, error) {
	r := rand.New(rand.NewPCG(seed, seed))
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for n > 0 {
		size := 1 + r.IntN(len(buf))
		if r.IntN(4) == 0 {
			size = 1 + r.IntN(100)
		}
		size = min(size, n)
		b := buf[:size]
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		h.Write(b)
		if _, err := w.Write(b); err != nil {
			return [32]byte{}, err
		}
		n -= size
	}
	return [32]byte(h.Sum(nil)), nil
}

// tcpHashReader reads r to EOF and returns how many bytes it got and their sha256.
func tcpHashReader(r io.Reader) (int64, [32]byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, [32]byte(h.Sum(nil)), err
}

// tcpBothWays sends n random bytes each way at once, over c and the server end of the
// session; each side half-closes when done.
type tcpBothWaysResult struct {
	sent [32]byte
	got  [32]byte
	n    int64
	err  error
}

func tcpBothWays(c *net.TCPConn, n int, seed uint64) tcpBothWaysResult {
	var res tcpBothWaysResult
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res.sent, werr = tcpHashWriter(c, n, seed)
		if werr == nil {
			werr = c.CloseWrite()
		}
	}()
	res.n, res.got, res.err = tcpHashReader(c)
	wg.Wait()
	res.err = errors.Join(res.err, werr)
	return res
}

func TestTCPLoopBothWays(t *testing.T) {
	const n = 32 << 20
	srvc := make(chan tcpBothWaysResult, 1)
	srv := tcpServer(t, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(time.Minute))
		srvc <- tcpBothWays(c, n, 2)
	})
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, srv))
	loops := testTCPLoops(t, d)
	before := loopStats(t, loops)
	c := tcpDial(t, d)
	c.SetDeadline(time.Now().Add(time.Minute))
	cl := tcpBothWays(c, n, 1)
	sv := <-srvc
	if cl.err != nil || sv.err != nil {
		t.Fatalf("client: %v; server: %v", cl.err, sv.err)
	}
	if cl.n != n || cl.got != sv.sent {
		t.Errorf("client got %d bytes, sha256 %x; server sent %d, sha256 %x", cl.n, cl.got, n, sv.sent)
	}
	if sv.n != n || sv.got != cl.sent {
		t.Errorf("server got %d bytes, sha256 %x; client sent %d, sha256 %x", sv.n, sv.got, n, cl.sent)
	}
	var toSplice, toCopy int
	for i, st := range loopStats(t, loops) {
		toSplice += st.toSplice - before[i].toSplice
		toCopy += st.toCopy - before[i].toCopy
	}
	t.Logf("directions switched to splice %d times, back to read/write %d times", toSplice, toCopy)
	if toSplice == 0 || toCopy == 0 {
		t.Errorf("switches to splice = %d, back = %d; want both", toSplice, toCopy)
	}
	if got := l4Value(t, d.metrics.bytesIn.WithLabelValues("fe")); got != n {
		t.Errorf("bytes in = %v, want %d", got, n)
	}
	if got := l4Value(t, d.metrics.bytesOut.WithLabelValues("fe")); got != n {
		t.Errorf("bytes out = %v, want %d", got, n)
	}
}

// TestTCPLoopFallback: when a descriptor cannot be duplicated (EMFILE), the session is
// relayed by a tcpPipe instead, and its bytes still arrive whole.
func TestTCPLoopFallback(t *testing.T) {
	const n = 4 << 20
	var calls atomic.Int32
	tcpDup = func(*net.TCPConn) (int, error) {
		calls.Add(1)
		return -1, &net.OpError{Op: "dup", Net: "tcp", Err: unix.EMFILE}
	}
	t.Cleanup(func() { tcpDup = dupConn })
	srvc := make(chan tcpBothWaysResult, 1)
	srv := tcpServer(t, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(time.Minute))
		srvc <- tcpBothWays(c, n, 4)
	})
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, srv))
	c := tcpDial(t, d)
	c.SetDeadline(time.Now().Add(time.Minute))
	cl := tcpBothWays(c, n, 3)
	sv := <-srvc
	if cl.err != nil || sv.err != nil {
		t.Fatalf("client: %v; server: %v", cl.err, sv.err)
	}
	if cl.n != n || cl.got != sv.sent || sv.n != n || sv.got != cl.sent {
		t.Errorf("client got %d bytes (sha256 match %v), server got %d (match %v); want %d each way",
			cl.n, cl.got == sv.sent, sv.n, sv.got == cl.sent, n)
	}
	if calls.Load() == 0 {
		t.Error("the session never tried to move to a loop")
	}
}

// sysctlMax reads the maximum of a /proc/sys triple (min, default, max).
func sysctlMax(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("reading %s: %v", path, err)
	}
	var lo, def, hi int
	if _, err := fmt.Sscan(string(b), &lo, &def, &hi); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return hi
}

func TestTCPLoopBackpressure(t *testing.T) {
	// Four socket buffers lie between the client and a server that does not read: the
	// client's send buffer, the proxy's receive and send buffers, the server's receive
	// buffer. The proxy may add no more than its buffer or pipe.
	wmem := sysctlMax(t, "/proc/sys/net/ipv4/tcp_wmem")
	rmem := sysctlMax(t, "/proc/sys/net/ipv4/tcp_rmem")
	bound := 2*(wmem+rmem) + tcpSpliceMax
	release := make(chan struct{})
	srvc := make(chan tcpBothWaysResult, 1)
	srv := tcpServer(t, func(c *net.TCPConn) {
		<-release
		var res tcpBothWaysResult
		res.n, res.got, res.err = tcpHashReader(c)
		srvc <- res
	})
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, srv))
	c := tcpDial(t, d)

	// Write until a write stays blocked for a while, but no further than bound and a
	// chunk: the proxy must have stopped reading by then.
	h := sha256.New()
	chunk := make([]byte, 1<<20)
	total := 0
	blocked := false
	for total <= bound+len(chunk) && !blocked {
		for i := range chunk {
			chunk[i] = byte(rand.Uint32())
		}
		c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Write(chunk)
		h.Write(chunk[:n])
		total += n
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			blocked = true
		case err != nil:
			t.Fatal(err)
		}
	}
	t.Logf("the client wrote %d bytes before blocking; the socket buffers hold up to %d", total, bound)
	if !blocked {
		t.Fatalf("the client wrote %d bytes without blocking, more than the socket buffers hold (%d)", total, bound)
	}

	// The session holds no more than one buffer or pipe per direction, and does not read
	// the client while it waits to write to the server.
	checked := 0
	for _, l := range testTCPLoops(t, d) {
		l.do(func() {
			l.Handlers(func(_ int, h evloop.Handler) {
				x, ok := h.(*tcpSide)
				if !ok || x.i != 0 {
					return
				}
				s := x.s
				for di, dir := range s.dir {
					held := dir.piped
					if dir.buf != nil {
						held = dir.n - dir.off
					}
					if limit := tcpSpliceMax; held > limit {
						t.Errorf("direction %d holds %d bytes, more than %d", di, held, limit)
					}
				}
				if s.dir[0].pending() {
					checked++
					if x.reg&unix.EPOLLIN != 0 {
						t.Errorf("the client's socket is read while the server does not take the bytes")
					}
				}
			})
		})
	}
	if checked != 1 {
		t.Errorf("%d sessions hold bytes for the server, want 1", checked)
	}

	close(release)
	c.SetWriteDeadline(time.Time{})
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	res := <-srvc
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.n != int64(total) || res.got != [32]byte(h.Sum(nil)) {
		t.Errorf("the server got %d bytes, sha256 %x; the client wrote %d, sha256 %x", res.n, res.got, total, h.Sum(nil))
	}
}

func TestTCPHalfCloseServerFirst(t *testing.T) {
	// The server greets, half-closes, and then reads the request to EOF.
	reqc := make(chan string, 1)
	srv := tcpServer(t, func(c *net.TCPConn) {
		io.WriteString(c, "hello")
		c.CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			reqc <- err.Error()
			return
		}
		reqc <- string(b)
	})
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, srv))
	c := tcpDial(t, d)
	if got := tcpReadAll(t, c); got != "hello" {
		t.Fatalf("greeting = %q, want hello", got)
	}
	// After the server's EOF, the client still sends.
	for _, s := range []string{"after ", "the ", "server's ", "EOF"} {
		tcpWriteString(t, c, s)
	}
	c.CloseWrite()
	if got, want := <-reqc, "after the server's EOF"; got != want {
		t.Errorf("the server got %q, want %q", got, want)
	}
	l4Eventually(t, "the session to end", func() bool { return l4Value(t, d.metrics.connsActive.WithLabelValues("fe")) == 0 })
}

func TestTCPLoopShutdown(t *testing.T) {
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, tcpServer(t, tcpEcho)))
	loops := testTCPLoops(t, d)
	before := loopSessions(t, loops)
	var conns []*net.TCPConn
	for i := 0; i < 6; i++ {
		c := tcpDial(t, d)
		tcpRoundTrip(t, c, "x")
		conns = append(conns, c)
	}
	if got := loopSessions(t, loops) - before; got != 6 {
		t.Fatalf("sessions on the loops = %d, want 6", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); err == nil {
		t.Error("Close with sessions open returned nil, want the deadline")
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("connection %d: read after Close = %d, %v; want EOF", i, n, err)
		}
	}
	if got := loopSessions(t, loops) - before; got != 0 {
		t.Errorf("sessions on the loops after Close = %d, want 0", got)
	}
	for i, l := range loops {
		select {
		case <-l.Done():
		default:
			t.Errorf("loop %d runs after Close", i)
		}
	}
}

func TestTCPLoopManySessions(t *testing.T) {
	const n = 500
	d := l4Dataplane(t, l4Config(ModeTCP, BalanceRoundRobin, tcpServer(t, tcpEcho)))
	loops := testTCPLoops(t, d)
	before := loopStats(t, loops)
	conns := make([]*net.TCPConn, n)
	for i := range conns {
		conns[i] = tcpDial(t, d)
	}
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("session %d;", i)
			for j := 0; j < 3; j++ {
				if _, err := io.WriteString(c, msg); err != nil {
					errc <- err
					return
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
					errc <- fmt.Errorf("session %d: echo %q, %v", i, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	after := loopStats(t, loops)
	total := 0
	for i := range loops {
		got := after[i].sessions - before[i].sessions
		total += got
		if want := n / len(loops); got < want/2 {
			t.Errorf("loop %d serves %d sessions, want about %d", i, got, want)
		}
	}
	if total != n {
		t.Errorf("sessions on the loops = %d, want %d", total, n)
	}
	for _, c := range conns {
		c.Close()
	}
	l4Eventually(t, "the sessions to end", func() bool { return l4Value(t, d.metrics.connsActive.WithLabelValues("fe")) == 0 })
}

func TestTCPIdleHeap(t *testing.T) {
	const ms = int64(time.Millisecond)
	// Three sessions with an idle timeout of 100ms, started at 0; moved marks when a
	// session last moved bytes before the heap is asked at now.
	type step struct {
		now     int64
		moved   map[int]int64
		ended   []int
		timeout int
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"all silent", []step{
			{now: 0, timeout: 100},
			{now: 99 * ms, timeout: 1},
			{now: 100 * ms, ended: []int{0, 1, 2}, timeout: -1},
		}},
		{"a trickle keeps one alive", []step{
			{now: 40 * ms, moved: map[int]int64{1: 40 * ms}, timeout: 60},
			{now: 100 * ms, ended: []int{0, 2}, timeout: 40},
			{now: 120 * ms, moved: map[int]int64{1: 120 * ms}, timeout: 20},
			{now: 140 * ms, timeout: 80},
			{now: 219 * ms, timeout: 1},
			{now: 220 * ms, ended: []int{1}, timeout: -1},
		}},
		{"a late wake-up", []step{
			{now: 30 * ms, moved: map[int]int64{0: 30 * ms, 2: 10 * ms}, timeout: 70},
			{now: 500 * ms, ended: []int{0, 1, 2}, timeout: -1},
		}},
		{"timeout rounds up", []step{
			{now: 99*ms + 1, timeout: 1},
			{now: 100*ms - 1, timeout: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h evloop.Timers
			ss := make([]*tcpSession, 3)
			index := map[*tcpSession]int{}
			var ended []int
			for i := range ss {
				ss[i] = &tcpSession{idle: 100 * ms}
				index[ss[i]] = i
				ss[i].startIdle(&h, func(s *tcpSession) { ended = append(ended, index[s]) })
			}
			for _, st := range tc.steps {
				for i, at := range st.moved {
					ss[i].last = at
				}
				ended = nil
				h.Expire(st.now)
				slices.Sort(ended)
				if fmt.Sprint(ended) != fmt.Sprint(st.ended) {
					t.Errorf("at %v: ended %v, want %v", time.Duration(st.now), ended, st.ended)
				}
				if got := h.Timeout(st.now); got != st.timeout {
					t.Errorf("at %v: timeout = %dms, want %dms", time.Duration(st.now), got, st.timeout)
				}
			}
		})
	}
	t.Run("remove", func(t *testing.T) {
		var h evloop.Timers
		ss := make([]*tcpSession, 5)
		var ended []int64
		for i := range ss {
			ss[i] = &tcpSession{idle: int64(i+1) * ms}
			ss[i].startIdle(&h, func(s *tcpSession) { ended = append(ended, s.idle/ms) })
		}
		h.Remove(&ss[2].idleTimer)
		h.Remove(&ss[2].idleTimer) // not there: nothing
		h.Expire(time.Hour.Nanoseconds())
		if fmt.Sprint(ended) != "[1 2 4 5]" {
			t.Errorf("ended %v, want [1 2 4 5]", ended)
		}
	})
}

// tcpLoopPair returns a loopback connection and a duplicate of its peer's descriptor, as
// a loop takes it.
func tcpLoopPair(t *testing.T) (*net.TCPConn, int) {
	t.Helper()
	c, p := tcpPair(t)
	fd, err := dupConn(p)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	return c, fd
}

// TestTCPLoopIdleClock runs a loop on a fake clock: the session ends when, and only when,
// the clock says it has been idle for its timeout.
func TestTCPLoopIdleClock(t *testing.T) {
	clk := clock.NewFake()
	el, err := evloop.New(clk, slog.New(slog.NewTextHandler(testLogWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(el.Stop)
	l := &eventLoop{Loop: el, n: 1}
	// settle returns once the loop has handled a wake-up that began after the call.
	settle := func() {
		l.do(func() {})
		l.do(func() {})
	}
	client, cfd := tcpLoopPair(t)
	server, sfd := tcpLoopPair(t)
	s := newTCPSession(cfd, sfd, &tcpSessionConfig{
		idle: 100 * time.Millisecond, in: prometheus.NewCounter(prometheus.CounterOpts{Name: "in"}),
		out: prometheus.NewCounter(prometheus.CounterOpts{Name: "out"}), log: slog.Default(),
	})
	l.do(func() { l.add(s) })
	open := func(when string) {
		t.Helper()
		settle()
		select {
		case <-s.done:
			t.Fatalf("session ended %s", when)
		default:
		}
	}

	clk.Advance(60 * time.Millisecond)
	l.do(func() {}) // the loop's clock reads 60ms from here on
	tcpWriteString(t, client, "x")
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(99 * time.Millisecond) // 159ms: 99ms since the byte
	open("99ms after the last byte")
	clk.Advance(time.Millisecond)
	l.Post(func() {})
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Fatal("session open 100ms after the last byte")
	}
	for name, c := range map[string]*net.TCPConn{"client": client, "server": server} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s: read after the idle timeout = %d, %v; want EOF", name, n, err)
		}
	}
}
