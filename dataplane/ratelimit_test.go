package dataplane

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"lbd/internal/clock"
)

func TestLimitStep(t *testing.T) {
	const r10 = 10 * 1000 // 10r/s in milli-requests per second
	tests := []struct {
		name                string
		b                   limitBucket
		now, rate, burst    int64
		nodelay             bool
		wantOK              bool
		wantB               limitBucket
		wantDelay, wantWait time.Duration
	}{
		{name: "drained after 1/rate", b: limitBucket{0, 0}, now: 100, rate: r10,
			wantOK: true, wantB: limitBucket{0, 100}},
		{name: "too soon, burst 0", b: limitBucket{0, 0}, now: 50, rate: r10,
			wantB: limitBucket{0, 0}, wantWait: 50 * time.Millisecond},
		{name: "excess clamps at 0", b: limitBucket{3000, 0}, now: 10000, rate: r10,
			wantOK: true, wantB: limitBucket{0, 10000}},
		{name: "within burst is delayed excess/rate", b: limitBucket{0, 0}, now: 0, rate: r10, burst: 5000,
			wantOK: true, wantB: limitBucket{1000, 0}, wantDelay: 100 * time.Millisecond},
		{name: "at the burst", b: limitBucket{4000, 0}, now: 0, rate: r10, burst: 5000,
			wantOK: true, wantB: limitBucket{5000, 0}, wantDelay: 500 * time.Millisecond},
		{name: "partly drained, delayed", b: limitBucket{4000, 0}, now: 250, rate: r10, burst: 5000,
			wantOK: true, wantB: limitBucket{2500, 250}, wantDelay: 250 * time.Millisecond},
		{name: "nodelay passes at once", b: limitBucket{4000, 0}, now: 0, rate: r10, burst: 5000, nodelay: true,
			wantOK: true, wantB: limitBucket{5000, 0}},
		{name: "over the burst", b: limitBucket{5000, 0}, now: 0, rate: r10, burst: 5000,
			wantB: limitBucket{5000, 0}, wantWait: 100 * time.Millisecond},
		{name: "over the burst, nodelay", b: limitBucket{5000, 0}, now: 20, rate: r10, burst: 5000, nodelay: true,
			wantB: limitBucket{5000, 0}, wantWait: 80 * time.Millisecond},
		// 1r/m is 1000/60 = 16 milli-requests per second, rounded down as nginx does: a
		// request a minute after the last is still 40 milli-requests early.
		{name: "1r/m rounds down", b: limitBucket{0, 0}, now: 60000, rate: 16,
			wantB: limitBucket{0, 0}, wantWait: 2500 * time.Millisecond},
		{name: "clock went back a little", b: limitBucket{0, 1000}, now: 900, rate: r10, burst: 1000,
			wantOK: true, wantB: limitBucket{1000, 1000}, wantDelay: 100 * time.Millisecond},
		{name: "clock went back a lot counts 1ms", b: limitBucket{0, 100000}, now: 0, rate: r10, burst: 1000,
			wantOK: true, wantB: limitBucket{990, 0}, wantDelay: 99 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, v := limitStep(tc.b, tc.now, tc.rate, tc.burst, tc.nodelay)
			if v.ok != tc.wantOK || b != tc.wantB || v.delay != tc.wantDelay || v.retryAfter != tc.wantWait {
				t.Errorf("limitStep(%+v, now %d) = %+v, %+v; want ok %v %+v delay %v retry after %v",
					tc.b, tc.now, b, v, tc.wantOK, tc.wantB, tc.wantDelay, tc.wantWait)
			}
		})
	}
}

// ctlLimiter is a limiter of cfg on a fake clock, with counters to read.
func ctlLimiter(cfg RateLimit) (*limiter, *clock.Fake) {
	cfg.setDefaults()
	clk := clock.NewFake()
	return newLimiter(cfg, clk, nil, nil), clk
}

