package dataplane

// Rate limits.
//
// A frontend's rate_limit is nginx's limit_req, to the arithmetic: a leaky bucket per key
// (the client address, or a request header), kept in milli-requests and milliseconds as
// ngx_http_limit_req_module keeps it. A request at now, the key's bucket last touched at
// last with excess E:
//
//	excess = max(0, E − rate·(now − last)/1000 + 1000)
//	excess > burst             → rejected (the bucket is not touched)
//	nodelay, or excess == 0    → passes at once
//	otherwise                  → passes after excess·1000/rate ms
//
// where rate is in milli-requests per second and burst in milli-requests. Rejected HTTP
// requests get 429 with Retry-After (the seconds until a request would pass, rounded
// up); in tcp mode a rejected connection is closed. Delayed requests wait on a timer;
// since excess never exceeds burst, no request waits longer than burst/rate, and a key
// has at most burst requests waiting.
//
// Memory is bounded: at most max_keys keys, in least-recently-used order. Each request
// first drops up to two of the least recently used keys whose excess has drained (a key
// whose bucket would now behave as a fresh one's), and, when the table is full, the least
// recently used key whatever its state, as nginx does when its zone is full. Requests
// whose key is empty (header:NAME and the header is missing) are not limited, as in
// nginx. Keys are bounded by bytes too: a key over maxLimitKeyBytes (a header a client
// made long) is held as its SHA-256 digest (limitMapKey), so the table holds at most
// max_keys × 65 bytes of keys, and long keys stay apart.

import (
	"container/list"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"lbd/internal/clock"
)

// RateLimit is a frontend's request rate limit, nginx's limit_req.
type RateLimit struct {
	// Key is what the limit counts by: client_ip, or header:NAME (http mode; requests
	// without the header are not limited). Default: client_ip.
	Key string `yaml:"key"`
	// Rate is the sustained rate per key, as "100r/s" or "600r/m". Required.
	Rate string `yaml:"rate"`
	// Burst is how many requests over the rate a key may have outstanding; over it,
	// requests are rejected. Default: 0.
	Burst int `yaml:"burst"`
	// NoDelay passes the requests within the burst at once instead of spacing them to
	// the rate. Default: false.
	NoDelay bool `yaml:"nodelay"`
	// MaxKeys bounds the keys remembered; over it the least recently used is forgotten.
	// Default: 100000.
	MaxKeys int `yaml:"max_keys"`
}

// Defaults and bounds of a rate limit.
const (
	DefaultRateLimitMaxKeys = 100000
	maxRateLimitMaxKeys     = 10000000
	maxRateLimitBurst       = 1000000
	maxRateLimitRate        = 1000000 // requests per second or minute
)

func (r *RateLimit) setDefaults() {
	if r == nil {
		return
	}
	if r.Key == "" {
		r.Key = "client_ip"
	}
	if r.MaxKeys == 0 {
		r.MaxKeys = DefaultRateLimitMaxKeys
	}
}

func validateRateLimit(errs *errList, p string, f Frontend) {
	r := f.RateLimit
	if r == nil {
		return
	}
	if f.Mode != ModeHTTP && f.Mode != ModeTCP {
		errs.add(p, "needs mode http or tcp, not %s", f.Mode)
	}
	if k, err := parseLimitKey(r.Key); err != nil {
		errs.add(p+".key", "%v", err)
	} else if k.header != "" && f.Mode == ModeTCP {
		errs.add(p+".key", "%q needs mode http; tcp mode limits by client_ip", r.Key)
	}
	if r.Rate == "" {
		errs.add(p+".rate", "is required, such as \"100r/s\" or \"600r/m\"")
	} else if _, err := parseRate(r.Rate); err != nil {
		errs.add(p+".rate", "%v", err)
	}
	if r.Burst < 0 || r.Burst > maxRateLimitBurst {
		errs.add(p+".burst", "must be between 0 and %d, not %d", maxRateLimitBurst, r.Burst)
	}
	if r.MaxKeys < 0 || r.MaxKeys > maxRateLimitMaxKeys {
		errs.add(p+".max_keys", "must be between 1 and %d, not %d", maxRateLimitMaxKeys, r.MaxKeys)
	}
}

