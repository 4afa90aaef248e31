package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lbd/node/api"
)

// clusterFile is a node's config file for the cluster tests: gossip and raft on
// loopback with ports the kernel picks, timers for one machine, and the given
// cluster-wide part.
func clusterFile(dir, name, doc string) string {
	return clusterFileAt(dir, name, doc, "127.0.0.1:0", "127.0.0.1:0")
}

// clusterFileAt is clusterFile with gossip and raft at the given addresses.
func clusterFileAt(dir, name, doc, gossip, raft string) string {
	return fmt.Sprintf(`node:
  name: %[2]s
  state_dir: %[1]s/state
  admin: {socket: %[1]s/lbd.sock, listen: ""}
  cluster:
    gossip_bind: "%[4]s"
    raft_bind: "%[5]s"
    timing:
      gossip_interval: 10ms
      probe_interval: 100ms
      probe_timeout: 50ms
      suspicion_mult: 2
      push_pull_interval: 500ms
      raft_heartbeat_timeout: 300ms
      raft_election_timeout: 300ms
      raft_leader_lease: 150ms
      raft_commit_timeout: 5ms
      apply_timeout: 5s
%[3]s`, dir, name, doc, gossip, raft)
}

const docA = `backends:
  - name: app
    servers:
      - {name: s1, address: "127.0.0.1:1"}
`

// clusterNode starts a node whose file holds doc as its cluster-wide part; extra lines
// go into its node.cluster section.
func clusterNode(t *testing.T, name, doc string, extra ...string) (*Node, http.Handler) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	file := strings.Replace(clusterFile(dir, name, doc), "  cluster:\n", "  cluster:\n"+strings.Join(extra, ""), 1)
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{ConfigPath: path, Logger: testLog(t), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n, n.adminHandler(true)
}

// call sends a request to h and decodes a 200 answer into out.
func call(t *testing.T, h http.Handler, method, path string, in, out any) (int, string) {
	t.Helper()
	var body string
	if in != nil {
		b, _ := json.Marshal(in)
		body = string(b)
	}
	code, resp := ctlDo(h, method, path, body)
	if code == http.StatusOK && out != nil {
		if err := json.Unmarshal([]byte(resp), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, resp)
		}
	}
	return code, resp
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func backendNames(n *Node) string {
	var names []string
	for _, b := range n.dp.Status().Backends {
		names = append(names, b.Name)
	}
	return strings.Join(names, ",")
}

