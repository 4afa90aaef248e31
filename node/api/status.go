package api

import "time"

// StatusResponse is the answer of GET /v1/status.
type StatusResponse struct {
	Node          string          `json:"node"`
	ConfigPath    string          `json:"config_path"`
	ConfigVersion string          `json:"config_version"`
	LoadedAt      time.Time       `json:"loaded_at"`
	Dataplane     DataplaneStatus `json:"dataplane"`
}

// DataplaneStatus is the running frontends and backends, in config order.
type DataplaneStatus struct {
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

// ServerStatus describes one server; PUT /v1/backends/{backend}/servers/{server}
// answers it too.
type ServerStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is StateEnabled, StateDrain or StateDisabled.
	State  string `json:"state"`
	Up     bool   `json:"up"`
	Weight int    `json:"weight"`
	Active int64  `json:"active"`
	// ResponseTimeMs is the moving average of response time in milliseconds.
	ResponseTimeMs float64 `json:"response_time_ms"`
	// Health is what health checking, passive checking and the agent say.
	Health ServerHealth `json:"health"`
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

// ReloadRequest is the optional body of POST /v1/reload; no body is the zero value.
type ReloadRequest struct {
	// AllowEmpty applies a config without frontends and without vrrp instances over
	// one that has some (every frontend stops, every VIP is released); without it such
	// a reload is refused with 422.
	AllowEmpty bool `json:"allow_empty,omitempty"`
}

// ReloadResponse is the answer of POST /v1/reload: 200 with OK and the new version, or
// 422 with the problems of a refused config (the old config keeps serving).
type ReloadResponse struct {
	OK            bool     `json:"ok"`
	ConfigVersion string   `json:"config_version,omitempty"`
	Errors        []string `json:"errors,omitempty"`
}
