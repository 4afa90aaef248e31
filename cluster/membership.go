package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Forming and changing the cluster. Gossip finds the nodes; the raft leader turns what
// gossip sees into raft's configuration (reconcile): a live member that is not a voter
// is added once it answers a ping (unless this leader removed it and it has not
// rejoined since), and a member that announced it is leaving is removed. A member that
// died stays a voter until an operator removes it (Remove): a pair that loses a node
// must not quietly become a cluster of one. With TLS, only admitted nodes become
// voters (admission.go): a gossip member that holds the gossip key but got no
// certificate from the join exchange is never added. Without TLS every gossip member
// is trusted.

// reconcileInterval is how often the leader reconciles without being told that the
// member table changed; reconcileRetry is how soon it tries again after a member it
// should have added or removed was not (no answer to the ping, a failed change).
const (
	reconcileInterval = 5 * time.Second
	reconcileRetry    = 200 * time.Millisecond
)

// Bootstrap makes this node a one-node cluster and waits until it leads it. Only a
// node without raft state can bootstrap; the others join it.
func (c *Cluster) Bootstrap(ctx context.Context) error {
	f := c.r().BootstrapCluster(raft.Configuration{Servers: []raft.Server{
		{ID: raft.ServerID(c.cfg.Name), Address: raft.ServerAddress(c.RaftAddr()), Suffrage: raft.Voter},
	}})
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap: this node already has raft state (it is or was in a cluster): %w", err)
		}
		return fmt.Errorf("bootstrap: %w", err)
	}
	c.log.Info("bootstrapped a one-node cluster")
	if err := c.waitFor(ctx, "waiting to lead the new cluster", func() bool { return c.r().State() == raft.Leader }); err != nil {
		return err
	}
	if !c.admission {
		return nil
	}
	// The bootstrap node is admitted with its own certificate, so that the nodes
	// that join accept it as a raft peer.
	tc, err := c.tlsNode.Certificate()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := c.admit(ctx, c.cfg.Name, c.RaftAddr(), tc.Leaf); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// Join contacts the seeds (default: Config.Seeds) through gossip and waits until the
// raft leader has added this node as a voter. A node restarting in its cluster is a
// voter already, and Join returns once gossip has reached a seed.
func (c *Cluster) Join(ctx context.Context, seeds ...string) error {
	if len(seeds) == 0 {
		seeds = c.cfg.Seeds
	}
	if len(seeds) == 0 {
		return errors.New("join: no seeds to contact")
	}
	n, err := c.gossip.ml.Join(seeds)
	if n == 0 {
		return fmt.Errorf("join: no seed answered (%v): %w", seeds, err)
	}
	if err != nil {
		c.log.Warn("some seeds did not answer", "contacted", n, "err", err)
	}
	return c.waitFor(ctx, "joined gossip, waiting for the raft leader to add this node", c.isVoter)
}

// Leave removes this node from the cluster: it announces through gossip that it is
// leaving, hands leadership over if it leads, waits until the leader has taken it out
// of raft's configuration, and leaves gossip. The agent should be closed afterwards. The last voter
// cannot leave.
func (c *Cluster) Leave(ctx context.Context) error {
	servers, err := c.servers()
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	if _, ok := servers[c.cfg.Name]; ok && len(servers) == 1 {
		return errors.New("leave: this node is the cluster's only member")
	}
	if err := c.gossip.setMeta(func(m *nodeMeta) { m.Leaving = true }); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	if c.r().State() == raft.Leader {
		// Hand leadership over; the new leader removes this node, as it does a
		// follower that leaves. (A leader removing itself sees its own removal
		// answered with "leadership lost".)
		if err := c.waitFuture(ctx, c.r().LeadershipTransfer()); err != nil {
			c.log.Warn("leadership transfer failed; removing this node itself", "err", err)
			err := c.waitFuture(ctx, c.r().RemoveServer(raft.ServerID(c.cfg.Name), 0, 0))
			if err != nil && !errors.Is(err, raft.ErrLeadershipLost) {
				return fmt.Errorf("leave: removing this node from raft: %w", err)
			}
		}
	}
	if err := c.waitFor(ctx, "leave: waiting for the leader to remove this node from raft", func() bool { return !c.isMember() }); err != nil {
		return err
	}
	if err := c.gossip.ml.Leave(time.Second); err != nil {
		c.log.Warn("leave not yet gossiped", "err", err)
	}
	c.log.Info("left the cluster")
	return nil
}

// Remove takes another node out of raft's configuration: for a node that is dead and
// will not come back. It must run on the leader. Without TLS the leader does not add
// the node back until gossip sees it join again (restarted). With TLS the removal is
// recorded in the replicated state first: every node then refuses the node's
// certificate, and it is not added back until it joins anew with a token. A node that
// is still running should Leave instead.
func (c *Cluster) Remove(ctx context.Context, name string) error {
	if name == c.cfg.Name {
		return errors.New("remove: this is the local node; use Leave")
	}
	if c.r().State() != raft.Leader {
		addr, id := c.r().LeaderWithID()
		return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
	}
	servers, err := c.servers()
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	_, inRaft := servers[name]
	rec, admitted, _ := c.fsm.admittedNode(name)
	admitted = admitted && !rec.Removed
	if !inRaft && !(c.admission && admitted) {
		return fmt.Errorf("remove %s: no such node in raft's configuration", name)
	}
	c.gossip.markRemoved(name)
	ctx, cancel := c.writeContext(ctx)
	defer cancel()
	if c.admission {
		if err := c.markRemoved(ctx, name); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	if !inRaft {
		c.log.Info("removed admitted node that was not a voter", "member", name)
		return nil
	}
	if err := c.waitFuture(ctx, c.r().RemoveServer(raft.ServerID(name), 0, 0)); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	c.log.Info("removed node from the cluster", "member", name)
	return nil
}

// isVoter reports whether this node is a voter in raft's latest configuration.
func (c *Cluster) isVoter() bool {
	servers, err := c.servers()
	s, ok := servers[c.cfg.Name]
	return err == nil && ok && s.Suffrage == raft.Voter
}

// isMember reports whether this node is in raft's latest configuration (false once
// raft has shut down after removing it).
func (c *Cluster) isMember() bool {
	servers, err := c.servers()
	_, ok := servers[c.cfg.Name]
	return err == nil && ok
}

// waitFor polls cond until it holds, the context ends (Timing.ApplyTimeout if it has
// no deadline), or the agent closes.
func (c *Cluster) waitFor(ctx context.Context, what string, cond func() bool) error {
	ctx, cancel := c.writeContext(ctx)
	defer cancel()
	tick := c.clock.NewTicker(leaderPoll)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-c.done:
			return ErrClosed
		case <-tick.C():
		}
	}
	return nil
}

