package node

// The admin API's cluster endpoints: /v1/cluster/... (forming and changing the cluster)
// and /v1/config/... (the replicated cluster-wide document). Changes are served on the
// unix socket only.
//
// Writes go to the raft leader. A node that is not the leader answers 421 Misdirected
// Request naming the leader, and lbctl is run there: forwarding to the leader is not
// built yet, because it needs an authenticated channel between the nodes' admin APIs
// (the TCP admin listener is read-only and unauthenticated).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"lbd/cluster"
	"lbd/node/api"
)

// joinTimeout bounds init and join, which wait for raft.
const joinTimeout = 30 * time.Second

func (n *Node) clusterRoutes(mux *http.ServeMux, full bool) {
	mux.HandleFunc("GET /v1/cluster/status", n.handleClusterStatus)
	mux.HandleFunc("GET /v1/cluster/members", n.handleClusterMembers)
	mux.HandleFunc("GET /v1/config", n.handleConfigGet)
	mux.HandleFunc("GET /v1/config/history", n.handleConfigHistory)
	w := func(h http.HandlerFunc) http.HandlerFunc {
		if !full {
			return readOnly
		}
		return h
	}
	mux.HandleFunc("POST /v1/cluster/init", w(n.handleClusterInit))
	mux.HandleFunc("POST /v1/cluster/join", w(n.handleClusterJoin))
	mux.HandleFunc("POST /v1/cluster/leave", w(n.handleClusterLeave))
	mux.HandleFunc("POST /v1/cluster/remove", w(n.handleClusterRemove))
	mux.HandleFunc("POST /v1/cluster/recover", w(n.handleClusterRecover))
	mux.HandleFunc("POST /v1/cluster/key/rotate", w(n.handleKeyRotate)) // cluster_keys.go
	mux.HandleFunc("POST /v1/config/apply", w(n.handleConfigApply))
	mux.HandleFunc("POST /v1/config/diff", n.handleConfigDiff) // a read with a body
	mux.HandleFunc("POST /v1/config/rollback", w(n.handleConfigRollback))
}

