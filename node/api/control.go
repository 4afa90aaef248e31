package api

import (
	"fmt"
	"time"
)

// DefaultSocket is the admin unix socket of a node whose config names none.
const DefaultSocket = "/run/lbd/lbd.sock"

// A server's states, as ServerStatus.State and ServerChange.State spell them.
const (
	// StateEnabled: the server takes traffic.
	StateEnabled = "enabled"
	// StateDrain: no new sessions; those in flight and persistent clients are served.
	StateDrain = "drain"
	// StateDisabled: the server takes nothing.
	StateDisabled = "disabled"
)

// MaxServerWeight is the highest weight a server may be given.
const MaxServerWeight = 256

// CheckServerState returns an error unless s is StateEnabled, StateDrain or
// StateDisabled, so that a client can refuse a bad state before asking.
func CheckServerState(s string) error {
	switch s {
	case StateEnabled, StateDrain, StateDisabled:
		return nil
	}
	return fmt.Errorf("must be %s, %s or %s, not %q", StateEnabled, StateDrain, StateDisabled, s)
}

// ServerChange is the body of PUT /v1/backends/{backend}/servers/{server}: the values to
// change; those left out stay as they are.
type ServerChange struct {
	// State is StateEnabled, StateDrain or StateDisabled.
	State *string `json:"state,omitempty"`
	// Weight is 0 to MaxServerWeight.
	Weight *int `json:"weight,omitempty"`
}

// DefaultDrainGrace is the grace period of a node drain when none is given.
const DefaultDrainGrace = 30 * time.Second

// MaxDrainGrace bounds the grace period of a node drain.
const MaxDrainGrace = 24 * time.Hour

// DrainRequest is the body of POST /v1/node/drain.
type DrainRequest struct {
	// Grace is how long the operator should wait before stopping the node, such as
	// "30s", from 0s to MaxDrainGrace. Default: DefaultDrainGrace.
	Grace string `json:"grace,omitempty"`
}

// DrainStatus is the answer of the node drain endpoints.
type DrainStatus struct {
	Draining bool `json:"draining"`
	// Since is when the drain started; GraceEnds when the node may be stopped.
	Since     *time.Time `json:"since,omitempty"`
	Grace     string     `json:"grace,omitempty"`
	GraceEnds *time.Time `json:"grace_ends,omitempty"`
}

// ErrorResponse is the answer of a refused admin request.
type ErrorResponse struct {
	Error string `json:"error"`
}
