package node

// A witness (node.cluster.role: witness) runs the cluster agent only: a small process
// that gives a pair its third raft vote and serves nothing. The config it runs, its
// file's or the cluster's document, is decoded, validated and recorded as on any node
// (its version, `lbctl config diff`), but the dataplane and VRRP get it without
// frontends, backends and vrrp instances: no listeners, no health checks, no VIPs, no
// liveness listener. Its gossip metadata says its dataplane is down. The role is read
// at start, as the cluster agent reads it.

import (
	"lbd/cluster"
	"lbd/dataplane"
)

// witnessState is what the node knows of its witness role. n.mu guards logged.
type witnessState struct {
	on     bool // node.cluster.role was witness at start
	logged bool // the witness has said once that it ignores what it would serve
}

// served is the part of cfg that the dataplane and VRRP run: all of it, or on a witness
// none of its frontends, backends and vrrp instances (logged once). n.mu is held, or
// New is running.
func (n *Node) served(cfg *Config) *Config {
	if !n.wit.on {
		return cfg
	}
	if !n.wit.logged && (len(cfg.Frontends) > 0 || len(cfg.Backends) > 0 || len(cfg.VRRP.Instances) > 0) {
		n.wit.logged = true
		n.log.Warn("this node is a witness (node.cluster.role): it runs the cluster agent only and ignores the config's frontends, backends and vrrp instances",
			"frontends", len(cfg.Frontends), "backends", len(cfg.Backends), "vrrp_instances", len(cfg.VRRP.Instances))
	}
	out := *cfg
	out.Config = dataplane.Config{}
	out.VRRP.Instances = nil
	return &out
}

func isWitness(cfg *Config) bool { return cfg.Node.Cluster.Role == cluster.RoleWitness }
