package dataplane

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"lbd/internal/testutil"
)

// Helpers shared by the http tests (prefix ht) and the tcp and udp tests (prefix l4),
// whose own helpers are built on them.

// testDataplane returns a Dataplane serving cfg and logging to t, closed when the test
// ends.
func testDataplane(t testing.TB, cfg Config) *Dataplane {
	t.Helper()
	d := New(Options{Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err := d.Apply(cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// testLogWriter sends a Dataplane's log to t.Log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// metricValue reads a counter or gauge.
func metricValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// eventually polls cond until it holds or within passes. It is for events that end on
// their own (a goroutine noticing a closed socket), not for timers.
func eventually(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// deadAddr returns a loopback address that refuses connections until t ends (a port
// held bound and not listening: no other test's server can be given it).
func deadAddr(t testing.TB) string {
	t.Helper()
	return testutil.DeadTCPAddr(t)
}

// skipShort skips t under -short (make test-short): it waits on real timeouts, moves
// tens of MiB, or runs many scenarios, and takes a second or more. make test runs it.
func skipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping with -short: " + why)
	}
}
