package node

// The cluster agent inside a node. A node is in a cluster when its state directory holds
// the gossip key file (clusterKeyFile), written by `lbctl cluster init` or `join`; then
// New starts the agent, and a loop (clusterLoop) does two things:
//
//   - It applies every newly committed cluster-wide document through the same path as a
//     reload (applyLocked): the document with this node's own node: section, decoded,
//     defaulted and validated, then applied whole or not at all. A node that cannot
//     apply a version logs it, keeps running the old one, and keeps reporting the old
//     version in its gossip metadata (and in `lbctl cluster status`).
//   - It publishes the node's metadata through gossip (lbd version, config version,
//     dataplane, VRRP states, healthy/total servers per backend) when it changes, at most
//     once per metaInterval.
//
// Once the node runs a committed document, the cluster-wide part of its file is not used:
// Reload takes the file's node: section only, logs that the file's copy is ignored when
// it differs, and `lbctl config diff` shows the difference.
//
// VIP ownership stays with VRRP: a node that loses raft keeps its config, serves, and
// fails over as before.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"lbd/cluster"
	"lbd/dataplane"
	"lbd/vip"
)

// clusterKeyFile, in node.state_dir, holds the gossip key the node joined with (mode
// 0600). Its presence makes the node start its cluster agent.
const clusterKeyFile = "cluster.key"

// Timers of the cluster loop.
const (
	clusterPoll  = 200 * time.Millisecond // how often the loop looks for a new version
	metaInterval = time.Second            // the most often metadata is published
)

// clusterState is the node's cluster agent. mu guards every field but version; it is
// taken after Node.mu when both are held.
type clusterState struct {
	version string // lbd's version, for the metadata

	mu    sync.Mutex
	agent *cluster.Cluster
	stop  chan struct{} // closed to stop the loop
	done  chan struct{} // closed when the loop has stopped
	// applied is the version of the document the node runs (0: its file's);
	// doc is that document, parsed; failed is a version that could not be applied,
	// with failErr why, so it is not tried again until a newer one comes.
	applied uint64
	doc     *Config
	failed  uint64
	failErr string
}

// document is the cluster-wide document: the file without its node: section.
type document struct {
	dataplane.Config `yaml:",inline"`
	VRRP             vip.Config `yaml:"vrrp"`
}

// documentOf renders the cluster-wide part of cfg in canonical form (defaults spelled
// out, node: left out).
func documentOf(cfg *Config) []byte {
	b, err := yaml.Marshal(&document{Config: cfg.Config, VRRP: cfg.VRRP})
	if err != nil {
		// Marshalling plain structs of strings, numbers and durations does not fail.
		panic(fmt.Sprintf("node: marshalling config document: %v", err))
	}
	return b
}

// withDocument decodes a cluster-wide document (name is what errors call it) and returns
// it combined with the node: section of base, validated as a whole. A document with a
// node: section is refused: that section belongs to each machine.
func withDocument(base *Config, name string, doc []byte) (*Config, error) {
	d, lines, err := parse(name, doc)
	if err != nil {
		return nil, err
	}
	if line, ok := lines["node"]; ok {
		return nil, ConfigErrors{{File: name, Line: line, Path: "node", Msg: "the cluster-wide document has no node: section (it belongs to each machine's own file)"}}
	}
	out := *base
	out.Config, out.VRRP = d.Config, d.VRRP
	if err := out.Validate(); err != nil {
		var errs ConfigErrors
		for _, e := range leafErrors(err) {
			ce := &ConfigError{File: name, Msg: e.Error()}
			if fe, ok := e.(interface{ FieldPath() string }); ok {
				ce.Path = fe.FieldPath()
				ce.Msg = strings.TrimPrefix(e.Error(), ce.Path+": ")
				ce.Line = lines[ce.Path]
			}
			errs = append(errs, ce)
		}
		return nil, errs
	}
	return &out, nil
}

func keyPath(cfg *Config) string { return filepath.Join(cfg.Node.StateDir, clusterKeyFile) }