func TestClusterInitJoinApply(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping with -short: forms a two-node cluster (gossip and raft on loopback) and applies configs, seconds of raft timers")
	}
	a, ha := clusterNode(t, "a", docA)
	b, hb := clusterNode(t, "b", "") // b's file has no backends: the cluster's document wins

	if code, body := call(t, ha, "GET", "/v1/cluster/status", nil, nil); code != 409 || !strings.Contains(body, "in no cluster") {
		t.Fatalf("status before init: %d %s", code, body)
	}
	var ini api.ClusterInitResponse
	if code, body := call(t, ha, "POST", "/v1/cluster/init", struct{}{}, &ini); code != 200 {
		t.Fatalf("init: %d %s", code, body)
	}
	wantJoin := fmt.Sprintf("lbctl cluster join %s --token %s --seed %s", ini.RaftAddr, ini.Token, ini.GossipAddr)
	if ini.ConfigVersion != 1 || ini.JoinCommand != wantJoin || ini.TokenExpires.IsZero() {
		t.Fatalf("init = %+v", ini)
	}
	if code, body := call(t, ha, "POST", "/v1/cluster/init", struct{}{}, nil); code != 409 {
		t.Errorf("second init: %d %s, want 409", code, body)
	}

	// A token of another cluster is refused; this one's admits b.
	forged := api.ClusterJoinRequest{Address: ini.RaftAddr, Token: "lbd1.x.y.z", Seeds: []string{ini.GossipAddr}}
	if code, body := call(t, hb, "POST", "/v1/cluster/join", forged, nil); code != 403 {
		t.Errorf("join with a bad token: %d %s", code, body)
	}
	join := api.ClusterJoinRequest{Address: ini.RaftAddr, Token: ini.Token, Seeds: []string{ini.GossipAddr}}
	if code, body := call(t, hb, "POST", "/v1/cluster/join", join, nil); code != 200 {
		t.Fatalf("join: %d %s", code, body)
	}
	eventually(t, "b runs version 1", func() bool { return backendNames(b) == "app" })

	// A change sent to the follower names the leader; sent to the leader it commits and
	// both nodes run it.
	doc2 := docA + "  - name: api\n    servers: [{name: s2, address: \"127.0.0.1:2\"}]\n"
	req := api.ConfigApplyRequest{Document: doc2, Comment: "add api"}
	if code, body := call(t, hb, "POST", "/v1/config/apply", req, nil); code != http.StatusMisdirectedRequest || !strings.Contains(body, "run this on the leader, a") {
		t.Errorf("apply on the follower: %d %s", code, body)
	}
	var applied api.ConfigApplyResponse
	if code, body := call(t, ha, "POST", "/v1/config/apply", req, &applied); code != 200 || applied.Version != 2 {
		t.Fatalf("apply: %d %s", code, body)
	}
	if got := backendNames(a); got != "app,api" {
		t.Errorf("a runs %s after apply, want app,api", got)
	}
	eventually(t, "b runs version 2", func() bool { return backendNames(b) == "app,api" })

	// A bad document is refused before it is committed, with its line.
	bad := api.ConfigApplyRequest{Document: "frontends:\n  - {name: web, bind: \":80\", backend: nope}\n"}
	if code, body := call(t, ha, "POST", "/v1/config/apply", bad, nil); code != 422 || !strings.Contains(body, `document:2: frontends[0].backend`) {
		t.Errorf("bad apply: %d %s", code, body)
	}
	// A whole file may be applied: its node: section is left out.
	withNode := api.ConfigApplyRequest{Document: "node: {name: x, admin: {socket: /nowhere}}\n" + doc2}
	if code, body := call(t, ha, "POST", "/v1/config/apply", withNode, &applied); code != 200 || applied.Version != 3 {
		t.Errorf("apply with node: %d %s", code, body)
	}
	var got api.ConfigVersion
	if call(t, ha, "GET", "/v1/config", nil, &got); strings.Contains(got.Document, "node") || !strings.Contains(got.Document, "name: api") {
		t.Errorf("committed document:\n%s", got.Document)
	}

	var hist []api.ConfigVersion
	call(t, ha, "GET", "/v1/config/history", nil, &hist)
	if len(hist) != 3 || hist[1].Comment != "add api" || hist[0].Author != "a" {
		t.Errorf("history = %+v", hist)
	}
	// b's file has no backends: the diff shows the drift from the cluster's document.
	var diff api.ConfigDiffResponse
	if code, body := call(t, hb, "POST", "/v1/config/diff", api.ConfigDiffRequest{}, &diff); code != 200 || !strings.Contains(diff.Diff, "-    - name: api") {
		t.Errorf("diff: %d %s", code, body)
	}
	// A reload of b's file keeps the cluster's document.
	if _, err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := backendNames(b); got != "app,api" {
		t.Errorf("b runs %s after reloading its file, want the cluster's app,api", got)
	}

	if code, body := call(t, ha, "POST", "/v1/config/rollback", api.ConfigRollbackRequest{Version: 1}, &applied); code != 200 || applied.Version != 4 {
		t.Fatalf("rollback: %d %s", code, body)
	}
	eventually(t, "b runs version 4", func() bool { return backendNames(b) == "app" })

	// A version that b cannot apply (its frontend's port is a's, both being in this
	// process) leaves b on the old one, saying why, and gossip shows it behind.
	port := freePort(t)
	withFrontend := fmt.Sprintf("frontends:\n  - {name: web, mode: tcp, bind: \"127.0.0.1:%d\", backend: app}\n%s", port, docA)
	if code, body := call(t, ha, "POST", "/v1/config/apply", api.ConfigApplyRequest{Document: withFrontend}, &applied); code != 200 || applied.Version != 5 {
		t.Fatalf("apply with a frontend: %d %s", code, body)
	}
	eventually(t, "b refusing version 5", func() bool {
		st, _ := b.ClusterStatus()
		return st.ConfigVersion == 5 && st.AppliedVersion == 4 && strings.Contains(st.ApplyError, "address already in use")
	})
	eventually(t, "a seeing b behind", func() bool {
		st, _ := a.ClusterStatus()
		for _, m := range st.Members {
			if m.Name == "b" && m.ConfigVersion == 4 {
				return true
			}
		}
		return false
	})
	if code, body := call(t, ha, "POST", "/v1/config/rollback", api.ConfigRollbackRequest{Version: 4}, &applied); code != 200 {
		t.Fatalf("rollback: %d %s", code, body)
	}

	// A gossip key rotation on the follower names the leader; on the leader it leaves
	// both nodes with the new key only, and gossip keeps working.
	defer func(w time.Duration) { keyPhaseWait = w }(keyPhaseWait)
	keyPhaseWait = 300 * time.Millisecond
	if code, body := call(t, hb, "POST", "/v1/cluster/key/rotate", struct{}{}, nil); code != http.StatusMisdirectedRequest {
		t.Errorf("key rotate on the follower: %d %s", code, body)
	}
	var rot api.ClusterKeyRotateResponse
	if code, body := call(t, ha, "POST", "/v1/cluster/key/rotate", struct{}{}, &rot); code != 200 || len(rot.Keys) != 1 || rot.Keys[0] != rot.Fingerprint {
		t.Fatalf("key rotate: %d %s", code, body)
	}
	eventually(t, "b holding the new key only", func() bool {
		ks := b.agent().Keys()
		return len(ks) == 1 && ks[0].Fingerprint == rot.Fingerprint && ks[0].Primary
	})
	eventually(t, "b starting with the new key", func() bool {
		k, err := os.ReadFile(keyPath(b.cfg))
		return err == nil && keyFingerprint(strings.TrimSpace(string(k))) == rot.Fingerprint
	})

	// Both nodes see each other with their metadata.
	eventually(t, "gossip metadata", func() bool {
		st, ok := b.ClusterStatus()
		if !ok || len(st.Members) != 2 || st.Leader != "a" {
			return false
		}
		for _, m := range st.Members {
			if m.ConfigVersion != 6 || m.Version != "test" || len(m.Backends) != 1 || m.Backends[0].Total != 1 {
				return false
			}
		}
		return true
	})
}