// writeClusterError answers a cluster error with its status.
func writeClusterError(w http.ResponseWriter, err error) {
	var q *cluster.QuorumError
	var nl *cluster.NotLeaderError
	switch {
	case errors.As(err, &q):
		msg := fmt.Sprintf("no quorum: %d of %d voters reachable; add a witness or run lbctl cluster recover --force", q.Reachable, q.Voters)
		if q.Detail != "" {
			msg += " (" + q.Detail + ")"
		}
		writeError(w, http.StatusServiceUnavailable, msg)
	case errors.As(err, &nl):
		msg := "this node is not the raft leader, and no leader is known; try again"
		if nl.LeaderID != "" {
			msg = fmt.Sprintf("this node is not the raft leader; run this on the leader, %s (raft %s)", nl.LeaderID, nl.LeaderAddr)
		}
		writeError(w, http.StatusMisdirectedRequest, msg)
	case errors.Is(err, cluster.ErrNoCluster), errors.Is(err, cluster.ErrVersionConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// needAgent returns the agent, or answers 409 when the node is in no cluster.
func (n *Node) needAgent(w http.ResponseWriter) *cluster.Cluster {
	a := n.agent()
	if a == nil {
		writeError(w, http.StatusConflict, "this node is in no cluster: run lbctl cluster init, or lbctl cluster join")
	}
	return a
}

// ClusterStatus is this node's view of the cluster; ok is false in no cluster.
func (n *Node) ClusterStatus() (api.ClusterStatus, bool) {
	a := n.agent()
	if a == nil {
		return api.ClusterStatus{}, false
	}
	st := a.Status()
	cfgRole := cluster.RoleVoter
	if n.wit.on {
		cfgRole = cluster.RoleWitness
	}
	n.cl.mu.Lock()
	out := api.ClusterStatus{
		Node: st.Name, Role: string(cfgRole), State: st.State, Leader: st.LeaderID, LeaderAddr: st.LeaderAddr,
		Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		ConfigVersion: st.ConfigVersion, AppliedVersion: n.cl.applied, ApplyError: n.cl.failErr,
	}
	n.cl.mu.Unlock()
	out.Members = apiMembers(a.Members(), st.LeaderID)
	return out, true
}

func apiMembers(ms []cluster.Member, leader string) []api.ClusterMember {
	out := []api.ClusterMember{}
	for _, m := range ms {
		am := api.ClusterMember{
			Name: m.Name, State: string(m.State), Role: string(m.Role), Voter: m.Voter,
			Leader: m.Name == leader, GossipAddr: m.GossipAddr, RaftAddr: m.RaftAddr,
			Version: m.Meta.Version, ConfigVersion: m.Meta.ConfigVersion, DataplaneUp: m.Meta.DataplaneUp,
			VRRP: []api.MemberVRRP{}, Backends: []api.MemberBackend{},
		}
		for _, v := range m.Meta.VRRP {
			am.VRRP = append(am.VRRP, api.MemberVRRP{Instance: v.Instance, State: v.State})
		}
		for _, b := range m.Meta.Backends {
			am.Backends = append(am.Backends, api.MemberBackend{Backend: b.Backend, Healthy: b.Healthy, Total: b.Total})
		}
		out = append(out, am)
	}
	return out
}

func (n *Node) handleClusterStatus(w http.ResponseWriter, _ *http.Request) {
	st, ok := n.ClusterStatus()
	if !ok {
		n.needAgent(w)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (n *Node) handleClusterMembers(w http.ResponseWriter, _ *http.Request) {
	a := n.needAgent(w)
	if a == nil {
		return
	}
	writeJSON(w, http.StatusOK, apiMembers(a.Members(), a.Status().LeaderID))
}

// handleClusterInit makes the node a one-node cluster whose first document is the
// cluster-wide part of the node's running config.
func (n *Node) handleClusterInit(w http.ResponseWriter, r *http.Request) {
	if n.agent() != nil {
		writeError(w, http.StatusConflict, "this node is in a cluster already")
		return
	}
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	sec, ca, err := newSecurity(cfg, time.Now()) // cluster_tls.go
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("cluster init: %v", err))
		return
	}
	key := newGossipKey()
	agent, err := n.startNewAgent(cfg, key, sec)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), joinTimeout)
	defer cancel()
	v, tok, err := n.initCluster(ctx, agent, cfg, ca)
	if err != nil {
		n.stopCluster()
		os.Remove(keyPath(cfg))
		writeClusterError(w, fmt.Errorf("cluster init: %w", err))
		return
	}
	n.log.Info("cluster initialized", "gossip", agent.GossipAddr(), "version", v)
	join := fmt.Sprintf("lbctl cluster join %s --token %s", agent.RaftAddr(), tok)
	if _, port, _ := net.SplitHostPort(agent.GossipAddr()); port != strconv.Itoa(cluster.DefaultGossipPort) {
		join += " --seed " + agent.GossipAddr()
	}
	writeJSON(w, http.StatusOK, api.ClusterInitResponse{
		ConfigVersion: v, GossipAddr: agent.GossipAddr(), RaftAddr: agent.RaftAddr(), Token: tok.String(),
		TokenExpires: tokenExpiry(agent, tok.ID), JoinCommand: join,
	})
}

// initCluster bootstraps the one-node cluster, replicates its CA, makes a join token,
// answers joins, and commits the first document.
func (n *Node) initCluster(ctx context.Context, agent *cluster.Cluster, cfg *Config, ca *cluster.CA) (uint64, cluster.JoinToken, error) {
	var tok cluster.JoinToken
	if err := agent.Bootstrap(ctx); err != nil {
		return 0, tok, err
	}
	if err := agent.PutCA(ctx, ca); err != nil {
		return 0, tok, fmt.Errorf("replicating the cluster CA: %w", err)
	}
	tok, err := agent.CreateToken(ctx, cluster.TokenOptions{})
	if err != nil {
		return 0, tok, fmt.Errorf("making a join token: %w", err)
	}
	serveJoins(agent)
	v, err := agent.Apply(ctx, documentOf(cfg), cluster.Change{
		Author: cfg.Node.Name, Comment: "seeded from " + cfg.Node.Name + "'s config file by lbctl cluster init",
	})
	if err != nil {
		return 0, tok, err
	}
	n.syncCluster(agent)
	return v, tok, nil
}

func (n *Node) handleClusterJoin(w http.ResponseWriter, r *http.Request) {
	var req api.ClusterJoinRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Address == "" || req.Token == "" {
		writeError(w, http.StatusBadRequest, "address and token are required")
		return
	}
	if n.agent() != nil {
		writeError(w, http.StatusConflict, "this node is in a cluster already")
		return
	}
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), joinTimeout)
	defer cancel()
	sec, key, err := redeem(ctx, cfg, req.Address, req.Token) // cluster_tls.go
	if err != nil {
		writeError(w, http.StatusForbidden, fmt.Sprintf("joining %s: %v", req.Address, err))
		return
	}
	agent, err := n.startNewAgent(cfg, key, sec)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	seeds := req.Seeds
	if len(seeds) == 0 {
		seeds = gossipSeeds(cfg, req.Address)
	}
	if err := agent.Join(ctx, seeds...); err != nil {
		n.stopCluster()
		os.Remove(keyPath(cfg))
		writeClusterError(w, fmt.Errorf("joining %s: %w", req.Address, err))
		return
	}
	n.log.Info("joined the cluster", "seed", req.Address)
	st, _ := n.ClusterStatus()
	writeJSON(w, http.StatusOK, st)
}

