package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"lbd/dataplane"
	"lbd/internal/testutil"
	"lbd/node/api"
	"lbd/vip"
)

func TestVRRPMerge(t *testing.T) {
	tests := []struct {
		name string
		node VRRPNode
		in   vip.Instance
		want vip.Instance
	}{
		{
			name: "nothing to merge",
			in:   vip.Instance{Name: "web", Interface: "eth1", Priority: 90},
			want: vip.Instance{Name: "web", Interface: "eth1", Priority: 90},
		},
		{
			name: "node fills in the interface, source and peers",
			node: VRRPNode{Interface: "eth0", UnicastSource: "198.18.0.1", UnicastPeers: []string{"198.18.0.2"}},
			in:   vip.Instance{Name: "web"},
			want: vip.Instance{Name: "web", Interface: "eth0", UnicastSource: "198.18.0.1", UnicastPeers: []string{"198.18.0.2"}},
		},
		{
			name: "the instance's own interface, source and peers win",
			node: VRRPNode{Interface: "eth0", UnicastSource: "198.18.0.1", UnicastPeers: []string{"198.18.0.2"}},
			in:   vip.Instance{Name: "web", Interface: "eth1", UnicastSource: "198.18.1.1", UnicastPeers: []string{"198.18.1.2"}},
			want: vip.Instance{Name: "web", Interface: "eth1", UnicastSource: "198.18.1.1", UnicastPeers: []string{"198.18.1.2"}},
		},
		{
			name: "node priority overrides the instance's",
			node: VRRPNode{Priority: 150},
			in:   vip.Instance{Name: "web", Priority: 90},
			want: vip.Instance{Name: "web", Priority: 150},
		},
		{
			name: "per-instance priority overrides both",
			node: VRRPNode{Priority: 150, Priorities: map[string]int{"web": 100, "api": 200}},
			in:   vip.Instance{Name: "web", Priority: 90},
			want: vip.Instance{Name: "web", Priority: 100},
		},
		{
			name: "per-instance priority of another instance leaves this one",
			node: VRRPNode{Priorities: map[string]int{"api": 200}},
			in:   vip.Instance{Name: "web", Priority: 90},
			want: vip.Instance{Name: "web", Priority: 90},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Node: NodeConfig{VRRP: tc.node}, VRRP: vip.Config{Instances: []vip.Instance{tc.in}}}
			got := c.VIPConfig()
			if diff := cmp.Diff([]vip.Instance{tc.want}, got.Instances); diff != "" {
				t.Errorf("merged (-want +got):\n%s", diff)
			}
			if c.VRRP.Instances[0].Interface != tc.in.Interface || c.VRRP.Instances[0].Priority != tc.in.Priority {
				t.Errorf("the merge changed the cluster-wide document: %+v", c.VRRP.Instances[0])
			}
		})
	}
}

// vrrpYAML is a valid config with two VRRP instances; line numbers matter to the error
// tests below.
const vrrpYAML = `node:
  name: lb-a
  vrrp:
    interface: eth0
    priority: 150
    priorities: {api: 120}
    unicast_source: 198.18.0.1
    unicast_peers: [198.18.0.2]
vrrp:
  instances:
    - name: web
      vrid: 51
      advert_interval: 100ms
      addresses: ["198.18.0.100/24"]
      track_checks: [{name: dataplane}, {name: "backend:app", weight: -50}]
      notify: {any: [/usr/local/bin/notify.sh]}
    - name: api
      vrid: 52
      advert_interval: 100ms
      addresses: ["198.18.0.101/24"]
  sync_groups: []
backends:
  - name: app
    servers: [{name: s1, address: "127.0.0.1:1"}, {name: s2, address: "127.0.0.1:2"}]
`

