package dataplane

// Effective weight: the configured weight × the agent's percentage × the slow-start
// factor. Balancers read it through Server.Weight, in units of 1/weightScale of the
// configured weight, so that a server of weight 1 can still ramp up or take 75%.

import "time"

// weightScale is how many units of effective weight one unit of configured weight is
// (HAProxy scales by 16; 100 makes agent percentages exact).
const weightScale = 100

// rampSteps is how many steps slow start climbs in: the weight changes at most that many
// times (a maglev table is rebuilt at each), from 1/rampSteps of the full weight.
const rampSteps = 20

// effectiveWeight returns the weight the balancers use, in 1/weightScale units.
func (s *Server) effectiveWeight() int {
	w := int64(s.weight.Load()) * weightScale
	if w <= 0 {
		return 0
	}
	if off := s.health.pctOff.Load(); off != 0 {
		w = w * int64(100-off) / 100
		if w == 0 {
			return 0 // the agent said 0%
		}
	}
	if rs := s.health.rampStart.Load(); rs != 0 {
		w = s.ramp(w, rs)
	}
	return int(max(w, 1))
}

// ramp returns w scaled by the slow-start factor of a ramp that began at rs (unix
// nanoseconds), and ends the ramp once it is complete.
func (s *Server) ramp(w, rs int64) int64 {
	ss := s.health.slowStart.Load()
	elapsed := s.health.now().UnixNano() - rs
	if ss <= 0 || elapsed >= ss {
		s.health.rampStart.CompareAndSwap(rs, 0)
		return w
	}
	step := max(elapsed, 0) * rampSteps / ss // 0 … rampSteps-1
	return w * (step + 1) / rampSteps
}

// startRamp begins slow start at now, when the backend has it: a server coming back up
// or re-enabled climbs to its full weight over slow_start.
func (s *Server) startRamp(now time.Time) {
	if s.health.slowStart.Load() > 0 {
		s.health.rampStart.Store(max(now.UnixNano(), 1))
	}
}

// ConfiguredWeight returns the weight the config (or SetWeight) gave the server.
func (s *Server) ConfiguredWeight() int { return int(s.weight.Load()) }

// EffectiveWeight returns the weight the balancers use now, in units of the configured
// weight: lower than it during slow start or when the server's agent reports a
// percentage below 100.
func (s *Server) EffectiveWeight() float64 { return float64(s.Weight()) / weightScale }
