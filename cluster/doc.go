// Package cluster is the cluster agent: membership and health gossip between the nodes
// (hashicorp/memberlist), and the state they share through raft (hashicorp/raft, with
// raft-wal for the log and file snapshots): the cluster-wide config document with its
// history, and the replicated files (certificates, keys) it refers to.
//
// lbd/node starts it in a node whose state directory holds a cluster (node/cluster.go);
// that wiring is in development.
//
// How it fits together: New opens the state directory, starts raft and gossip, and runs
// one goroutine (run) that follows raft's observations and, on the leader, makes raft's
// configuration follow gossip. Bootstrap makes a one-node cluster; Join finds it
// through seeds, and the leader adds the new node as a voter. Apply and PutFiles
// propose a typed entry on the leader and return once it is committed and applied, or
// answer ErrNotLeader (naming the leader; forwarding is for the caller) or ErrNoQuorum.
// Every node's state machine applies the committed entries; Config, History and Files
// read it. The node publishes its health with SetMeta, and every node sees it in
// Members.
//
// The parts, one concept per file:
//
//   - config.go: Config (addresses, seeds, state directory, role, gossip key) and
//     Timing (the gossip and raft timers, LAN defaults), with defaults and validation
//     that names each field.
//   - cluster.go: Cluster, New and Close, and the read side: Config, History, Files,
//     Members, Status, SetMeta, the gossip keyring.
//   - write.go: Apply and PutFiles, the wait for a leader and commit, and the count of
//     reachable voters behind ErrNoQuorum ("no quorum: 1 of 2 voters reachable").
//   - membership.go: Bootstrap, Join, Leave, Remove, and the leader's reconcile of
//     gossip into raft's configuration.
//   - recover.go: RecoverForce, which shrinks a cluster that lost its majority for good
//     to the voters still reachable, restarting raft with them as its configuration.
//   - gossip.go: memberlist: the member table kept from its events, the member event
//     callback, encrypted gossip (AES-GCM keyring, persisted in the state directory,
//     rotated with InstallKey, UseKey, RemoveKey).
//   - meta.go: the node metadata carried by gossip (role, raft address, lbd version,
//     config version, dataplane, VRRP states, backend health) in a compact versioned
//     encoding checked against memberlist's 512-byte limit.
//   - entry.go: the raft entries, a type byte and a JSON payload: config put, files put,
//     member (admit or remove a node).
//   - fsm.go: the replicated state machine. It dispatches on the type byte and refuses
//     a type it does not know, loudly (an error result and an error log line, on every
//     node), so that a mixed-version cluster during a rolling upgrade fails visibly
//     instead of silently disagreeing. It keeps the last 50 config versions and the
//     files and the admitted nodes, and writes and restores them in snapshots.
//   - files.go: the on-disk copies of the replicated files (mode 0600, in a 0700
//     directory), rewritten from the state machine.
//   - raft.go: the state directory's layout, raft's stores (raft-wal log and stable
//     store, file snapshots), the TCP transport and raft's config.
//   - log.go: adapters from raft's hclog and memberlist's *log.Logger to one slog
//     logger.
//   - errors.go: the sentinel errors callers branch on (ErrNotLeader, ErrNoQuorum, ...)
//     and the error types that carry details.
//
// The security layer. New uses it when given WithTLS (raft over mutual TLS, joins
// answered on the raft port once ServeJoins is called); without it raft is plain TCP.
// lbd/node uses it from cluster init and join on (node/cluster_tls.go): a node that
// inits or joins always runs with TLS, and so does one that restarts with its
// certificate in the state directory; a state directory holding the gossip key but no
// certificate is a startup error, never raft over plain TCP.
//
// Without TLS the cluster trusts every gossip member: whoever holds the gossip key
// becomes a raft voter, counts toward quorum and reads the replicated state. With TLS
// only admitted nodes do (admission.go).
//
//   - ca.go: the cluster CA (ECDSA P-256, self-signed, 10 years) made at cluster init,
//     and the node certificates it issues from a CSR (node name and raft/gossip IPs,
//     server and client use, 1 year); CA key, node key and certificates in the state
//     directory's tls/, keys 0600 and refused when others can read them.
//   - token.go: join tokens, lbd1.<id>.<secret>.<ca-sha256>: parsing, and the
//     cluster's list of them (hashes and expiries, never secrets), with a distinct
//     error for each refusal (malformed, unknown, wrong secret, expired, used).
//   - transport_tls.go: raft's stream layer over mutual TLS 1.3: both ends present a
//     node certificate signed by the cluster CA (a node-name DNS SAN; the server's for
//     the IP dialled). The raft port also serves the join exchange, told apart by
//     ALPN (lbd-raft/1, lbd-join/1); handshakes run concurrently and bounded, so a
//     silent or plain-TCP client holds up nobody and gets closed.
//   - join.go: the join exchange on the raft port: the joiner checks the cluster's
//     certificate against the CA fingerprint in its token (no trust on first use),
//     sends the token and a CSR, and gets its certificate, the CA certificate and the
//     gossip keys; with TLS the leader records the admission first (JoinServer.Record),
//     and gossip's reconcile then makes it a voter. Refusals come back to the joiner
//     as the same sentinel errors.
//   - secrets.go: the CA (with its key) and the token list as replicated files, so
//     that whichever voter leads answers joins (PutCA, ClusterCA, CreateToken,
//     RevokeToken, JoinTokens, ReplicatedTokens); tokens change on the leader only,
//     one at a time, so a single-use token serves one join.
//   - admission.go: the admitted nodes in the replicated state (a member entry per
//     admission or removal, kept in snapshots), each with the certificate it was
//     admitted with: the node that bootstrapped, and every node the join exchange
//     issued a certificate to (recorded on the leader before the certificate is handed
//     out). The leader's reconcile adds a gossip member as a voter only if it is
//     admitted, not removed, and advertises the raft address it was admitted with or
//     one of its certificate's IPs; the TLS layer refuses a raft peer whose certificate
//     is not the admitted one, or that was removed (Remove, or a node that left), so a
//     removed node's certificate is refused before it expires. A new node accepts
//     every CA-signed peer until raft has sent it the admitted set.
//
// Not there yet: writes (and joins) are not forwarded to the leader, and node
// certificates are not renewed automatically (a renewed certificate would need a new
// admission).
//
// Package cluster imports neither lbd/dataplane, lbd/vip nor lbd/node.
package cluster
