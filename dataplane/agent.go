package dataplane

// Agent checks, as HAProxy's agent-check: a program beside each server reports a weight
// percentage and/or a state, which lbd applies. Failing to reach the agent changes
// nothing (connectivity is the health checks' business); it is logged once.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Agent modes: what the agent says about new sessions.
const (
	agentReady int32 = iota // take traffic
	agentDrain              // keep sessions, take no new ones
	agentMaint              // take nothing new (maintenance)
)

var agentModeNames = [...]string{"ready", "drain", "maint"}

// agentHealth is an agent's verdict on health.
const (
	agentHealthUnset = iota
	agentHealthUp
	agentHealthDown
)

// agentReport is what one agent reply says; fields it did not mention are unset.
type agentReport struct {
	pct    int   // weight percentage 0-100; -1 when unset
	mode   int32 // agentReady, agentDrain, agentMaint; -1 when unset
	health int   // agentHealth*
}

func (r agentReport) String() string {
	var parts []string
	switch r.health {
	case agentHealthUp:
		parts = append(parts, "up")
	case agentHealthDown:
		parts = append(parts, "down")
	}
	if r.mode >= 0 {
		parts = append(parts, agentModeNames[r.mode])
	}
	if r.pct >= 0 {
		parts = append(parts, strconv.Itoa(r.pct)+"%")
	}
	return strings.Join(parts, " ")
}

// maxAgentReply bounds what lbd reads from an agent.
const maxAgentReply = 64 << 10

// parseAgentReply reads an agent's line, as HAProxy does: words separated by spaces,
// tabs or commas, each a percentage ("75%"), a mode (ready, drain, maint), a health
// verdict (up; down, fail, failed, stopped) or maxconn:N (accepted, not used); "#"
// starts a comment that is ignored.
func parseAgentReply(line string) (agentReport, error) {
	r := agentReport{pct: -1, mode: -1}
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	words := strings.FieldsFunc(line, func(c rune) bool {
		return c == ' ' || c == '\t' || c == ',' || c == '\r' || c == '\n'
	})
	if len(words) == 0 {
		return r, errors.New("empty reply")
	}
	for _, w := range words {
		lw := strings.ToLower(w)
		switch {
		case strings.HasSuffix(lw, "%"):
			n, err := strconv.Atoi(lw[:len(lw)-1])
			if err != nil || n < 0 || n > 100 {
				return r, fmt.Errorf("bad weight %q: want 0%% to 100%%", w)
			}
			r.pct = n
		case lw == "up":
			r.health = agentHealthUp
		case lw == "down" || lw == "fail" || lw == "failed" || lw == "stopped":
			r.health = agentHealthDown
		case lw == "ready":
			r.mode = agentReady
		case lw == "drain":
			r.mode = agentDrain
		case lw == "maint":
			r.mode = agentMaint
		case strings.HasPrefix(lw, "maxconn:"):
		default:
			return r, fmt.Errorf("unknown word %q in agent reply", w)
		}
	}
	return r, nil
}

// agentQuery asks a server's agent once.
type agentQuery func(ctx context.Context) (agentReport, error)

// newAgentQuery returns the query ac describes for the server at addr.
func newAgentQuery(ac *AgentCheck, addr string) agentQuery {
	target := checkAddr(addr, ac.Port)
	if ac.Type == CheckHTTP {
		return func(ctx context.Context) (agentReport, error) { return httpAgent(ctx, target, ac) }
	}
	return func(ctx context.Context) (agentReport, error) {
		c, err := dialCheck(ctx, target, false, "")
		if err != nil {
			return agentReport{}, err
		}
		defer c.Close()
		line, err := bufio.NewReader(io.LimitReader(c, maxAgentReply)).ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			if err == io.EOF {
				return agentReport{}, errors.New("agent closed the connection without a reply")
			}
			return agentReport{}, err
		}
		return parseAgentReply(line)
	}
}

// httpAgent GETs the agent's path and reads its JSON field: a number is a percentage, a
// string is read as a reply line.
func httpAgent(ctx context.Context, target string, ac *AgentCheck) (agentReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+ac.Path, nil)
	if err != nil {
		return agentReport{}, err
	}
	req.Header.Set("User-Agent", "lbd-agent-check")
	resp, err := agentHTTPClient.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // drop net/http's `Get "url":` prefix
		}
		return agentReport{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return agentReport{}, checkFailure("http status " + strconv.Itoa(resp.StatusCode))
	}
	var doc map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAgentReply)).Decode(&doc); err != nil {
		return agentReport{}, fmt.Errorf("reading the JSON answer: %w", err)
	}
	v, ok := doc[ac.JSONField]
	if !ok {
		return agentReport{}, fmt.Errorf("the JSON answer has no field %q", ac.JSONField)
	}
	switch v := v.(type) {
	case float64:
		if v < 0 || v > 100 || math.IsNaN(v) {
			return agentReport{}, fmt.Errorf("field %q is %v, want a percentage 0-100", ac.JSONField, v)
		}
		return agentReport{pct: int(math.Round(v)), mode: -1}, nil
	case string:
		return parseAgentReply(v)
	}
	return agentReport{}, fmt.Errorf("field %q is neither a number nor a string", ac.JSONField)
}

// agentHTTPClient queries http agents: no keep-alive, no proxy from the environment.
var agentHTTPClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// agentRunner queries one server's agent every interval.
type agentRunner struct {
	*periodic
	bh    *backendHealth
	s     *Server
	ac    *AgentCheck
	query agentQuery
}

func newAgentRunner(bh *backendHealth, s *Server) *agentRunner {
	a := &agentRunner{bh: bh, s: s, ac: bh.cfg.Agent, query: bh.agentProbe(s)}
	a.periodic = newPeriodic(bh.clk, a.ask)
	return a
}

func (a *agentRunner) start() {
	a.schedule(firstCheck(a.ac.Interval, DefaultCheckJitter, a.bh.rand()))
}

func (a *agentRunner) ask(ctx context.Context) (time.Duration, bool) {
	qctx, cancel := context.WithTimeout(ctx, a.ac.Timeout)
	r, err := a.query(qctx)
	cancel()
	if ctx.Err() != nil {
		return 0, false
	}
	if !a.observe(r, err, a.bh.clk.Now()) {
		return 0, false
	}
	return jittered(a.ac.Interval, DefaultCheckJitter, a.bh.rand()), true
}

// observe applies one agent reply (or error); false when this runner no longer owns the
// server.
func (a *agentRunner) observe(r agentReport, err error, now time.Time) bool {
	bh, s := a.bh, a.s
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.agent != a {
		return false
	}
	if err != nil {
		text := checkReason(err, a.ac.Timeout)
		if text != h.agentErr {
			h.agentErr = text
			bh.log.Warn("agent query failed; keeping the last report", "backend", bh.name,
				"server", s.Name, "reason", text)
		}
		return true
	}
	h.agentErr = ""
	if r.pct >= 0 {
		h.pctOff.Store(int32(100 - r.pct))
	}
	if r.mode >= 0 {
		if old := h.agentMode.Swap(r.mode); old != agentReady && r.mode == agentReady {
			s.startRamp(now)
		}
	}
	text := r.String()
	if text != h.agentText {
		h.agentText = text
		bh.log.Info("agent report", "backend", bh.name, "server", s.Name, "report", text,
			"effective_weight", s.EffectiveWeight())
	}
	if r.health != agentHealthUnset {
		h.agentDown = r.health == agentHealthDown
		bh.updateLocked(s, now, "agent: "+text)
	}
	return true
}
