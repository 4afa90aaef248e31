package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"lbd/internal/clock"
)

// healthRig is one backend's health checking on a fake clock, with scripted probes. Its
// tests run inside synctest.Test, so that advance can wait for the checks it sets off.
type healthRig struct {
	t    *testing.T
	clk  *clock.Fake
	b    *backend
	bh   *backendHealth
	logs *syncBuf
	// mu guards results and probes.
	mu      sync.Mutex
	results map[string]error // next result of each server's probe
	probes  map[string][]time.Duration
	agent   map[string]agentReport
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// count returns how many log lines contain all of parts.
func (s *syncBuf) count(parts ...string) int {
	n := 0
	for line := range strings.SplitSeq(s.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

func newHealthRig(t *testing.T, bc Backend, names ...string) *healthRig {
	t.Helper()
	bc.Name = "app"
	for _, n := range names {
		bc.Servers = append(bc.Servers, ServerConfig{Name: n, Address: "127.0.0.1:1"})
	}
	cfg := Config{Backends: []Backend{bc}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := &healthRig{t: t, clk: clock.NewFake(), logs: &syncBuf{},
		results: map[string]error{}, probes: map[string][]time.Duration{}, agent: map[string]agentReport{}}
	r.b = &backend{cfg: cfg.Backends[0], byName: map[string]*Server{}}
	for _, sc := range r.b.cfg.Servers {
		s := NewServer(sc.Name, sc.Address, *sc.Weight)
		r.b.servers = append(r.b.servers, s)
		r.b.byName[s.Name] = s
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(r.logs, tlogWriter{t}), nil))
	r.bh = newBackendHealthClock(log, newHealthMetrics(nil), r.b, r.clk)
	r.bh.rand = func() float64 { return 0.5 }
	start := r.clk.Now()
	r.bh.newProbe = func(s *Server) probe {
		return func(context.Context) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.probes[s.Name] = append(r.probes[s.Name], r.clk.Now().Sub(start))
			return r.results[s.Name]
		}
	}
	r.bh.agentProbe = func(s *Server) agentQuery {
		return func(context.Context) (agentReport, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			rep, ok := r.agent[s.Name]
			if !ok {
				return agentReport{}, errors.New("no agent")
			}
			return rep, nil
		}
	}
	r.b.health = r.bh
	t.Cleanup(func() { r.bh.stop(true) })
	return r
}

// advance moves the rig's clock forward by d, one timer at a time, letting the checks
// that each timer starts finish (and arm their next timer) before the next: the rig's
// tests run in a synctest bubble.
func (r *healthRig) advance(d time.Duration) { r.clk.AdvanceSettled(d, synctest.Wait) }

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (r *healthRig) set(server string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results[server] = err
}

func (r *healthRig) probeTimes(server string) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.probes[server])
}

func (r *healthRig) server(name string) *Server { return r.b.byName[name] }

func (r *healthRig) transitions(server, to string) float64 {
	return counterValue(r.bh.m.transitions.WithLabelValues("app", server, to))
}

