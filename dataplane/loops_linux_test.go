//go:build linux

package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when event loops outlive them (every Dataplane a
// test creates must stop its loops in Close, and every loop a test starts by hand must
// be stopped), and when any other goroutine does (goleak).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if n := waitLoopGoroutines(0, 5*time.Second); n > 0 {
			fmt.Fprintf(os.Stderr, "%d event loop goroutines outlive the tests\n", n)
			code = 1
		}
	}
	if code == 0 {
		// fasthttp's own background goroutines, which no API of it stops:
		//   - a server's worker pool cleaner sleeps MaxIdleWorkerDuration (10s) between
		//     rounds and sees the server's Stop only when it wakes;
		//   - a HostClient's connection cleaner (a serverPool's, and one test's
		//     client) sleeps MaxIdleConnDuration between rounds and ends once the
		//     client has no connection left;
		//   - the process-wide Date header updater, started by the first server,
		//     never ends.
		if err := goleak.Find(
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// loopGoroutines counts the goroutines running an event loop.
func loopGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("lbd/dataplane/internal/evloop.(*Loop).run("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitLoopGoroutines waits up to limit for at most want loop goroutines to run (a loop
// that has stopped may take a moment to return) and returns how many run.
func waitLoopGoroutines(want int, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		n := loopGoroutines()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLoopsStopWithDataplane: a Dataplane starts its event loops with the first
// connection handed to one, and Close stops them; a closed Dataplane starts none.
func TestLoopsStopWithDataplane(t *testing.T) {
	before := waitLoopGoroutines(0, 5*time.Second)
	d := New(Options{Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))})
	if err := d.Apply(l4Config(ModeTCP, BalanceRoundRobin, tcpServer(t, tcpEcho))); err != nil {
		t.Fatal(err)
	}
	if got := loopGoroutines() - before; got != 0 {
		t.Errorf("%d event loops run before the first connection, want none", got)
	}
	c := tcpDial(t, d)
	tcpRoundTrip(t, c, "x")
	if got, want := loopGoroutines()-before, runtime.GOMAXPROCS(0); got != want {
		t.Errorf("%d event loops run with a connection, want %d", got, want)
	}
	loops := d.loops.running()
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, l := range loops {
		select {
		case <-l.Done():
		default:
			t.Errorf("loop %d runs after Close", i)
		}
	}
	if n := waitLoopGoroutines(before, 5*time.Second); n != before {
		t.Errorf("%d event loops run after Close, want %d", n, before)
	}
	if _, err := d.loops.get(); err != errLoopsClosed {
		t.Errorf("a loop from a closed Dataplane: err = %v, want %v", err, errLoopsClosed)
	}
}
