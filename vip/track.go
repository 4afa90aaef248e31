package vip

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"lbd/internal/clock"
)

// Tracking: what a node watches to decide whether it should own a VIP, and how it
// changes the advertised priority (keepalived's track_interface and vrrp_script, and
// checks the node reports). Three sources, one rule:
//
//   - a positive weight is added while the thing is healthy, a negative weight is
//     added (subtracted) while it fails, and weight 0 puts the instance in FAULT while
//     it fails (addresses released, priority 0 sent);
//   - the result is clamped to 1-254; an address owner (255) keeps 255 (it may track
//     with weight 0 only, see Validate);
//   - what has not reported yet counts as healthy, so a missing report never moves a
//     VIP.
//
// The instance's own interface is tracked with weight 0: a link that goes down releases
// the addresses at once (Manager.SetLink, fed by a netlink watcher), without waiting
// for the VRRP timers.

// Runner runs a command (a program and its arguments, no shell) until it exits or ctx
// is done, and returns nil when it exited 0. Track scripts and notify scripts use it;
// tests inject a fake.
type Runner func(ctx context.Context, argv []string) error

// trackInputs is what the tracked things report; nil maps and missing keys count as
// healthy.
type trackInputs struct {
	links   map[string]bool    // interface → link up
	scripts map[string]bool    // script name → healthy
	checks  map[string]float64 // check name → level 0..1
}

// trackResult is the priority to advertise and what is failing.
type trackResult struct {
	priority int
	faults   []string // the weight-0 things that fail: FAULT when not empty
	adjust   int      // the sum of the weights that apply
}

// evalTracking applies the weights of in to its configured priority.
func evalTracking(in *Instance, t trackInputs) trackResult {
	var r trackResult
	if up, ok := t.links[in.Interface]; ok && !up {
		r.faults = append(r.faults, "interface "+in.Interface+" down")
	}
	for _, ti := range in.TrackInterfaces {
		up, ok := t.links[ti.Name]
		if !ok {
			up = true
		}
		r.apply(ti.Weight, boolLevel(up), "interface "+ti.Name+" down")
	}
	for _, s := range in.TrackScripts {
		ok, known := t.scripts[s.Name]
		if !known {
			ok = true
		}
		r.apply(s.Weight, boolLevel(ok), "script "+s.Name+" failed")
	}
	for _, c := range in.TrackChecks {
		level, ok := t.checks[c.Name]
		if !ok {
			level = 1
		}
		r.apply(c.Weight, min(max(level, 0), 1), "check "+c.Name+" failed")
	}
	if in.Priority == OwnerPriority {
		r.priority, r.adjust = OwnerPriority, 0
	} else {
		r.priority = min(max(in.Priority+r.adjust, 1), OwnerPriority-1)
	}
	return r
}

func boolLevel(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (r *trackResult) apply(weight int, level float64, fault string) {
	switch {
	case weight == 0:
		if level <= 0 {
			r.faults = append(r.faults, fault)
		}
	case weight > 0:
		r.adjust += int(math.Round(float64(weight) * level))
	default:
		r.adjust += int(math.Round(float64(weight) * (1 - level)))
	}
}

// scriptState is a track script's rise/fall counter. A script starts unknown (counts
// as healthy); its first result decides its state, after which Rise successes (Fall
// failures) in a row change it, as keepalived's vrrp_script.
type scriptState struct {
	known   bool
	healthy bool
	streak  int // results in a row against the current state
}

// observe records one run's result and reports whether the state changed.
func (s scriptState) observe(ok bool, rise, fall int) (scriptState, bool) {
	if !s.known {
		return scriptState{known: true, healthy: ok}, true
	}
	if ok == s.healthy {
		s.streak = 0
		return s, false
	}
	s.streak++
	need := fall
	if ok {
		need = rise
	}
	if s.streak >= need {
		return scriptState{known: true, healthy: ok}, true
	}
	return s, false
}

// scriptTracker runs one track script every Interval until stopped.
type scriptTracker struct {
	cfg      TrackScript
	run      Runner
	clock    clock.Clock
	onChange func(healthy bool) // called from the tracker's goroutine

	// mu guards state.
	mu    sync.Mutex
	state scriptState
}

// loop runs the script now and then every Interval until done is closed.
func (s *scriptTracker) loop(done <-chan struct{}) {
	for {
		ctx, cancel := context.WithCancel(context.Background())
		result := make(chan error, 1)
		go func() { result <- s.runOnce(ctx) }()
		timeout := s.clock.NewTimer(s.cfg.Timeout)
		var err error
		select {
		case err = <-result:
		case <-timeout.C():
			cancel()
			<-result
			err = fmt.Errorf("timed out after %v", s.cfg.Timeout)
		case <-done:
			cancel()
			<-result
			timeout.Stop()
			return
		}
		timeout.Stop()
		cancel()
		s.mu.Lock()
		next, changed := s.state.observe(err == nil, s.cfg.Rise, s.cfg.Fall)
		s.state = next
		s.mu.Unlock()
		if changed {
			s.onChange(next.healthy)
		}
		wait := s.clock.NewTimer(s.cfg.Interval)
		select {
		case <-wait.C():
		case <-done:
			wait.Stop()
			return
		}
	}
}

func (s *scriptTracker) runOnce(ctx context.Context) error {
	return s.run(ctx, s.cfg.Command)
}

// status returns whether the script has reported and its state.
func (s *scriptTracker) status() (known, healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.known, s.state.healthy
}

// pollLinks reads linkState for each interface now and then every interval, and calls
// report for the first reading and each change (an error reads as down and is passed
// along), until done is closed.
func pollLinks(done <-chan struct{}, clk clock.Clock, interval time.Duration, ifnames func() []string,
	linkState func(string) (bool, error), report func(ifname string, up bool, err error)) {
	last := map[string]bool{}
	for {
		for _, name := range ifnames() {
			up, err := linkState(name)
			if err != nil {
				up = false
			}
			if prev, ok := last[name]; !ok || prev != up {
				last[name] = up
				report(name, up, err)
			}
		}
		t := clk.NewTimer(interval)
		select {
		case <-t.C():
		case <-done:
			t.Stop()
			return
		}
	}
}