func TestClusterNotInCluster(t *testing.T) {
	n := ctlNode(t)
	h := n.adminHandler(true)
	for _, p := range []string{"/v1/cluster/status", "/v1/cluster/members", "/v1/config", "/v1/config/history"} {
		if code, body := ctlDo(h, "GET", p, ""); code != 409 || !strings.Contains(body, "lbctl cluster init") {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
	}
	if code, body := ctlDo(n.adminHandler(false), "POST", "/v1/cluster/init", "{}"); code != 403 {
		t.Errorf("init over tcp: %d %s", code, body)
	}
	if code, body := ctlDo(h, "POST", "/v1/cluster/recover", "{}"); code != 400 || !strings.Contains(body, "--force") {
		t.Errorf("recover without force: %d %s", code, body)
	}
}

// testLog logs to t.Log while the test runs (LBD_TEST_LOG=1), else nowhere.
func testLog(t *testing.T) *slog.Logger {
	if os.Getenv("LBD_TEST_LOG") == "" {
		return discardLog()
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestClusterRestart stops the follower of a pair: a write answers the documented no
// quorum error; the follower restarted from its state directory rejoins, and then runs
// what is committed.
func TestClusterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping with -short: stops and restarts a member of a two-node cluster, seconds of raft timers")
	}
	a, ha := clusterNode(t, "a", docA)
	var ini api.ClusterInitResponse
	if code, body := call(t, ha, "POST", "/v1/cluster/init", struct{}{}, &ini); code != 200 {
		t.Fatalf("init: %d %s", code, body)
	}
	// b keeps its addresses across the restart, as a real node does.
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	file := clusterFileAt(dir, "b", "", fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	file = strings.Replace(file, "  cluster:\n", fmt.Sprintf("  cluster:\n    seeds: [%q]\n", ini.GossipAddr), 1)
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() *Node {
		n, err := New(Options{ConfigPath: path, Logger: testLog(t), Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	stop := func(n *Node) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	}
	b := start()
	join := api.ClusterJoinRequest{Address: ini.RaftAddr, Token: ini.Token}
	if code, body := call(t, b.adminHandler(true), "POST", "/v1/cluster/join", join, nil); code != 200 {
		stop(b)
		t.Fatalf("join: %d %s", code, body)
	}
	eventually(t, "b runs version 1", func() bool { return backendNames(b) == "app" })
	stop(b)

	doc2 := docA + "  - name: api\n    servers: [{name: s2, address: \"127.0.0.1:2\"}]\n"
	req := api.ConfigApplyRequest{Document: doc2}
	code, body := call(t, ha, "POST", "/v1/config/apply", req, nil)
	if want := "no quorum: 1 of 2 voters reachable; add a witness or run lbctl cluster recover --force"; code != 503 || !strings.Contains(body, want) {
		t.Errorf("apply without b: %d %s, want 503 %q", code, body, want)
	}
	if got := backendNames(a); got != "app" {
		t.Errorf("a runs %s after a refused write", got)
	}

	// The refused write stays in a's log, and may commit once b is back (the 503 says
	// so); a later one commits, and b restarted from its state directory runs it.
	b = start()
	defer stop(b)
	doc3 := docA + "  - name: web\n    servers: [{name: s3, address: \"127.0.0.1:3\"}]\n"
	hb := b.adminHandler(true)
	eventually(t, "a write committed with b back", func() bool {
		for _, h := range []http.Handler{ha, hb} { // either may lead now
			if code, _ := call(t, h, "POST", "/v1/config/apply", api.ConfigApplyRequest{Document: doc3}, nil); code == 200 {
				return true
			}
		}
		return false
	})
	eventually(t, "b runs the new version", func() bool { return backendNames(b) == "app,web" })
}

// TestClusterRefusesPlainTCP: a state directory with the gossip key but no node
// certificate does not start the agent over plain TCP; New fails and says what is
// missing where, and what to do.
func TestClusterRefusesPlainTCP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	if err := os.WriteFile(path, []byte(clusterFile(dir, "a", docA)), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, clusterKeyFile), []byte(newGossipKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{ConfigPath: path, Logger: testLog(t), Version: "test"})
	if err == nil {
		n.Close(context.Background())
		t.Fatal("New started a node whose state directory has the gossip key but no certificate")
	}
	for _, want := range []string{state, "no node certificate", filepath.Join(state, "tls"), "plain TCP", "lbctl cluster join", "lbctl cluster recover --force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// TestClusterWitness: a witness runs the cluster agent only. The frontend in its file
// is accepted but not served (its address stays free), before and after it joins and
// runs the cluster's document, and its cluster status reports it as a witness with no
// dataplane.
func TestClusterWitness(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping with -short: forms a two-node cluster (gossip and raft on loopback), seconds of raft timers")
	}
	_, ha := clusterNode(t, "a", docA)
	var ini api.ClusterInitResponse
	if code, body := call(t, ha, "POST", "/v1/cluster/init", struct{}{}, &ini); code != 200 {
		t.Fatalf("init: %d %s", code, body)
	}

	bind := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	doc := docA + fmt.Sprintf("frontends:\n  - {name: web, bind: %q, backend: app}\n", bind)
	w, hw := clusterNode(t, "w", doc, "    role: witness\n")
	free := func(when string) {
		t.Helper()
		l, err := net.Listen("tcp", bind)
		if err != nil {
			t.Fatalf("%s: the witness holds its file's frontend address %s: %v", when, bind, err)
		}
		l.Close()
		if st := w.dp.Status(); len(st.Frontends) != 0 || len(st.Backends) != 0 {
			t.Errorf("%s: the witness's dataplane runs %d frontend(s), %d backend(s)", when, len(st.Frontends), len(st.Backends))
		}
	}
	free("started")

	join := api.ClusterJoinRequest{Address: ini.RaftAddr, Token: ini.Token, Seeds: []string{ini.GossipAddr}}
	if code, body := call(t, hw, "POST", "/v1/cluster/join", join, nil); code != 200 {
		t.Fatalf("join: %d %s", code, body)
	}
	var st api.ClusterStatus
	eventually(t, "the witness runs version 1 and gossips its metadata", func() bool {
		if code, _ := call(t, hw, "GET", "/v1/cluster/status", nil, &st); code != 200 || st.AppliedVersion != 1 {
			return false
		}
		for _, m := range st.Members {
			if m.Name == "w" && m.ConfigVersion == 1 {
				return true
			}
		}
		return false
	})
	if st.Role != "witness" {
		t.Errorf("status role = %q, want witness", st.Role)
	}
	for _, m := range st.Members {
		if m.Name == "w" && (m.Role != "witness" || m.DataplaneUp) {
			t.Errorf("member w: role %q, dataplane up %v; want witness, down", m.Role, m.DataplaneUp)
		}
	}
	free("joined")
}
