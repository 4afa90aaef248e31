package node

// The cluster's security layer as the node uses it (package cluster: ca.go, token.go,
// join.go, secrets.go). cluster init makes the cluster CA and this node's certificate,
// replicates the CA (with its key) through raft, and makes a join token in the
// replicated token list; cluster join redeems a token on the leader's raft port for
// this node's certificate and the gossip keys. Raft then runs over mutual TLS under the
// CA, and every voter answers joins with the replicated CA and tokens (a join succeeds
// on the leader, which records the use). The node's key and certificates live in
// node.state_dir/tls/ (the package's).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"lbd/cluster"
)

// security is what the agent runs with: its TLS identity.
type security struct {
	node *cluster.NodeKey
}

func (s *security) options() []cluster.Option {
	if s == nil || s.node == nil {
		return nil
	}
	return []cluster.Option{cluster.WithTLS(cluster.TLSOptions{Node: s.node})}
}

// serveJoins makes agent answer joins once the replicated CA has reached it; it reports
// whether it does.
func serveJoins(agent *cluster.Cluster) bool {
	ca, err := agent.ClusterCA()
	if err != nil || !ca.CanSign() {
		return false
	}
	agent.ServeJoins(ca, agent.ReplicatedTokens())
	return true
}

// loadSecurity reads what a restarting node needs; nil when the state directory has no
// certificate.
func loadSecurity(cfg *Config) (*security, error) {
	nk, err := cluster.LoadNodeKey(cfg.Node.StateDir, cfg.Node.Name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return &security{node: nk}, nil
}

// newSecurity makes the cluster CA and this node's certificate (for every address of
// the machine), and saves the certificate; the CA is replicated once the cluster exists
// (initCluster).
func newSecurity(cfg *Config, now time.Time) (*security, *cluster.CA, error) {
	ca, err := cluster.NewCA(cfg.Node.Name, now)
	if err != nil {
		return nil, nil, err
	}
	nk, err := cluster.NewNodeKey(cfg.Node.Name)
	if err != nil {
		return nil, nil, err
	}
	if err := ca.IssueLocal(nk, certIPs(cfg, ""), now); err != nil {
		return nil, nil, err
	}
	if err := nk.Save(cfg.Node.StateDir); err != nil {
		return nil, nil, err
	}
	return &security{node: nk}, ca, nil
}

// certIPs are the addresses this node's certificate is for: the configured advertise or
// bind addresses when they name one, else every address of the machine; toward, a
// peer's host:port, adds the address this machine reaches it from.
func certIPs(cfg *Config, toward string) []net.IP {
	seen := map[netip.Addr]bool{}
	for _, s := range []string{cfg.Node.Cluster.RaftAdvertise, cfg.Node.Cluster.GossipAdvertise, cfg.Node.Cluster.RaftBind, cfg.Node.Cluster.GossipBind} {
		if ap, err := netip.ParseAddrPort(s); err == nil && !ap.Addr().IsUnspecified() {
			seen[ap.Addr().Unmap()] = true
		}
	}
	if len(seen) == 0 {
		seen = localAddrs()
		if a := localAddrToward(toward); a.IsValid() {
			seen[a] = true
		}
	}
	var out []net.IP
	for a := range seen {
		out = append(out, net.IP(a.AsSlice()))
	}
	return out
}

// localAddrToward is the address this machine sends from to addr (a route lookup: a
// UDP "connection" sends nothing).
func localAddrToward(addr string) netip.Addr {
	if addr == "" {
		return netip.Addr{}
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	ap, _ := netip.ParseAddrPort(c.LocalAddr().String())
	return ap.Addr().Unmap()
}

// redeem runs the join exchange with the voter whose raft address is addr: it returns
// this node's TLS identity (saved) and the cluster's primary gossip key.
func redeem(ctx context.Context, cfg *Config, addr, token string) (*security, string, error) {
	raftIP := localAddrToward(addr)
	if ap, err := netip.ParseAddrPort(cfg.Node.Cluster.RaftAdvertise); err == nil {
		raftIP = ap.Addr()
	} else if ap, err := netip.ParseAddrPort(cfg.Node.Cluster.RaftBind); err == nil && !ap.Addr().IsUnspecified() {
		raftIP = ap.Addr()
	}
	if !raftIP.IsValid() {
		return nil, "", fmt.Errorf("no route to %s", addr)
	}
	port := strconv.Itoa(cluster.DefaultRaftPort)
	if ap, err := netip.ParseAddrPort(cfg.Node.Cluster.RaftBind); err == nil && ap.Port() != 0 {
		port = strconv.Itoa(int(ap.Port()))
	}
	res, err := cluster.RequestJoin(ctx, addr, token, cluster.JoinRequest{
		Name: cfg.Node.Name, Role: cfg.Node.Cluster.Role, RaftAddr: net.JoinHostPort(raftIP.String(), port),
	})
	if err != nil {
		return nil, "", err
	}
	if len(res.GossipKeys) == 0 {
		return nil, "", errors.New("the cluster sent no gossip key")
	}
	if err := res.Node.Save(cfg.Node.StateDir); err != nil {
		return nil, "", err
	}
	return &security{node: res.Node}, res.GossipKeys[0], nil
}

// gossipSeed is where a joining node finds gossip: the configured seeds, else the
// voter's host at the default gossip port.
func gossipSeeds(cfg *Config, raftAddr string) []string {
	if len(cfg.Node.Cluster.Seeds) > 0 {
		return cfg.Node.Cluster.Seeds
	}
	host, _, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return nil
	}
	return []string{net.JoinHostPort(host, strconv.Itoa(cluster.DefaultGossipPort))}
}