// parseRate reads "Nr/s" or "Nr/m" and returns the rate in milli-requests per second,
// as nginx computes it (N·1000, or N·1000/60 for r/m, rounded down).
func parseRate(s string) (int64, error) {
	bad := fmt.Errorf("must be a rate such as \"100r/s\" or \"600r/m\", not %q", s)
	num, unit, ok := strings.Cut(s, "r/")
	if !ok {
		return 0, bad
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 {
		return 0, bad
	}
	if n > maxRateLimitRate {
		return 0, fmt.Errorf("%q is more than %dr/%s", s, maxRateLimitRate, unit)
	}
	switch unit {
	case "s":
		return n * 1000, nil
	case "m":
		return n * 1000 / 60, nil
	}
	return 0, bad
}

// limitKey says what a rate limit counts by.
type limitKey struct {
	header string // "" for the client address
}

func parseLimitKey(s string) (limitKey, error) {
	switch {
	case s == "client_ip":
		return limitKey{}, nil
	case strings.HasPrefix(s, "header:") && len(s) > len("header:"):
		return limitKey{header: s[len("header:"):]}, nil
	}
	return limitKey{}, fmt.Errorf("must be client_ip or header:NAME, not %q", s)
}

// limitBucket is one key's state: its excess in milli-requests, and when it was last
// changed, in ms since the limiter's base.
type limitBucket struct {
	excess int64
	last   int64
}

// limitVerdict is what limitStep decides for one request.
type limitVerdict struct {
	ok bool
	// delay is how long a passing request waits (0 with nodelay).
	delay time.Duration
	// retryAfter is, for a rejected request, how long until a request of the key would
	// pass.
	retryAfter time.Duration
}

// limitStep is nginx's ngx_http_limit_req_lookup and _account for one request at now
// (ms) on bucket b: rate in milli-requests per second, burst in milli-requests. It
// returns the bucket as it is after the request (unchanged when rejected) and the
// verdict. nodelay passes within the burst at once.
func limitStep(b limitBucket, now, rate, burst int64, nodelay bool) (limitBucket, limitVerdict) {
	ms := now - b.last
	if ms < -60000 { // the clock went back a lot: nginx treats it as 1ms
		ms = 1
	} else if ms < 0 {
		ms = 0
	}
	excess := b.excess - rate*ms/1000 + 1000
	if excess < 0 {
		excess = 0
	}
	if excess > burst {
		return b, limitVerdict{retryAfter: limitRetryAfter(b, now, rate, burst)}
	}
	next := limitBucket{excess: excess, last: b.last}
	if ms != 0 {
		next.last = now
	}
	v := limitVerdict{ok: true}
	if !nodelay && excess > 0 {
		v.delay = time.Duration(excess*1000/rate) * time.Millisecond
	}
	return next, v
}

// limitRetryAfter is how long after now a request of bucket b would pass: when the
// drained excess plus the request is within the burst.
func limitRetryAfter(b limitBucket, now, rate, burst int64) time.Duration {
	need := b.excess + 1000 - burst // milli-requests to drain
	ms := (need*1000 + rate - 1) / rate
	wait := b.last + ms - now
	if wait < 1 {
		wait = 1
	}
	return time.Duration(wait) * time.Millisecond
}

// limitDrained reports whether bucket b, at now, would behave as a fresh bucket: the
// next request would find no excess.
func limitDrained(b limitBucket, now, rate int64) bool {
	ms := now - b.last
	if ms < 0 {
		return false
	}
	if ms > math.MaxInt64/rate { // guard the product; long idle is drained
		return true
	}
	return b.excess+1000-rate*ms/1000 <= 0
}

// retryAfterSeconds is a Retry-After value: d in seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// limiter holds the buckets of one frontend's rate limit.
type limiter struct {
	cfg     RateLimit
	key     limitKey
	rate    int64 // milli-requests per second
	burst   int64 // milli-requests
	maxKeys int
	clock   clock.Clock
	base    time.Time

	rejected prometheus.Counter
	delayed  prometheus.Counter

	// mu guards keys and lru.
	mu   sync.Mutex
	keys map[string]*list.Element // of *limitEntry
	// lru holds the entries, most recently used first.
	lru list.List
}

type limitEntry struct {
	key string
	b   limitBucket
}

// newLimiter returns the limiter of cfg, which Validate has accepted, on clk.
func newLimiter(cfg RateLimit, clk clock.Clock, rejected, delayed prometheus.Counter) *limiter {
	rate, _ := parseRate(cfg.Rate)
	key, _ := parseLimitKey(cfg.Key)
	return &limiter{
		cfg: cfg, key: key, rate: rate, burst: int64(cfg.Burst) * 1000, maxKeys: max(cfg.MaxKeys, 1),
		clock: clk, base: clk.Now(), rejected: rejected, delayed: delayed,
		keys: map[string]*list.Element{},
	}
}

// maxLimitKeyBytes is the longest key the limiter holds as it is; longer ones are held
// as their digest.
const maxLimitKeyBytes = 64

// limitMapKey returns the key the limiter's table holds for key, in buf: key itself
// behind a 0 byte, or, for a key over maxLimitKeyBytes, its SHA-256 digest behind a 1
// byte (the tag keeps a short key from meeting a digest).
func limitMapKey(key []byte, buf *[1 + maxLimitKeyBytes]byte) []byte {
	if len(key) <= maxLimitKeyBytes {
		buf[0] = 0
		return append(buf[:1], key...)
	}
	sum := sha256.Sum256(key)
	buf[0] = 1
	return append(buf[:1], sum[:]...)
}

// take counts one request of key and returns the verdict. An empty key is not limited.
func (l *limiter) take(key []byte) limitVerdict {
	if len(key) == 0 {
		return limitVerdict{ok: true}
	}
	var mk [1 + maxLimitKeyBytes]byte
	key = limitMapKey(key, &mk)
	now := l.clock.Now().Sub(l.base).Milliseconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	var v limitVerdict
	if e, ok := l.keys[string(key)]; ok {
		ent := e.Value.(*limitEntry)
		ent.b, v = limitStep(ent.b, now, l.rate, l.burst, l.cfg.NoDelay)
		l.lru.MoveToFront(e)
	} else {
		if len(l.keys) >= l.maxKeys {
			l.evict(l.lru.Back())
		}
		// nginx: a new key starts with no excess, and its first request passes.
		ent := &limitEntry{key: string(key), b: limitBucket{last: now}}
		l.keys[ent.key] = l.lru.PushFront(ent)
		v = limitVerdict{ok: true}
	}
	switch {
	case !v.ok:
		if l.rejected != nil {
			l.rejected.Inc()
		}
	case v.delay > 0:
		if l.delayed != nil {
			l.delayed.Inc()
		}
	}
	return v
}

// expire drops up to two least recently used entries that have drained.
func (l *limiter) expire(now int64) {
	for range 2 {
		e := l.lru.Back()
		if e == nil || !limitDrained(e.Value.(*limitEntry).b, now, l.rate) {
			return
		}
		l.evict(e)
	}
}

func (l *limiter) evict(e *list.Element) {
	if e == nil {
		return
	}
	delete(l.keys, e.Value.(*limitEntry).key)
	l.lru.Remove(e)
}

// size returns the number of keys held.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// limiterFor returns the limiter of frontend fc for a new generation: the old
// generation's when the frontend keeps its name and an identical rate_limit (so a reload
// does not reset the buckets), else a new one; nil when fc has none.
func (d *Dataplane) limiterFor(fc Frontend, old *state) *limiter {
	if fc.RateLimit == nil {
		return nil
	}
	for _, g := range old.frontends {
		if g.cfg.Name == fc.Name && g.limit != nil && g.limit.cfg == *fc.RateLimit {
			return g.limit
		}
	}
	m := d.metrics.ctl
	return newLimiter(*fc.RateLimit, d.clock,
		m.rateLimited.WithLabelValues(fc.Name, "rejected"),
		m.rateLimited.WithLabelValues(fc.Name, "delayed"))
}

// errLimitStopped ends a delayed request whose frontend is shutting down.
var errLimitStopped = errors.New("frontend stopping")

// wait blocks for d on the limiter's clock, or until stop is closed.
func (l *limiter) wait(d time.Duration, stop <-chan struct{}) error {
	t := l.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-stop:
		return errLimitStopped
	}
}

