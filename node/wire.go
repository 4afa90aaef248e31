package node

// The admin API's answers are node/api's types, never the parts' own structs: the
// functions here copy a part's struct into its wire type field by field, so a change to
// a dataplane or vip struct cannot change the API by accident.

import (
	"lbd/dataplane"
	"lbd/dataplane/sticky"
	"lbd/node/api"
	"lbd/vip"
)

func apiDataplaneStatus(st dataplane.Status) api.DataplaneStatus {
	out := api.DataplaneStatus{
		Frontends: make([]api.FrontendStatus, 0, len(st.Frontends)),
		Backends:  make([]api.BackendStatus, 0, len(st.Backends)),
	}
	for _, f := range st.Frontends {
		out.Frontends = append(out.Frontends, api.FrontendStatus{Name: f.Name, Mode: f.Mode, Bind: f.Bind, Backend: f.Backend})
	}
	for _, b := range st.Backends {
		ab := api.BackendStatus{Name: b.Name, Balance: b.Balance, Servers: make([]api.ServerStatus, 0, len(b.Servers))}
		for _, s := range b.Servers {
			ab.Servers = append(ab.Servers, apiServerStatus(s))
		}
		out.Backends = append(out.Backends, ab)
	}
	return out
}

func apiServerStatus(s dataplane.ServerStatus) api.ServerStatus {
	h := s.Health
	return api.ServerStatus{
		Name: s.Name, Address: s.Address, State: s.State, Up: s.Up, Weight: s.Weight,
		Active: s.Active, ResponseTimeMs: s.ResponseTimeMs,
		Health: api.ServerHealth{
			Check: h.Check, LastCheck: h.LastCheck, LastCheckAt: h.LastCheckAt, Reason: h.Reason,
			Passive: h.Passive, Agent: h.Agent, EffectiveWeight: h.EffectiveWeight,
		},
	}
}

func apiStickyEntries(es []sticky.Entry) []api.StickyEntry {
	out := make([]api.StickyEntry, 0, len(es))
	for _, e := range es {
		out = append(out, api.StickyEntry{Key: e.Key, Server: e.Server, Expires: e.Expires})
	}
	return out
}

func stickyEntries(es []api.StickyEntry) []sticky.Entry {
	out := make([]sticky.Entry, 0, len(es))
	for _, e := range es {
		out = append(out, sticky.Entry{Key: e.Key, Server: e.Server, Expires: e.Expires})
	}
	return out
}

// apiVIPStatus is st with the instance's configured addresses.
func apiVIPStatus(st vip.InstanceStatus, addrs []string) api.VIPStatus {
	v := api.VIPStatus{
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
