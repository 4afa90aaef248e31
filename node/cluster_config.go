package node

import (
	"errors"
	"strings"

	"lbd/cluster"
	"lbd/dataplane"
)

// ClusterNode is the node: section's cluster: where this machine's cluster agent listens
// and whom it contacts. The node's name and state directory come from node.name and
// node.state_dir; the gossip key is kept in the state directory (created by
// `lbctl cluster init`, or given when joining), never in the file. See ClusterConfig.
type ClusterNode struct {
	// Role is voter or witness; gossip tells the other nodes. A witness runs the
	// cluster agent only (node/witness.go): no listeners, no health checks, no VRRP.
	// Read at start. Default: voter.
	Role cluster.Role `yaml:"role"`
	// GossipBind is the IP:port gossip listens on, TCP and UDP. Default: 0.0.0.0:7946.
	GossipBind string `yaml:"gossip_bind"`
	// GossipAdvertise is the IP:port other nodes reach gossip at. Default: the bind
	// address, or the machine's first private IPv4 address when binding to all.
	GossipAdvertise string `yaml:"gossip_advertise"`
	// RaftBind is the IP:port raft listens on (TCP). Default: 0.0.0.0:7947.
	RaftBind string `yaml:"raft_bind"`
	// RaftAdvertise is the IP:port other nodes reach raft at. Default: the bind
	// address, or the gossip advertise IP with the raft port when binding to all.
	RaftAdvertise string `yaml:"raft_advertise"`
	// Seeds are gossip addresses (host:port) of nodes already in the cluster, tried in
	// order when joining or restarting. Default: none.
	Seeds []string `yaml:"seeds"`
	// Timing holds the gossip and raft timers; the defaults suit a LAN.
	Timing cluster.Timing `yaml:"timing"`
}

// ClusterConfig returns the cluster agent's config for this node: node.cluster with the
// node's name and state directory, and key, the gossip key (base64).
func (c *Config) ClusterConfig(key string) cluster.Config {
	cn := c.Node.Cluster
	return cluster.Config{
		Name:            c.Node.Name,
		Role:            cn.Role,
		StateDir:        c.Node.StateDir,
		GossipBind:      cn.GossipBind,
		GossipAdvertise: cn.GossipAdvertise,
		RaftBind:        cn.RaftBind,
		RaftAdvertise:   cn.RaftAdvertise,
		Seeds:           append([]string(nil), cn.Seeds...),
		GossipKey:       key,
		Timing:          cn.Timing,
	}
}

// setDefaults fills node.cluster's unset fields with cluster.Config's defaults.
func (cn *ClusterNode) setDefaults() {
	cc := cluster.Config{Role: cn.Role, GossipBind: cn.GossipBind, RaftBind: cn.RaftBind, Timing: cn.Timing}
	cc.SetDefaults()
	cn.Role, cn.GossipBind, cn.RaftBind, cn.Timing = cc.Role, cc.GossipBind, cc.RaftBind, cc.Timing
}

// validationKey stands in for the gossip key when node.cluster is checked: the key is
// not in the file (it is in the state directory), so its absence is no error here.
const validationKey = "AAAAAAAAAAAAAAAAAAAAAA=="

// validateCluster checks node.cluster with cluster.Config's rules, reporting each problem
// at its node.cluster path. The name and state directory are checked as node.name and
// node.state_dir.
func (c *Config) validateCluster() []error {
	cc := c.ClusterConfig(validationKey)
	var errs []error
	for _, err := range leafErrors(cc.Validate()) {
		var fe *cluster.FieldError
		if !errors.As(err, &fe) {
			errs = append(errs, err)
			continue
		}
		switch fe.Path {
		case "name", "state_dir", "gossip_key":
			continue
		}
		errs = append(errs, &dataplane.FieldError{Path: "node.cluster." + fe.Path, Msg: strings.TrimPrefix(fe.Msg, " ")})
	}
	return errs
}