// limitHTTP applies the frontend's rate limit to the request in ctx (the fasthttp
// engine's side of httpGen.rateLimit). It returns false when the request has been
// answered (429, or 503 when the frontend stopped while it waited); true when it may go
// on, after its delay.
func (f *httpFrontend) limitHTTP(ctx *fasthttp.RequestCtx, hg *httpGen) bool {
	delay, ok := hg.rateLimit(&ctx.Request.Header, remoteIP(ctx), &ctx.Response)
	if !ok {
		hg.answered(nil, ctx.Response.StatusCode(), time.Since(ctx.Time()), len(ctx.Response.Body()))
		return false
	}
	if delay > 0 {
		if err := hg.g.limit.wait(delay, f.stop); err != nil {
			f.answer(ctx, hg, nil, fasthttp.StatusServiceUnavailable, whatLimitStopped)
			ctx.SetConnectionClose()
			return false
		}
	}
	return true
}

// limitTCP applies the frontend's rate limit to a new connection. It returns false when
// the connection must be closed.
func (f *tcpFrontend) limitTCP(c *tcpConn, g *frontendGen) bool {
	ip := c.src.Addr() // the PROXY header's source when there is one
	var a [16]byte
	v := g.limit.take(ipKey(ip, &a))
	if !v.ok {
		f.d.log.Debug("connection rate limited", "frontend", g.cfg.Name, "client", ip)
		return false
	}
	if v.delay > 0 {
		return g.limit.wait(v.delay, f.stop) == nil
	}
	return true
}

// ipKey returns the bytes of ip (4 for IPv4, 16 for IPv6) in buf, as a limit key.
func ipKey(ip netip.Addr, buf *[16]byte) []byte {
	if !ip.IsValid() {
		return append(buf[:0], 0) // one key for clients without an address (unix sockets)
	}
	if ip.Is4() {
		a := ip.As4()
		return append(buf[:0], a[:]...)
	}
	*buf = ip.As16()
	return buf[:]
}