func TestVRRPParse(t *testing.T) {
	c, err := Parse("lbd.yaml", []byte(vrrpYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Node.VRRP; got.Interface != "eth0" || got.Priority != 150 || got.Priorities["api"] != 120 ||
		got.UnicastSource != "198.18.0.1" || !slices.Equal(got.UnicastPeers, []string{"198.18.0.2"}) {
		t.Errorf("node.vrrp = %+v", got)
	}
	vc := c.VIPConfig()
	if len(vc.Instances) != 2 {
		t.Fatalf("instances = %+v", vc.Instances)
	}
	web, api := vc.Instances[0], vc.Instances[1]
	wantChecks := []vip.TrackCheck{{Name: "dataplane"}, {Name: "backend:app", Weight: -50}}
	if web.Name != "web" || web.VRID != 51 || web.Priority != 150 || web.Interface != "eth0" ||
		web.AdvertInterval != 100*time.Millisecond || !*web.Preempt || web.Version != 3 ||
		!slices.Equal(web.Notify.Any, []string{"/usr/local/bin/notify.sh"}) || !slices.Equal(web.TrackChecks, wantChecks) {
		t.Errorf("web = %+v", web)
	}
	if api.Priority != 120 || !slices.Equal(api.UnicastPeers, []string{"198.18.0.2"}) || api.UnicastSource != "198.18.0.1" {
		t.Errorf("api = %+v", api)
	}
	if got := c.Node.VRRP; got.LivenessInterval != nil || got.LivenessMultiplier != DefaultLivenessMultiplier {
		t.Errorf("liveness defaults: interval %v, multiplier %d", got.LivenessInterval, got.LivenessMultiplier)
	}
	off, err := Parse("lbd.yaml", []byte(strings.Replace(vrrpYAML, "    priority: 150\n", "    priority: 150\n    liveness_interval: 0s\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if iv := off.Node.VRRP.LivenessInterval; iv == nil || *iv != 0 {
		t.Errorf("liveness_interval: 0s parsed as %v, want 0 (no heartbeats)", iv)
	}
	// node.vrrp is not part of the cluster-wide document.
	other, err := Parse("lbd.yaml", []byte(strings.Replace(vrrpYAML, "priority: 150", "priority: 90", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash() != other.Hash() {
		t.Errorf("the version changed with node.vrrp.priority")
	}
}

func TestVRRPParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // replaced in vrrpYAML
		want     string
	}{
		{"vrid out of range", "vrid: 52", "vrid: 300",
			"lbd.yaml:18: vrrp.instances[1].vrid: (300) must be 1-255"},
		{"node priority out of range", "priority: 150", "priority: 300",
			"lbd.yaml:5: node.vrrp.priority: (300) must be 1-255"},
		{"per-instance priority out of range", "{api: 120}", "{api: 0}",
			"lbd.yaml:6: node.vrrp.priorities.api: (0) must be 1-255"},
		{"per-instance priority of an unknown instance", "{api: 120}", "{apu: 120}",
			`lbd.yaml:6: node.vrrp.priorities.apu: no vrrp instance named "apu"`},
		{"merged peer of the wrong family", "[198.18.0.2]", "[2001:2::2]",
			`lbd.yaml:8: node.vrrp.unicast_peers[0]: (2001:2::2) is not IPv4 like the addresses (in vrrp instance "web")` + "\n" +
				`lbd.yaml:8: node.vrrp.unicast_peers[0]: (2001:2::2) is not IPv4 like the addresses (in vrrp instance "api")`},
		{"merged source of the wrong family", "unicast_source: 198.18.0.1", "unicast_source: 2001:2::1",
			`lbd.yaml:7: node.vrrp.unicast_source: (2001:2::1) is not IPv4 like the addresses (in vrrp instance "web")` + "\n" +
				`lbd.yaml:7: node.vrrp.unicast_source: (2001:2::1) is not IPv4 like the addresses (in vrrp instance "api")`},
		{"no interface anywhere", "    interface: eth0\n", "",
			"lbd.yaml:10: vrrp.instances[0].interface: is required (here, or for every instance in node.vrrp.interface)\n" +
				"lbd.yaml:16: vrrp.instances[1].interface: is required (here, or for every instance in node.vrrp.interface)"},
		{"tracked backend that does not exist", `"backend:app"`, `"backend:ap"`,
			`lbd.yaml:15: vrrp.instances[0].track_checks[1].name: no backend named "ap"`},
		{"tracked check the node does not report", `"backend:app"`, `"disk"`,
			`lbd.yaml:15: vrrp.instances[0].track_checks[1].name: ("disk") must be "dataplane" or "backend:NAME"`},
		{"unknown key in an instance", "      vrid: 51", "      vird: 51",
			`lbd.yaml:12: vrrp.instances[0].vird: unknown field "vird" (did you mean "vrid"?)`},
		{"liveness interval too short", "    unicast_peers: [198.18.0.2]\n", "    unicast_peers: [198.18.0.2]\n    liveness_interval: 5ms\n",
			"lbd.yaml:9: node.vrrp.liveness_interval: (5ms) must be 10ms-10s, or 0s for no heartbeats"},
		{"liveness multiplier too small", "    unicast_peers: [198.18.0.2]\n", "    unicast_peers: [198.18.0.2]\n    liveness_multiplier: 1\n",
			"lbd.yaml:9: node.vrrp.liveness_multiplier: (1) must be 2-100"},
		{"liveness key too short", "    unicast_peers: [198.18.0.2]\n", "    unicast_peers: [198.18.0.2]\n    liveness_key: short\n",
			"lbd.yaml:9: node.vrrp.liveness_key: (5 bytes) must be at least 16 bytes"},
		{"auth key too short", "      vrid: 51", "      vrid: 51\n      auth_key: short",
			"lbd.yaml:13: vrrp.instances[0].auth_key: (5 bytes) must be at least 16 bytes"},
		{"bad duration", "advert_interval: 100ms\n      addresses: [\"198.18.0.101", "advert_interval: 100\n      addresses: [\"198.18.0.101",
			`lbd.yaml:19: vrrp.instances[1].advert_interval: cannot use "100" as a duration: it needs a unit, such as "100s"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(vrrpYAML, tc.old) {
				t.Fatalf("%q is not in the config", tc.old)
			}
			_, err := Parse("lbd.yaml", []byte(strings.Replace(vrrpYAML, tc.old, tc.new, 1)))
			if err == nil {
				t.Fatal("no error")
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestBackendLevels(t *testing.T) {
	st := dataplane.Status{Backends: []dataplane.BackendStatus{
		{Name: "all", Servers: []dataplane.ServerStatus{{Up: true, State: "enabled"}, {Up: true, State: "enabled"}}},
		{Name: "half", Servers: []dataplane.ServerStatus{{Up: true, State: "enabled"}, {Up: false, State: "enabled"}}},
		{Name: "drained", Servers: []dataplane.ServerStatus{{Up: true, State: "drain"}, {Up: true, State: "disabled"},
			{Up: true, State: "enabled"}, {Up: true, State: "enabled"}}},
		{Name: "empty"},
	}}
	want := map[string]float64{"backend:all": 1, "backend:half": 0.5, "backend:drained": 0.5, "backend:empty": 0}
	if diff := cmp.Diff(want, backendLevels(st)); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
}

func TestProbeListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	closedPort := netip.MustParseAddrPort(testutil.DeadTCPAddr(t)).Port() // refuses; no other test can take it
	tests := []struct {
		name string
		addr string
		ok   bool
	}{
		{"listening on loopback", fmt.Sprintf("127.0.0.1:%d", port), true},
		{"listening on every address: probed on loopback", fmt.Sprintf("0.0.0.0:%d", port), true},
		{"nothing listening", fmt.Sprintf("127.0.0.1:%d", closedPort), false},
		{"every address, nothing listening", fmt.Sprintf("0.0.0.0:%d", closedPort), false},
		// Held by another node: a connection would leave the host, so it is not made.
		{"address this host does not have", "198.18.254.254:80", true},
	}
	local := localAddrs()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, err := net.ResolveTCPAddr("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			err = probeListener(context.Background(), addr, local)
			if (err == nil) != tc.ok {
				t.Errorf("probeListener(%s) = %v, want ok=%v", tc.addr, err, tc.ok)
			}
		})
	}
}

func TestDataplaneLevel(t *testing.T) {
	n := nodeWithTCPFrontend(t)
	dp := n.dp
	if got := n.dataplaneLevel(context.Background(), dp.Status()); got != 1 {
		t.Errorf("level with the listener open = %v, want 1", got)
	}
	// A frontend whose listener is gone (as the status says it exists, but it has no
	// listener) fails the check.
	st := dp.Status()
	st.Frontends = append(st.Frontends, dataplane.FrontendStatus{Name: "gone", Mode: "http"})
	if got := n.dataplaneLevel(context.Background(), st); got != 0 {
		t.Errorf("level with a frontend without a listener = %v, want 0", got)
	}
}

// gatherVRRP returns the lbd_vrrp_* series of reg as `name{label="value",...}` → value,
// labels in name order.
func gatherVRRP(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "lbd_vrrp_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Fakes of the VIP manager's kernel: vip's own fakes are in its test files.

// fakeTransport is a network where this node is alone: sends are counted, nothing
// arrives.
type fakeTransport struct {
	src    netip.Addr
	closed chan struct{}
	once   sync.Once
}

func (f *fakeTransport) Send([]byte, netip.Addr) error { return nil }

func (f *fakeTransport) Receive() (vip.Received, error) {
	<-f.closed
	return vip.Received{}, fmt.Errorf("fake transport: %w", net.ErrClosed)
}

func (f *fakeTransport) Source() netip.Addr { return f.src }

func (f *fakeTransport) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// fakeAddresses holds the addresses and logs every change.
type fakeAddresses struct {
	// mu guards have and log.
	mu   sync.Mutex
	have map[string]bool // "eth0 198.18.0.100/24"
	log  []string        // "+eth0 198.18.0.100/24", "-eth0 ..."
}

func (f *fakeAddresses) Add(ifname string, p netip.Prefix, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := ifname + " " + p.String()
	if !f.have[k] {
		f.have[k] = true
		f.log = append(f.log, "+"+k)
	}
	return nil
}

func (f *fakeAddresses) Remove(ifname string, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := ifname + " " + p.String()
	if f.have[k] {
		delete(f.have, k)
		f.log = append(f.log, "-"+k)
	}
	return nil
}

func (f *fakeAddresses) List(ifname, _ string) ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Prefix
	for k := range f.have {
		if name, p, _ := strings.Cut(k, " "); name == ifname {
			out = append(out, netip.MustParsePrefix(p))
		}
	}
	return out, nil
}

// take returns the changes since the last take.
func (f *fakeAddresses) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

func (f *fakeAddresses) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for k := range f.have {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, "\n")
}

type fakeAnnouncer struct {
	// mu guards n.
	mu sync.Mutex
	n  int
}

func (f *fakeAnnouncer) Announce(string, netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return nil
}

// vrrpTestNode is a Node without sockets: its dataplane has cfg's backends (no
// frontends) and its VIP manager runs on fakes.
func vrrpTestNode(t *testing.T, cfg *Config) (*Node, *fakeAddresses) {
	t.Helper()
	addrs := &fakeAddresses{have: map[string]bool{}}
	cfg.Node.StateDir = t.TempDir() // the record of added VIPs goes there
	n := &Node{log: discardLog(), reg: prometheus.NewRegistry(), cfg: cfg}
	n.dp = dataplane.New(dataplane.Options{Logger: n.log, Registry: n.reg})
	if err := n.dp.Apply(cfg.Config); err != nil {
		t.Fatal(err)
	}
	n.reg.MustRegister(newVRRPCollector(n))
	n.vrrp.deps = func() vip.Deps {
		return vip.Deps{
			Transport: func(in vip.Instance) (vip.Transport, error) {
				return &fakeTransport{src: netip.MustParseAddr("198.18.0.1"), closed: make(chan struct{})}, nil
			},
			Addresses: addrs,
			Announcer: &fakeAnnouncer{},
		}
	}
	return n, addrs
}

func vipsOf(t *testing.T, h http.Handler) map[string]api.VIPStatus {
	t.Helper()
	code, body := ctlDo(h, "GET", "/v1/vips", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/vips: %d %s", code, body)
	}
	var list []api.VIPStatus
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("GET /v1/vips: %v\n%s", err, body)
	}
	out := map[string]api.VIPStatus{}
	for _, v := range list {
		out[v.Name] = v
	}
	return out
}

// TestVRRPNode runs the VIP manager the way the node does, on fakes and the bubble's
// clock: election, the admin API, metrics, tracking the dataplane's backends, a reload
// that must not move an unchanged instance, and the graceful stop.
func TestVRRPNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := Parse("lbd.yaml", []byte(vrrpYAML))
		if err != nil {
			t.Fatal(err)
		}
		n, addrs := vrrpTestNode(t, cfg)
		full, tcp := n.adminHandler(true), n.adminHandler(false)
		ctx := context.Background()

		if got := vipsOf(t, full); len(got) != 0 {
			t.Errorf("before VRRP starts: %v", got)
		}
		if err := n.applyVRRP(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // Master_Down_Interval is under 400ms
		synctest.Wait()

		if got, want := addrs.String(), "eth0 198.18.0.100/24\neth0 198.18.0.101/24"; got != want {
			t.Errorf("addresses:\n%s\nwant\n%s", got, want)
		}
		vips := vipsOf(t, full)
		web := vips["web"]
		if web.State != "MASTER" || web.Priority != 150 || web.Master != "198.18.0.1" || web.VRID != 51 ||
			!slices.Equal(web.Addresses, []string{"198.18.0.100/24"}) || web.Transitions == 0 || web.AdvertsSent == 0 {
			t.Errorf("web = %+v", web)
		}
		if api := vips["api"]; api.State != "MASTER" || api.Priority != 120 {
			t.Errorf("api = %+v", api)
		}
		if _, ok := web.Dropped["checksum"]; !ok {
			t.Errorf("web.dropped lacks the checksum reason: %v", web.Dropped)
		}
		if got := vipsOf(t, tcp); len(got) != 2 {
			t.Errorf("the read-only listener shows %d instances, want 2", len(got))
		}

		// Metrics, from the manager's status.
		got := gatherVRRP(t, n.reg)
		for k, v := range map[string]float64{
			`lbd_vrrp_priority{instance="api"}`:                   120,
			`lbd_vrrp_priority{instance="web"}`:                   150,
			`lbd_vrrp_state{instance="web",state="MASTER"}`:       1,
			`lbd_vrrp_state{instance="web",state="BACKUP"}`:       0,
			`lbd_vrrp_state{instance="web",state="FAULT"}`:        0,
			`lbd_vrrp_state{instance="web",state="INIT"}`:         0,
			`lbd_vrrp_state{instance="api",state="MASTER"}`:       1,
			`lbd_vrrp_transitions_total{instance="web"}`:          float64(web.Transitions),
			`lbd_vrrp_adverts_sent_total{instance="web"}`:         float64(web.AdvertsSent),
			`lbd_vrrp_adverts_received_total{instance="web"}`:     0,
			`lbd_vrrp_dropped_total{instance="web",reason="ttl"}`: 0,
		} {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
			}
		}
		if len(got) != 2*(4+4+len(vip.DropReasons())) {
			t.Errorf("%d vrrp series, want %d:\n%v", len(got), 2*(4+4+len(vip.DropReasons())), got)
		}

		// Half of backend app's servers disabled: web tracks it with weight -50.
		state := dataplane.Disabled
		if err := n.dp.SetServer("app", "s1", &state, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // a few health loop periods
		synctest.Wait()
		if got := vipsOf(t, full)["web"]; got.Priority != 125 || got.BasePriority != 150 {
			t.Errorf("web with half of app's servers: priority %d (base %d), want 125 (base 150)", got.Priority, got.BasePriority)
		}
		enabled := dataplane.Enabled
		n.dp.SetServer("app", "s1", &enabled, nil)
		time.Sleep(time.Second)
		synctest.Wait()

		// A reload that changes api but not web: web's VIP does not move.
		addrs.take()
		before := vipsOf(t, full)["web"]
		cfg2, err := Parse("lbd.yaml", []byte(strings.Replace(vrrpYAML, "{api: 120}", "{api: 130}", 1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.applyVRRP(ctx, cfg2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		after := vipsOf(t, full)
		if w := after["web"]; w.State != "MASTER" || w.Transitions != before.Transitions {
			t.Errorf("web after a reload that did not change it: %s, %d transitions (was %d)", w.State, w.Transitions, before.Transitions)
		}
		if a := after["api"]; a.State != "MASTER" || a.Priority != 130 {
			t.Errorf("api after the reload = %+v", a)
		}
		for _, ch := range addrs.take() {
			if strings.Contains(ch, "198.18.0.100") {
				t.Errorf("web's address changed during the reload: %s", ch)
			}
		}

		// Operator move.
		tests := []struct {
			name string
			h    http.Handler
			path string
			code int
		}{
			{"read-only listener", tcp, "/v1/vips/web/move", http.StatusForbidden},
			{"unknown instance", full, "/v1/vips/nope/move", http.StatusNotFound},
			{"master hands over", full, "/v1/vips/web/move", http.StatusOK},
		}
		for _, tc := range tests {
			code, body := ctlDo(tc.h, "POST", tc.path, "")
			if code != tc.code {
				t.Errorf("%s: POST %s = %d %s, want %d", tc.name, tc.path, code, body, tc.code)
			}
		}
		synctest.Wait()
		if w := vipsOf(t, full)["web"]; !w.Yielding && !w.Holding && w.State == "MASTER" {
			t.Errorf("web after the move = %+v", w)
		}

		// Link down: both instances in FAULT, addresses released; a move is refused.
		n.manager().SetLink("eth0", false)
		synctest.Wait()
		for name, v := range vipsOf(t, full) {
			if v.State != "FAULT" {
				t.Errorf("%s with eth0 down = %s", name, v.State)
			}
		}
		if got := addrs.String(); got != "" {
			t.Errorf("addresses in FAULT: %s", got)
		}
		if code, body := ctlDo(full, "POST", "/v1/vips/api/move", ""); code != http.StatusConflict {
			t.Errorf("move of a faulty instance = %d %s, want 409", code, body)
		}
		n.manager().SetLink("eth0", true)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := addrs.String(); !strings.Contains(got, "198.18.0.101") {
			t.Errorf("api's address after the link came back: %q", got)
		}

		// Graceful stop: addresses removed, feeding goroutines gone.
		if err := n.stopVRRP(ctx); err != nil {
			t.Fatal(err)
		}
		if got := addrs.String(); got != "" {
			t.Errorf("addresses after stop: %s", got)
		}
		n.dp.Close(ctx)
	})
}

// TestVRRPNoInstances: a config without vrrp instances starts no manager and needs no
// privileges.
func TestVRRPNoInstances(t *testing.T) {
	n := ctlNode(t)
	if n.manager() != nil {
		t.Fatal("a node without vrrp instances runs a VIP manager")
	}
	if got := n.VIPs(); len(got) != 0 {
		t.Errorf("VIPs() = %v", got)
	}
	code, body := ctlDo(n.adminHandler(true), "POST", "/v1/vips/web/move", "")
	if code != http.StatusNotFound {
		t.Errorf("move without vrrp = %d %s, want 404", code, body)
	}
}

// The root-only test: the real lbd binary in a network namespace, with a peer
// namespace on a veth pair.

// TestVRRPHelperBackend is not a test: run by TestVRRPNamespace inside a namespace, it
// is an HTTP backend at $LBDT_BACKEND that answers "backend-ok".
func TestVRRPHelperBackend(t *testing.T) {
	addr := os.Getenv("LBDT_BACKEND")
	if addr == "" {
		t.Skip("helper process for TestVRRPNamespace")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "backend-ok\n")
	}))
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startProc starts cmd and stops it (SIGKILL, by PID) when the test ends.
func startProc(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
}

// TestVRRPNamespace runs bin/lbd in a namespace "a" with one VRRP instance, its frontend
// on the VIP: it becomes master, adds the VIP, sends gratuitous ARP, serves the VIP to a
// client in namespace "b", and removes the VIP on SIGTERM. Without privileges, lbd
// refuses to start.
func TestVRRPNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if testing.Short() {
		t.Skip("builds and runs lbd")
	}
	for _, tool := range []string{"ip", "curl", "tcpdump", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	// Not t.TempDir, whose parent only root may enter: lbd runs as nobody below.
	dir, err := os.MkdirTemp("", "lbdt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	lbd := bins.Path(t, "lbd/cmd/lbd")

	rnd := make([]byte, 4)
	rand.Read(rnd)
	nsA, nsB := "lbdt-"+hex.EncodeToString(rnd)+"-a", "lbdt-"+hex.EncodeToString(rnd)+"-b"
	for _, ns := range []string{nsA, nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run(t, "ip", "-n", nsA, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", nsB)
	for ns, addr := range map[string]string{nsA: "198.18.200.1/24", nsB: "198.18.200.2/24"} {
		run(t, "ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}

	// The backend, in namespace a on loopback.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	backend := exec.Command("ip", "netns", "exec", nsA, self, "-test.run=^TestVRRPHelperBackend$")
	backend.Env = append(os.Environ(), "LBDT_BACKEND=127.0.0.1:8080")
	startProc(t, backend)

	// Gratuitous ARP for the VIP, as namespace b hears it.
	// (arp[14:4] is the sender's protocol address: 198.18.200.100.)
	var arp, dumpErr testutil.SyncBuffer
	dump := exec.Command("ip", "netns", "exec", nsB, "tcpdump", "-i", "eth0", "-n", "-l", "-c", "1", "arp", "and", "arp[14:4] = 0xc612c864")
	dump.Stdout, dump.Stderr = &arp, &dumpErr
	startProc(t, dump)
	waitFor(t, 5*time.Second, "tcpdump to listen", func() bool { return strings.Contains(dumpErr.String(), "listening on") })

	sock := filepath.Join(dir, "lbd.sock")
	cfgPath := filepath.Join(dir, "lbd.yaml")
	cfg := fmt.Sprintf(`node:
  name: a
  state_dir: %s/state
  admin: {socket: %s, listen: ""}
  vrrp: {interface: eth0, priority: 150}
vrrp:
  instances:
    - name: web
      vrid: 51
      advert_interval: 100ms
      addresses: ["198.18.200.100/24"]
      track_checks: [{name: dataplane}, {name: "backend:app", weight: -50}]
frontends:
  - name: web
    mode: http
    bind: "198.18.200.100:80"
    backend: app
backends:
  - name: app
    servers: [{name: s1, address: "127.0.0.1:8080"}]
`, dir, sock)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	// Without privileges: a clear refusal.
	out, err := exec.Command("ip", "netns", "exec", nsA, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all", lbd, "run", "--config", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CAP_NET_RAW") {
		t.Errorf("lbd without privileges: %v\n%s\nwant a failure naming CAP_NET_RAW", err, out)
	}

	var logs testutil.SyncBuffer
	proc := exec.Command("ip", "netns", "exec", nsA, lbd, "run", "--config", cfgPath)
	proc.Stdout, proc.Stderr = &logs, &logs
	startProc(t, proc)
	defer func() {
		if t.Failed() {
			t.Logf("lbd's log:\n%s", logs.String())
		}
	}()

	client := api.NewClient(sock)
	waitFor(t, 10*time.Second, "web to become MASTER", func() bool {
		vips, err := client.VIPs(context.Background())
		return err == nil && len(vips) == 1 && vips[0].State == "MASTER"
	})
	if got := run(t, "ip", "-n", nsA, "-o", "addr", "show", "dev", "eth0"); !strings.Contains(got, "inet 198.18.200.100/24") {
		t.Errorf("the VIP is not on eth0:\n%s", got)
	}
	waitFor(t, 5*time.Second, "a gratuitous ARP for the VIP", func() bool { return strings.Contains(arp.String(), "198.18.200.100") })
	if got := run(t, "ip", "netns", "exec", nsB, "curl", "-sS", "--max-time", "5", "http://198.18.200.100/"); got != "backend-ok\n" {
		t.Errorf("GET http://198.18.200.100/ from b = %q", got)
	}
	if m, err := client.Metrics(context.Background()); err != nil || !strings.Contains(m, `lbd_vrrp_state{instance="web",state="MASTER"} 1`) {
		t.Errorf("metrics (%v) lack web as MASTER", err)
	}

	// SIGTERM: the VIP goes.
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "lbd to exit", func() bool { return processGone(proc.Process.Pid) })
	if got := run(t, "ip", "-n", nsA, "-o", "addr", "show", "dev", "eth0"); strings.Contains(got, "198.18.200.100") {
		t.Errorf("the VIP is still on eth0 after SIGTERM:\n%s", got)
	}
}

// processGone reports whether pid has exited (it may be a zombie until waited for).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] == "Z"
}

// waitFor polls cond every 20ms until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %v waiting for %s", limit, what)
}

// nodeWithTCPFrontend is a Node with only a dataplane, serving one tcp frontend on a
// loopback port; the dataplane closes when the test ends.
func nodeWithTCPFrontend(t *testing.T) *Node {
	t.Helper()
	dp := dataplane.New(dataplane.Options{Logger: discardLog()})
	t.Cleanup(func() { dp.Close(context.Background()) })
	cfg := dataplane.Config{
		Frontends: []dataplane.Frontend{{Name: "web", Mode: "tcp", Bind: "127.0.0.1:0", Backend: "app"}},
		Backends:  []dataplane.Backend{{Name: "app", Servers: []dataplane.ServerConfig{{Address: "127.0.0.1:1"}}}},
	}
	cfg.SetDefaults()
	if err := dp.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	return &Node{log: discardLog(), dp: dp}
}
