package dataplane

// Run-time control of servers: the admin API's drain, enable, disable and weight.
//
// A change made at run time outlives reloads for as long as the config file leaves that
// server's value alone: each override remembers the file's value it replaced, and a
// reload that brings a different value for it (the operator edited the file) drops the
// override and the file wins. A reload that does not touch the server keeps the run-time
// value. Removing the server, or changing its address, drops its overrides. Overrides
// live in memory: a restart of lbd starts from the file (as HAProxy without a
// server-state file).

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// NotFoundError says that a backend, or a server of a backend, does not exist.
type NotFoundError struct {
	Backend string
	// Server is "" when the backend is what is missing.
	Server string
}

func (e *NotFoundError) Error() string {
	if e.Server == "" {
		return fmt.Sprintf("no backend named %q", e.Backend)
	}
	return fmt.Sprintf("backend %q has no server named %q", e.Backend, e.Server)
}

// overrideKey names a server.
type overrideKey struct{ backend, server string }

// override is a run-time change of a server, and the file's values it replaced.
type override struct {
	addr       string
	state      *ServerState
	fileState  string
	weight     *int
	fileWeight int
}

// control is the Dataplane's run-time state; Dataplane.mu guards it.
type control struct {
	overrides map[overrideKey]*override
}

// SetServer changes the state and/or the weight of a server at run time, without a
// reload; a nil argument leaves that value as it is. Drain takes no new sessions (the
// requests in flight, and those that persistence sends to the server, are still served);
// disabled takes nothing. Errors: *NotFoundError for an unknown backend or server,
// *FieldError (path "state" or "weight") for a bad value.
func (d *Dataplane) SetServer(backend, server string, state *ServerState, weight *int) error {
	if state != nil {
		switch *state {
		case Enabled, Drain, Disabled:
		default:
			return &FieldError{Path: "state", Msg: fmt.Sprintf("must be enabled, drain or disabled, not %v", *state)}
		}
	}
	if weight != nil && (*weight < 0 || *weight > MaxServerWeight) {
		return &FieldError{Path: "weight", Msg: fmt.Sprintf("must be between 0 and %d, not %d", MaxServerWeight, *weight)}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.snapshot()
	b := st.byName[backend]
	if b == nil {
		return &NotFoundError{Backend: backend}
	}
	s := b.byName[server]
	if s == nil {
		return &NotFoundError{Backend: backend, Server: server}
	}
	var sc ServerConfig
	for _, c := range b.cfg.Servers {
		if c.Name == server {
			sc = c
		}
	}
	if d.ctl.overrides == nil {
		d.ctl.overrides = map[overrideKey]*override{}
	}
	k := overrideKey{backend, server}
	o := d.ctl.overrides[k]
	if o == nil {
		o = &override{addr: s.Addr}
	}
	prevState, prevWeight := s.State(), s.ConfiguredWeight()
	if state != nil {
		if fs, _ := ParseServerState(sc.State); fs == *state {
			o.state = nil // back to the file's value
		} else {
			v := *state
			o.state, o.fileState = &v, sc.State
		}
		s.SetState(*state)
	}
	if weight != nil {
		if *weight == *sc.Weight {
			o.weight = nil
		} else {
			v := *weight
			o.weight, o.fileWeight = &v, *sc.Weight
		}
		s.SetWeight(*weight)
	}
	if o.state == nil && o.weight == nil {
		delete(d.ctl.overrides, k)
	} else {
		d.ctl.overrides[k] = o
	}
	if s.State() != prevState || s.ConfiguredWeight() != prevWeight {
		d.log.Info("server changed at run time", "backend", backend, "server", server,
			"state", s.State().String(), "weight", s.ConfiguredWeight(),
			"previous_state", prevState.String(), "previous_weight", prevWeight)
	}
	if b.queue != nil {
		b.queue.kick() // a server may have become available to the waiters
	}
	return nil
}

// overridden returns the state and weight that server sc of backend runs with: the
// file's (st, w) unless a run-time change replaced them and the file has not changed
// since. It changes nothing; d.mu is held.
func (d *Dataplane) overridden(backend string, sc ServerConfig, st ServerState, w int) (ServerState, int) {
	o := d.ctl.overrides[overrideKey{backend, sc.Name}]
	if o == nil || o.addr != sc.Address {
		return st, w
	}
	if o.state != nil && o.fileState == sc.State {
		st = *o.state
	}
	if o.weight != nil && o.fileWeight == *sc.Weight {
		w = *o.weight
	}
	return st, w
}

// pruneOverrides drops, once next is applied, the overrides that the file has replaced
// or whose server is gone, logging each. d.mu is held.
func (d *Dataplane) pruneOverrides(next *state) {
	for k, o := range d.ctl.overrides {
		var sc *ServerConfig
		if b := next.byName[k.backend]; b != nil {
			for i := range b.cfg.Servers {
				if b.cfg.Servers[i].Name == k.server {
					sc = &b.cfg.Servers[i]
				}
			}
		}
		if sc == nil || sc.Address != o.addr {
			delete(d.ctl.overrides, k)
			d.log.Info("run-time change of server dropped: the server left the config or changed address",
				"backend", k.backend, "server", k.server)
			continue
		}
		if o.state != nil && o.fileState != sc.State {
			d.log.Info("run-time state of server dropped: the config file changed it",
				"backend", k.backend, "server", k.server, "run_time_state", o.state.String(), "file_state", sc.State)
			o.state = nil
		}
		if o.weight != nil && o.fileWeight != *sc.Weight {
			d.log.Info("run-time weight of server dropped: the config file changed it",
				"backend", k.backend, "server", k.server, "run_time_weight", *o.weight, "file_weight", *sc.Weight)
			o.weight = nil
		}
		if o.state == nil && o.weight == nil {
			delete(d.ctl.overrides, k)
		}
	}
}

// ctlMetrics are the metrics of rate limits and queues.
type ctlMetrics struct {
	rateLimited   *prometheus.CounterVec // frontend, result
	queueTimeouts *prometheus.CounterVec // backend
	queueFull     *prometheus.CounterVec // backend
}

var queueLengthDesc = prometheus.NewDesc("lbd_backend_queue_length",
	"Requests or connections waiting in a backend's queue for a server under its maxconn.",
	[]string{"backend"}, nil)

func newCtlMetrics(reg prometheus.Registerer, d *Dataplane) *ctlMetrics {
	m := &ctlMetrics{
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_rate_limited_total",
			Help: "Requests (tcp: connections) that a frontend's rate limit rejected or delayed, by frontend and result.",
		}, []string{"frontend", "result"}),
		queueTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_backend_queue_timeouts_total",
			Help: "Requests or connections that waited in a backend's queue for the queue timeout and were refused.",
		}, []string{"backend"}),
		queueFull: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_backend_queue_full_total",
			Help: "Requests or connections refused because a backend's queue was full.",
		}, []string{"backend"}),
	}
	if reg != nil {
		reg.MustRegister(m.rateLimited, m.queueTimeouts, m.queueFull, &queueCollector{d: d})
	}
	return m
}

// queueCollector reports the length of each current backend's queue at scrape time.
type queueCollector struct{ d *Dataplane }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueLengthDesc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.d.snapshot().backends {
		n := 0
		if b.queue != nil {
			n = b.queue.Len()
		}
		ch <- prometheus.MustNewConstMetric(queueLengthDesc, prometheus.GaugeValue, float64(n), b.cfg.Name)
	}
}
