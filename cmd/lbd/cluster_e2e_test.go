package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clusterNodeSection is a node: section for the cluster test: gossip and raft on
// loopback ports, timers for one machine.
func clusterNodeSection(name string, gossip, raft int) string {
	return fmt.Sprintf(`node:
  name: %s
  state_dir: %%[1]s/state
  admin:
    socket: %%[1]s/lbd.sock
    listen: ""
  cluster:
    gossip_bind: "127.0.0.1:%d"
    raft_bind: "127.0.0.1:%d"
    timing:
      gossip_interval: 20ms
      probe_interval: 200ms
      probe_timeout: 100ms
      push_pull_interval: 1s
      raft_heartbeat_timeout: 300ms
      raft_election_timeout: 300ms
      raft_leader_lease: 150ms
      raft_commit_timeout: 5ms
`, name, gossip, raft)
}

// TestClusterEndToEnd forms a pair of real lbd processes with lbctl (init, join with
// the printed token), changes the backend with lbctl config apply on the leader, and
// checks that both nodes serve the change within a second.
func TestClusterEndToEnd(t *testing.T) {
	one, two := namedBackend(t, "one", 0, nil), namedBackend(t, "two", 0, nil)
	port := freePort(t, "tcp")
	doc := func(server string) string {
		return fmt.Sprintf(`frontends:
  - name: web
    bind: "127.0.0.1:%d"
    reuse_port: true
    backend: app
backends:
  - name: app
    servers:
      - {name: s, address: %q}
`, port, strings.TrimPrefix(server, "http://"))
	}
	a := startLBDNode(t, clusterNodeSection("a", freePort(t, "tcp"), freePort(t, "tcp")), doc(one.URL))
	b := startLBDNode(t, clusterNodeSection("b", freePort(t, "tcp"), freePort(t, "tcp")), doc(one.URL))

	out, code := a.lbctlRun(t, "cluster", "init")
	if code != 0 {
		t.Fatalf("cluster init: exit %d\n%s", code, out)
	}
	i := strings.Index(out, "lbctl cluster join ")
	if i < 0 {
		t.Fatalf("cluster init printed no join command:\n%s", out)
	}
	joinArgs := strings.Fields(strings.TrimPrefix(strings.SplitN(out[i:], "\n", 2)[0], "lbctl "))
	if out, code := b.lbctlRun(t, joinArgs...); code != 0 {
		t.Fatalf("lbctl %s: exit %d\n%s", strings.Join(joinArgs, " "), code, out)
	}

	next := filepath.Join(t.TempDir(), "next.yaml")
	if err := os.WriteFile(next, []byte(doc(two.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := b.lbctlRun(t, "config", "apply", "-f", next); code != 4 || !strings.Contains(out, "run this on the leader, a") {
		t.Errorf("config apply on the follower: exit %d, want 4 naming the leader\n%s", code, out)
	}
	start := time.Now()
	if out, code := a.lbctlRun(t, "config", "apply", "-f", next, "-m", "to two"); code != 0 {
		t.Fatalf("config apply: exit %d\n%s", code, out)
	}
	for _, p := range []*lbdProc{a, b} {
		for {
			st, err := p.client.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Dataplane.Backends[0].Servers[0].Address == strings.TrimPrefix(two.URL, "http://") {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("a node does not serve the applied config after 1s: %+v", st.Dataplane.Backends)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("config apply served by both nodes %v after lbctl started", time.Since(start))
	if code, body := get(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/", port), nil); code != 200 || body != "two" {
		t.Errorf("GET through the frontend: %d %q, want 200 two", code, body)
	}

	out, code = b.lbctlRun(t, "cluster", "status")
	if code != 0 || !strings.Contains(out, "leader a") || strings.Count(out, "alive") != 2 {
		t.Errorf("cluster status on b: exit %d\n%s", code, out)
	}
	out, code = b.lbctlRun(t, "config", "diff")
	if code != 2 || !strings.Contains(out, "+") {
		t.Errorf("config diff on b (its file still names one): exit %d\n%s", code, out)
	}
	if out, code := a.lbctlRun(t, "config", "history"); code != 0 || !strings.Contains(out, "to two") {
		t.Errorf("config history: exit %d\n%s", code, out)
	}
}