func (r *healthRig) checks(server, result string) float64 {
	return counterValue(r.bh.m.checks.WithLabelValues("app", server, result))
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

var errRefused = fmt.Errorf("dial tcp 127.0.0.1:1: %w", syscall.ECONNREFUSED)

func TestActiveStateRiseFall(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		results    string // + passes, - fails
		want       string // verdict after each: U or D
		changing   string // c when between verdicts after each result, . otherwise
	}{
		{"falls after 3", 2, 3, "---", "UUD", "cc."},
		{"a success breaks the failures", 2, 3, "--+---", "UUUUUD", "cc.cc."},
		{"rises after 2", 2, 3, "---++", "UUDDU", "cc.c."},
		{"a failure breaks the successes", 2, 3, "---+-++", "UUDDDDU", "cc.c.c."},
		{"fall 1 rise 1", 1, 1, "-+-+", "DUDU", "...."},
		{"steady up", 2, 3, "++++", "UUUU", "...."},
		{"rise 3", 3, 1, "-++-+++", "DDDDDDU", ".cc.cc."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a activeState
			var got, changing strings.Builder
			for _, c := range tc.results {
				a.observe(c == '+', tc.rise, tc.fall)
				got.WriteByte("UD"[b2i(a.down)])
				changing.WriteByte(".c"[b2i(a.changing())])
			}
			if got.String() != tc.want || changing.String() != tc.changing {
				t.Errorf("after %s: verdicts %s, changing %s; want %s, %s", tc.results, got.String(), changing.String(), tc.want, tc.changing)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestJitterBounds(t *testing.T) {
	for _, pct := range []int{0, 10, 50} {
		lo := time.Duration(float64(time.Second) * (1 - float64(pct)/100))
		hi := time.Duration(float64(time.Second) * (1 + float64(pct)/100))
		seen := map[time.Duration]bool{}
		for i := range 1000 {
			r := float64(i) / 1000
			d := jittered(time.Second, pct, r)
			if d < lo || d > hi {
				t.Fatalf("jittered(1s, %d%%, %v) = %v, outside [%v, %v]", pct, r, d, lo, hi)
			}
			seen[d] = true
			f := firstCheck(time.Second, pct, r)
			if f < 0 || f >= time.Second || (pct == 0 && f != 0) {
				t.Fatalf("firstCheck(1s, %d%%, %v) = %v", pct, r, f)
			}
		}
		if pct > 0 && len(seen) < 100 {
			t.Errorf("jitter %d%% gave only %d distinct intervals", pct, len(seen))
		}
	}
	hc := &HealthCheck{Interval: time.Second, FastInterval: 100 * time.Millisecond, Jitter: new(0)}
	if d := nextCheck(hc, &activeState{}, 0.3); d != time.Second {
		t.Errorf("steady: next check in %v, want 1s", d)
	}
	if d := nextCheck(hc, &activeState{fail: 1}, 0.3); d != 100*time.Millisecond {
		t.Errorf("after a failure: next check in %v, want 100ms", d)
	}
	if d := nextCheck(hc, &activeState{down: true, succ: 1}, 0.3); d != 100*time.Millisecond {
		t.Errorf("after a success while down: next check in %v, want 100ms", d)
	}
	if d := nextCheck(hc, &activeState{down: true}, 0.3); d != time.Second {
		t.Errorf("down: next check in %v, want 1s", d)
	}
}

// TestCheckerSchedule drives the scheduler with a fake clock: the fast interval between
// the first failure and down and between the first success and up, one log line and one
// counted transition per change.
func TestCheckerSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHealthRig(t, Backend{HealthCheck: &HealthCheck{
			Type: CheckHTTP, Interval: time.Second, FastInterval: 100 * time.Millisecond,
			Rise: 2, Fall: 3, Jitter: new(0),
		}}, "a")
		s := r.server("a")
		r.set("a", checkFailure("http status 503"))
		r.bh.start()
		r.advance(0) // the first check, at once without jitter
		if !s.Up() {
			t.Fatal("down after one failure; fall is 3")
		}
		r.advance(150 * time.Millisecond)
		if !s.Up() {
			t.Fatal("down after two failures; fall is 3")
		}
		r.advance(100 * time.Millisecond)
		if s.Up() {
			t.Fatal("up after three failures")
		}
		r.set("a", nil)
		r.advance(time.Second) // first success at 1.2s, in the steady down interval
		if s.Up() {
			t.Fatal("up after one success; rise is 2")
		}
		r.advance(100 * time.Millisecond)
		if !s.Up() {
			t.Fatal("still down after two successes")
		}
		r.advance(time.Second)
		want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond,
			1200 * time.Millisecond, 1300 * time.Millisecond, 2300 * time.Millisecond}
		if got := r.probeTimes("a"); !slices.Equal(got, want) {
			t.Errorf("checks at %v, want %v", got, want)
		}
		if n := r.logs.count("server down", "check: http status 503 (3 consecutive failures)"); n != 1 {
			t.Errorf("%d 'server down' lines with the reason, want 1:\n%s", n, r.logs)
		}
		if n := r.logs.count("server up", "check passed 2 times"); n != 1 {
			t.Errorf("%d 'server up' lines, want 1:\n%s", n, r.logs)
		}
		if d, u := r.transitions("a", "down"), r.transitions("a", "up"); d != 1 || u != 1 {
			t.Errorf("transitions: %v down, %v up; want 1 and 1", d, u)
		}
		if f, ok := r.checks("a", "failure"), r.checks("a", "success"); f != 3 || ok != 3 {
			t.Errorf("checks counted: %v failures, %v successes; want 3 and 3", f, ok)
		}
		st := s.HealthStatus()
		if st.Check != "up" || st.LastCheck != "passed" || st.Reason != "check passed 2 times" {
			t.Errorf("status %+v", st)
		}

		// Stopped, the checker runs no more checks and leaves no timer behind.
		r.bh.stop(true)
		r.advance(10 * time.Second)
		if n := len(r.probeTimes("a")); n != 6 {
			t.Errorf("%d checks after stop, want 6", n)
		}
		if n := r.clk.Armed(); n != 0 {
			t.Errorf("%d timers pending after stop", n)
		}
	})
}

