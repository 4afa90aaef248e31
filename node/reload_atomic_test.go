package node

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"lbd/internal/testutil"
)

// TestReloadDataplaneRefusalOrPartial: a reload the dataplane refuses leaves the node on
// the old config; one the dataplane has committed, though not every listener could be
// opened, is the node's config from then on (its version, VRRP, a success), not a
// refusal that says the old config keeps serving while the new one runs.
func TestReloadDataplaneRefusalOrPartial(t *testing.T) {
	// A SO_REUSEPORT socket the test holds: a frontend with reuse_port shares its port,
	// one without cannot bind it.
	held := testutil.ReusePortListener(t)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	write := func(frontends, weight string) {
		t.Helper()
		doc := fmt.Sprintf(`node:
  name: t
  state_dir: %[1]s/state
  admin: {socket: %[1]s/lbd.sock, listen: ""}
frontends:
%[2]sbackends:
  - name: app
    servers: [{name: s1, address: "127.0.0.1:1", weight: %[3]s}]
`, dir, frontends, weight)
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shared := fmt.Sprintf("  - {name: web, mode: tcp, bind: %q, reuse_port: true, backend: app}\n", held.Addr())
	write(shared, "1")
	n, err := New(Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(t.Context()) })
	counter := func(result string) float64 {
		var m dto.Metric
		if err := n.reloads.WithLabelValues(result).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	weight := func() int { return n.dp.Status().Backends[0].Servers[0].Weight }

	// Refused: a second frontend on a port in use. Nothing changes, the weight either.
	version := n.version
	write(shared+fmt.Sprintf("  - {name: busy, mode: tcp, bind: %q, backend: app}\n", plain.Addr()), "5")
	if _, err := n.Reload(); err == nil {
		t.Fatal("a reload onto a port in use was applied")
	}
	if n.version != version || weight() != 1 || counter("failure") != 1 {
		t.Errorf("after the refusal: version %s (want %s), weight %d (want 1), failures %v (want 1)",
			n.version, version, weight(), counter("failure"))
	}

	// Committed, one listener missing: the same port without reuse_port is bound only
	// after the old listener closes, and then fails.
	write(fmt.Sprintf("  - {name: web, mode: tcp, bind: %q, backend: app}\n", held.Addr()), "5")
	got, err := n.Reload()
	if err != nil {
		t.Fatalf("Reload = %v; the dataplane runs the new config, so the reload is not refused", err)
	}
	if got == version || n.version != got || weight() != 5 || counter("success") != 1 {
		t.Errorf("after the partial reload: version %s (want new, not %s), weight %d (want 5), successes %v (want 1)",
			n.version, version, weight(), counter("success"))
	}
}
