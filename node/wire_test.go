package node

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/dataplane"
	"lbd/node/api"
	"lbd/vip"
)

// TestAPIConstants: the values lbctl checks before it asks are the dataplane's.
func TestAPIConstants(t *testing.T) {
	for _, s := range []string{api.StateEnabled, api.StateDrain, api.StateDisabled} {
		if _, err := dataplane.ParseServerState(s); err != nil {
			t.Errorf("api state %q: the dataplane refuses it: %v", s, err)
		}
		if err := api.CheckServerState(s); err != nil {
			t.Errorf("api.CheckServerState(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "up", "Enabled"} {
		_, dpErr := dataplane.ParseServerState(s)
		if err := api.CheckServerState(s); err == nil || dpErr == nil || err.Error() != dpErr.Error() {
			t.Errorf("state %q: api says %v, dataplane says %v; want the same refusal", s, err, dpErr)
		}
	}
	if api.MaxServerWeight != dataplane.MaxServerWeight {
		t.Errorf("api.MaxServerWeight = %d, dataplane.MaxServerWeight = %d", api.MaxServerWeight, dataplane.MaxServerWeight)
	}
	if api.DefaultSocket != DefaultAdminSocket {
		t.Errorf("api.DefaultSocket = %q, node.DefaultAdminSocket = %q", api.DefaultSocket, DefaultAdminSocket)
	}
}

// TestWireConversions: every field of the parts' structs that the API shows reaches its
// wire type.
func TestWireConversions(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dp := dataplane.Status{
		Frontends: []dataplane.FrontendStatus{{Name: "web", Mode: "http", Bind: ":80", Backend: "app"}},
		Backends: []dataplane.BackendStatus{{Name: "app", Balance: "leastconn", Servers: []dataplane.ServerStatus{{
			Name: "s1", Address: "192.0.2.1:80", State: "drain", Up: true, Weight: 3, Active: 7, ResponseTimeMs: 1.5,
			Health: dataplane.ServerHealth{Check: "up", LastCheck: "passed", LastCheckAt: at, Reason: "check: ok",
				Passive: "2 failures", Agent: "50%", EffectiveWeight: 1.5},
		}}}},
	}
	want := api.DataplaneStatus{
		Frontends: []api.FrontendStatus{{Name: "web", Mode: "http", Bind: ":80", Backend: "app"}},
		Backends: []api.BackendStatus{{Name: "app", Balance: "leastconn", Servers: []api.ServerStatus{{
			Name: "s1", Address: "192.0.2.1:80", State: "drain", Up: true, Weight: 3, Active: 7, ResponseTimeMs: 1.5,
			Health: api.ServerHealth{Check: "up", LastCheck: "passed", LastCheckAt: at, Reason: "check: ok",
				Passive: "2 failures", Agent: "50%", EffectiveWeight: 1.5},
		}}}},
	}
	if diff := cmp.Diff(want, apiDataplaneStatus(dp)); diff != "" {
		t.Errorf("apiDataplaneStatus (-want +got):\n%s", diff)
	}
	if got := apiDataplaneStatus(dataplane.Status{}); got.Frontends == nil || got.Backends == nil {
		t.Errorf("apiDataplaneStatus of nothing = %+v, want empty lists (JSON [], not null)", got)
	}

	entries := []api.StickyEntry{{Key: "192.0.2.7", Server: "s1", Expires: at.UnixNano()}, {Key: "gone", Server: ""}}
	if diff := cmp.Diff(entries, apiStickyEntries(stickyEntries(entries))); diff != "" {
		t.Errorf("sticky entries there and back (-want +got):\n%s", diff)
	}

	st := vip.InstanceStatus{
		Name: "web", Interface: "eth0", VRID: 51, State: vip.Master, Priority: 90, BasePriority: 100,
		Master: netip.MustParseAddr("192.0.2.1"), MasterPriority: 90, Holding: true, Yielding: true, Accept: true,
		Faults: []string{"link eth1 down"}, Transitions: 2, LastTransition: at.Local(), AdvertsSent: 10,
		AdvertsReceived: 11, SendErrors: 1, AddressErrors: 2, Dropped: map[vip.DropReason]uint64{"bad-ttl": 3},
	}
	wantVIP := api.VIPStatus{
		Name: "web", Interface: "eth0", VRID: 51, State: "MASTER", Priority: 90, BasePriority: 100,
		Master: "192.0.2.1", MasterPriority: 90, Addresses: []string{"192.0.2.100/24"}, Holding: true, Yielding: true,
		Accept: true, Faults: []string{"link eth1 down"}, Transitions: 2, LastTransition: &at, AdvertsSent: 10,
		AdvertsReceived: 11, SendErrors: 1, AddressErrors: 2, Dropped: map[string]uint64{"bad-ttl": 3},
	}
	if diff := cmp.Diff(wantVIP, apiVIPStatus(st, []string{"192.0.2.100/24"})); diff != "" {
		t.Errorf("apiVIPStatus (-want +got):\n%s", diff)
	}
}