// TestCheckerJitterSpreadsStarts checks that the servers' first checks are spread over
// the first interval.
func TestCheckerJitterSpreadsStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
		r := newHealthRig(t, Backend{HealthCheck: &HealthCheck{Interval: time.Second}}, names...)
		i := 0
		r.bh.rand = func() float64 { i++; return float64(i%8) / 8 }
		r.bh.start()
		r.advance(899 * time.Millisecond) // before any second check (0.9s at the earliest)
		seen := map[time.Duration]bool{}
		for _, n := range names {
			ts := r.probeTimes(n)
			if len(ts) != 1 {
				t.Fatalf("server %s: checks at %v in the first interval, want one", n, ts)
			}
			seen[ts[0]] = true
		}
		if len(seen) != len(names) {
			t.Errorf("first checks at %v: not spread", seen)
		}
	})
}

// TestReloadKeepsHealth checks that a new generation's checker takes over the state of a
// server it keeps, and that the old one's late results are dropped.
func TestReloadKeepsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hc := &HealthCheck{Interval: time.Second, FastInterval: 100 * time.Millisecond, Rise: 2, Fall: 2, Jitter: new(0)}
		r := newHealthRig(t, Backend{HealthCheck: hc}, "a")
		s := r.server("a")
		r.set("a", errRefused)
		r.bh.start()
		r.advance(100 * time.Millisecond)
		if s.Up() {
			t.Fatal("up after two failures")
		}
		old := s.health.checks
		next := newBackendHealthClock(r.bh.log, r.bh.m, r.b, r.clk)
		next.newProbe, next.rand = r.bh.newProbe, r.bh.rand
		next.start()
		r.bh.stop(false)
		t.Cleanup(func() { next.stop(true) })
		if s.Up() {
			t.Fatal("a reload brought the server up")
		}
		if _, ok := old.observe(nil, r.clk.Now()); ok {
			t.Error("the old generation's checker still owns the server")
		}
		r.set("a", nil)
		r.advance(1100 * time.Millisecond)
		if !s.Up() {
			t.Error("the new generation's checks did not bring the server up")
		}

		// A generation without health checks leaves the server up.
		r.set("a", errRefused)
		r.advance(1100 * time.Millisecond)
		if s.Up() {
			t.Fatal("still up after two failures")
		}
		r.b.cfg.HealthCheck = nil
		none := newBackendHealthClock(r.bh.log, r.bh.m, r.b, r.clk)
		none.start()
		next.stop(true)
		if !s.Up() {
			t.Error("removing the health checks left the server down")
		}
		if st := s.HealthStatus(); st.Check != "" {
			t.Errorf("check status %q without checks", st.Check)
		}
	})
}

func TestPassiveWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHealthRig(t, Backend{Passive: &PassiveCheck{MaxFails: new(3), FailTimeout: 10 * time.Second}}, "a", "b")
		r.bh.start()
		a := r.server("a")

		// Two failures, then the window passes: the count starts again.
		r.b.reportFailure(a, "connect")
		r.advance(time.Second)
		r.b.reportFailure(a, "timeout")
		r.advance(10 * time.Second)
		r.b.reportFailure(a, "connect")
		r.b.reportFailure(a, "connect")
		if !a.Up() {
			t.Fatal("down after 2 failures in the window; max_fails is 3")
		}
		// A success clears the count.
		r.b.reportSuccess(a)
		r.b.reportFailure(a, "connect")
		r.b.reportFailure(a, "connect")
		if !a.Up() {
			t.Fatal("down after a success and 2 failures")
		}
		r.b.reportFailure(a, "reset")
		if a.Up() || a.Available() {
			t.Fatal("up after 3 failures within fail_timeout")
		}
		r.b.reportFailure(a, "connect") // a request that was in flight
		if n := r.logs.count("server down", "passive: 3 failures within 10s, last: reset"); n != 1 {
			t.Errorf("%d 'server down' lines, want 1:\n%s", n, r.logs)
		}
		if st := a.HealthStatus(); !strings.HasPrefix(st.Passive, "down until ") {
			t.Errorf("passive status %q", st.Passive)
		}
		if b := r.b.byName["b"]; !b.Up() {
			t.Error("server b went down with a")
		}

		r.advance(9 * time.Second)
		if a.Up() {
			t.Fatal("back before fail_timeout")
		}
		r.advance(time.Second)
		if !a.Up() {
			t.Fatal("still out after fail_timeout")
		}
		// Back in, it starts from zero.
		r.b.reportFailure(a, "connect")
		r.b.reportFailure(a, "connect")
		if !a.Up() {
			t.Error("down after 2 new failures")
		}
		if d, u := r.transitions("a", "down"), r.transitions("a", "up"); d != 1 || u != 1 {
			t.Errorf("transitions: %v down, %v up; want 1 and 1", d, u)
		}
	})
}

func TestPassive5xx(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("on_5xx=", on), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newHealthRig(t, Backend{Passive: &PassiveCheck{On5xx: on}}, "a")
				r.bh.start()
				a := r.server("a")
				r.b.reportResponse(a, 404)
				if !a.Up() {
					t.Fatal("a 404 took the server out")
				}
				r.b.reportResponse(a, 503)
				if a.Up() == on {
					t.Errorf("after a 503: up %v", a.Up())
				}
			})
		})
	}
}

func TestPassiveHTTPFailureKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHealthRig(t, Backend{Passive: &PassiveCheck{MaxFails: new(1)}}, "a")
		r.bh.start()
		a := r.server("a")
		r.b.reportHTTPFailure(a, classify(fasthttp.ErrNoFreeConns, true))
		if !a.Up() {
			t.Fatal("a full connection pool took the server out")
		}
		r.b.reportHTTPFailure(a, classify(&connectError{"x", syscall.ECONNREFUSED}, true))
		if a.Up() {
			t.Fatal("a connect failure did not take the server out")
		}
	})
}

func TestPassiveOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for name, bc := range map[string]Backend{
			"no passive":  {},
			"max_fails 0": {Passive: &PassiveCheck{MaxFails: new(0)}},
		} {
			r := newHealthRig(t, bc, "a")
			r.bh.start()
			for range 10 {
				r.b.reportFailure(r.server("a"), "connect")
			}
			if !r.server("a").Up() {
				t.Errorf("%s: failures took the server out", name)
			}
		}
	})
}

// TestPassiveAndActive checks that a server passive checking took out comes back only
// when active checks say up.
func TestPassiveAndActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHealthRig(t, Backend{
			HealthCheck: &HealthCheck{Interval: time.Second, FastInterval: 100 * time.Millisecond, Rise: 2, Fall: 3, Jitter: new(0)},
			Passive:     &PassiveCheck{FailTimeout: 5 * time.Second},
		}, "a")
		a := r.server("a")
		r.bh.start()
		r.advance(0)

		// The server really is dead: passive takes it out at once, active checks (kicked
		// to run now) follow, and when fail_timeout ends it stays out.
		r.set("a", errRefused)
		r.b.reportFailure(a, "connect")
		if a.Up() {
			t.Fatal("up after a failure with max_fails 1")
		}
		r.advance(0)
		if got := r.probeTimes("a"); len(got) != 2 || got[1] != 0 {
			t.Errorf("checks at %v: the passive failure did not run a check at once", got)
		}
		r.advance(5 * time.Second)
		if a.Up() {
			t.Fatal("up after fail_timeout while active checks fail")
		}
		if st := a.HealthStatus(); st.Check != "down" {
			t.Errorf("check status %q, want down", st.Check)
		}
		// It comes back after rise successes.
		r.set("a", nil)
		r.advance(time.Second)
		r.advance(100 * time.Millisecond)
		if !a.Up() {
			t.Fatal("still down after the active checks passed")
		}
		if n := r.logs.count("server down"); n != 1 {
			t.Errorf("%d 'server down' lines, want 1", n)
		}

		// Failures on traffic while the checks pass: back after fail_timeout.
		r.b.reportFailure(a, "timeout")
		if a.Up() {
			t.Fatal("up after a failure")
		}
		r.advance(5 * time.Second)
		if !a.Up() {
			t.Fatal("still down after fail_timeout with passing checks")
		}
		if n := r.logs.count("server up", "passive: fail_timeout expired, check says up"); n != 1 {
			t.Errorf("%d 'server up' lines for the passive expiry, want 1:\n%s", n, r.logs)
		}
	})
}

