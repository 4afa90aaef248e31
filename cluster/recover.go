package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
)

// RecoverForce shrinks the cluster to the voters this node can reach, itself and those
// gossip sees alive, without the consent of the majority, which is gone. It is the way
// forward for a cluster that lost its majority for good, such as a pair that lost one
// node: run it on each survivor. It restarts this node's raft with the survivors as its
// whole configuration and waits for a leader. It refuses while a leader is known (use
// Remove then). A node left out that comes back is added again by the leader once it
// rejoins gossip; what it committed alone after being left out is lost.
func (c *Cluster) RecoverForce(ctx context.Context) (survivors []string, err error) {
	if survivors, err = c.recoverForce(); err != nil {
		return nil, err
	}
	err = c.waitFor(ctx, "recover: waiting for a leader among the survivors", func() bool {
		_, id := c.r().LeaderWithID()
		return id != ""
	})
	return survivors, err
}

// recoverForce rewrites raft's configuration and restarts raft.
func (c *Cluster) recoverForce() (survivors []string, err error) {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	select {
	case <-c.done:
		return nil, ErrClosed
	default:
	}
	old := c.r()
	if addr, id := old.LeaderWithID(); id != "" || old.State() == raft.Leader {
		return nil, fmt.Errorf("recover: the cluster has a leader (%s at %s); remove dead nodes with Remove", id, addr)
	}
	servers, err := c.servers()
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	if _, ok := servers[c.cfg.Name]; !ok {
		return nil, ErrNoCluster
	}
	var conf raft.Configuration
	for name, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		if st, ok := c.gossip.state(name); name != c.cfg.Name && (!ok || st != MemberAlive) {
			continue
		}
		survivors = append(survivors, name)
		conf.Servers = append(conf.Servers, s)
	}
	slices.Sort(survivors)
	c.log.Warn("recovering: forcing raft's configuration to the reachable voters", "survivors", survivors, "voters", len(servers))

	// raft's Shutdown closes the transport too; RecoverCluster and the new raft need
	// a new one (on the same address, or a new port where the bind port is 0).
	old.DeregisterObserver(c.observer)
	if err := old.Shutdown().Error(); err != nil {
		return nil, fmt.Errorf("recover: stopping raft: %w", err)
	}
	_ = closeTransport(c.trans) // closed by Shutdown already; this closes its pooled connections
	trans, err := c.newTransport()
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	addr := string(trans.LocalAddr())
	for i := range conf.Servers {
		if string(conf.Servers[i].ID) == c.cfg.Name {
			conf.Servers[i].Address = trans.LocalAddr()
		}
	}
	rc := raftConfig(&c.cfg, c.log, nil)
	recoverErr := raft.RecoverCluster(rc, c.fsm, c.stores.wal, c.stores.wal, c.stores.snaps, trans, conf)
	// Whether or not the configuration was rewritten, raft runs again.
	r, err := raft.NewRaft(rc, c.fsm, c.stores.wal, c.stores.wal, c.stores.snaps, trans)
	if err != nil {
		if cl, ok := trans.(interface{ Close() error }); ok {
			_ = cl.Close()
		}
		return nil, errors.Join(fmt.Errorf("recover: restarting raft: %w", err), recoverErr)
	}
	r.RegisterObserver(c.observer)
	c.raft.Store(r)
	c.trans = trans
	c.mu.Lock()
	c.raftAddr = addr
	clear(c.failing)
	c.mu.Unlock()
	if recoverErr != nil {
		return nil, fmt.Errorf("recover: rewriting raft's configuration: %w", recoverErr)
	}
	if err := c.gossip.setMeta(func(m *nodeMeta) { m.RaftAddr = addr }); err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	return survivors, nil
}