// waitFuture waits for a raft future within the context.
func (c *Cluster) waitFuture(ctx context.Context, f raft.Future) error {
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }() // ends when raft answers, as it always does
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the agent's goroutine: it follows raft's observations and reconciles the
// membership while this node leads. Close stops it.
func (c *Cluster) run() {
	defer c.wg.Done()
	tick := c.clock.NewTicker(reconcileInterval)
	defer tick.Stop()
	retry := c.clock.NewTimer(reconcileRetry)
	retry.Stop()
	defer retry.Stop()
	reconcile := func() {
		if !c.reconcile() {
			retry.Reset(reconcileRetry)
		}
	}
	for {
		select {
		case <-c.done:
			return
		case o := <-c.observations:
			if c.observe(o) {
				reconcile()
			}
		case <-c.nudge:
			reconcile()
		case <-retry.C():
			reconcile()
		case <-tick.C():
			reconcile()
		}
	}
}

// observe follows raft's observations; it reports whether this node has just become
// the leader (and should reconcile).
func (c *Cluster) observe(o raft.Observation) bool {
	switch d := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		c.mu.Lock()
		c.failing[string(d.PeerID)] = true
		c.mu.Unlock()
	case raft.ResumedHeartbeatObservation:
		c.mu.Lock()
		delete(c.failing, string(d.PeerID))
		c.mu.Unlock()
	case raft.LeaderObservation:
		if d.LeaderID == "" {
			return false // stepped down: keep what the last leader knew
		}
		c.mu.Lock()
		clear(c.failing)
		c.mu.Unlock()
		if string(d.LeaderID) == c.cfg.Name {
			c.log.Info("leading the cluster", "term", c.r().CurrentTerm())
			return true
		}
	}
	return false
}

// reconcile makes raft's configuration follow gossip, on the leader only. It reports
// false when something is left to do.
func (c *Cluster) reconcile() (done bool) {
	if c.r().State() != raft.Leader {
		return true
	}
	servers, err := c.servers()
	if err != nil {
		return false
	}
	done = true
	for _, m := range c.gossip.snapshot() {
		if m.Name == c.cfg.Name {
			continue
		}
		s, in := servers[m.Name]
		switch {
		case m.Leaving:
			if in {
				f := c.r().RemoveServer(raft.ServerID(m.Name), 0, 0)
				if err := f.Error(); err != nil {
					c.log.Warn("could not remove leaving node from raft", "member", m.Name, "err", err)
					done = false
					continue
				}
				c.log.Info("removed leaving node from raft", "member", m.Name)
			}
			if rec, ok, _ := c.fsm.admittedNode(m.Name); c.admission && ok && !rec.Removed {
				// It left: its certificate is not good for coming back.
				ctx, cancel := c.writeContext(context.Background())
				err := c.markRemoved(ctx, m.Name)
				cancel()
				if err != nil {
					c.log.Warn("could not record that a node left", "member", m.Name, "err", err)
					done = false
				}
			}
		case m.State == MemberAlive && m.RaftAddr != "" && !c.gossip.isRemoved(m.Name):
			if in && s.Suffrage == raft.Voter && string(s.Address) == m.RaftAddr {
				continue
			}
			if err := c.voterAllowed(m.Name, m.RaftAddr); err != nil {
				// Not retried: a new admission or member change nudges the
				// reconcile. Logged once per member and reason.
				c.notVoterOnce(m.Name, err)
				continue
			}
			// Gossip takes a few probe rounds to find a node dead; a voter added
			// after it died would cost the cluster its majority. So it must answer
			// a ping now.
			if err := c.gossip.ping(m.Name, m.GossipAddr); err != nil {
				c.log.Info("not adding node to raft yet: it does not answer a ping", "member", m.Name, "err", err)
				done = false
				continue
			}
			f := c.r().AddVoter(raft.ServerID(m.Name), raft.ServerAddress(m.RaftAddr), 0, 0)
			if err := f.Error(); err != nil {
				c.log.Warn("could not add node to raft", "member", m.Name, "raft", m.RaftAddr, "err", err)
				done = false
				continue
			}
			c.log.Info("added node to raft as a voter", "member", m.Name, "raft", m.RaftAddr, "role", m.Role)
			c.mu.Lock()
			delete(c.notVoter, m.Name)
			c.mu.Unlock()
		}
	}
	return done
}

// notVoterOnce logs that a gossip member is not made a voter, once per member and
// reason: the reconcile sees it every few seconds.
func (c *Cluster) notVoterOnce(name string, why error) {
	c.mu.Lock()
	same := c.notVoter[name] == why.Error()
	c.notVoter[name] = why.Error()
	c.mu.Unlock()
	if !same {
		c.log.Warn("gossip member not added to raft", "member", name, "reason", why)
	}
}
