package node

// The admin API of the VIP manager: GET /v1/vips lists the VRRP instances, POST
// /v1/vips/{name}/move hands an instance's master role to the best backup (unix socket
// only).

import (
	"errors"
	"net/http"

	"lbd/node/api"
	"lbd/vip"
)

// vipRoutes adds the VIP endpoints to an admin mux; the move only on the unix socket
// (full).
func (n *Node) vipRoutes(mux *http.ServeMux, full bool) {
	mux.HandleFunc("GET /v1/vips", n.handleVIPs)
	move := n.handleVIPMove
	if !full {
		move = readOnly
	}
	mux.HandleFunc("POST /v1/vips/{name}/move", move)
}

// VIPs returns the status of every VRRP instance, in config order; none when the node
// runs no VRRP.
func (n *Node) VIPs() []api.VIPStatus {
	out := []api.VIPStatus{}
	m := n.manager()
	if m == nil {
		return out
	}
	n.mu.Lock()
	var addrs map[string][]string
	if n.cfg != nil {
		addrs = map[string][]string{}
		for _, in := range n.cfg.VRRP.Instances {
			addrs[in.Name] = in.Addresses
		}
	}
	n.mu.Unlock()
	for _, st := range m.Status() {
		out = append(out, apiVIPStatus(st, addrs[st.Name]))
	}
	return out
}

func (n *Node) handleVIPs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, n.VIPs())
}

func (n *Node) handleVIPMove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	m := n.manager()
	if m == nil {
		writeError(w, http.StatusNotFound, "no vrrp instance named "+name+": this node runs no vrrp")
		return
	}
	err := m.Move(name)
	switch {
	case errors.Is(err, vip.ErrUnknownInstance):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, vip.ErrNotMaster):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, vip.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	n.log.Info("vrrp master role handed over by the operator", "instance", name)
	for _, st := range n.VIPs() {
		if st.Name == name {
			writeJSON(w, http.StatusOK, st)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no vrrp instance named "+name)
}