func (n *Node) handleClusterLeave(w http.ResponseWriter, r *http.Request) {
	a := n.needAgent(w)
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), joinTimeout)
	defer cancel()
	if err := a.Leave(ctx); err != nil {
		writeClusterError(w, fmt.Errorf("leaving the cluster: %w", err))
		return
	}
	if err := n.stopCluster(); err != nil {
		n.log.Warn("stopping the cluster agent after leaving", "err", err)
	}
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	os.Remove(keyPath(cfg))
	n.cl.mu.Lock()
	n.cl.applied, n.cl.doc, n.cl.failed, n.cl.failErr = 0, nil, 0, ""
	n.cl.mu.Unlock()
	n.log.Info("left the cluster; the config in force stays until the next reload reads the file")
	writeJSON(w, http.StatusOK, struct{}{})
}

func (n *Node) handleClusterRemove(w http.ResponseWriter, r *http.Request) {
	var req api.ClusterRemoveRequest
	if err := decodeBody(r, &req); err != nil || req.Node == "" {
		writeError(w, http.StatusBadRequest, "node is required")
		return
	}
	a := n.needAgent(w)
	if a == nil {
		return
	}
	if err := a.Remove(r.Context(), req.Node); err != nil {
		writeClusterError(w, fmt.Errorf("removing %s: %w", req.Node, err))
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (n *Node) handleClusterRecover(w http.ResponseWriter, r *http.Request) {
	var req api.ClusterRecoverRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !req.Force {
		writeError(w, http.StatusBadRequest, "recover overrides the lost majority: it needs force (lbctl cluster recover --force)")
		return
	}
	a := n.needAgent(w)
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), joinTimeout)
	defer cancel()
	surv, err := a.RecoverForce(ctx)
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	n.log.Warn("cluster recovered by force", "survivors", surv)
	writeJSON(w, http.StatusOK, api.ClusterRecoverResponse{Survivors: surv})
}

// commit validates doc as this node would apply it, commits it, and applies it here.
func (n *Node) commit(w http.ResponseWriter, r *http.Request, a *cluster.Cluster, doc []byte, ch cluster.Change) {
	n.mu.Lock()
	base := n.cfg
	n.mu.Unlock()
	// The document may be a whole config file: its node: section is left out, and the
	// rest is stored in canonical form (defaults spelled out), checked with this
	// node's own node: section.
	d, err := Parse("document", doc)
	if err == nil {
		doc = documentOf(d)
		_, err = withDocument(base, "document", doc)
	}
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, api.ReloadResponse{Errors: strings.Split(err.Error(), "\n")})
		return
	}
	if ch.Author == "" {
		ch.Author = base.Node.Name
	}
	v, err := a.Apply(r.Context(), doc, ch)
	if err != nil {
		writeClusterError(w, err)
		return
	}
	n.syncCluster(a)
	writeJSON(w, http.StatusOK, api.ConfigApplyResponse{Version: v})
}

