package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// Role is what a node does in the cluster. Both roles vote in raft; the role tells the
// other nodes (and lbctl) whether the node also carries traffic.
type Role string

const (
	// RoleVoter is a full node: dataplane, VIPs and a raft vote.
	RoleVoter Role = "voter"
	// RoleWitness runs the cluster agent only, to give a pair its third raft vote.
	RoleWitness Role = "witness"
)

// Config is the cluster agent's part of one node's configuration (it belongs to the
// machine, not to the cluster-wide document).
type Config struct {
	// Name identifies the node in gossip and raft: 1 to 63 letters, digits, '.', '-' or
	// '_'. Unique in the cluster and stable across restarts. Required.
	Name string `yaml:"name"`
	// Role is voter or witness. Default: voter.
	Role Role `yaml:"role"`
	// StateDir holds the raft log, snapshots, the replicated files and the gossip
	// keyring (in subdirectories only this node's user can read); an absolute path.
	// Required.
	StateDir string `yaml:"state_dir"`
	// GossipBind is the IP:port memberlist listens on, TCP and UDP; port 0 takes any
	// free port. Default: 0.0.0.0:7946.
	GossipBind string `yaml:"gossip_bind"`
	// GossipAdvertise is the IP:port other nodes reach the gossip listener at. Default:
	// the bind address, or the machine's first private IPv4 address when binding to
	// all addresses.
	GossipAdvertise string `yaml:"gossip_advertise"`
	// RaftBind is the IP:port raft listens on (TCP). Default: 0.0.0.0:7947.
	RaftBind string `yaml:"raft_bind"`
	// RaftAdvertise is the IP:port other nodes reach raft at. Default: the bind
	// address, or the gossip advertise IP with the raft port when binding to all
	// addresses.
	RaftAdvertise string `yaml:"raft_advertise"`
	// Seeds are gossip addresses (host:port) of nodes already in the cluster, tried in
	// order by Join. Default: none.
	Seeds []string `yaml:"seeds"`
	// GossipKey is the key that encrypts and authenticates gossip (AES-GCM), base64 of
	// 16, 24 or 32 bytes. Every node needs it; a node without it is refused. Keys
	// installed later for rotation are kept in the state directory. Required.
	GossipKey string `yaml:"gossip_key"`
	// Timing holds the gossip and raft timers, tuned for a LAN.
	Timing Timing `yaml:"timing"`
}

// Timing holds the gossip and raft timers. The defaults suit nodes on one LAN (round
// trips well under 1ms): memberlist's LAN profile and raft's defaults. They decide how
// fast the cluster notices a dead node, not how fast a VIP moves (VRRP does that).
type Timing struct {
	// GossipInterval is how often a node gossips queued updates (metadata, joins,
	// deaths) to a few random peers. Default: 200ms.
	GossipInterval time.Duration `yaml:"gossip_interval"`
	// ProbeInterval is how often a node probes a random peer for liveness. Default: 1s.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// ProbeTimeout is how long a probe waits for its ack before asking other nodes to
	// probe indirectly; shorter than ProbeInterval. Default: 500ms.
	ProbeTimeout time.Duration `yaml:"probe_timeout"`
	// SuspicionMult scales how long a suspected node has to refute before it is
	// declared dead: SuspicionMult × ProbeInterval × max(1, log10(nodes)), so 4s for a
	// small cluster at the defaults. 1-20. Default: 4.
	SuspicionMult int `yaml:"suspicion_mult"`
	// PushPullInterval is how often a node syncs its whole member list with a random
	// peer over TCP. Default: 30s.
	PushPullInterval time.Duration `yaml:"push_pull_interval"`
	// RaftHeartbeatTimeout is how long a follower goes without hearing from the leader
	// before it starts an election. Default: 1s.
	RaftHeartbeatTimeout time.Duration `yaml:"raft_heartbeat_timeout"`
	// RaftElectionTimeout is how long a candidate waits for votes before trying again;
	// at least RaftHeartbeatTimeout. Default: 1s.
	RaftElectionTimeout time.Duration `yaml:"raft_election_timeout"`
	// RaftLeaderLease is how long a leader stays leader without hearing from a
	// majority; at most RaftHeartbeatTimeout. It bounds how long a write waits when
	// the majority is gone. Default: 500ms.
	RaftLeaderLease time.Duration `yaml:"raft_leader_lease"`
	// RaftCommitTimeout is the longest the leader waits before telling followers the
	// new commit index when nothing else is sent. Default: 50ms.
	RaftCommitTimeout time.Duration `yaml:"raft_commit_timeout"`
	// ApplyTimeout bounds a write (Apply, PutFiles, Remove) that is given a context
	// without a deadline, including the wait for a leader to be elected. Default: 5s.
	ApplyTimeout time.Duration `yaml:"apply_timeout"`
}

