package node

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestReloadRefusesEmpty: an empty or truncated file applied by a reload would stop
// every frontend (and release every VIP); it is refused, named, counted as a failure,
// and the old config keeps serving, unless the operator allows it explicitly.
func TestReloadRefusesEmpty(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	head := fmt.Sprintf("node:\n  name: t\n  state_dir: %[1]s/state\n  admin: {socket: %[1]s/lbd.sock, listen: \"\"}\n", dir)
	full := head + `frontends:
  - {name: web, mode: tcp, bind: "127.0.0.1:0", backend: app}
backends:
  - name: app
    servers: [{name: s1, address: "127.0.0.1:1"}]
`
	if err := os.WriteFile(path, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(t.Context()) })
	version := n.version

	failures := func() float64 {
		var m dto.Metric
		if err := n.reloads.WithLabelValues("failure").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	tests := []struct {
		name string
		file string
	}{
		{"empty file", ""},
		{"truncated after the node section", head},
		{"truncated before the frontends", head + "backends:\n  - name: app\n    servers: [{name: s1, address: \"127.0.0.1:1\"}]\n"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := n.Reload()
			if err == nil || !strings.Contains(err.Error(), "allow-empty") || !strings.Contains(err.Error(), "no frontends and no vrrp instances") {
				t.Fatalf("Reload of a config without frontends or VIPs = %v; want a refusal naming the reason and --allow-empty", err)
			}
			if got := len(n.dp.Status().Frontends); got != 1 || n.version != version {
				t.Errorf("after the refusal: %d frontends, version %s; want the old config (1, %s)", got, n.version, version)
			}
			if got := failures(); got != float64(i+1) {
				t.Errorf("lbd_config_reloads_total{result=\"failure\"} = %v, want %d", got, i+1)
			}
		})
	}

	// Over the API: refused without the parameter, applied with it.
	h := n.adminHandler(true)
	if code, body := ctlDo(h, "POST", "/v1/reload", ""); code != http.StatusUnprocessableEntity || !strings.Contains(body, "allow-empty") {
		t.Errorf("POST /v1/reload of an empty config = %d %s, want 422 naming --allow-empty", code, body)
	}
	if code, body := ctlDo(h, "POST", "/v1/reload", `{"allow_empty": true}`); code != http.StatusOK {
		t.Fatalf("POST /v1/reload with allow_empty = %d %s, want 200", code, body)
	}
	if got := len(n.dp.Status().Frontends); got != 0 {
		t.Errorf("an allowed empty reload left %d frontends", got)
	}
	// Nothing left to remove: an empty config reloads without the flag.
	if _, err := n.Reload(); err != nil {
		t.Errorf("reload of an empty config over an empty one: %v", err)
	}
}
