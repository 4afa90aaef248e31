package dataplane

// Server health: active checks (health_check.go probes, this file's state machine and
// scheduler), passive checks on real traffic (health_passive.go), agent-reported weight
// and state (agent.go) and slow start (slowstart.go). The state lives with the Server,
// so a reload that keeps a backend's server keeps its health; each config generation's
// backend owns a backendHealth that runs the timers and is started after the generation
// is committed and stopped when it is replaced.
//
// A server starts up, as HAProxy's do ("up minus one" aside): active checks need `fall`
// consecutive failures to take it down, and the first failure switches its checks to
// fast_interval so that a dead server is found in fall × fast_interval.
//
// The verdict the balancers read (Server.Up) is: active checks say up (or there are
// none), passive checking has not taken the server out, and the agent has not said down.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lbd/internal/clock"
)

// Kinds of active health check, the values of HealthCheck.Type.
const (
	CheckTCP   = "tcp"
	CheckHTTP  = "http"
	CheckHTTPS = "https"
	CheckTLS   = "tls"
)

// HealthCheck configures the active health checks of a backend's servers.
type HealthCheck struct {
	// Type is tcp (connect), http (an HTTP/1.1 request), https (the same over TLS) or tls
	// (a TLS handshake). Default: tcp.
	Type string `yaml:"type"`
	// Port checks this port of the server's host instead of the server's own. Default: 0
	// (the server's port).
	Port int `yaml:"port"`
	// Interval is the time between two checks of a server in a steady state. Default: 2s.
	Interval time.Duration `yaml:"interval"`
	// FastInterval is the time between checks while a server is changing state: after a
	// failure of an up server, after a success of a down one. Default: the interval / 4,
	// at least 100ms and at most the interval.
	FastInterval time.Duration `yaml:"fast_interval"`
	// Timeout bounds one check. Default: 1s (at most the interval).
	Timeout time.Duration `yaml:"timeout"`
	// Rise is the number of consecutive successful checks that bring a down server up.
	// Default: 2.
	Rise int `yaml:"rise"`
	// Fall is the number of consecutive failed checks that take an up server down.
	// Default: 3.
	Fall int `yaml:"fall"`
	// Jitter spreads the checks: the first check of each server comes at a random point
	// of the first interval, and every interval is drawn within ± Jitter percent, 0 to
	// 50. Default: 10.
	Jitter *int `yaml:"jitter"`
	// HTTP is the request of http and https checks.
	HTTP HTTPCheck `yaml:"http"`
}

// HTTPCheck is the request of an http or https health check and the answer it expects.
type HTTPCheck struct {
	// Method of the request. Default: GET.
	Method string `yaml:"method"`
	// Path of the request, with any query. Default: /.
	Path string `yaml:"path"`
	// Host is the Host header (and the TLS server name of https). Default: the server's
	// address.
	Host string `yaml:"host"`
	// ExpectStatus lists the status codes that pass, as codes and ranges separated by
	// commas: "200-399", "200,204". Default: 200-399.
	ExpectStatus string `yaml:"expect_status"`
	// ExpectBody is a string the first 64 KiB of the body must contain. Default: "" (any
	// body).
	ExpectBody string `yaml:"expect_body"`
}

// PassiveCheck configures passive health checking, as nginx's max_fails and
// fail_timeout: failures seen on real traffic take a server out.
type PassiveCheck struct {
	// MaxFails failures within FailTimeout take a server out for FailTimeout; 0 turns
	// passive checking off. Failures are connect failures, timeouts, resets, empty and
	// invalid answers (and 5xx answers with On5xx). Default: 1.
	MaxFails *int `yaml:"max_fails"`
	// FailTimeout is both the window in which MaxFails failures count and how long the
	// server stays out. Default: 10s.
	FailTimeout time.Duration `yaml:"fail_timeout"`
	// On5xx counts answers with a 5xx status as failures (http mode). Default: false.
	On5xx bool `yaml:"on_5xx"`
}

// AgentCheck configures HAProxy's agent-check: a small program beside each server that
// reports a weight percentage or a state.
type AgentCheck struct {
	// Type is tcp (connect, read one line such as "75%", "drain" or "up 50%") or http
	// (GET Path, read the JSON field JSONField). Default: tcp.
	Type string `yaml:"type"`
	// Port is the agent's port on the server's host. Required.
	Port int `yaml:"port"`
	// Interval is the time between two queries of the agent. Default: 5s.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one query. Default: 1s (at most the interval).
	Timeout time.Duration `yaml:"timeout"`
	// Path is the URL path of an http agent. Default: /.
	Path string `yaml:"path"`
	// JSONField is the top-level field of the http agent's JSON answer that holds a
	// percentage (a number 0-100) or a state such as "drain" or "up 75%". Default: weight.
	JSONField string `yaml:"json_field"`
}

