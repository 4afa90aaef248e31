package node

// Run-time control: servers' state and weight, and the node's own drain.
//
// Node drain is for the load balancer in front of lbd (a cloud LB, a router's health
// check, DNS health checks): GET /healthz answers 200 "ok" normally and 503 "draining"
// once the node is drained, so the outer balancer stops sending it new clients. lbd
// itself keeps serving everything it gets, during the grace period and after; the grace
// period only says how long the operator should wait before stopping the node (lbd logs
// when it is over). Then stop lbd (systemctl stop lbd), which finishes the connections
// in flight within its drain timeout. Undrain makes /healthz answer 200 again.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lbd/dataplane"
	"lbd/node/api"
)

// drainState is the node's drain; its mutex guards every field.
type drainState struct {
	mu       sync.Mutex
	draining bool
	since    time.Time
	grace    time.Duration
	timer    *time.Timer // logs the end of the grace period
	gauge    prometheus.Gauge
}

// initControl registers the node drain's metric.
func (n *Node) initControl() {
	n.drain.gauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lbd_node_draining",
		Help: "1 while the node is drained (GET /healthz answers 503), 0 otherwise.",
	})
	n.reg.MustRegister(n.drain.gauge)
}

// controlRoutes adds the control endpoints to an admin mux: /healthz everywhere, the
// changes only on the unix socket (full).
func (n *Node) controlRoutes(mux *http.ServeMux, full bool) {
	mux.HandleFunc("GET /healthz", n.handleHealthz)
	mux.HandleFunc("GET /v1/node/drain", n.handleDrainStatus)
	setServer, drain, undrain := n.handleSetServer, n.handleDrain, n.handleUndrain
	if !full {
		setServer, drain, undrain = readOnly, readOnly, readOnly
	}
	mux.HandleFunc("PUT /v1/backends/{backend}/servers/{server}", setServer)
	mux.HandleFunc("POST /v1/backends/{backend}/servers/{server}", setServer)
	mux.HandleFunc("POST /v1/node/drain", drain)
	mux.HandleFunc("POST /v1/node/undrain", undrain)
}

// readOnly refuses a change on the TCP listener, which has no authentication.
func readOnly(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusForbidden, "changes are accepted on the admin unix socket only; this listener is read-only")
}

func (n *Node) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if n.Draining() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "draining\n")
		return
	}
	io.WriteString(w, "ok\n")
}

func (n *Node) handleSetServer(w http.ResponseWriter, r *http.Request) {
	backend, server := r.PathValue("backend"), r.PathValue("server")
	var ch api.ServerChange
	if err := decodeBody(r, &ch); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ch.State == nil && ch.Weight == nil {
		writeError(w, http.StatusBadRequest, "nothing to change: give state, weight or both")
		return
	}
	var state *dataplane.ServerState
	if ch.State != nil {
		st, err := dataplane.ParseServerState(*ch.State)
		if err != nil {
			writeError(w, http.StatusBadRequest, "state: "+err.Error())
			return
		}
		state = &st
	}
	err := n.dp.SetServer(backend, server, state, ch.Weight)
	var nf *dataplane.NotFoundError
	var fe *dataplane.FieldError
	switch {
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, b := range n.dp.Status().Backends {
		for _, s := range b.Servers {
			if b.Name == backend && s.Name == server {
				writeJSON(w, http.StatusOK, apiServerStatus(s))
				return
			}
		}
	}
	// Removed by a reload in the meantime.
	writeError(w, http.StatusNotFound, (&dataplane.NotFoundError{Backend: backend, Server: server}).Error())
}

func (n *Node) handleDrain(w http.ResponseWriter, r *http.Request) {
	var req api.DrainRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	grace := api.DefaultDrainGrace
	if req.Grace != "" {
		g, err := time.ParseDuration(req.Grace)
		if err != nil || g < 0 || g > api.MaxDrainGrace {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("grace: must be a duration from 0s to %v, such as \"30s\", not %q", api.MaxDrainGrace, req.Grace))
			return
		}
		grace = g
	}
	writeJSON(w, http.StatusOK, n.Drain(grace))
}

func (n *Node) handleUndrain(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, n.Undrain())
}

func (n *Node) handleDrainStatus(w http.ResponseWriter, _ *http.Request) {
	n.drain.mu.Lock()
	st := n.drain.statusLocked()
	n.drain.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

// Draining reports whether the node is drained.
func (n *Node) Draining() bool {
	n.drain.mu.Lock()
	defer n.drain.mu.Unlock()
	return n.drain.draining
}

// Drain makes GET /healthz answer 503 so that an outer load balancer stops sending new
// clients; traffic keeps being served. After grace, lbd logs that the node may be
// stopped. Draining a drained node restarts its grace period.
func (n *Node) Drain(grace time.Duration) api.DrainStatus {
	d := &n.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.draining, d.since, d.grace = true, time.Now(), grace
	d.gauge.Set(1)
	n.log.Info("node draining: /healthz answers 503; traffic is still served", "grace", grace)
	d.timer = time.AfterFunc(grace, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.draining {
			n.log.Info("node drain grace period over: the node may be stopped", "grace", d.grace)
		}
	})
	return d.statusLocked()
}

// Undrain makes GET /healthz answer 200 again.
func (n *Node) Undrain() api.DrainStatus {
	d := &n.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.draining {
		n.log.Info("node undrained: /healthz answers 200")
	}
	d.draining = false
	d.gauge.Set(0)
	return d.statusLocked()
}

// stopControl stops the drain's timer; Close calls it.
func (n *Node) stopControl() {
	n.drain.mu.Lock()
	defer n.drain.mu.Unlock()
	if n.drain.timer != nil {
		n.drain.timer.Stop()
	}
}

func (d *drainState) statusLocked() api.DrainStatus {
	if !d.draining {
		return api.DrainStatus{}
	}
	since, ends := d.since.UTC(), d.since.Add(d.grace).UTC()
	return api.DrainStatus{Draining: true, Since: &since, Grace: d.grace.String(), GraceEnds: &ends}
}

// decodeBody reads a JSON request body into v, strictly; an empty body leaves v as it is.
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%s: must be a JSON %s, not %s", te.Field, te.Type.Kind(), te.Value)
		}
		return fmt.Errorf("bad JSON body: %v", err)
	}
	return nil
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, api.ErrorResponse{Error: msg})
}
