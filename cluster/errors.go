package cluster

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on; match them with errors.Is.
var (
	// ErrNotLeader: the write must go to the leader. The error is a *NotLeaderError
	// that names it when one is known.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrNoQuorum: no majority of the voters is reachable, so nothing can be
	// committed. The error is a *QuorumError with the counts.
	ErrNoQuorum = errors.New("no quorum")
	// ErrUnknownEntry: a raft entry of a type this version does not know was refused.
	ErrUnknownEntry = errors.New("unknown raft entry type")
	// ErrVersionConflict: a config change named a base version that is no longer
	// the current one.
	ErrVersionConflict = errors.New("config version conflict")
	// ErrClosed: the agent has been closed.
	ErrClosed = errors.New("cluster agent closed")
)

// NotLeaderError answers a write sent to a node that is not the raft leader.
type NotLeaderError struct {
	// LeaderID and LeaderAddr name the current leader (its node name and raft
	// address); both are empty while none is known.
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "not the raft leader, and no leader is known"
	}
	return fmt.Sprintf("not the raft leader; the leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// QuorumError answers a write while no majority of the voters is reachable.
type QuorumError struct {
	// Reachable counts the voters this node can reach, itself included; Voters counts
	// all of them.
	Reachable, Voters int
	// Detail says more, e.g. that a write already in the log may still commit.
	Detail string
}

func (e *QuorumError) Error() string {
	s := fmt.Sprintf("no quorum: %d of %d voters reachable", e.Reachable, e.Voters)
	if e.Detail != "" {
		s += "; " + e.Detail
	}
	return s
}

// Is makes errors.Is(err, ErrNoQuorum) true.
func (e *QuorumError) Is(target error) bool { return target == ErrNoQuorum }

// UnknownEntryError is what the state machine answers for an entry whose type byte it
// does not know: it changes nothing, logs the refusal, and returns this.
type UnknownEntryError struct {
	Type  byte
	Index uint64
}

func (e *UnknownEntryError) Error() string {
	return fmt.Sprintf("raft entry %d has unknown type %d: refused (is a newer lbd writing to this cluster?)", e.Index, e.Type)
}

// Is makes errors.Is(err, ErrUnknownEntry) true.
func (e *UnknownEntryError) Is(target error) bool { return target == ErrUnknownEntry }