// Defaults applied by SetDefaults.
const (
	DefaultGossipPort           = 7946
	DefaultRaftPort             = 7947
	DefaultGossipBind           = "0.0.0.0:7946"
	DefaultRaftBind             = "0.0.0.0:7947"
	DefaultGossipInterval       = 200 * time.Millisecond
	DefaultProbeInterval        = time.Second
	DefaultProbeTimeout         = 500 * time.Millisecond
	DefaultSuspicionMult        = 4
	DefaultPushPullInterval     = 30 * time.Second
	DefaultRaftHeartbeatTimeout = time.Second
	DefaultRaftElectionTimeout  = time.Second
	DefaultRaftLeaderLease      = 500 * time.Millisecond
	DefaultRaftCommitTimeout    = 50 * time.Millisecond
	DefaultApplyTimeout         = 5 * time.Second
)

// DefaultConfig returns a Config with every default set; Name, StateDir and GossipKey
// are left for the caller.
func DefaultConfig() Config {
	var c Config
	c.SetDefaults()
	return c
}

// SetDefaults fills every unset field with its default. Fields set to invalid values
// are left for Validate to report.
func (c *Config) SetDefaults() {
	if c.Role == "" {
		c.Role = RoleVoter
	}
	if c.GossipBind == "" {
		c.GossipBind = DefaultGossipBind
	}
	if c.RaftBind == "" {
		c.RaftBind = DefaultRaftBind
	}
	t := &c.Timing
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&t.GossipInterval, DefaultGossipInterval)
	setDur(&t.ProbeInterval, DefaultProbeInterval)
	setDur(&t.ProbeTimeout, DefaultProbeTimeout)
	if t.SuspicionMult == 0 {
		t.SuspicionMult = DefaultSuspicionMult
	}
	setDur(&t.PushPullInterval, DefaultPushPullInterval)
	setDur(&t.RaftHeartbeatTimeout, DefaultRaftHeartbeatTimeout)
	setDur(&t.RaftElectionTimeout, DefaultRaftElectionTimeout)
	setDur(&t.RaftLeaderLease, DefaultRaftLeaderLease)
	setDur(&t.RaftCommitTimeout, DefaultRaftCommitTimeout)
	setDur(&t.ApplyTimeout, DefaultApplyTimeout)
}

// FieldError is a problem with one field of the config. Path is the field's name as
// in the file, such as "timing.probe_timeout".
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// FieldPath returns the field's name as in the file.
func (e *FieldError) FieldPath() string { return e.Path }

type fieldErrors []error