func (n *Node) handleConfigApply(w http.ResponseWriter, r *http.Request) {
	var req api.ConfigApplyRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a := n.needAgent(w)
	if a == nil {
		return
	}
	n.commit(w, r, a, []byte(req.Document), cluster.Change{Author: req.Author, Comment: req.Comment, BaseVersion: req.BaseVersion})
}

func (n *Node) handleConfigRollback(w http.ResponseWriter, r *http.Request) {
	var req api.ConfigRollbackRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a := n.needAgent(w)
	if a == nil {
		return
	}
	old, ok := findVersion(a, req.Version)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("version %d is not in the kept history (lbctl config history)", req.Version))
		return
	}
	comment := req.Comment
	if comment == "" {
		comment = fmt.Sprintf("rollback to version %d", req.Version)
	}
	n.commit(w, r, a, old.Document, cluster.Change{Comment: comment})
}

func findVersion(a *cluster.Cluster, v uint64) (cluster.ConfigVersion, bool) {
	if v == 0 {
		return a.Config()
	}
	for _, h := range a.History() {
		if h.Version == v {
			return h, true
		}
	}
	return cluster.ConfigVersion{}, false
}

func apiVersion(v cluster.ConfigVersion, withDoc bool) api.ConfigVersion {
	out := api.ConfigVersion{Version: v.Version, Author: v.Author, Time: v.Time.UTC(), Comment: v.Comment}
	if withDoc {
		out.Document = string(v.Document)
	}
	return out
}

func (n *Node) handleConfigGet(w http.ResponseWriter, r *http.Request) {
	a := n.needAgent(w)
	if a == nil {
		return
	}
	var want uint64
	if s := r.URL.Query().Get("version"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("version %q is not a number", s))
			return
		}
		want = v
	}
	v, ok := findVersion(a, want)
	if !ok {
		writeError(w, http.StatusNotFound, "no such version committed (lbctl config history)")
		return
	}
	writeJSON(w, http.StatusOK, apiVersion(v, true))
}

func (n *Node) handleConfigHistory(w http.ResponseWriter, _ *http.Request) {
	a := n.needAgent(w)
	if a == nil {
		return
	}
	out := []api.ConfigVersion{}
	for _, v := range a.History() {
		out = append(out, apiVersion(v, false))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleConfigDiff compares a document, or the node's file, with the committed one, both
// in canonical form.
func (n *Node) handleConfigDiff(w http.ResponseWriter, r *http.Request) {
	var req api.ConfigDiffRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a := n.needAgent(w)
	if a == nil {
		return
	}
	cur, ok := a.Config()
	if !ok {
		writeError(w, http.StatusConflict, "no config committed yet")
		return
	}
	n.mu.Lock()
	base := n.cfg
	n.mu.Unlock()
	name, data := "document", []byte(req.Document)
	if req.Document == "" {
		b, err := os.ReadFile(n.path)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		name, data = n.path, b
	}
	theirs, err := Parse(name, data)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, api.ReloadResponse{Errors: strings.Split(err.Error(), "\n")})
		return
	}
	committed, err := withDocument(base, fmt.Sprintf("version %d", cur.Version), cur.Document)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	d := unifiedDiff(fmt.Sprintf("committed (version %d)", cur.Version), name,
		string(documentOf(committed)), string(documentOf(theirs)))
	writeJSON(w, http.StatusOK, api.ConfigDiffResponse{Version: cur.Version, Diff: d})
}

func tokenExpiry(agent *cluster.Cluster, id string) time.Time {
	tis, _ := agent.JoinTokens()
	for _, ti := range tis {
		if ti.ID == id {
			return ti.Expires.UTC()
		}
	}
	return time.Time{}
}

// startNewAgent saves the gossip key of a cluster this node has just created or joined
// and starts the agent with it; when the agent does not start, the key is removed again,
// so the state directory does not say the node is in a cluster.
func (n *Node) startNewAgent(cfg *Config, key string, sec *security) (*cluster.Cluster, error) {
	if err := writeKey(cfg, key); err != nil {
		return nil, err
	}
	agent, err := n.startAgent(cfg, key, sec)
	if err != nil {
		os.Remove(keyPath(cfg))
		return nil, err
	}
	return agent, nil
}