// ctlRun sends one request of key every step, n times, and writes each verdict as "ok",
// "ok+DELAY" or "429/WAIT".
func ctlRun(l *limiter, clk *clock.Fake, key string, step time.Duration, n int) string {
	var out []string
	for i := range n {
		if i > 0 {
			clk.Advance(step)
		}
		v := l.take([]byte(key))
		switch {
		case !v.ok:
			out = append(out, "429/"+v.retryAfter.String())
		case v.delay > 0:
			out = append(out, "ok+"+v.delay.String())
		default:
			out = append(out, "ok")
		}
	}
	return strings.Join(out, " ")
}

func TestLimiterSequences(t *testing.T) {
	tests := []struct {
		name string
		cfg  RateLimit
		step time.Duration
		n    int
		want string
	}{
		{"twice the rate, burst 0: every other request", RateLimit{Rate: "10r/s"}, 50 * time.Millisecond, 6,
			"ok 429/50ms ok 429/50ms ok 429/50ms"},
		{"at the rate: all pass", RateLimit{Rate: "10r/s"}, 100 * time.Millisecond, 4, "ok ok ok ok"},
		{"per minute", RateLimit{Rate: "120r/m"}, 250 * time.Millisecond, 4, "ok 429/250ms ok 429/250ms"},
		{"burst of 3, delayed", RateLimit{Rate: "10r/s", Burst: 3}, 0, 6,
			"ok ok+100ms ok+200ms ok+300ms 429/100ms 429/100ms"},
		{"burst of 3, nodelay", RateLimit{Rate: "10r/s", Burst: 3, NoDelay: true}, 0, 6,
			"ok ok ok ok 429/100ms 429/100ms"},
		{"burst drains at the rate", RateLimit{Rate: "10r/s", Burst: 2}, 50 * time.Millisecond, 8,
			"ok ok+50ms ok+100ms ok+150ms ok+200ms 429/50ms ok+200ms 429/50ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := ctlLimiter(tc.cfg)
			if got := ctlRun(l, clk, "10.0.0.1", tc.step, tc.n); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLimiterKeysAreSeparate(t *testing.T) {
	l, _ := ctlLimiter(RateLimit{Rate: "1r/s"})
	for _, k := range []string{"a", "b", "c"} {
		if v := l.take([]byte(k)); !v.ok {
			t.Fatalf("first request of %s rejected", k)
		}
	}
	if v := l.take([]byte("a")); v.ok {
		t.Fatal("second request of a at once passed at 1r/s")
	}
	if v := l.take(nil); !v.ok {
		t.Fatal("a request with no key was limited")
	}
	if n := l.size(); n != 3 {
		t.Fatalf("%d keys held, want 3", n)
	}
}

func TestLimiterMaxKeysEvictsLeastRecentlyUsed(t *testing.T) {
	l, clk := ctlLimiter(RateLimit{Rate: "1r/s", MaxKeys: 3})
	for _, k := range []string{"a", "b", "c"} {
		l.take([]byte(k))
		clk.Advance(10 * time.Millisecond)
	}
	l.take([]byte("a")) // rejected, but a is now the most recently used
	if v := l.take([]byte("d")); !v.ok {
		t.Fatal("new key d rejected")
	}
	if n := l.size(); n != 3 {
		t.Fatalf("%d keys held, want max_keys 3", n)
	}
	// b, the least recently used, was forgotten: it starts afresh (and takes c's place).
	// a was kept.
	if v := l.take([]byte("b")); !v.ok {
		t.Error("b was not evicted: its second request was limited")
	}
	if v := l.take([]byte("a")); v.ok {
		t.Error("a was evicted although used more recently than b")
	}
	if n := l.size(); n != 3 {
		t.Fatalf("%d keys held, want 3", n)
	}
}

func TestLimiterExpiresDrainedKeys(t *testing.T) {
	l, clk := ctlLimiter(RateLimit{Rate: "10r/s", Burst: 5, NoDelay: true})
	for range 4 {
		l.take([]byte("a")) // excess 3000
	}
	// a's excess plus a request (4000) drains in 400ms; until then it is kept.
	clk.Advance(399 * time.Millisecond)
	l.take([]byte("b"))
	if n := l.size(); n != 2 {
		t.Fatalf("%d keys held at 399ms, want 2 (a has not drained)", n)
	}
	clk.Advance(time.Millisecond)
	l.take([]byte("b")) // b was used last: a is at the tail, drained
	if n := l.size(); n != 1 {
		t.Fatalf("%d keys held at 400ms, want 1 (a drained and expired)", n)
	}
	// An expired key behaves exactly as it would have: it passes.
	if v := l.take([]byte("a")); !v.ok || v.delay != 0 {
		t.Fatalf("a after expiry: %+v", v)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 62500 * time.Millisecond: 63,
	} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestRateLimitConfig(t *testing.T) {
	tests := []struct {
		mode string
		rl   RateLimit
		want string // "" for valid
	}{
		{ModeHTTP, RateLimit{Rate: "100r/s"}, ""},
		{ModeTCP, RateLimit{Rate: "600r/m", Burst: 10}, ""},
		{ModeHTTP, RateLimit{Rate: "5r/s", Key: "header:X-API-Key"}, ""},
		{ModeHTTP, RateLimit{}, `frontends[0].rate_limit.rate: is required`},
		{ModeHTTP, RateLimit{Rate: "100/s"}, `frontends[0].rate_limit.rate: must be a rate such as "100r/s" or "600r/m", not "100/s"`},
		{ModeHTTP, RateLimit{Rate: "0r/s"}, `not "0r/s"`},
		{ModeHTTP, RateLimit{Rate: "10r/h"}, `not "10r/h"`},
		{ModeHTTP, RateLimit{Rate: "2000000r/s"}, `"2000000r/s" is more than 1000000r/s`},
		{ModeHTTP, RateLimit{Rate: "1r/s", Burst: -1}, `frontends[0].rate_limit.burst: must be between 0 and 1000000, not -1`},
		{ModeHTTP, RateLimit{Rate: "1r/s", MaxKeys: -5}, `frontends[0].rate_limit.max_keys: must be between 1 and 10000000, not -5`},
		{ModeHTTP, RateLimit{Rate: "1r/s", Key: "cookie:x"}, `frontends[0].rate_limit.key: must be client_ip or header:NAME, not "cookie:x"`},
		{ModeTCP, RateLimit{Rate: "1r/s", Key: "header:X"}, `frontends[0].rate_limit.key: "header:X" needs mode http`},
		{ModeUDP, RateLimit{Rate: "1r/s"}, `frontends[0].rate_limit: needs mode http or tcp, not udp`},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %+v", tc.mode, tc.rl), func(t *testing.T) {
			rl := tc.rl
			c := Config{
				Frontends: []Frontend{{Name: "fe", Mode: tc.mode, Bind: "127.0.0.1:0", Backend: "be", RateLimit: &rl}},
				Backends:  []Backend{{Name: "be", Servers: []ServerConfig{{Address: "127.0.0.1:1"}}}},
			}
			c.SetDefaults()
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			var fe *FieldError
			if err != nil && !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
		})
	}
	var c Config
	c.Frontends = []Frontend{{RateLimit: &RateLimit{Rate: "1r/s"}}}
	c.SetDefaults()
	if rl := c.Frontends[0].RateLimit; rl.Key != "client_ip" || rl.MaxKeys != DefaultRateLimitMaxKeys {
		t.Errorf("defaults: %+v", rl)
	}
}

func TestHTTPRateLimit(t *testing.T) {
	skipShort(t, "waits out real rate-limit windows")
	forEachEngine(t, testHTTPRateLimit)
}

func testHTTPRateLimit(t *testing.T, engine string) {
	be := htNamed(t, "s0")
	cfg := withEngine(htConfig(BalanceRoundRobin, be.addr()), engine)
	cfg.Frontends[0].RateLimit = &RateLimit{Rate: "2r/s", Burst: 1}
	d := htDataplane(t, cfg)
	c := htClient(t)
	url := htURL(t, d)

	// Three at once: one passes, one waits its turn (500ms), one is over the burst.
	type result struct {
		code     int
		body, ra string
		took     time.Duration
	}
	results := make(chan result, 3)
	start := time.Now()
	for range 3 {
		go func() {
			resp, err := c.Get(url)
			if err != nil {
				results <- result{code: -1, body: err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{resp.StatusCode, string(b), resp.Header.Get("Retry-After"), time.Since(start)}
		}()
	}
	var ok []time.Duration
	for range 3 {
		r := <-results
		switch r.code {
		case 200:
			ok = append(ok, r.took)
		case 429:
			if r.ra != "1" {
				t.Errorf("Retry-After %q, want 1", r.ra)
			}
			if want := "429 Too Many Requests: rate limit of 2r/s exceeded\n"; r.body != want {
				t.Errorf("body %q, want %q", r.body, want)
			}
		default:
			t.Errorf("status %d %q", r.code, r.body)
		}
	}
	if len(ok) != 2 {
		t.Fatalf("%d of 3 passed, want 2", len(ok))
	}
	if slow := max(ok[0], ok[1]); slow < 450*time.Millisecond {
		t.Errorf("the request within the burst was not delayed: it took %v, want 500ms", slow)
	}
	m := d.metrics.ctl.rateLimited
	if v := htValue(t, m.WithLabelValues("fe", "delayed")); v != 1 {
		t.Errorf("delayed counted %v, want 1", v)
	}
	if v := htValue(t, m.WithLabelValues("fe", "rejected")); v != 1 {
		t.Errorf("rejected counted %v, want 1", v)
	}
}

func TestTCPRateLimitCloses(t *testing.T) {
	cfg := l4Config(ModeTCP, BalanceRoundRobin, tcpServer(t, tcpEcho))
	cfg.Frontends[0].RateLimit = &RateLimit{Rate: "1r/m"}
	d := l4Dataplane(t, cfg)
	tcpRoundTrip(t, tcpDial(t, d), "first")
	// The second connection within the minute is closed without reaching a server.
	c := tcpDial(t, d)
	if got := tcpReadAll(t, c); got != "" {
		t.Fatalf("rate-limited connection got %q", got)
	}
	if v := htValue(t, d.metrics.ctl.rateLimited.WithLabelValues("fe", "rejected")); v != 1 {
		t.Errorf("rejected counted %v, want 1", v)
	}
}

// TestLimiterKeyBytes: keys a client made long cost the table a bounded number of bytes
// each, and stay apart.
func TestLimiterKeyBytes(t *testing.T) {
	l, _ := ctlLimiter(RateLimit{Rate: "1r/s", MaxKeys: 1000})
	long := make([]byte, 16<<10)
	for i := range 1000 {
		copy(long, fmt.Sprintf("%08d", i))
		long[len(long)-1] = byte(i)
		l.take(long)
	}
	n := 0
	l.mu.Lock()
	for k := range l.keys {
		n += len(k)
	}
	l.mu.Unlock()
	if max := 1000 * (1 + maxLimitKeyBytes); n > max {
		t.Errorf("1000 keys of 16 KiB hold %d KiB of keys, want at most %d KiB", n>>10, max>>10)
	}
	// Two long keys that differ only in their last byte are two keys.
	a, b := make([]byte, 1000), make([]byte, 1000)
	b[999] = 1
	if v := l.take(a); !v.ok {
		t.Fatal("first request of a rejected")
	}
	if v := l.take(b); !v.ok {
		t.Error("first request of b rejected: long keys share a bucket")
	}
	if v := l.take(a); v.ok {
		t.Error("second request of a at once passed at 1r/s")
	}
}