// newGossipKey returns a random AES-256 gossip key in base64.
func newGossipKey() string {
	k := make([]byte, 32)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// writeKey stores the gossip key the node joins with.
func writeKey(cfg *Config, key string) error {
	if err := os.MkdirAll(cfg.Node.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if err := os.WriteFile(keyPath(cfg), []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("saving the gossip key: %w", err)
	}
	return nil
}

// resumeCluster starts the agent of a node whose state directory says it is in a
// cluster, and contacts the seeds in the background. A node in no cluster does nothing.
func (n *Node) resumeCluster(cfg *Config) error {
	b, err := os.ReadFile(keyPath(cfg))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	sec, err := loadSecurity(cfg) // cluster_tls.go
	if err != nil {
		return err
	}
	if sec == nil {
		// Without a certificate raft would run over plain TCP, trusting whoever holds
		// the gossip key: refused, never done silently.
		return fmt.Errorf("cluster: the state directory %s holds the gossip key (%s) but no node certificate (%s): "+
			"lbd does not run the cluster over plain TCP; restore %[3]s from a backup of this node, "+
			"or make the node a new member: on a member, lbctl cluster remove %[4]s (lbctl cluster recover --force if that leaves no quorum); "+
			"here, move %[1]s aside, start lbd and run lbctl cluster join ADDR --token T (the token lbctl cluster init printed)",
			cfg.Node.StateDir, clusterKeyFile, filepath.Join(cfg.Node.StateDir, "tls"), cfg.Node.Name)
	}
	agent, err := n.startAgent(cfg, strings.TrimSpace(string(b)), sec)
	if err != nil {
		return err
	}
	n.syncCluster(agent) // the document restored from the state directory, at once
	if len(cfg.Node.Cluster.Seeds) > 0 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := agent.Join(ctx); err != nil && !errors.Is(err, cluster.ErrClosed) {
				n.log.Warn("cluster: contacting the seeds", "seeds", cfg.Node.Cluster.Seeds, "err", err)
			}
		}()
	}
	n.log.Info("cluster agent started", "gossip", agent.GossipAddr(), "raft", agent.RaftAddr())
	return nil
}

// startAgent starts the agent with the gossip key and the TLS identity in sec, and the
// loop that follows it.
func (n *Node) startAgent(cfg *Config, key string, sec *security) (*cluster.Cluster, error) {
	n.cl.mu.Lock()
	defer n.cl.mu.Unlock()
	if n.cl.agent != nil {
		return nil, errors.New("already in a cluster")
	}
	opts := append(sec.options(), cluster.WithLogger(n.log.With("part", "cluster")))
	agent, err := cluster.New(cfg.ClusterConfig(key), opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster agent: %w", err)
	}
	n.cl.agent = agent
	n.cl.stop, n.cl.done = make(chan struct{}), make(chan struct{})
	go n.clusterLoop(agent, n.cl.stop, n.cl.done)
	return agent, nil
}

// agent returns the cluster agent, nil when the node is in no cluster.
func (n *Node) agent() *cluster.Cluster {
	n.cl.mu.Lock()
	defer n.cl.mu.Unlock()
	return n.cl.agent
}

// stopCluster stops the loop and closes the agent (without leaving the cluster).
func (n *Node) stopCluster() error {
	n.cl.mu.Lock()
	agent, stop, done := n.cl.agent, n.cl.stop, n.cl.done
	n.cl.agent = nil
	n.cl.mu.Unlock()
	if agent == nil {
		return nil
	}
	close(stop)
	<-done
	if err := agent.Close(); err != nil {
		return fmt.Errorf("cluster agent: %w", err)
	}
	return nil
}