// Defaults of the health settings.
const (
	DefaultCheckInterval    = 2 * time.Second
	DefaultCheckTimeout     = time.Second
	DefaultCheckRise        = 2
	DefaultCheckFall        = 3
	DefaultCheckJitter      = 10
	DefaultPassiveMaxFails  = 1
	DefaultPassiveTimeout   = 10 * time.Second
	DefaultAgentInterval    = 5 * time.Second
	DefaultAgentTimeout     = time.Second
	DefaultAgentJSONField   = "weight"
	minCheckInterval        = 10 * time.Millisecond
	minDefaultFastInterval  = 100 * time.Millisecond
	maxCheckJitter          = 50
	maxCheckRiseFall        = 100
	maxPassiveMaxFails      = 1000
	defaultExpectStatusText = "200-399"
)

// setHealthDefaults fills the unset health settings of b.
func setHealthDefaults(b *Backend) {
	// Each block is copied first: the caller's config shares it.
	if b.HealthCheck != nil {
		hc := new(*b.HealthCheck)
		b.HealthCheck = hc
		if hc.Type == "" {
			hc.Type = CheckTCP
		}
		if hc.Interval == 0 {
			hc.Interval = DefaultCheckInterval
		}
		if hc.Timeout == 0 {
			hc.Timeout = min(DefaultCheckTimeout, hc.Interval)
		}
		if hc.FastInterval == 0 {
			hc.FastInterval = min(max(hc.Interval/4, minDefaultFastInterval), hc.Interval)
		}
		if hc.Rise == 0 {
			hc.Rise = DefaultCheckRise
		}
		if hc.Fall == 0 {
			hc.Fall = DefaultCheckFall
		}
		if hc.Jitter == nil {
			j := DefaultCheckJitter
			hc.Jitter = &j
		}
		if hc.HTTP.Method == "" {
			hc.HTTP.Method = "GET"
		}
		if hc.HTTP.Path == "" {
			hc.HTTP.Path = "/"
		}
		if hc.HTTP.ExpectStatus == "" {
			hc.HTTP.ExpectStatus = defaultExpectStatusText
		}
	}
	if b.Passive != nil {
		p := new(*b.Passive)
		b.Passive = p
		if p.MaxFails == nil {
			n := DefaultPassiveMaxFails
			p.MaxFails = &n
		}
		if p.FailTimeout == 0 {
			p.FailTimeout = DefaultPassiveTimeout
		}
	}
	if b.Agent != nil {
		a := new(*b.Agent)
		b.Agent = a
		if a.Type == "" {
			a.Type = CheckTCP
		}
		if a.Interval == 0 {
			a.Interval = DefaultAgentInterval
		}
		if a.Timeout == 0 {
			a.Timeout = min(DefaultAgentTimeout, a.Interval)
		}
		if a.Path == "" {
			a.Path = "/"
		}
		if a.JSONField == "" {
			a.JSONField = DefaultAgentJSONField
		}
	}
}

