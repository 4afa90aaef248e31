// Package cluster is the cluster agent: membership and health gossip between the nodes
// (hashicorp/memberlist), and the state they share through raft (hashicorp/raft, with
// raft-wal for the log and file snapshots): the cluster-wide config document with its
// history, and the replicated files (certificates, keys) it refers to.
//
// It is not wired into lbd yet: lbd/node does not start it, and lbctl has no cluster
// commands.
//
// The parts, one concept per file:
//
//   - config.go: Config (addresses, seeds, state directory, role, gossip key) and
//     Timing (the gossip and raft timers, LAN defaults), with defaults and validation
//     that names each field.
//   - entry.go: the raft entries, a type byte and a JSON payload: config put, files put.
//   - fsm.go: the replicated state machine. It dispatches on the type byte and refuses
//     a type it does not know, loudly (an error result and an error log line, on every
//     node), so that a mixed-version cluster during a rolling upgrade fails visibly
//     instead of silently disagreeing. It keeps the last 50 config versions and the
//     files, and writes and restores both in snapshots.
//   - files.go: the on-disk copies of the replicated files (mode 0600, in a 0700
//     directory), rewritten from the state machine.
//   - raft.go: the state directory's layout, raft's stores (raft-wal log and stable
//     store, file snapshots), the TCP transport and raft's config.
//   - log.go: adapters from raft's hclog and memberlist's *log.Logger to one slog
//     logger.
//   - errors.go: the sentinel errors callers branch on (ErrNotLeader, ErrNoQuorum, ...)
//     and the error types that carry details.
//
// Package cluster imports neither lbd/dataplane, lbd/vip nor lbd/node.
package cluster
