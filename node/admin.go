package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"lbd/node/api"
)

// adminHandler serves the admin API (its wire types and endpoints: node/api). The unix
// socket (full) allows changes; the TCP listener (tcpAdminHandler) serves only metrics
// and reads, and the sticky tables only to a request that carried the bearer token.
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

// tcpAdminHandler is the TCP listener's handler: the read-only API, and with a token
// ("" for none) every request must carry "Authorization: Bearer TOKEN" (401 otherwise).
// The TCP listener is on loopback only (Config.Validate), so the token guards against
// other users and processes of this host.
func (n *Node) tcpAdminHandler(token string) http.Handler {
	h := n.adminHandler(false)
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lbd"`)
			writeError(w, http.StatusUnauthorized, "this listener needs the bearer token of node.admin.token_file (Authorization: Bearer TOKEN; lbctl --token-file)")
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenChecked{}, true)))
	})
}

// tokenChecked is the request context key that tcpAdminHandler sets once the bearer
// token was checked.
type tokenChecked struct{}

// needsToken serves h only to a request whose bearer token was checked.
func needsToken(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ok, _ := r.Context().Value(tokenChecked{}).(bool); !ok {
			writeError(w, http.StatusUnauthorized, "sticky keys are session cookies: on the TCP listener they are served only "+
				"with the bearer token of node.admin.token_file; use the admin unix socket")
			return
		}
		h(w, r)
	}
}

// minTokenLen is the shortest bearer token accepted.
const minTokenLen = 16

// readTokenFile reads a bearer token: the file must not be readable or writable by
// group or others, and hold at least minTokenLen characters (surrounding white space is
// not part of it).
func readTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %04o: it must not be open to group or others (chmod 600 %s)", path, m, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("%s: the token must be at least %d characters (such as: openssl rand -hex 32)", path, minTokenLen)
	}
	return tok, nil
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
