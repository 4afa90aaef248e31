package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// restartableBackend is an HTTP server answering its name that can be stopped and
// started again on the same address.
type restartableBackend struct {
	name, addr string
	// mu guards srv.
	mu  sync.Mutex
	srv *http.Server
}

func newRestartableBackend(t *testing.T, name string) *restartableBackend {
	t.Helper()
	b := &restartableBackend{name: name, addr: "127.0.0.1:0"}
	b.start(t)
	t.Cleanup(b.stop)
	return b
}

func (b *restartableBackend) start(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", b.addr)
	if err != nil {
		t.Fatalf("backend %s: %v", b.name, err)
	}
	b.addr = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, b.name)
	})}
	go srv.Serve(l)
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
}

// stop closes the listener and the idle connections, and lets answers in progress
// finish: the server is gone, as after a crash between two requests.
func (b *restartableBackend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
}

// waitMetric polls the metric series until it has value want.
func (p *lbdProc) waitMetric(t *testing.T, series, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for p.metric(t, series) != want {
		if time.Since(start) > within {
			t.Fatalf("%s is %q after %v, want %q\n%s", series, p.metric(t, series), within, want, p.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestHealthKillAndRestart kills one of three servers under steady traffic and starts it
// again: passive checks (or, without them, active checks) take it out, retries hide its
// failures from the clients, and active checks take it back after rise successes.
func TestHealthKillAndRestart(t *testing.T) {
	for _, passive := range []bool{true, false} {
		t.Run(fmt.Sprint("passive=", passive), func(t *testing.T) { testKillAndRestart(t, passive) })
	}
}

func testKillAndRestart(t *testing.T, passive bool) {
	backends := []*restartableBackend{
		newRestartableBackend(t, "s1"), newRestartableBackend(t, "s2"), newRestartableBackend(t, "s3"),
	}
	port := freePort(t, "tcp")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `frontends:
  - {name: web, bind: "127.0.0.1:%d", backend: app}
backends:
  - name: app
    balance: roundrobin
    retries: 2
    timeouts: {connect: 500ms, response: 2s}
    health_check:
      type: http
      interval: 300ms
      fast_interval: 50ms
      timeout: 300ms
      rise: 2
      fall: 3
      http: {path: /health, expect_status: "200-299", expect_body: s}
`, port)
	if passive {
		cfg.WriteString("    passive: {max_fails: 1, fail_timeout: 300ms}\n")
	}
	cfg.WriteString("    servers:\n")
	for _, b := range backends {
		fmt.Fprintf(&cfg, "      - {name: %s, address: %q}\n", b.name, b.addr)
	}
	p := startLBD(t, cfg.String())
	// Wait until s2 has passed two checks; the count may move on between two looks.
	start := time.Now()
	for n := 0; n < 2; fmt.Sscan(p.metric(t, `lbd_health_checks_total{backend="app",result="success",server="s2"}`), &n) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("s2 did not pass two health checks in 10s\n%s", p.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Steady traffic: a GET every 10ms, counting answers by server and failures.
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var (
		mu       sync.Mutex
		answers  = map[string]int{}
		failures []string
		stopped  atomic.Bool
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 5 * time.Second}
		for i := 0; i < 2000 && !stopped.Load(); i++ { // at most 20s
			resp, err := c.Get(url)
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			switch {
			case err != nil:
				failures = append(failures, err.Error())
			case resp.StatusCode != http.StatusOK:
				failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, body))
			default:
				answers[string(body)]++
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	stopTraffic := func() {
		stopped.Store(true)
		<-done
	}
	defer stopTraffic()
	snapshot := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range answers {
			out[k] = v
		}
		return out
	}
	time.Sleep(300 * time.Millisecond)
	if n := snapshot()["s2"]; n == 0 {
		t.Fatalf("s2 got no traffic before the kill: %v", snapshot())
	}

	// Kill s2: it is taken out, by passive checking at its first failed request or by
	// the active checks within fall × fast_interval plus one interval.
	backends[1].stop()
	// Active checks alone: the next check (≤ 330ms) and two more at the fast interval
	// (≤ 55ms each), with time to spare for a loaded machine.
	took := p.waitMetric(t, `lbd_server_up{backend="app",server="s2"}`, "0", 3*time.Second)
	t.Logf("s2 down %v after the kill", took)
	// Active checks confirm: after fail_timeout the server stays out.
	time.Sleep(600 * time.Millisecond)
	if v := p.metric(t, `lbd_server_up{backend="app",server="s2"}`); v != "0" {
		t.Fatalf("s2 back (lbd_server_up %s) while it is dead", v)
	}
	errs := 0
	for _, reason := range []string{"connect", "empty", "reset"} {
		var n int
		fmt.Sscan(p.metric(t, `lbd_server_errors_total{backend="app",reason="`+reason+`",server="s2"}`), &n)
		errs += n
	}
	if passive && errs > 3 {
		t.Errorf("%d requests failed on s2 before it was taken out; passive checking should stop it within a few", errs)
	}
	before := snapshot()["s2"]
	time.Sleep(200 * time.Millisecond)
	if after := snapshot()["s2"]; after != before {
		t.Errorf("s2 answered %d requests while dead", after-before)
	}
	if st, err := p.client.Status(context.Background()); err == nil {
		for _, b := range st.Dataplane.Backends {
			for _, s := range b.Servers {
				if s.Name == "s2" && (s.Up || s.Health.Check != "down" || !strings.Contains(s.Health.LastCheck, "connection refused")) {
					t.Errorf("status of dead s2: up %v, health %+v", s.Up, s.Health)
				}
			}
		}
	} else {
		t.Error(err)
	}

	// Start s2 again on the same address: taken back after rise successes.
	backends[1].start(t)
	took = p.waitMetric(t, `lbd_server_up{backend="app",server="s2"}`, "1", 3*time.Second)
	t.Logf("s2 up %v after the restart", took)
	before = snapshot()["s2"]
	time.Sleep(300 * time.Millisecond)
	if after := snapshot()["s2"]; after <= before {
		t.Errorf("s2 got no traffic after coming back (%d before, %d after)", before, after)
	}
	stopTraffic()

	mu.Lock()
	t.Logf("answers %v, failures %d", answers, len(failures))
	if len(failures) > 0 {
		t.Errorf("%d client requests failed, want 0 thanks to retries: %q", len(failures), failures)
	}
	mu.Unlock()
	for _, to := range []string{"down", "up"} {
		if v := p.metric(t, `lbd_server_transitions_total{backend="app",server="s2",to="`+to+`"}`); v != "1" {
			t.Errorf("lbd_server_transitions_total to %s: %q, want 1", to, v)
		}
	}
	if v := p.metric(t, `lbd_server_transitions_total{backend="app",server="s1",to="down"}`); v != "" && v != "0" {
		t.Errorf("s1 went down %s times", v)
	}
	if n := strings.Count(p.logs.String(), "server down"); n != 1 {
		t.Errorf("%d 'server down' log lines, want 1", n)
	}
}
