package main

// Integration tests of rate limits, server maxconn and queues, run-time server changes
// and node drain, against the real lbd and lbctl binaries.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// socketClient is an HTTP client for p's admin socket.
func (p *lbdProc) socketClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p.socket)
		},
	}}
}

// adminDo sends a request to p's admin API over its socket.
func (p *lbdProc) adminDo(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://lbd"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.socketClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pacedRequests sends n GETs to url at rate per second, paced by a ticker (catching up
// on ticks a loaded machine drops, so the run lasts n/rate), and returns the count of
// each status, the Retry-After values seen on 429s, the time from first to last send,
// and how late the latest send was against its schedule.
func pacedRequests(t *testing.T, url string, n, rate int) (map[int]int, map[string]int, time.Duration, time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	defer c.CloseIdleConnections()
	var mu sync.Mutex
	codes, retry := map[int]int{}, map[string]int{}
	var wg sync.WaitGroup
	send := func() {
		defer wg.Done()
		resp, err := c.Get(url)
		if err != nil {
			mu.Lock()
			codes[-1]++
			mu.Unlock()
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mu.Lock()
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			retry[resp.Header.Get("Retry-After")]++
		}
		mu.Unlock()
	}
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	var last time.Time
	var late time.Duration
	sent := 0
	for sent < n {
		due := min(int(time.Since(start)/interval)+1, n)
		for ; sent < due; sent++ {
			wg.Add(1)
			last = time.Now()
			late = max(late, last.Sub(start.Add(time.Duration(sent)*interval)))
			go send()
		}
		if sent < n {
			<-tick.C
		}
	}
	wg.Wait()
	return codes, retry, last.Sub(start), late
}

func TestRateLimit(t *testing.T) {
	be := namedBackend(t, "app", 0, nil)
	p0, p20 := freePort(t, "tcp"), freePort(t, "tcp")
	p := startLBD(t, fmt.Sprintf(`frontends:
  - name: rl0
    bind: "127.0.0.1:%d"
    backend: app
    rate_limit: {rate: 200r/s, burst: 0, nodelay: true}
  - name: rl20
    bind: "127.0.0.1:%d"
    backend: app
    rate_limit: {rate: 200r/s, burst: 20, nodelay: true}
backends:
  - name: app
    servers: [{address: "%s"}]
`, p0, p20, be.Listener.Addr()))
	const n, rate, limit = 1000, 400, 200
	metric := func(fe string) int {
		v, _ := strconv.Atoi(p.metric(t, `lbd_rate_limited_total{frontend="`+fe+`",result="rejected"}`))
		return v
	}

	// 1000 requests at 400 r/s, twice the rate of 200 r/s: nginx's arithmetic passes
	// 200 × the time taken, plus the burst, plus the first request, and rejects the rest:
	// 500 ± 5% over the 2.5 s. The burst of 20 absorbs 100ms of unevenness in the
	// arrivals, which a loaded machine adds. A run whose sends fell behind their pace
	// (the machine was too busy to offer 400 r/s) does not count, and is run again.
	var codes map[int]int
	var retry map[string]int
	var took, late time.Duration
	for attempt := 1; ; attempt++ {
		before := metric("rl20")
		codes, retry, took, late = pacedRequests(t, fmt.Sprintf("http://127.0.0.1:%d/", p20), n, rate)
		t.Logf("burst 20, attempt %d: %v in %v (sends up to %v late), Retry-After %v", attempt, codes, took, late, retry)
		if got := metric("rl20") - before; got != codes[429] {
			t.Errorf("lbd_rate_limited_total rejected grew by %d, want the %d 429s", got, codes[429])
		}
		if took <= 2600*time.Millisecond && late <= 50*time.Millisecond {
			break
		}
		if attempt == 3 {
			t.Skipf("could not send at %d r/s three times: the last run took %v with sends up to %v late (machine too loaded)", rate, took, late)
		}
		time.Sleep(200 * time.Millisecond) // the bucket drains
	}
	if codes[200]+codes[429] != n {
		t.Fatalf("burst 20: statuses %v, want only 200 and 429", codes)
	}
	passMax := limit*took.Seconds() + 21 + 2 // 2 for lbd's view of the span
	if pass := float64(codes[200]); pass > passMax {
		t.Errorf("burst 20: %d passed in %v, more than the %.0f nginx allows", codes[200], took, passMax)
	}
	want := float64(n) - (limit*took.Seconds() + 21)
	if r := float64(codes[429]); r < want-25 || r > want+25 || r < 450 || r > 525 {
		t.Errorf("burst 20: %d of %d rejected at twice the rate in %v, want %.0f ± 25 (500 ± 5%%, less the burst)", codes[429], n, took, want)
	}
	if len(retry) != 1 || retry["1"] == 0 {
		t.Errorf("Retry-After on 429s: %v, want all \"1\" (seconds, rounded up)", retry)
	}

	// With burst 0 a request passes only when 1/rate has gone by since the last that
	// passed: never more than the rate, and at exactly twice the rate each late arrival
	// costs a pass, so at least half are rejected.
	codes, _, took, _ = pacedRequests(t, fmt.Sprintf("http://127.0.0.1:%d/", p0), n, rate)
	t.Logf("burst 0: %v in %v", codes, took)
	if codes[200]+codes[429] != n {
		t.Fatalf("burst 0: statuses %v, want only 200 and 429", codes)
	}
	if pass, max := float64(codes[200]), limit*took.Seconds()+1+2; pass > max {
		t.Errorf("burst 0: %d passed in %v, more than the %.0f nginx allows", codes[200], took, max)
	}
	if codes[429] < 475 {
		t.Errorf("burst 0: only %d of %d rejected at twice the rate", codes[429], n)
	}
	// A client under the rate is never limited.
	time.Sleep(10 * time.Millisecond) // 1/rate is 5ms: the bucket drains
	for range 5 {
		if code, body := get(t, &http.Client{Timeout: 5 * time.Second}, fmt.Sprintf("http://127.0.0.1:%d/", p0), nil); code != 200 || body != "app" {
			t.Errorf("a request below the rate: %d %q", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// concurrencyBackend answers after delay and records the most requests it had in
// flight at once.
func concurrencyBackend(t *testing.T, name string, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var cur, peak atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(s.Close)
	return s, &peak
}

func TestServerMaxConnQueue(t *testing.T) {
	slow, peak := concurrencyBackend(t, "slow", 200*time.Millisecond)
	stuck, _ := concurrencyBackend(t, "stuck", 3*time.Second)
	pq, pt := freePort(t, "tcp"), freePort(t, "tcp")
	p := startLBD(t, fmt.Sprintf(`frontends:
  - {name: queued, bind: "127.0.0.1:%d", backend: app}
  - {name: timing, bind: "127.0.0.1:%d", backend: stuck}
backends:
  - name: app
    queue: {timeout: 10s}
    servers: [{name: s1, address: "%s", maxconn: 1}]
  - name: stuck
    retries: 0
    queue: {timeout: 300ms}
    servers: [{name: s1, address: "%s", maxconn: 1}]
`, pq, pt, slow.Listener.Addr(), stuck.Listener.Addr()))
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	// Five concurrent slow requests to a server of maxconn 1: they wait in the queue and
	// all succeed, one at a time.
	const n = 5
	var wg sync.WaitGroup
	results := make([]string, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", pq))
			if err != nil {
				results[i] = err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results[i] = fmt.Sprintf("%d %s", resp.StatusCode, b)
		}()
	}
	// Some of them are seen waiting.
	queued := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if v := p.metric(t, `lbd_backend_queue_length{backend="app"}`); v != "" && v != "0" {
			queued = true
			break
		}
	}
	wg.Wait()
	took := time.Since(start)
	for i, r := range results {
		if r != "200 slow" {
			t.Errorf("request %d: %s", i, r)
		}
	}
	if pk := peak.Load(); pk != 1 {
		t.Errorf("the server had %d requests in flight at once, want its maxconn 1", pk)
	}
	if took < n*200*time.Millisecond {
		t.Errorf("%d requests of 200ms each took %v one at a time", n, took)
	}
	if !queued {
		t.Errorf("lbd_backend_queue_length never showed a waiting request")
	}

	// A request that waits longer than the queue timeout gets 503.
	first := make(chan string, 1)
	go func() {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", pt))
		if err != nil {
			first <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		first <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	for deadline := time.Now().Add(5 * time.Second); p.metric(t, `lbd_server_active{backend="stuck",server="s1"}`) != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first request never reached the stuck server")
		}
	}
	t0 := time.Now()
	code, body := get(t, c, fmt.Sprintf("http://127.0.0.1:%d/", pt), nil)
	waited := time.Since(t0)
	if code != 503 || !strings.Contains(body, "queue timeout") {
		t.Errorf("queued past its timeout: %d %q, want 503 queue timeout", code, body)
	}
	if waited < 300*time.Millisecond || waited > 2500*time.Millisecond {
		t.Errorf("the queue timeout of 300ms answered after %v", waited)
	}
	if got := p.metric(t, `lbd_backend_queue_timeouts_total{backend="stuck"}`); got != "1" {
		t.Errorf("lbd_backend_queue_timeouts_total = %q, want 1", got)
	}
	if r := <-first; r != "200 stuck" {
		t.Errorf("the request holding the slot: %s", r)
	}
}

func TestServerDrainAtRunTime(t *testing.T) {
	s1, s2 := namedBackend(t, "s1", 0, nil), namedBackend(t, "s2", 0, nil)
	port := freePort(t, "tcp")
	cfg := fmt.Sprintf(`frontends:
  - {name: web, bind: "127.0.0.1:%d", backend: app}
backends:
  - name: app
    balance: roundrobin
    servers:
      - {name: s1, address: "%s"}
      - {name: s2, address: "%s"}
`, port, s1.Listener.Addr(), s2.Listener.Addr())
	p := startLBD(t, cfg)
	c := &http.Client{Timeout: 10 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	spread := func() map[string]int {
		seen := map[string]int{}
		for range 20 {
			code, body := get(t, c, url, nil)
			if code != 200 {
				t.Fatalf("status %d %q", code, body)
			}
			seen[body]++
		}
		return seen
	}

	out, code := p.lbctlRun(t, "server", "drain", "app", "s1")
	if code != 0 || !strings.Contains(out, "server app/s1") || !strings.Contains(out, "state drain") {
		t.Fatalf("lbctl server drain: exit %d\n%s", code, out)
	}
	if seen := spread(); seen["s1"] != 0 || seen["s2"] != 20 {
		t.Errorf("with s1 drained the requests went to %v, want all on s2", seen)
	}
	out, _ = p.lbctlRun(t, "status")
	if !strings.Contains(out, "drain") {
		t.Errorf("lbctl status does not show the drain:\n%s", out)
	}
	if got := p.metric(t, `lbd_server_state{backend="app",server="s1",state="drain"}`); got != "1" {
		t.Errorf("lbd_server_state drain = %q, want 1", got)
	}
	if n := strings.Count(p.logs.String(), "server changed at run time"); n != 1 {
		t.Errorf("%d log lines for one change", n)
	}

	// A reload of the unchanged file keeps the run-time drain.
	p.reload(t, "success")
	if seen := spread(); seen["s1"] != 0 {
		t.Errorf("after a reload the drained s1 got requests: %v", seen)
	}

	// Errors name what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "drain", "app", "nope"}, `backend "app" has no server named "nope"`},
		{[]string{"server", "drain", "web2", "s1"}, `no backend named "web2"`},
		{[]string{"server", "drain", "app"}, "drain needs BACKEND and SERVER (got 1 argument(s))"},
		{[]string{"server", "set", "app", "s1", "--state", "sleepy"}, `--state must be enabled, drain or disabled, not "sleepy"`},
		{[]string{"server", "set", "app", "s1", "--weight", "300"}, "--weight must be between 0 and 256, not 300"},
		{[]string{"server", "set", "app", "s1"}, "nothing to change: give --state, --weight or both"},
	} {
		out, code := p.lbctlRun(t, tc.args...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("lbctl %v: exit %d\n%s\nwant exit 1 and %q", tc.args, code, out, tc.want)
		}
	}
	// The API itself checks too, and says which field.
	for _, tc := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/v1/backends/app/servers/s1", `{"weight": 300}`, 400, "weight: must be between 0 and 256, not 300"},
		{"/v1/backends/app/servers/s1", `{"state": "sleepy"}`, 400, `state: must be enabled, drain or disabled, not \"sleepy\"`},
		{"/v1/backends/app/servers/s1", `{"weight": "heavy"}`, 400, "weight: must be a JSON int, not string"},
		{"/v1/backends/app/servers/s9", `{"state": "drain"}`, 404, `backend \"app\" has no server named \"s9\"`},
		{"/v1/backends/nope/servers/s1", `{"state": "drain"}`, 404, `no backend named \"nope\"`},
	} {
		code, body := p.adminDo(t, http.MethodPut, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("PUT %s %s: %d %s, want %d and %q", tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}

	out, code = p.lbctlRun(t, "server", "set", "app", "s1", "--state", "enabled", "--weight", "3")
	if code != 0 || !strings.Contains(out, "state enabled, weight 3") {
		t.Fatalf("lbctl server set: exit %d\n%s", code, out)
	}
	if seen := spread(); seen["s1"] != 15 || seen["s2"] != 5 {
		t.Errorf("with weights 3 and 1 the requests went %v, want s1 15, s2 5", seen)
	}
	out, code = p.lbctlRun(t, "server", "disable", "app", "s2")
	if code != 0 || !strings.Contains(out, "state disabled") {
		t.Fatalf("lbctl server disable: exit %d\n%s", code, out)
	}
	if seen := spread(); seen["s2"] != 0 {
		t.Errorf("the disabled s2 got requests: %v", seen)
	}

	// When the file changes s2's state, the file wins over the run-time change.
	p.write(t, strings.Replace(cfg, `{name: s2, address: "`, `{name: s2, state: drain, address: "`, 1))
	p.reload(t, "success")
	st, err := p.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Dataplane.Backends[0].Servers {
		if s.Name == "s2" && s.State != "drain" {
			t.Errorf("after the file set s2 to drain, s2 is %s", s.State)
		}
	}
}

func TestNodeDrain(t *testing.T) {
	be := namedBackend(t, "app", 0, nil)
	port := freePort(t, "tcp")
	p := startLBD(t, fmt.Sprintf(`frontends:
  - {name: web, bind: "127.0.0.1:%d", backend: app}
backends:
  - name: app
    servers: [{address: "%s"}]
`, port, be.Listener.Addr()))
	c := &http.Client{Timeout: 10 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)

	if code, body := p.adminDo(t, http.MethodGet, "/healthz", ""); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz before drain: %d %q", code, body)
	}
	out, code := p.lbctlRun(t, "node", "drain", "--grace", "300ms")
	if code != 0 || !strings.Contains(out, "node draining") {
		t.Fatalf("lbctl node drain: exit %d\n%s", code, out)
	}
	if code, body := p.adminDo(t, http.MethodGet, "/healthz", ""); code != 503 || body != "draining\n" {
		t.Errorf("/healthz while drained: %d %q, want 503 draining", code, body)
	}
	// Traffic keeps flowing, in the grace period and after.
	for range 10 {
		if code, body := get(t, c, url, nil); code != 200 || body != "app" {
			t.Fatalf("request while drained: %d %q", code, body)
		}
	}
	if got := p.metric(t, "lbd_node_draining"); got != "1" {
		t.Errorf("lbd_node_draining = %q, want 1", got)
	}
	out, _ = p.lbctlRun(t, "node", "status")
	if !strings.Contains(out, "node draining since") {
		t.Errorf("lbctl node status:\n%s", out)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.logs.String(), "node drain grace period over"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the end of the grace period was not logged:\n%s", p.logs.String())
		}
	}
	if code, _ := get(t, c, url, nil); code != 200 {
		t.Errorf("request after the grace period: %d", code)
	}
	out, _ = p.lbctlRun(t, "node", "status")
	if !strings.Contains(out, "grace period over") {
		t.Errorf("lbctl node status after the grace:\n%s", out)
	}
	if out, code := p.lbctlRun(t, "node", "drain", "--grace", "-1s"); code != 1 || !strings.Contains(out, "--grace must not be negative") {
		t.Errorf("lbctl node drain --grace -1s: exit %d\n%s", code, out)
	}
	if code, body := p.adminDo(t, http.MethodPost, "/v1/node/drain", `{"grace": "soon"}`); code != 400 || !strings.Contains(body, `grace: must be a duration`) {
		t.Errorf("drain with a bad grace: %d %s", code, body)
	}

	out, code = p.lbctlRun(t, "node", "undrain")
	if code != 0 || !strings.Contains(out, "undrained") {
		t.Fatalf("lbctl node undrain: exit %d\n%s", code, out)
	}
	if code, body := p.adminDo(t, http.MethodGet, "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("/healthz after undrain: %d %q", code, body)
	}
	if got := p.metric(t, "lbd_node_draining"); got != "0" {
		t.Errorf("lbd_node_draining = %q, want 0", got)
	}
}