func TestSlowStartRamp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHealthRig(t, Backend{SlowStart: 20 * time.Second}, "a")
		r.b.cfg.Servers[0].Weight = new(2)
		a := r.server("a")
		a.SetWeight(2)
		r.bh.start()
		if w := a.Weight(); w != 2*weightScale {
			t.Fatalf("weight %d at start, want full %d: slow start is for servers coming back", w, 2*weightScale)
		}
		a.SetState(Disabled)
		a.SetState(Enabled) // re-enabled: ramps
		steps := []struct {
			at   time.Duration
			want int
		}{
			{0, 10}, {999 * time.Millisecond, 10}, {time.Second, 20}, {10 * time.Second, 110},
			{19 * time.Second, 200}, {19999 * time.Millisecond, 200}, {20 * time.Second, 200}, {60 * time.Second, 200},
		}
		start := r.clk.Now()
		prev := 0
		for _, st := range steps {
			r.advance(start.Add(st.at).Sub(r.clk.Now()))
			w := a.Weight()
			if w != st.want {
				t.Errorf("at %v weight %d, want %d", st.at, w, st.want)
			}
			if w < prev {
				t.Errorf("at %v weight %d fell from %d", st.at, w, prev)
			}
			prev = w
		}
		if a.health.rampStart.Load() != 0 {
			t.Error("the ramp did not end")
		}
		if got := a.EffectiveWeight(); got != 2 {
			t.Errorf("EffectiveWeight() = %v, want 2", got)
		}

		// A server of weight 1 ramps too.
		a.SetWeight(1)
		a.startRamp(r.clk.Now())
		if w := a.Weight(); w != weightScale/rampSteps {
			t.Errorf("weight 1 at the start of the ramp: %d, want %d", w, weightScale/rampSteps)
		}
		r.advance(10 * time.Second)
		if w := a.EffectiveWeight(); w != 0.55 {
			t.Errorf("weight 1 halfway: %v, want 0.55", w)
		}
	})
}

// TestSlowStartAfterHealth checks that a server coming up again ramps.
func TestSlowStartAfterHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHealthRig(t, Backend{SlowStart: 10 * time.Second, Passive: &PassiveCheck{FailTimeout: time.Second}}, "a")
		a := r.server("a")
		r.bh.start()
		r.b.reportFailure(a, "connect")
		r.advance(time.Second)
		if !a.Up() {
			t.Fatal("still out")
		}
		if w := a.EffectiveWeight(); w != 0.05 {
			t.Errorf("effective weight %v right after coming back, want 0.05", w)
		}
		r.advance(5 * time.Second)
		if w := a.EffectiveWeight(); w != 0.55 {
			t.Errorf("effective weight %v halfway, want 0.55", w)
		}
	})
}

func TestParseAgentReply(t *testing.T) {
	tests := []struct {
		line string
		want string // agentReport.String(), or "error"
	}{
		{"75%\n", "75%"},
		{"drain", "drain"},
		{"up", "up"},
		{"down", "down"},
		{"ready", "ready"},
		{"maint", "maint"},
		{"stopped", "down"},
		{"fail", "down"},
		{"up 75%", "up 75%"},
		{"50%,drain", "drain 50%"},
		{"ready up 100%\r\n", "up ready 100%"},
		{"down#disk full", "down"},
		{"0%", "0%"},
		{"UP", "up"},
		{"maxconn:30 80%", "80%"},
		{"", "error"},
		{"  \n", "error"},
		{"#only a comment", "error"},
		{"101%", "error"},
		{"-1%", "error"},
		{"x%", "error"},
		{"sleepy", "error"},
		{"up sleepy", "error"},
	}
	for _, tc := range tests {
		r, err := parseAgentReply(tc.line)
		got := r.String()
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("parseAgentReply(%q) = %q (err %v), want %q", tc.line, got, err, tc.want)
		}
	}
}

func TestAgentApplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHealthRig(t, Backend{Agent: &AgentCheck{Port: 9, Interval: time.Second}, SlowStart: 10 * time.Second}, "a", "b")
		a, b := r.server("a"), r.server("b")
		r.bh.rand = func() float64 { return 0 }
		set := func(line string) {
			t.Helper()
			rep, err := parseAgentReply(line)
			if err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			r.agent["a"] = rep
			r.mu.Unlock()
			r.advance(time.Second)
		}
		r.bh.start()
		set("50%")
		if w := a.EffectiveWeight(); w != 0.5 || !a.Available() {
			t.Errorf("after 50%%: effective weight %v, available %v", w, a.Available())
		}
		set("drain")
		if a.Available() || !a.Up() {
			t.Errorf("after drain: available %v, up %v; want false, true", a.Available(), a.Up())
		}
		set("ready 100%")
		if !a.Available() {
			t.Error("not available after ready")
		}
		if w := a.EffectiveWeight(); w != 0.05 {
			t.Errorf("effective weight %v after ready, want slow start's 0.05", w)
		}
		set("down#maintenance")
		if a.Up() {
			t.Error("up after the agent said down")
		}
		if n := r.logs.count("server down", "agent: down"); n != 1 {
			t.Errorf("%d 'server down' lines, want 1", n)
		}
		set("down")
		set("down")
		if n := r.logs.count("agent report", "report=down"); n != 1 {
			t.Errorf("%d agent report lines for a repeated report, want 1", n)
		}
		set("up 0%")
		if !a.Up() || a.Available() {
			t.Errorf("after up 0%%: up %v available %v; want true, false", a.Up(), a.Available())
		}
		// The other server's agent does not answer: logged once, nothing changes.
		if !b.Up() || !b.Available() {
			t.Error("an unreachable agent changed the server")
		}
		if n := r.logs.count("agent query failed", "server=b"); n != 1 {
			t.Errorf("%d 'agent query failed' lines, want 1", n)
		}
		if st := b.HealthStatus(); st.Agent != "error: no agent" {
			t.Errorf("agent status %q", st.Agent)
		}
	})
}

func TestParseStatusRanges(t *testing.T) {
	tests := []struct {
		in   string
		in1  []int // codes that match
		out  []int // codes that do not
		fail bool
	}{
		{in: "200-399", in1: []int{200, 302, 399}, out: []int{199, 400, 503}},
		{in: "200", in1: []int{200}, out: []int{201, 204}},
		{in: "200,204", in1: []int{200, 204}, out: []int{201}},
		{in: "200, 300-302 ,404", in1: []int{200, 301, 404}, out: []int{303, 403}},
		{in: "", fail: true},
		{in: "abc", fail: true},
		{in: "300-200", fail: true},
		{in: "99", fail: true},
		{in: "200-600", fail: true},
		{in: "200,", fail: true},
		{in: "2xx", fail: true},
	}
	for _, tc := range tests {
		rs, err := parseStatusRanges(tc.in)
		if (err != nil) != tc.fail {
			t.Errorf("parseStatusRanges(%q): err %v, want failure %v", tc.in, err, tc.fail)
			continue
		}
		for _, c := range tc.in1 {
			if !statusIn(c, rs) {
				t.Errorf("%q: %d does not match", tc.in, c)
			}
		}
		for _, c := range tc.out {
			if statusIn(c, rs) {
				t.Errorf("%q: %d matches", tc.in, c)
			}
		}
	}
}

