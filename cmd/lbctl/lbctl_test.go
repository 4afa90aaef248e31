package main

// Golden tests of lbctl's output: each command family runs against a fake admin API (an
// httptest server on a unix socket) and its output (tables, --json, errors) is compared
// with testdata/FAMILY.golden. go test ./cmd/lbctl -update rewrites those files; review
// the diff before committing it.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/internal/testutil"
	"lbd/node/api"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from lbctl's output")

// now is the clock of every golden run.
var now = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	// Tables print some times in local time: make it UTC, as on most servers.
	time.Local = time.UTC
	os.Exit(m.Run())
}

// reply is one canned answer of the fake API: code and a body sent as JSON (a string
// is sent as it is, as text/plain).
type reply struct {
	code int
	body any
}

// fakeAPI answers requests ("METHOD /path?query") with canned replies; it records every
// request it gets. An unknown request is a 404 without an API message, as ServeMux's.
type fakeAPI struct {
	replies map[string]reply

	mu  sync.Mutex // guards log
	log []string   // "PUT /v1/... {body}"
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := r.Method + " " + r.URL.RequestURI()
	f.mu.Lock()
	f.log = append(f.log, strings.TrimSpace(req+" "+string(body)))
	f.mu.Unlock()
	rep, ok := f.replies[req]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if text, ok := rep.body.(string); ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(rep.code)
		io.WriteString(w, text)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rep.body)
}

// serve starts f on a unix socket and returns the socket's path.
func (f *fakeAPI) serve(t *testing.T) string { return testutil.UnixServer(t, f) }

func (f *fakeAPI) takeLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

// invocation is one lbctl command line of a golden test, run against its own fake API.
type invocation struct {
	args    string           // after "lbctl --socket SOCKET"; split on spaces
	replies map[string]reply // the fake API's answers; nil: no API at all (no socket)
}

// golden runs the invocations and compares what each prints (and the requests it made)
// with testdata/NAME.golden.
func golden(t *testing.T, name string, runs []invocation) {
	t.Helper()
	var got bytes.Buffer
	for _, inv := range runs {
		fake := &fakeAPI{replies: inv.replies}
		sock := filepath.Join(t.TempDir(), "absent.sock")
		if inv.replies != nil {
			sock = fake.serve(t)
		}
		var stdout, stderr bytes.Buffer
		args := append([]string{"--socket", sock}, strings.Fields(inv.args)...)
		code := run(context.Background(), args, &stdout, &stderr, func() time.Time { return now })
		fmt.Fprintf(&got, "$ lbctl %s\n", inv.args)
		for _, req := range fake.takeLog() {
			fmt.Fprintf(&got, "> %s\n", req)
		}
		got.WriteString(strings.ReplaceAll(stdout.String()+stderr.String(), sock, "SOCKET"))
		if code != 0 {
			fmt.Fprintf(&got, "[exit %d]\n", code)
		}
		got.WriteString("\n")
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/lbctl -run %s -update writes it)", err, t.Name())
	}
	// Line by line, so that the diff shows lines rather than bytes.
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got.String(), "\n")); diff != "" {
		t.Errorf("lbctl output differs from %s (-want +got):\n%s", path, diff)
	}
}

func apiError(code int, msg string) reply { return reply{code, api.ErrorResponse{Error: msg}} }

