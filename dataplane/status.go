package dataplane

// Status is a point-in-time view of the running config, for the admin API.
type Status struct {
	Frontends []FrontendStatus `json:"frontends"`
	Backends  []BackendStatus  `json:"backends"`
}

// FrontendStatus describes one running frontend.
type FrontendStatus struct {
	Name    string `json:"name"`
	Mode    string `json:"mode"`
	Bind    string `json:"bind"`
	Backend string `json:"backend"`
}

// BackendStatus describes one backend and its servers.
type BackendStatus struct {
	Name    string         `json:"name"`
	Balance string         `json:"balance"`
	Servers []ServerStatus `json:"servers"`
}

// ServerStatus describes one server.
type ServerStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   string `json:"state"`
	Up      bool   `json:"up"`
	Weight  int    `json:"weight"`
	Active  int64  `json:"active"`
	// ResponseTimeMs is the moving average of response time in milliseconds.
	ResponseTimeMs float64 `json:"response_time_ms"`
	// Health is what health checking, passive checking and the agent say (health.go).
	Health ServerHealth `json:"health"`
}

// Status returns the state of every frontend, backend and server.
func (d *Dataplane) Status() Status {
	st := d.snapshot()
	out := Status{Frontends: []FrontendStatus{}, Backends: []BackendStatus{}}
	for _, g := range st.frontends {
		out.Frontends = append(out.Frontends, FrontendStatus{
			Name: g.cfg.Name, Mode: g.cfg.Mode, Bind: g.cfg.Bind, Backend: g.cfg.Backend,
		})
	}
	for _, b := range st.backends {
		bs := BackendStatus{Name: b.cfg.Name, Balance: b.cfg.Balance, Servers: []ServerStatus{}}
		for _, s := range b.servers {
			bs.Servers = append(bs.Servers, ServerStatus{
				Name: s.Name, Address: s.Addr, State: s.State().String(), Up: s.Up(),
				Weight: s.ConfiguredWeight(), Active: s.Active(),
				ResponseTimeMs: float64(s.ResponseTime().Microseconds()) / 1000,
				Health:         s.HealthStatus(),
			})
		}
		out.Backends = append(out.Backends, bs)
	}
	return out
}