// validateHealth checks the health settings of backend b, at path p.
func validateHealth(errs *errList, p string, b Backend) {
	if b.SlowStart < 0 {
		errs.add(p+".slow_start", "(%v) must not be negative", b.SlowStart)
	}
	if hc := b.HealthCheck; hc != nil {
		hp := p + ".health_check"
		switch hc.Type {
		case CheckTCP, CheckHTTP, CheckHTTPS, CheckTLS:
		default:
			errs.add(hp+".type", "must be tcp, http, https or tls, not %q", hc.Type)
		}
		if hc.Port < 0 || hc.Port > 65535 {
			errs.add(hp+".port", "must be 0 (the server's port) or 1-65535, not %d", hc.Port)
		}
		checkInterval(errs, hp+".interval", hc.Interval)
		checkInterval(errs, hp+".fast_interval", hc.FastInterval)
		checkTimeout(errs, hp+".timeout", hc.Timeout)
		if hc.Timeout > hc.Interval && hc.Interval > 0 {
			errs.add(hp+".timeout", "(%v) must not be longer than the interval (%v)", hc.Timeout, hc.Interval)
		}
		if hc.Rise < 1 || hc.Rise > maxCheckRiseFall {
			errs.add(hp+".rise", "must be between 1 and %d, not %d", maxCheckRiseFall, hc.Rise)
		}
		if hc.Fall < 1 || hc.Fall > maxCheckRiseFall {
			errs.add(hp+".fall", "must be between 1 and %d, not %d", maxCheckRiseFall, hc.Fall)
		}
		if hc.Jitter != nil && (*hc.Jitter < 0 || *hc.Jitter > maxCheckJitter) {
			errs.add(hp+".jitter", "must be between 0 and %d (percent), not %d", maxCheckJitter, *hc.Jitter)
		}
		if hc.HTTP.Method != "" && !isToken(hc.HTTP.Method) {
			errs.add(hp+".http.method", "%q is not an HTTP method", hc.HTTP.Method)
		}
		if hc.HTTP.Path != "" && (!strings.HasPrefix(hc.HTTP.Path, "/") || strings.ContainsAny(hc.HTTP.Path, " \r\n")) {
			errs.add(hp+".http.path", "must start with / and hold no space, not %q", hc.HTTP.Path)
		}
		if strings.ContainsAny(hc.HTTP.Host, " \r\n/") {
			errs.add(hp+".http.host", "%q is not a host", hc.HTTP.Host)
		}
		if _, err := parseStatusRanges(hc.HTTP.ExpectStatus); err != nil {
			errs.add(hp+".http.expect_status", "%v", err)
		}
	}
	if pc := b.Passive; pc != nil {
		pp := p + ".passive"
		if pc.MaxFails != nil && (*pc.MaxFails < 0 || *pc.MaxFails > maxPassiveMaxFails) {
			errs.add(pp+".max_fails", "must be between 0 (off) and %d, not %d", maxPassiveMaxFails, *pc.MaxFails)
		}
		checkInterval(errs, pp+".fail_timeout", pc.FailTimeout)
	}
	if a := b.Agent; a != nil {
		ap := p + ".agent"
		switch a.Type {
		case CheckTCP, CheckHTTP:
		default:
			errs.add(ap+".type", "must be tcp or http, not %q", a.Type)
		}
		if a.Port < 1 || a.Port > 65535 {
			errs.add(ap+".port", "must be 1-65535, not %d", a.Port)
		}
		checkInterval(errs, ap+".interval", a.Interval)
		checkTimeout(errs, ap+".timeout", a.Timeout)
		if a.Timeout > a.Interval && a.Interval > 0 {
			errs.add(ap+".timeout", "(%v) must not be longer than the interval (%v)", a.Timeout, a.Interval)
		}
		if !strings.HasPrefix(a.Path, "/") || strings.ContainsAny(a.Path, " \r\n") {
			errs.add(ap+".path", "must start with / and hold no space, not %q", a.Path)
		}
	}
}

func checkInterval(errs *errList, path string, d time.Duration) {
	if d < minCheckInterval {
		errs.add(path, "(%v) must be at least %v", d, minCheckInterval)
	}
}

// isToken reports whether s is an RFC 9110 token, such as a method name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// clockRef lets a clock interface value sit in an atomic.Pointer.
type clockRef struct{ c clock.Clock }

// healthMetrics are the counters of health checking.
type healthMetrics struct {
	transitions *prometheus.CounterVec // backend, server, to
	checks      *prometheus.CounterVec // backend, server, result
}

func newHealthMetrics(reg prometheus.Registerer) *healthMetrics {
	m := &healthMetrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_server_transitions_total",
			Help: "Changes of a server's health verdict, by backend, server and the state it went to (up, down).",
		}, []string{"backend", "server", "to"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_health_checks_total",
			Help: "Active health checks run, by backend, server and result (success, failure).",
		}, []string{"backend", "server", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.transitions, m.checks)
	}
	return m
}

// activeState is the state machine of active checks for one server: pure, no I/O.
type activeState struct {
	down bool // the verdict; false (up) at the start
	succ int  // consecutive successes while down
	fail int  // consecutive failures while up
}

// observe applies one check result and reports whether the verdict changed. An up
// server goes down after fall consecutive failures, a down one up after rise consecutive
// successes; a result that agrees with the verdict resets the count of the other kind.
func (a *activeState) observe(ok bool, rise, fall int) bool {
	switch {
	case ok && !a.down:
		a.fail = 0
	case !ok && a.down:
		a.succ = 0
	case ok:
		a.succ++
		if a.succ >= rise {
			*a = activeState{}
			return true
		}
	default:
		a.fail++
		if a.fail >= fall {
			*a = activeState{down: true}
			return true
		}
	}
	return false
}

