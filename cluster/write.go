package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ErrNoCluster: this node is in no raft cluster yet; Bootstrap or Join first.
var ErrNoCluster = errors.New("not in a cluster (bootstrap or join first)")

// Change describes a config change.
type Change struct {
	// Author and Comment are kept with the version (who, and why).
	Author  string
	Comment string
	// BaseVersion, if not nil, is the version the change was made against (0: the
	// first document): the change is refused with ErrVersionConflict if another
	// version has been committed since. Nil: no check.
	BaseVersion *uint64
}

// Apply commits a new version of the cluster-wide document and returns its version
// number once a majority has stored it and this node has applied it. It must run on
// the leader: elsewhere it answers a *NotLeaderError naming the leader. Without a
// majority it answers a *QuorumError (ErrNoQuorum) within the context's deadline, or
// Timing.ApplyTimeout when the context has none.
func (c *Cluster) Apply(ctx context.Context, doc []byte, ch Change) (uint64, error) {
	if len(doc) == 0 {
		return 0, errors.New("applying config: the document is empty")
	}
	if len(doc) > maxDocumentSize {
		return 0, fmt.Errorf("applying config: the document is %d bytes, more than %d", len(doc), maxDocumentSize)
	}
	data, err := encodeEntry(entryConfigPut, &configPutEntry{
		Document: doc, Author: ch.Author, Comment: ch.Comment, Time: c.clock.Now().UTC(), BaseVersion: ch.BaseVersion,
	})
	if err != nil {
		return 0, err
	}
	resp, err := c.propose(ctx, data)
	if err != nil {
		return 0, err
	}
	return resp.(uint64), nil
}

// FilesChange writes and deletes replicated files together.
type FilesChange struct {
	// Put maps file names to their whole new content.
	Put map[string][]byte
	// Delete names files to delete; deleting a file that does not exist is no error.
	Delete []string
}

// PutFiles commits a change of the replicated files, as Apply does for the document.
// Every node writes them to its state directory with mode 0600.
func (c *Cluster) PutFiles(ctx context.Context, ch FilesChange) error {
	size := 0
	for name, data := range ch.Put {
		if err := checkFileName(name); err != nil {
			return err
		}
		size += len(data)
	}
	for _, name := range ch.Delete {
		if err := checkFileName(name); err != nil {
			return err
		}
		if _, ok := ch.Put[name]; ok {
			return fmt.Errorf("file %s is both written and deleted", name)
		}
	}
	if size > maxFilesSize {
		return fmt.Errorf("replicated files: %d bytes in one change, more than %d", size, maxFilesSize)
	}
	data, err := encodeEntry(entryFilesPut, &filesPutEntry{Put: ch.Put, Delete: ch.Delete})
	if err != nil {
		return err
	}
	_, err = c.propose(ctx, data)
	return err
}

// writeContext bounds a write by Timing.ApplyTimeout when ctx has no deadline.
func (c *Cluster) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.Timing.ApplyTimeout)
}

// leaderPoll is how often a write waiting for a leader (or Bootstrap, Join, Leave
// waiting for raft) looks again.
const leaderPoll = 10 * time.Millisecond

// propose commits one entry through raft and returns the state machine's answer.
func (c *Cluster) propose(ctx context.Context, data []byte) (any, error) {
	ctx, cancel := c.writeContext(ctx)
	defer cancel()
	start := c.clock.Now()
	tick := c.clock.NewTicker(leaderPoll)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return nil, ErrClosed
		default:
		}
		if c.r().State() == raft.Leader {
			if r, n := c.quorum(); r < n/2+1 {
				return nil, &QuorumError{Reachable: r, Voters: n}
			}
			resp, err, retry := c.applyOnLeader(ctx, data)
			if !retry {
				return resp, err
			}
		} else if addr, id := c.r().LeaderWithID(); id != "" {
			return nil, &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
		} else {
			// No leader known: an election may be under way, unless gossip and
			// raft already say that no majority is there to win it.
			r, n := c.quorum()
			if n == 0 {
				return nil, ErrNoCluster
			}
			if r < n/2+1 {
				return nil, &QuorumError{Reachable: r, Voters: n}
			}
		}
		select {
		case <-ctx.Done():
			r, n := c.quorum()
			return nil, &QuorumError{Reachable: r, Voters: n,
				Detail: fmt.Sprintf("no raft leader elected within %v", c.clock.Now().Sub(start).Round(time.Millisecond))}
		case <-c.done:
			return nil, ErrClosed
		case <-tick.C():
		}
	}
}

// applyOnLeader hands the entry to raft and waits for it to commit. retry is true when
// this node turned out not to be the leader (any more) before the entry was taken.
func (c *Cluster) applyOnLeader(ctx context.Context, data []byte) (resp any, err error, retry bool) {
	timeout := c.cfg.Timing.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d) // context deadlines are on the system clock
	}
	f := c.r().Apply(data, timeout)
	// The goroutine ends when raft answers the future, which it always does: commit,
	// lost leadership, or shutdown.
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the change to commit: %w (it may still commit)", ctx.Err()), false
	}
	switch {
	case err == nil:
		if e, ok := f.Response().(error); ok {
			return nil, e, false
		}
		return f.Response(), nil, false
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return nil, nil, true
	case errors.Is(err, raft.ErrLeadershipLost):
		if r, n := c.quorum(); r < n/2+1 {
			return nil, &QuorumError{Reachable: r, Voters: n,
				Detail: "the change is in this node's log and may still commit when a majority is back"}, false
		}
		return nil, fmt.Errorf("leadership lost while committing; the change may or may not be committed: %w", err), false
	case errors.Is(err, raft.ErrRaftShutdown):
		return nil, ErrClosed, false
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return nil, fmt.Errorf("waiting to hand the change to raft: %w", context.DeadlineExceeded), false
	}
	return nil, err, false
}

// quorum counts the voters in raft's configuration, and those of them this node can
// reach: itself, and each other voter that the leader has not failed to heartbeat
// and, unless this node is the leader, that gossip sees alive.
func (c *Cluster) quorum() (reachable, voters int) {
	servers, err := c.servers()
	if err != nil {
		return 0, 0
	}
	leader := c.r().State() == raft.Leader
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		switch {
		case name == c.cfg.Name:
			reachable++
		case c.failing[name]:
		case leader:
			reachable++
		default:
			if st, ok := c.gossip.state(name); ok && st == MemberAlive {
				reachable++
			}
		}
	}
	return reachable, voters
}
