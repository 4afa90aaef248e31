package node

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

var update = flag.Bool("update", false, "rewrite testdata/api.golden from the admin API's answers")

// TestAPIGolden pins the admin API's answers on the wire, end to end: a node's handlers
// answer a fixed sequence of requests, and the statuses and JSON bodies are compared with
// testdata/api.golden (values that vary between runs, such as times and paths, are
// replaced by X, 0 or DIR). go test ./node -run TestAPIGolden -update rewrites it.
func TestAPIGolden(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	cfg := fmt.Sprintf(`node:
  name: golden
  state_dir: %[1]s/state
  admin: {socket: %[1]s/lbd.sock, listen: ""}
frontends:
  - {name: web, mode: http, bind: "127.0.0.1:0", backend: app}
backends:
  - name: app
    persistence: {type: table, table: {key: client_ip, ttl: 876000h}}
    servers:
      - {name: s1, address: "127.0.0.1:1"}
      - {name: s2, address: "127.0.0.1:2", weight: 2}
  - name: plain
    servers: [{name: p1, address: "127.0.0.1:3"}]
`, dir)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{ConfigPath: path, Logger: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	full, tcp := n.adminHandler(true), n.adminHandler(false)
	var got strings.Builder
	for _, r := range []struct {
		h                  http.Handler
		method, path, body string
	}{
		{full, "GET", "/v1/status", ""},
		{full, "PUT", "/v1/backends/app/servers/s1", `{"state":"drain","weight":3}`},
		{full, "PUT", "/v1/backends/app/servers/s9", `{"state":"drain"}`},
		{tcp, "PUT", "/v1/backends/app/servers/s1", `{"state":"enabled"}`},
		{full, "POST", "/v1/sticky/app/import", `{"entries":[{"key":"k1","server":"s1","expires":4102444800000000000},{"key":"k2","server":"s2","expires":4102444800000000000}]}`},
		{full, "GET", "/v1/sticky/app", ""},
		{full, "GET", "/v1/sticky/app?server=s2", ""},
		{full, "GET", "/v1/sticky/app/export?since=0", ""},
		{full, "GET", "/v1/sticky/plain", ""},
		{full, "GET", "/v1/sticky/nope", ""},
		{full, "DELETE", "/v1/sticky/app?key=k1", ""},
		{full, "DELETE", "/v1/sticky/app?server=s9", ""},
		{full, "GET", "/v1/sticky/app/export?since=0", ""},
		{full, "GET", "/v1/node/drain", ""},
		{full, "POST", "/v1/node/drain", `{"grace":"1h"}`},
		{full, "POST", "/v1/node/undrain", ""},
		{full, "GET", "/v1/vips", ""},
		{full, "POST", "/v1/vips/web/move", ""},
		{full, "POST", "/v1/reload", ""},
		{full, "POST", "/v1/reload", "bad"}, // the file is broken first
	} {
		if r.body == "bad" {
			os.WriteFile(path, []byte(cfg+"  - {name: app, servers: [{address: nowhere}]}\n"), 0o644)
			r.body = ""
		}
		code, body := ctlDo(r.h, r.method, r.path, r.body)
		fmt.Fprintf(&got, "%s\n%d\n%s\n", strings.TrimSpace(r.method+" "+r.path+" "+r.body), code, body)
	}
	out := regexp.MustCompile(`"(loaded_at|since|grace_ends|config_path|config_version)": "[^"]*"`).ReplaceAllString(got.String(), `"$1": "X"`)
	out = regexp.MustCompile(`"expires": [0-9]+`).ReplaceAllString(out, `"expires": 0`) // a deletion's: now + ttl
	out = strings.ReplaceAll(out, dir, "DIR")

	golden := filepath.Join("testdata", "api.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./node -run TestAPIGolden -update writes it)", err)
	}
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(out, "\n")); diff != "" {
		t.Errorf("the admin API's answers differ from %s (-want +got):\n%s", golden, diff)
	}
}