// changing reports whether the server is between verdicts: up with failures, or down
// with successes. Checks then run at the fast interval.
func (a *activeState) changing() bool { return a.fail > 0 || a.succ > 0 }

// describe says where the state machine stands, for lbctl: "up", "down", "up, 1/3
// failed", "down, 1/2 passed".
func (a *activeState) describe(rise, fall int) string {
	switch {
	case a.down && a.succ > 0:
		return fmt.Sprintf("down, %d/%d passed", a.succ, rise)
	case a.down:
		return "down"
	case a.fail > 0:
		return fmt.Sprintf("up, %d/%d failed", a.fail, fall)
	}
	return "up"
}

// nextCheck returns the delay before the next check: the interval, or the fast interval
// while the state is changing, spread by ± jitter percent; r is a uniform number in
// [0, 1).
func nextCheck(hc *HealthCheck, a *activeState, r float64) time.Duration {
	d := hc.Interval
	if a.changing() {
		d = hc.FastInterval
	}
	return jittered(d, jitterOf(hc), r)
}

func jitterOf(hc *HealthCheck) int {
	if hc.Jitter == nil {
		return DefaultCheckJitter
	}
	return *hc.Jitter
}

// jittered returns d moved by up to ± pct percent: r = 0 gives the least, r → 1 the
// most.
func jittered(d time.Duration, pct int, r float64) time.Duration {
	if pct == 0 {
		return d
	}
	f := 1 + float64(pct)/100*(2*r-1)
	return time.Duration(float64(d) * f)
}

// firstCheck returns the delay before a new checker's first check: a point of the first
// interval, so that the servers' checks do not all start together; none without jitter.
func firstCheck(interval time.Duration, pct int, r float64) time.Duration {
	if pct == 0 {
		return 0
	}
	return time.Duration(float64(interval) * r)
}

// serverHealth is the health state of one Server, kept with it across reloads.
type serverHealth struct {
	// mu guards the fields below, up to the atomics.
	mu sync.Mutex
	// checks is the running checker whose results count; results from another one (of a
	// retired generation) are dropped. Nil when no active checks run.
	checks *checker
	// agent is the running agent querier, likewise.
	agent *agentRunner
	// active is the state of active checks; meaningful while activeOn.
	active   activeState
	activeOn bool
	// lastCheck is the time and result of the last active check.
	lastCheck  time.Time
	lastResult string // "passed" or the failure's reason
	// reason says why the verdict is what it is, such as "check: http status 503".
	reason  string
	passive passiveState
	// agentDown is the agent's "down" (or stopped, fail); agentText its last report and
	// agentErr its last error.
	agentDown bool
	agentText string
	agentErr  string

	// Read by the request path.
	pctOff       atomic.Int32 // 100 - the agent's weight percentage: 0 at full weight
	passiveFails atomic.Int32 // passive.fails, for reportSuccess's quick look
	agentMode    atomic.Int32 // agentReady, agentDrain or agentMaint
	rampStart    atomic.Int64 // unix nanoseconds when slow start began; 0 for none
	slowStart    atomic.Int64 // the backend's slow_start, in nanoseconds
	clk          atomic.Pointer[clockRef]
}

// now returns the server's clock time.
func (h *serverHealth) now() time.Time { return h.clockOf().Now() }

// clockOf returns the clock of the backend whose health checking last took the server
// over; the system clock for a server that no backend has started.
func (h *serverHealth) clockOf() clock.Clock {
	if r := h.clk.Load(); r != nil {
		return r.c
	}
	return clock.System()
}

// backendHealth runs the health checking of one config generation's backend.
type backendHealth struct {
	name    string
	cfg     *Backend
	servers []*Server
	log     *slog.Logger
	m       *healthMetrics
	clk     clock.Clock
	// newProbe makes a server's active probe; agentProbe its agent query. Tests replace
	// them.
	newProbe   func(s *Server) probe
	agentProbe func(s *Server) agentQuery
	rand       func() float64

	// mu guards checkers, agents and stopped.
	mu       sync.Mutex
	checkers []*checker
	agents   []*agentRunner
	stopped  bool
}

