package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lbd/node/api"
)

// ctlNode runs a Node with backend "app" (servers s1, s2) and no frontends, its admin
// socket in a temp dir.
func ctlNode(t *testing.T) *Node {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	cfg := fmt.Sprintf(`node:
  name: t
  state_dir: %[1]s/state
  admin: {socket: %[1]s/lbd.sock, listen: ""}
backends:
  - name: app
    servers:
      - {name: s1, address: "127.0.0.1:1"}
      - {name: s2, address: "127.0.0.1:2"}
`, dir)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

func ctlDo(h http.Handler, method, path, body string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

func TestControlEndpoints(t *testing.T) {
	n := ctlNode(t)
	full, tcp := n.adminHandler(true), n.adminHandler(false)
	tests := []struct {
		name         string
		h            http.Handler
		method, path string
		body         string
		code         int
		want         string
	}{
		{"healthz on the socket", full, "GET", "/healthz", "", 200, "ok\n"},
		{"healthz on tcp", tcp, "GET", "/healthz", "", 200, "ok\n"},
		{"no changes over tcp", tcp, "PUT", "/v1/backends/app/servers/s1", `{"state":"drain"}`, 403, "admin unix socket only"},
		{"no drain over tcp", tcp, "POST", "/v1/node/drain", `{}`, 403, "read-only"},
		{"drain a server", full, "PUT", "/v1/backends/app/servers/s1", `{"state":"drain"}`, 200, `"state": "drain"`},
		{"weight with POST", full, "POST", "/v1/backends/app/servers/s1", `{"weight":4}`, 200, `"weight": 4`},
		{"unknown server", full, "PUT", "/v1/backends/app/servers/s9", `{"state":"drain"}`, 404, `backend \"app\" has no server named \"s9\"`},
		{"unknown backend", full, "PUT", "/v1/backends/x/servers/s1", `{"state":"drain"}`, 404, `no backend named \"x\"`},
		{"bad state", full, "PUT", "/v1/backends/app/servers/s1", `{"state":"off"}`, 400, `state: must be enabled, drain or disabled, not \"off\"`},
		{"bad weight", full, "PUT", "/v1/backends/app/servers/s1", `{"weight":999}`, 400, "weight: must be between 0 and 256, not 999"},
		{"weight of the wrong type", full, "PUT", "/v1/backends/app/servers/s1", `{"weight":"x"}`, 400, "weight: must be a JSON int, not string"},
		{"unknown field", full, "PUT", "/v1/backends/app/servers/s1", `{"sate":"drain"}`, 400, `unknown field \"sate\"`},
		{"nothing to change", full, "PUT", "/v1/backends/app/servers/s1", ``, 400, "nothing to change"},
		{"bad grace", full, "POST", "/v1/node/drain", `{"grace":"-1s"}`, 400, `grace: must be a duration from 0s to 24h0m0s, such as \"30s\", not \"-1s\"`},
		{"drain the node", full, "POST", "/v1/node/drain", `{"grace":"1h"}`, 200, `"grace": "1h0m0s"`},
		{"healthz while drained", tcp, "GET", "/healthz", "", 503, "draining\n"},
		{"drain state over tcp", tcp, "GET", "/v1/node/drain", "", 200, `"draining": true`},
		{"undrain", full, "POST", "/v1/node/undrain", "", 200, `"draining": false`},
		{"healthz again", full, "GET", "/healthz", "", 200, "ok\n"},
	}
	for _, tc := range tests {
		code, body := ctlDo(tc.h, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %s %s %s: %d %q, want %d and %q", tc.name, tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	st := n.dp.Status()
	if s := st.Backends[0].Servers[0]; s.State != "drain" || s.Weight != 4 {
		t.Errorf("s1 after the changes: %+v", s)
	}
}

func TestClientControl(t *testing.T) {
	n := ctlNode(t)
	c := api.NewClient(n.cfg.Node.Admin.Socket)
	ctx := context.Background()
	drain := "drain"
	st, err := c.SetServer(ctx, "app", "s2", api.ServerChange{State: &drain})
	if err != nil || st.Name != "s2" || st.State != "drain" {
		t.Fatalf("SetServer: %+v %v", st, err)
	}
	if _, err := c.SetServer(ctx, "app", "nope", api.ServerChange{State: &drain}); err == nil || err.Error() != `backend "app" has no server named "nope"` {
		t.Fatalf("SetServer of an unknown server: %v", err)
	}
	ds, err := c.Drain(ctx, 2*time.Second)
	if err != nil || !ds.Draining || ds.Grace != "2s" || ds.GraceEnds.Sub(*ds.Since) != 2*time.Second {
		t.Fatalf("Drain: %+v %v", ds, err)
	}
	if !n.Draining() {
		t.Fatal("node not draining")
	}
	if ds, err := c.DrainStatus(ctx); err != nil || !ds.Draining {
		t.Fatalf("DrainStatus: %+v %v", ds, err)
	}
	if ds, err := c.Undrain(ctx); err != nil || ds.Draining || n.Draining() {
		t.Fatalf("Undrain: %+v %v", ds, err)
	}
}
