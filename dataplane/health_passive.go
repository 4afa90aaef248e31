package dataplane

// Passive health checking, with nginx's semantics: max_fails failures on real traffic
// within fail_timeout take a server out for fail_timeout; then it takes traffic again,
// if active checks (when the backend has them) say it is up.

import (
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"lbd/internal/clock"
)

// passiveState counts one server's failures on real traffic.
type passiveState struct {
	fails       int       // failures in the current window
	windowStart time.Time // when the first of them happened
	last        string    // the reason of the last failure
	down        bool      // taken out until `until`
	until       time.Time
	readmit     clock.Timer // the re-admission timer
}

func (p *passiveState) reset() {
	if p.readmit != nil {
		p.readmit.Stop()
	}
	*p = passiveState{}
}

// fail counts a failure at now and reports whether it takes the server out:
// max_fails within fail_timeout of the first counted one.
func (p *passiveState) fail(now time.Time, reason string, maxFails int, failTimeout time.Duration) bool {
	if p.down {
		return false // requests that were in flight when it went out
	}
	if p.fails == 0 || now.Sub(p.windowStart) >= failTimeout {
		p.fails, p.windowStart = 0, now
	}
	p.fails++
	p.last = reason
	if p.fails < maxFails {
		return false
	}
	p.down, p.until = true, now.Add(failTimeout)
	return true
}

// passiveOn returns the backend's passive settings, nil when passive checking is off.
func (b *backend) passiveOn() *PassiveCheck {
	if b.health == nil {
		return nil
	}
	p := b.cfg.Passive
	if p == nil || p.MaxFails == nil || *p.MaxFails == 0 {
		return nil
	}
	return p
}

// reportFailure counts a failure of s seen on real traffic (reason: connect, timeout,
// reset, empty, invalid, or "http status 503").
func (b *backend) reportFailure(s *Server, reason string) {
	pc := b.passiveOn()
	if pc == nil {
		return
	}
	bh := b.health
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	now := bh.clk.Now()
	if !h.passive.fail(now, reason, *pc.MaxFails, pc.FailTimeout) {
		h.passiveFails.Store(int32(h.passive.fails))
		return
	}
	h.passiveFails.Store(int32(h.passive.fails))
	h.passive.readmit = bh.clk.AfterFunc(pc.FailTimeout, func() { bh.readmit(s) })
	why := fmt.Sprintf("passive: %s within %v, last: %s", plural(h.passive.fails, "failure"), pc.FailTimeout, reason)
	bh.updateLocked(s, now, why)
	if h.checks != nil {
		h.checks.kick()
	}
}

// reportSuccess records an answer from s on real traffic, which clears its count of
// failures.
func (b *backend) reportSuccess(s *Server) {
	if s.health.passiveFails.Load() == 0 || b.passiveOn() == nil {
		return
	}
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.passive.down {
		h.passive.fails = 0
		h.passiveFails.Store(0)
	}
}

// reportResponse records an answer with status code from s: a failure if it is a 5xx
// and the backend counts them, else a success.
func (b *backend) reportResponse(s *Server, code int) {
	if code >= 500 && code <= 599 {
		if pc := b.passiveOn(); pc != nil && pc.On5xx {
			b.reportFailure(s, "http status "+fmt.Sprint(code))
			return
		}
	}
	b.reportSuccess(s)
}

// reportHTTPFailure counts a failed exchange with s, unless the failure was lbd's own
// (no free connection in the pool).
func (b *backend) reportHTTPFailure(s *Server, f failure) {
	if f.reason == reasonConnect && f.status == fasthttp.StatusServiceUnavailable {
		return
	}
	b.reportFailure(s, reasonNames[f.reason])
}

// readmit ends s's time out after fail_timeout.
func (bh *backendHealth) readmit(s *Server) {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	now := bh.clk.Now()
	if !h.passive.down || now.Before(h.passive.until) {
		return
	}
	h.passive.reset()
	h.passiveFails.Store(0)
	why := "passive: fail_timeout expired"
	if h.activeOn {
		why += ", check says up"
	}
	bh.updateLocked(s, now, why)
}