// newBackendHealth prepares b's health checking; start runs it. It touches no server.
func newBackendHealth(d *Dataplane, b *backend) *backendHealth {
	return newBackendHealthClock(d.log, d.metrics.health, b, d.clock)
}

func newBackendHealthClock(log *slog.Logger, m *healthMetrics, b *backend, clk clock.Clock) *backendHealth {
	bh := &backendHealth{
		name: b.cfg.Name, cfg: &b.cfg, servers: b.servers, log: log, m: m, clk: clk,
		rand: rand.Float64,
	}
	bh.newProbe = func(s *Server) probe { return newProbe(bh.cfg.HealthCheck, s.Addr) }
	bh.agentProbe = func(s *Server) agentQuery { return newAgentQuery(bh.cfg.Agent, s.Addr) }
	return bh
}

// switchHealth starts next's health checking and stops old's; Apply calls it once next
// is committed.
func (d *Dataplane) switchHealth(old, next *state) {
	for _, b := range next.backends {
		if b.health != nil {
			b.health.start()
		}
	}
	for _, b := range old.backends {
		if b.health != nil {
			b.health.stop(false)
		}
	}
}

// start takes over the health state of the backend's servers and starts the checks.
func (bh *backendHealth) start() {
	bh.mu.Lock()
	defer bh.mu.Unlock()
	if bh.stopped {
		return
	}
	now := bh.clk.Now()
	for _, s := range bh.servers {
		h := &s.health
		h.clk.Store(&clockRef{bh.clk})
		h.slowStart.Store(int64(bh.cfg.SlowStart))
		var c *checker
		if bh.cfg.HealthCheck != nil {
			c = newChecker(bh, s)
			bh.checkers = append(bh.checkers, c)
		}
		var a *agentRunner
		if bh.cfg.Agent != nil {
			a = newAgentRunner(bh, s)
			bh.agents = append(bh.agents, a)
		}
		h.mu.Lock()
		h.checks, h.agent = c, a
		if c == nil && h.activeOn {
			h.activeOn, h.active = false, activeState{}
		} else if c != nil && !h.activeOn {
			h.activeOn, h.active = true, activeState{}
		}
		if a == nil {
			h.agentDown, h.agentText, h.agentErr = false, "", ""
			h.pctOff.Store(0)
			h.agentMode.Store(agentReady)
		}
		if bh.cfg.Passive == nil || *bh.cfg.Passive.MaxFails == 0 {
			h.passive.reset()
			h.passiveFails.Store(0)
		}
		bh.updateLocked(s, now, "health settings changed")
		h.mu.Unlock()
	}
	for _, c := range bh.checkers {
		c.start()
	}
	for _, a := range bh.agents {
		a.start()
	}
}

// stop stops the checks; with wait it also waits for checks in progress to end.
func (bh *backendHealth) stop(wait bool) {
	bh.mu.Lock()
	bh.stopped = true
	checkers, agents := bh.checkers, bh.agents
	bh.mu.Unlock()
	for _, c := range checkers {
		c.stop()
	}
	for _, a := range agents {
		a.stop()
	}
	if wait {
		for _, c := range checkers {
			c.wg.Wait()
		}
		for _, a := range agents {
			a.wg.Wait()
		}
	}
}

// updateLocked recomputes s's verdict from its active, passive and agent state and, if
// it changed, records it, logs it once and counts it; why is the reason of the change.
// The caller holds s.health.mu.
func (bh *backendHealth) updateLocked(s *Server, now time.Time, why string) {
	h := &s.health
	down := (h.activeOn && h.active.down) || h.passive.down || h.agentDown
	if down == !s.Up() {
		return
	}
	s.SetUp(!down)
	h.reason = why
	to := "up"
	if down {
		to = "down"
		bh.log.Warn("server down", "backend", bh.name, "server", s.Name, "reason", why)
	} else {
		bh.log.Info("server up", "backend", bh.name, "server", s.Name, "reason", why)
		s.startRamp(now)
	}
	if bh.m != nil {
		bh.m.transitions.WithLabelValues(bh.name, s.Name, to).Inc()
	}
}

// periodic runs a job on a chain of timers: each run returns the delay before the next.
// stop cancels the next run and the context of the one in progress.
type periodic struct {
	clk clock.Clock
	job func(ctx context.Context) (next time.Duration, again bool)
	ctx context.Context
	// cancel aborts a run in progress.
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards timer and stopped.
	mu      sync.Mutex
	timer   clock.Timer // the next run's
	stopped bool
}

