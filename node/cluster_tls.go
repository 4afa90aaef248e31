package node

// The cluster's security layer as the node uses it (package cluster: ca.go, token.go,
// join.go). cluster init makes the cluster CA, this node's certificate and a join
// token; cluster join redeems a token on a voter's raft port for this node's
// certificate and the gossip keys. Raft then runs over mutual TLS under the CA, and a
// voter holding the CA key answers joins. All of it lives in node.state_dir: tls/ (the
// package's), and the token list in joinTokensFile.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"lbd/cluster"
)

// joinTokensFile, in node.state_dir, holds the join tokens this node made (hashes and
// expiries, never the secrets), mode 0600.
const joinTokensFile = "join-tokens.json"

// security is what the agent runs with: its TLS identity, and the CA and tokens with
// which it answers joins (nil on a node that cannot sign).
type security struct {
	node   *cluster.NodeKey
	ca     *cluster.CA
	tokens *cluster.Tokens
}

func (s *security) options() []cluster.Option {
	if s == nil || s.node == nil {
		return nil
	}
	return []cluster.Option{cluster.WithTLS(cluster.TLSOptions{Node: s.node})}
}

// serveJoins makes agent answer joins when this node holds the CA key.
func (s *security) serveJoins(agent *cluster.Cluster) {
	if s != nil && s.ca != nil && s.ca.CanSign() && s.tokens != nil {
		agent.ServeJoins(s.ca, s.tokens)
	}
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
	s := &security{node: nk}
	if s.ca, err = cluster.LoadCA(cfg.Node.StateDir); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.Node.StateDir, joinTokensFile))
	switch {
	case err == nil:
		if s.tokens, err = cluster.UnmarshalTokens(b); err != nil {
			return nil, fmt.Errorf("cluster: join tokens: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("cluster: join tokens: %w", err)
	}
	return s, nil
}

// newSecurity makes the cluster CA, this node's certificate (for every address of the
// machine) and a join token, and saves them.
func newSecurity(cfg *Config, now time.Time) (*security, cluster.JoinToken, error) {
	dir := cfg.Node.StateDir
	ca, err := cluster.NewCA(cfg.Node.Name, now)
	if err != nil {
		return nil, cluster.JoinToken{}, err
	}
	nk, err := cluster.NewNodeKey(cfg.Node.Name)
	if err != nil {
		return nil, cluster.JoinToken{}, err
	}
	if err := ca.IssueLocal(nk, certIPs(cfg, ""), now); err != nil {
		return nil, cluster.JoinToken{}, err
	}
	if err := ca.Save(dir); err != nil {
		return nil, cluster.JoinToken{}, err
	}
	if err := nk.Save(dir); err != nil {
		return nil, cluster.JoinToken{}, err
	}
	s := &security{node: nk, ca: ca, tokens: cluster.NewTokens()}
	tok, err := s.tokens.Create(ca.Fingerprint(), now, cluster.TokenOptions{})
	if err != nil {
		return nil, cluster.JoinToken{}, err
	}
	if err := s.saveTokens(cfg); err != nil {
		return nil, cluster.JoinToken{}, err
	}
	return s, tok, nil
}

func (s *security) saveTokens(cfg *Config) error {
	b, err := s.tokens.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.Node.StateDir, joinTokensFile), b, 0o600); err != nil {
		return fmt.Errorf("saving join tokens: %w", err)
	}
	return nil
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
