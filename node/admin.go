package node

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"lbd/node/api"
)

// adminHandler serves the admin API (its wire types and endpoints: node/api). The unix socket (full) allows changes; the TCP
// listener, which has no authentication yet, serves only metrics and reads.
func (n *Node) adminHandler(full bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/status", n.handleStatus)
	n.controlRoutes(mux, full) // /healthz, server and node drain (control.go)
	n.stickyRoutes(mux, full)  // sticky tables (sticky.go)
	n.vipRoutes(mux, full)     // VRRP instances (vip_api.go)
	n.clusterRoutes(mux, full) // the cluster and its config (cluster_api.go)
	if full {
		mux.HandleFunc("POST /v1/reload", n.handleReload)
	}
	if os.Getenv("LBD_PPROF") == "1" {
		pprofRoutes(mux)
	}
	return mux
}

// pprofRoutes serves net/http/pprof under /debug/pprof/. It is for profiling only and
// off unless the environment sets LBD_PPROF=1: profiles and traces expose internals and
// cost CPU, and the TCP admin listener has no authentication.
func pprofRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

func (n *Node) handleStatus(w http.ResponseWriter, _ *http.Request) {
	n.mu.Lock()
	resp := api.StatusResponse{
		Node:          n.cfg.Node.Name,
		ConfigPath:    n.path,
		ConfigVersion: n.version,
		LoadedAt:      n.loadedAt.UTC(),
	}
	n.mu.Unlock()
	resp.Dataplane = apiDataplaneStatus(n.dp.Status())
	writeJSON(w, http.StatusOK, resp)
}

func (n *Node) handleReload(w http.ResponseWriter, r *http.Request) {
	var req api.ReloadRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, err := n.ReloadWith(ReloadOptions{AllowEmpty: req.AllowEmpty})
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, api.ReloadResponse{Errors: strings.Split(err.Error(), "\n")})
		return
	}
	writeJSON(w, http.StatusOK, api.ReloadResponse{OK: true, ConfigVersion: v})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