func newPeriodic(clk clock.Clock, job func(ctx context.Context) (time.Duration, bool)) *periodic {
	p := &periodic{clk: clk, job: job}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

func (p *periodic) schedule(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.timer = p.clk.AfterFunc(d, p.run)
}

// kick runs the job now instead of at its time, unless a run is in progress.
func (p *periodic) kick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.timer == nil || !p.timer.Stop() {
		return
	}
	p.timer = p.clk.AfterFunc(0, p.run)
}

func (p *periodic) stop() {
	p.mu.Lock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	p.cancel()
}

func (p *periodic) run() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()
	next, again := p.job(p.ctx)
	if again && p.ctx.Err() == nil {
		p.schedule(next)
	}
}

// checker runs the active checks of one server.
type checker struct {
	*periodic
	bh    *backendHealth
	s     *Server
	hc    *HealthCheck
	probe probe
}

func newChecker(bh *backendHealth, s *Server) *checker {
	c := &checker{bh: bh, s: s, hc: bh.cfg.HealthCheck, probe: bh.newProbe(s)}
	c.periodic = newPeriodic(bh.clk, c.check)
	return c
}

func (c *checker) start() {
	c.schedule(firstCheck(c.hc.Interval, jitterOf(c.hc), c.bh.rand()))
}

// check performs one check and returns the delay before the next.
func (c *checker) check(ctx context.Context) (time.Duration, bool) {
	pctx, cancel := context.WithTimeout(ctx, c.hc.Timeout)
	err := c.probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return 0, false // stopped meanwhile
	}
	return c.observe(err, c.bh.clk.Now())
}

// observe records one probe result and returns the delay before the next check; false
// when this checker no longer owns the server.
func (c *checker) observe(err error, now time.Time) (time.Duration, bool) {
	bh, s := c.bh, c.s
	h := &s.health
	result, text := "success", "passed"
	if err != nil {
		result, text = "failure", checkReason(err, c.hc.Timeout)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.checks != c {
		return 0, false
	}
	if bh.m != nil {
		bh.m.checks.WithLabelValues(bh.name, s.Name, result).Inc()
	}
	h.lastCheck, h.lastResult = now, text
	if h.active.observe(err == nil, c.hc.Rise, c.hc.Fall) {
		why := "check passed " + plural(c.hc.Rise, "time")
		if err != nil {
			why = "check: " + text
			if c.hc.Fall > 1 {
				why += fmt.Sprintf(" (%d consecutive failures)", c.hc.Fall)
			}
		}
		bh.updateLocked(s, now, why)
	}
	return nextCheck(c.hc, &h.active, bh.rand()), true
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// ServerHealth is the health part of a server's status.
type ServerHealth struct {
	// Check is where active checks stand ("up", "down", "up, 1/3 failed"), "" when the
	// backend has none.
	Check string `json:"check,omitempty"`
	// LastCheck is "passed" or the reason of the last failure, with LastCheckAt its time.
	LastCheck   string    `json:"last_check,omitempty"`
	LastCheckAt time.Time `json:"last_check_at,omitzero"`
	// Reason is why the server is up or down, such as "check: http status 503".
	Reason string `json:"reason,omitempty"`
	// Passive is "down until 15:04:05" while passive checking keeps the server out, or
	// "2 failures" while it counts.
	Passive string `json:"passive,omitempty"`
	// Agent is the agent's last report (or "error: ..."), "" without an agent.
	Agent string `json:"agent,omitempty"`
	// EffectiveWeight is the weight the balancers use, in units of the configured
	// weight: lower during slow start or when the agent reports a percentage.
	EffectiveWeight float64 `json:"effective_weight"`
}

// HealthStatus returns the health part of s's status.
func (s *Server) HealthStatus() ServerHealth {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	out := ServerHealth{Reason: h.reason, EffectiveWeight: s.EffectiveWeight()}
	if h.checks != nil {
		out.Check = h.active.describe(h.checks.hc.Rise, h.checks.hc.Fall)
		out.LastCheck, out.LastCheckAt = h.lastResult, h.lastCheck
	}
	switch {
	case h.passive.down:
		out.Passive = "down until " + h.passive.until.Format(time.TimeOnly)
	case h.passive.fails > 0:
		out.Passive = plural(h.passive.fails, "failure")
	}
	if h.agent != nil {
		out.Agent = h.agentText
		if h.agentErr != "" {
			out.Agent = "error: " + h.agentErr
		}
	}
	return out
}