// merge returns base with the replies of over added or replaced.
func merge(base map[string]reply, over map[string]reply) map[string]reply {
	out := map[string]reply{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

var (
	server1 = api.ServerStatus{
		Name: "app1", Address: "192.0.2.11:8080", State: api.StateEnabled, Up: true, Weight: 2, Active: 3,
		ResponseTimeMs: 1.25, Health: api.ServerHealth{Check: "up", LastCheck: "passed",
			LastCheckAt: now.Add(-2 * time.Second), EffectiveWeight: 2},
	}
	server2 = api.ServerStatus{
		Name: "app2", Address: "192.0.2.12:8080", State: api.StateDrain, Up: false, Weight: 1,
		Health: api.ServerHealth{Check: "down, 1/2 passed", LastCheck: "connection refused",
			LastCheckAt: now.Add(-1 * time.Second), Reason: "check: connection refused", Passive: "2 failures",
			Agent: "error: timeout"},
	}
	status = api.StatusResponse{
		Node: "lb1", ConfigPath: "/etc/lbd/lbd.yaml", ConfigVersion: "3f2a9c1b7d40",
		LoadedAt: now.Add(-time.Hour),
		Dataplane: api.DataplaneStatus{
			Frontends: []api.FrontendStatus{
				{Name: "web", Mode: "http", Bind: "203.0.113.10:80", Backend: "app"},
				{Name: "dns", Mode: "udp", Bind: "203.0.113.10:53", Backend: "resolvers"},
			},
			Backends: []api.BackendStatus{
				{Name: "app", Balance: "leastconn", Servers: []api.ServerStatus{server1, server2}},
				{Name: "resolvers", Balance: "roundrobin", Servers: []api.ServerStatus{{
					Name: "ns1", Address: "192.0.2.53:53", State: api.StateEnabled, Up: true, Weight: 1,
					Health: api.ServerHealth{EffectiveWeight: 1},
				}}},
			},
		},
	}
)

func TestStatusGolden(t *testing.T) {
	ok := map[string]reply{"GET /v1/status": {200, status}}
	golden(t, "status", []invocation{
		{args: "status", replies: ok},
		{args: "--json status", replies: ok},
		{args: "status extra", replies: ok},
	})
}

func TestReloadGolden(t *testing.T) {
	golden(t, "reload", []invocation{
		{args: "reload", replies: map[string]reply{"POST /v1/reload": {200, api.ReloadResponse{OK: true, ConfigVersion: "5e1d0a2c9f33"}}}},
		{args: "--json reload", replies: map[string]reply{"POST /v1/reload": {200, api.ReloadResponse{OK: true, ConfigVersion: "5e1d0a2c9f33"}}}},
		{args: "reload", replies: map[string]reply{"POST /v1/reload": {422, api.ReloadResponse{Errors: []string{
			`/etc/lbd/lbd.yaml:12: frontends[0].backend: no backend named "ap"`,
			`/etc/lbd/lbd.yaml:20: backends[0].servers[1].weight: must be between 0 and 256, not 300`,
		}}}}},
		// The read-only TCP listener has no reload: ServeMux's own 404, without an API message.
		{args: "reload", replies: map[string]reply{}},
		{args: "reload --allow-empty", replies: map[string]reply{"POST /v1/reload": {200, api.ReloadResponse{OK: true, ConfigVersion: "44136fa355b3"}}}},
	})
}

func TestMetricsGolden(t *testing.T) {
	text := "# HELP lbd_node_draining 1 while the node is drained.\n# TYPE lbd_node_draining gauge\nlbd_node_draining 0\n"
	golden(t, "metrics", []invocation{
		{args: "metrics", replies: map[string]reply{"GET /metrics": {200, text}}},
		{args: "metrics", replies: map[string]reply{"GET /metrics": {500, "An error has occurred while serving metrics:\n\ncollector failed\n"}}},
	})
}

func TestServerGolden(t *testing.T) {
	drained := server1
	drained.State = api.StateDrain
	disabled := server1
	disabled.State, disabled.Active = api.StateDisabled, 0
	weighted := server1
	weighted.Weight = 3
	replies := map[string]reply{
		"PUT /v1/backends/app/servers/app1": {200, drained},
		"PUT /v1/backends/app/servers/app9": apiError(404, `backend "app" has no server named "app9"`),
	}
	golden(t, "server", []invocation{
		{args: "server drain app app1", replies: replies},
		{args: "--json server disable app app1", replies: merge(replies, map[string]reply{
			"PUT /v1/backends/app/servers/app1": {200, disabled},
		})},
		{args: "server enable app app9", replies: replies},
		{args: "server set app app1 --weight 3 --state enabled", replies: merge(replies, map[string]reply{
			"PUT /v1/backends/app/servers/app1": {200, weighted},
		})},
		// Refused by lbctl itself: no request.
		{args: "server set app app1 --weight 300", replies: replies},
		{args: "server set app app1 --state off", replies: replies},
		{args: "server set app app1", replies: replies},
		{args: "server drain app", replies: replies},
		// Refused by the TCP listener, which is read-only.
		{args: "server drain app app1", replies: map[string]reply{
			"PUT /v1/backends/app/servers/app1": apiError(403, "changes are accepted on the admin unix socket only; this listener is read-only"),
		}},
	})
}

func TestNodeGolden(t *testing.T) {
	since, ends := now.Add(-10*time.Second), now.Add(50*time.Second)
	draining := api.DrainStatus{Draining: true, Since: &since, Grace: "1m0s", GraceEnds: &ends}
	pastEnds := now.Add(-time.Second)
	over := api.DrainStatus{Draining: true, Since: &since, Grace: "9s", GraceEnds: &pastEnds}
	golden(t, "node", []invocation{
		{args: "node drain --grace 1m", replies: map[string]reply{"POST /v1/node/drain": {200, draining}}},
		{args: "--json node drain --grace 1m", replies: map[string]reply{"POST /v1/node/drain": {200, draining}}},
		{args: "node drain --grace 9s --wait", replies: map[string]reply{"POST /v1/node/drain": {200, over}}},
		{args: "node drain --grace 48h", replies: map[string]reply{"POST /v1/node/drain": apiError(400, `grace: must be a duration from 0s to 24h0m0s, such as "30s", not "48h0m0s"`)}},
		{args: "node drain --grace -1s", replies: map[string]reply{}},
		{args: "node status", replies: map[string]reply{"GET /v1/node/drain": {200, draining}}},
		{args: "node status", replies: map[string]reply{"GET /v1/node/drain": {200, over}}},
		{args: "node status", replies: map[string]reply{"GET /v1/node/drain": {200, api.DrainStatus{}}}},
		{args: "--json node status", replies: map[string]reply{"GET /v1/node/drain": {200, api.DrainStatus{}}}},
		{args: "node undrain", replies: map[string]reply{"POST /v1/node/undrain": {200, api.DrainStatus{}}}},
	})
}

func TestStickyGolden(t *testing.T) {
	list := api.StickyListResponse{Backend: "app", Entries: []api.StickyListEntry{
		{Key: "198.51.100.7", Server: "app1", Expires: now.Add(90 * time.Second)},
		{Key: "198.51.100.9", Server: "app2", Expires: now.Add(29*time.Minute + 500*time.Millisecond)},
	}}
	replies := map[string]reply{
		"GET /v1/sticky/app":                     {200, list},
		"GET /v1/sticky/api":                     {200, api.StickyListResponse{Backend: "api", Entries: []api.StickyListEntry{}}},
		"GET /v1/sticky/nope":                    apiError(404, `no backend named "nope"`),
		"GET /v1/sticky/web":                     apiError(409, `backend "web" keeps no sticky table (persistence type table)`),
		"DELETE /v1/sticky/app?key=198.51.100.7": {200, api.StickyDeleteResponse{Deleted: 1}},
		"DELETE /v1/sticky/app?server=app2":      {200, api.StickyDeleteResponse{Deleted: 12}},
		"DELETE /v1/sticky/app?key=203.0.113.1":  apiError(404, `backend "app" has no sticky entry for key "203.0.113.1"`),
	}
	golden(t, "sticky", []invocation{
		{args: "sticky list app", replies: replies},
		{args: "--json sticky list app", replies: replies},
		{args: "sticky list api", replies: replies},
		{args: "sticky list nope", replies: replies},
		{args: "sticky list web", replies: replies},
		{args: "sticky delete app --key 198.51.100.7", replies: replies},
		{args: "sticky delete app --server app2", replies: replies},
		{args: "--json sticky delete app --server app2", replies: replies},
		{args: "sticky delete app --key 203.0.113.1", replies: replies},
		{args: "sticky delete app", replies: replies},
		{args: "sticky list", replies: replies},
	})
}

func TestVIPGolden(t *testing.T) {
	changed := now.Add(-5 * time.Minute)
	web := api.VIPStatus{
		Name: "web", Interface: "eth0", VRID: 51, State: "MASTER", Priority: 100, BasePriority: 100,
		Master: "198.18.0.1", MasterPriority: 100, Addresses: []string{"203.0.113.10/24", "2001:db8::10/64"},
		Faults: []string{}, Transitions: 2, LastTransition: &changed, AdvertsSent: 3000, AdvertsReceived: 0,
		Dropped: map[string]uint64{},
	}
	db := api.VIPStatus{
		Name: "db", Interface: "eth1", VRID: 52, State: "FAULT", Priority: 0, BasePriority: 90,
		Addresses: []string{"203.0.113.20/24"}, Faults: []string{"link eth1 down", "check dataplane"},
		Transitions: 1, Dropped: map[string]uint64{"bad-ttl": 4},
	}
	moved := web
	moved.Priority, moved.Holding, moved.Yielding = 0, true, true
	replies := map[string]reply{
		"GET /v1/vips":           {200, []api.VIPStatus{web, db}},
		"POST /v1/vips/web/move": {200, moved},
		"POST /v1/vips/db/move":  apiError(409, "vrrp instance db: not master (FAULT)"),
	}
	golden(t, "vip", []invocation{
		{args: "vip status", replies: replies},
		{args: "--json vip status", replies: replies},
		{args: "vip status", replies: map[string]reply{"GET /v1/vips": {200, []api.VIPStatus{}}}},
		{args: "vip move web", replies: replies},
		{args: "--json vip move web", replies: replies},
		{args: "vip move db", replies: replies},
		{args: "vip move", replies: replies},
	})
}

// TestUnreachableGolden: no lbd on the socket is one clear line, whatever the command.
func TestUnreachableGolden(t *testing.T) {
	golden(t, "unreachable", []invocation{
		{args: "status"},
		{args: "--json vip status"},
		{args: "server drain app app1"},
		{args: "metrics"},
	})
}