func TestHealthConfig(t *testing.T) {
	cfg := Config{Backends: []Backend{{
		Name: "app", Servers: []ServerConfig{{Address: "127.0.0.1:80"}},
		HealthCheck: &HealthCheck{}, Passive: &PassiveCheck{}, Agent: &AgentCheck{Port: 8081},
	}}}
	orig := cfg.Backends[0].HealthCheck
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := cfg.Backends[0]
	hc := b.HealthCheck
	if hc.Type != CheckTCP || hc.Interval != 2*time.Second || hc.Timeout != time.Second ||
		hc.Rise != 2 || hc.Fall != 3 || hc.FastInterval != 500*time.Millisecond || *hc.Jitter != 10 ||
		hc.HTTP.Method != "GET" || hc.HTTP.Path != "/" || hc.HTTP.ExpectStatus != "200-399" {
		t.Errorf("health_check defaults: %+v", *hc)
	}
	if orig.Interval != 0 {
		t.Error("SetDefaults changed the caller's health_check")
	}
	if *b.Passive.MaxFails != 1 || b.Passive.FailTimeout != 10*time.Second || b.Passive.On5xx {
		t.Errorf("passive defaults: %+v", *b.Passive)
	}
	if a := b.Agent; a.Type != CheckTCP || a.Interval != 5*time.Second || a.Timeout != time.Second || a.JSONField != "weight" {
		t.Errorf("agent defaults: %+v", *a)
	}

	bad := Config{Backends: []Backend{{
		Name: "app", Servers: []ServerConfig{{Address: "127.0.0.1:80"}}, SlowStart: -time.Second,
		HealthCheck: &HealthCheck{Type: "icmp", Interval: time.Second, Timeout: 2 * time.Second, Rise: -1,
			Jitter: new(80), HTTP: HTTPCheck{ExpectStatus: "2xx", Path: "health"}},
		Passive: &PassiveCheck{MaxFails: new(-1), FailTimeout: time.Millisecond},
		Agent:   &AgentCheck{Type: "udp"},
	}}}
	bad.SetDefaults()
	err := bad.Validate()
	for _, want := range []string{
		`backends[0].slow_start: (-1s) must not be negative`,
		`backends[0].health_check.type: must be tcp, http, https or tls, not "icmp"`,
		`backends[0].health_check.timeout: (2s) must not be longer than the interval (1s)`,
		`backends[0].health_check.rise: must be between 1 and 100, not -1`,
		`backends[0].health_check.jitter: must be between 0 and 50 (percent), not 80`,
		`backends[0].health_check.http.expect_status: "2xx" is not a status code or a range such as 200-399`,
		`backends[0].health_check.http.path: must start with / and hold no space, not "health"`,
		`backends[0].passive.max_fails: must be between 0 (off) and 1000, not -1`,
		`backends[0].passive.fail_timeout: (1ms) must be at least 10ms`,
		`backends[0].agent.type: must be tcp or http, not "udp"`,
		`backends[0].agent.port: must be 1-65535, not 0`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to say %s", err, want)
		}
	}
}

// TestClassifyRetries checks the retry rules: a connect failure always; a timeout or an
// empty answer only for an idempotent request; never once the server started answering.
func TestClassifyRetries(t *testing.T) {
	timeout := &os.SyscallError{Syscall: "read", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name              string
		err               error
		idempotent, retry bool
		reason            int
	}{
		{"connect refused, GET", &connectError{"x", syscall.ECONNREFUSED}, true, true, reasonConnect},
		{"connect refused, POST", &connectError{"x", syscall.ECONNREFUSED}, false, true, reasonConnect},
		{"pool full, POST", fasthttp.ErrNoFreeConns, false, true, reasonConnect},
		{"no answer in time, GET", fasthttp.ErrTimeout, true, true, reasonTimeout},
		{"no answer in time, POST", fasthttp.ErrTimeout, false, false, reasonTimeout},
		{"empty answer, GET", io.EOF, true, true, reasonEmpty},
		{"empty answer, POST", fasthttp.ErrConnectionClosed, false, false, reasonEmpty},
		{"send timeout, PUT", &sendError{timeout}, true, true, reasonTimeout},
		{"send reset, POST", &sendError{syscall.ECONNRESET}, false, false, reasonReset},
		{"timeout mid-answer, GET", timeout, true, false, reasonTimeout},
		{"reset mid-answer, GET", syscall.ECONNRESET, true, false, reasonReset},
		{"body cut, GET", &bodyError{io.ErrUnexpectedEOF}, true, false, reasonReset},
		{"invalid answer, GET", errors.New("cannot parse response status"), true, false, reasonInvalid},
	}
	for _, tc := range tests {
		f := classify(tc.err, tc.idempotent)
		if f.retry != tc.retry || f.reason != tc.reason {
			t.Errorf("%s: retry %v reason %s; want retry %v reason %s", tc.name, f.retry,
				reasonNames[f.reason], tc.retry, reasonNames[tc.reason])
		}
	}
}