func (n *Node) clusterLoop(agent *cluster.Cluster, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(clusterPoll)
	defer t.Stop()
	var published cluster.Meta
	var publishedAt time.Time
	first := true
	joins := false // answering joins: from when the replicated CA has reached this node
	for {
		n.syncCluster(agent)
		if !joins {
			joins = serveJoins(agent) // cluster_tls.go
		}
		n.mu.Lock()
		cfg := n.cfg
		n.mu.Unlock()
		if err := n.reconcileKeys(agent, cfg); err != nil { // cluster_keys.go
			n.log.Warn("cluster: following the gossip key rotation", "err", err)
		}
		if now := time.Now(); now.Sub(publishedAt) >= metaInterval {
			m := n.meta()
			if first || !metaEqual(m, published) {
				if err := agent.SetMeta(m); err != nil {
					n.log.Warn("cluster: publishing node metadata", "err", err)
				}
				published, publishedAt, first = m, now, false
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// syncCluster applies the latest committed document if the node does not run it yet.
func (n *Node) syncCluster(agent *cluster.Cluster) {
	v, ok := agent.Config()
	if !ok {
		return
	}
	n.cl.mu.Lock()
	skip := v.Version == n.cl.applied || v.Version == n.cl.failed
	n.cl.mu.Unlock()
	if skip {
		return
	}
	n.applyVersion(v)
}

// applyVersion applies a committed version through the reload path.
func (n *Node) applyVersion(v cluster.ConfigVersion) {
	n.mu.Lock()
	defer n.mu.Unlock()
	name := fmt.Sprintf("cluster config version %d", v.Version)
	cfg, err := withDocument(n.cfg, name, v.Document)
	if err == nil {
		err = n.applyLocked(cfg)
	}
	n.cl.mu.Lock()
	defer n.cl.mu.Unlock()
	if err != nil {
		n.cl.failed, n.cl.failErr = v.Version, err.Error()
		n.reloads.WithLabelValues("failure").Inc()
		n.log.Error("cluster config refused; the old config keeps serving", "version", v.Version, "running", n.cl.applied, "err", err)
		return
	}
	n.cl.applied, n.cl.doc, n.cl.failed, n.cl.failErr = v.Version, cfg, 0, ""
	n.reloads.WithLabelValues("success").Inc()
	n.log.Info("cluster config applied", "version", v.Version, "author", v.Author, "comment", v.Comment, "hash", n.version)
	n.warnFileDrift()
}

// clusterOverlay returns the file's config with the cluster-wide part replaced by the
// committed document the node runs, when it runs one.
func (n *Node) clusterOverlay(file *Config) (*Config, error) {
	n.cl.mu.Lock()
	doc, v := n.cl.doc, n.cl.applied
	n.cl.mu.Unlock()
	if doc == nil {
		return file, nil
	}
	if file.Hash() != doc.Hash() {
		n.log.Warn("the config file's cluster-wide part differs from the cluster's and is ignored; lbctl config diff shows how", "config", n.path, "cluster_version", v)
	}
	out := *file
	out.Config, out.VRRP = doc.Config, doc.VRRP
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return &out, nil
}

// warnFileDrift logs when the file's cluster-wide part differs from the document the
// node now runs. n.mu and n.cl.mu are held.
func (n *Node) warnFileDrift() {
	file, err := LoadFile(n.path)
	if err != nil || n.cl.doc == nil || file.Hash() == n.cl.doc.Hash() {
		return
	}
	n.log.Warn("the config file's cluster-wide part differs from the cluster's and is ignored; lbctl config diff shows how", "config", n.path, "cluster_version", n.cl.applied)
}

// meta is what the node tells the cluster about itself.
func (n *Node) meta() cluster.Meta {
	n.cl.mu.Lock()
	m := cluster.Meta{Version: n.cl.version, ConfigVersion: n.cl.applied}
	n.cl.mu.Unlock()
	st := n.dp.Status()
	m.DataplaneUp = !n.wit.on // a witness runs no dataplane (witness.go)
	for _, b := range st.Backends {
		h := cluster.BackendHealth{Backend: b.Name, Total: len(b.Servers)}
		for _, s := range b.Servers {
			if s.Up && s.State == "enabled" {
				h.Healthy++
			}
		}
		m.Backends = append(m.Backends, h)
	}
	if mgr := n.manager(); mgr != nil {
		for _, s := range mgr.Status() {
			m.VRRP = append(m.VRRP, cluster.VRRPState{Instance: s.Name, State: s.State.String()})
		}
	}
	return m
}

func metaEqual(a, b cluster.Meta) bool {
	return a.Version == b.Version && a.ConfigVersion == b.ConfigVersion && a.DataplaneUp == b.DataplaneUp &&
		slices.Equal(a.VRRP, b.VRRP) && slices.Equal(a.Backends, b.Backends)
}
