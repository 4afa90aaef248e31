package node

// The admin API of the VIP manager: GET /v1/vips lists the VRRP instances, POST
// /v1/vips/{name}/move hands an instance's master role to the best backup (unix socket
// only).

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"lbd/vip"
)

// VIPStatus is one VRRP instance as GET /v1/vips shows it.
type VIPStatus struct {
	Name      string `json:"name"`
	Interface string `json:"interface"`
	VRID      int    `json:"vrid"`
	// State is INIT, BACKUP, MASTER or FAULT.
	State string `json:"state"`
	// Priority is the priority advertised now; BasePriority the configured one.
	Priority     int `json:"priority"`
	BasePriority int `json:"base_priority"`
	// Master is the master's address (this node's when master), "" when unknown, and
	// MasterPriority what it advertises.
	Master         string `json:"master"`
	MasterPriority int    `json:"master_priority"`
	// Addresses are the virtual addresses with their prefix.
	Addresses []string `json:"addresses"`
	// Holding: handed over (move) but still holding the addresses until the new master
	// speaks. Yielding: handed over, does not preempt until it next becomes master.
	Holding  bool `json:"holding"`
	Yielding bool `json:"yielding"`
	Accept   bool `json:"accept"`
	// Faults lists what keeps the instance in FAULT.
	Faults []string `json:"faults"`
	// Transitions counts state changes since the instance started.
	Transitions     uint64            `json:"transitions"`
	LastTransition  *time.Time        `json:"last_transition,omitempty"`
	AdvertsSent     uint64            `json:"adverts_sent"`
	AdvertsReceived uint64            `json:"adverts_received"`
	SendErrors      uint64            `json:"send_errors"`
	AddressErrors   uint64            `json:"address_errors"`
	Dropped         map[string]uint64 `json:"dropped"`
}

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
func (n *Node) VIPs() []VIPStatus {
	out := []VIPStatus{}
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
		out = append(out, vipStatus(st, addrs[st.Name]))
	}
	return out
}

func vipStatus(st vip.InstanceStatus, addrs []string) VIPStatus {
	v := VIPStatus{
		Name: st.Name, Interface: st.Interface, VRID: st.VRID, State: st.State.String(),
		Priority: st.Priority, BasePriority: st.BasePriority, MasterPriority: st.MasterPriority,
		Addresses: append([]string{}, addrs...), Holding: st.Holding, Yielding: st.Yielding,
		Accept: st.Accept, Faults: append([]string{}, st.Faults...), Transitions: st.Transitions,
		AdvertsSent: st.AdvertsSent, AdvertsReceived: st.AdvertsReceived,
		SendErrors: st.SendErrors, AddressErrors: st.AddressErrors, Dropped: map[string]uint64{},
	}
	if st.Master.IsValid() {
		v.Master = st.Master.String()
	}
	if !st.LastTransition.IsZero() {
		t := st.LastTransition.UTC()
		v.LastTransition = &t
	}
	for r, c := range st.Dropped {
		v.Dropped[string(r)] = c
	}
	return v
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

// VIPs returns the node's VRRP instances.
func (c *Client) VIPs(ctx context.Context) ([]VIPStatus, error) {
	var out []VIPStatus
	if err := c.call(ctx, http.MethodGet, "/v1/vips", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// MoveVIP hands the master role of instance name (and its sync group) over to the best
// backup. It fails when this node is not the instance's master.
func (c *Client) MoveVIP(ctx context.Context, name string) (*VIPStatus, error) {
	var out VIPStatus
	if err := c.call(ctx, http.MethodPost, "/v1/vips/"+url.PathEscape(name)+"/move", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
