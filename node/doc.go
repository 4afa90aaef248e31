// Package node runs one lbd node. It is the only package that knows the parts together
// (lbd/dataplane, lbd/vip and, as it is wired in, lbd/cluster): it loads and validates the
// config file, builds the parts from it, connects them, reloads them without dropping
// traffic, and serves the admin API and metrics that lbctl and Prometheus read.
//
// How it connects the parts:
//
//   - Config: the file is decoded strictly into Config (config.go), whose node: section
//     belongs to this machine and whose rest is the cluster-wide document; every error
//     names the file, the line and the field (load.go: ConfigError). A reload (SIGHUP,
//     lbd reload, the admin API, a change of the file) goes through the same path, and a
//     config that any part refuses leaves the running one alone.
//   - VRRP (vrrp.go): the document's vrrp: section and the node: section's per-machine
//     settings become a vip.Config; the dataplane's own health and its backends' share
//     of healthy servers become tracked checks, so that a node that cannot serve lowers
//     its priority; VRRP state changes are logged and exported as metrics.
//   - Liveness (liveness.go): a backup keeps a TCP connection to its master's liveness
//     port and asks for heartbeats, so that a dead or hung master is seen in a few
//     heartbeat intervals rather than after three missed adverts.
//   - Cluster (cluster.go, in development): a node whose state directory says it is in a
//     cluster runs the cluster agent; each committed cluster-wide document is applied
//     through the reload path with the node's own node: section (the file's copy of the
//     document is then ignored, and logged as such), and the node publishes its health
//     (config version, VRRP states, healthy servers per backend) through gossip.
//   - Release (release.go): `lbd release`, the systemd unit's ExecStopPost, removes the
//     VIPs a killed lbd left on its interfaces.
//
// The admin API, on a unix socket (and optionally a TCP listener), answers with the wire
// types of node/api, never the parts' own structs (wire.go copies them field by field):
//
//	admin.go     the handler: status, reload, metrics, pprof; which listener may change what
//	control.go   run-time control: servers' state and weight, the node's own drain
//	sticky.go    the sticky-table endpoints: list, delete, export and import in batches
//	vip_api.go   VRRP instances' status and the manual move of a master role
//	cluster_api.go  forming the cluster (init, join, leave, remove, recover) and its
//	             document (apply, get, diff, history, rollback)
//	wire.go      parts' structs → node/api types
//
// The node itself:
//
//	node.go      Node and Options: New starts everything, Reload, Close stops it in order
//	config.go    Config, the file's schema, composed of the parts' configs
//	cluster_config.go  node.cluster, composed into cluster.Config
//	cluster_tls.go  the cluster CA, certificates and join tokens as init and join use them
//	cluster_keys.go  gossip key rotation on every node, driven by the leader through raft
//	witness.go   the witness role: the cluster agent only, nothing served
//	diff.go      the unified diff behind lbctl config diff
//	load.go      reading, decoding and validating the file; ConfigError
package node