func (l *fieldErrors) add(path, format string, args ...any) {
	*l = append(*l, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks a config that SetDefaults has been applied to. It returns every
// problem it finds, joined; each is a *FieldError.
func (c *Config) Validate() error {
	var errs fieldErrors
	if !nameRE.MatchString(c.Name) {
		errs.add("name", "(%q) must be 1 to 63 letters, digits, '.', '-' or '_', starting with a letter or digit", c.Name)
	}
	if c.Role != RoleVoter && c.Role != RoleWitness {
		errs.add("role", "(%q) must be voter or witness", c.Role)
	}
	if !filepath.IsAbs(c.StateDir) {
		errs.add("state_dir", "(%q) must be an absolute path", c.StateDir)
	}
	gossipBind, err := parseBind(c.GossipBind)
	if err != nil {
		errs.add("gossip_bind", "%v", err)
	}
	if c.GossipAdvertise != "" {
		if _, err := parseAdvertise(c.GossipAdvertise); err != nil {
			errs.add("gossip_advertise", "%v", err)
		}
	}
	raftBind, err := parseBind(c.RaftBind)
	if err != nil {
		errs.add("raft_bind", "%v", err)
	}
	if c.RaftAdvertise != "" {
		if _, err := parseAdvertise(c.RaftAdvertise); err != nil {
			errs.add("raft_advertise", "%v", err)
		}
	} else if err == nil && raftBind.Addr().IsUnspecified() && raftBind.Port() == 0 {
		errs.add("raft_bind", "(%s) with port 0 needs a specific IP or raft_advertise", c.RaftBind)
	}
	if err == nil && gossipBind.IsValid() && raftBind.Port() != 0 && raftBind == gossipBind {
		errs.add("raft_bind", "(%s) is the same as gossip_bind", c.RaftBind)
	}
	for i, s := range c.Seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			errs.add(fmt.Sprintf("seeds[%d]", i), "(%q) must be host:port", s)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			errs.add(fmt.Sprintf("seeds[%d]", i), "(%q): port must be 1-65535", s)
		}
	}
	if _, err := decodeKey(c.GossipKey); err != nil {
		errs.add("gossip_key", "%v", err)
	}
	c.Timing.validate(&errs)
	return errors.Join(errs...)
}

func (t *Timing) validate(errs *fieldErrors) {
	between := func(path string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			errs.add("timing."+path, "(%v) must be %v-%v", d, lo, hi)
		}
	}
	between("gossip_interval", t.GossipInterval, 5*time.Millisecond, 10*time.Second)
	between("probe_interval", t.ProbeInterval, 10*time.Millisecond, time.Minute)
	between("probe_timeout", t.ProbeTimeout, 5*time.Millisecond, time.Minute)
	if t.ProbeTimeout >= t.ProbeInterval {
		errs.add("timing.probe_timeout", "(%v) must be shorter than probe_interval (%v)", t.ProbeTimeout, t.ProbeInterval)
	}
	if t.SuspicionMult < 1 || t.SuspicionMult > 20 {
		errs.add("timing.suspicion_mult", "(%d) must be 1-20", t.SuspicionMult)
	}
	between("push_pull_interval", t.PushPullInterval, 100*time.Millisecond, time.Hour)
	between("raft_heartbeat_timeout", t.RaftHeartbeatTimeout, 5*time.Millisecond, time.Minute)
	between("raft_election_timeout", t.RaftElectionTimeout, 5*time.Millisecond, time.Minute)
	if t.RaftElectionTimeout < t.RaftHeartbeatTimeout {
		errs.add("timing.raft_election_timeout", "(%v) must be at least raft_heartbeat_timeout (%v)", t.RaftElectionTimeout, t.RaftHeartbeatTimeout)
	}
	between("raft_leader_lease", t.RaftLeaderLease, 5*time.Millisecond, time.Minute)
	if t.RaftLeaderLease > t.RaftHeartbeatTimeout {
		errs.add("timing.raft_leader_lease", "(%v) must be at most raft_heartbeat_timeout (%v)", t.RaftLeaderLease, t.RaftHeartbeatTimeout)
	}
	between("raft_commit_timeout", t.RaftCommitTimeout, time.Millisecond, 10*time.Second)
	between("apply_timeout", t.ApplyTimeout, 10*time.Millisecond, 10*time.Minute)
}

// parseBind accepts IP:port with port 0-65535 (0: any free port).
func parseBind(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("(%q) must be IP:port", s)
	}
	return ap, nil
}

// parseAdvertise accepts IP:port with a specific IP and port 1-65535.
func parseAdvertise(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	switch {
	case err != nil:
		return ap, fmt.Errorf("(%q) must be IP:port", s)
	case ap.Addr().IsUnspecified():
		return ap, fmt.Errorf("(%q) must name a specific IP, not %s", s, ap.Addr())
	case ap.Port() == 0:
		return ap, fmt.Errorf("(%q): port must be 1-65535", s)
	}
	return ap, nil
}

// decodeKey decodes a base64 gossip key and checks its length (AES-128, -192, -256).
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("is required (base64 of 16, 24 or 32 random bytes)")
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("(%d characters) is not valid base64", len(s))
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("is %d bytes, must be 16, 24 or 32", n)
	}
	return k, nil
}
