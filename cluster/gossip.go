package cluster

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberState is a member's liveness as gossip sees it.
type MemberState string

const (
	// MemberAlive answers probes (or has not yet been found dead).
	MemberAlive MemberState = "alive"
	// MemberDead stopped answering, or its agent stopped without leaving.
	MemberDead MemberState = "dead"
	// MemberLeft left the cluster with Leave.
	MemberLeft MemberState = "left"
)

// Member is one node as this node sees it.
type Member struct {
	Name       string
	GossipAddr string
	State      MemberState
	Role       Role
	RaftAddr   string
	// Leaving: the node has started Leave.
	Leaving bool
	// Voter: the node is a voter in raft's configuration (as this node knows it).
	Voter bool
	// Meta is what the node last published with SetMeta.
	Meta Meta
}

// MemberEventType says what happened to a member.
type MemberEventType int

const (
	MemberJoined  MemberEventType = iota + 1 // first seen, or back after dead/left
	MemberUpdated                            // published new metadata
	MemberGone                               // found dead, or left
)

func (t MemberEventType) String() string {
	switch t {
	case MemberJoined:
		return "joined"
	case MemberUpdated:
		return "updated"
	case MemberGone:
		return "gone"
	}
	return fmt.Sprintf("MemberEventType(%d)", int(t))
}

// MemberEvent reports a change of one member.
type MemberEvent struct {
	Type   MemberEventType
	Member Member
}

// gossip runs memberlist: the member table built from its events, this node's
// metadata, and the keyring (persisted in the state directory).
type gossip struct {
	log     *slog.Logger
	self    string
	onEvent func(MemberEvent) // the node's callback; may be nil
	changed func()            // tells the agent the member table changed

	ml      *memberlist.Memberlist
	address string // this node's gossip address, as memberlist advertises it
	keyring *memberlist.Keyring
	keyFile string

	// metaMu guards local and encoded: this node's metadata.
	metaMu  sync.Mutex
	local   nodeMeta
	encoded []byte

	// mu guards members and removed. Memberlist calls the event methods with its own
	// lock held, so they only update these and never call memberlist.
	mu      sync.Mutex
	members map[string]*Member
	// removed holds the nodes Remove took out of raft, until gossip sees them join
	// again: gossip may still think a node alive that has just died, and the leader
	// must not add it back for that.
	removed map[string]bool
}

// keyringFile is where the gossip keys are kept (mode 0600), primary first.
const keyringFile = "gossip.keyring"

func newGossip(cfg *Config, raftAddr string, log *slog.Logger, onEvent func(MemberEvent), changed func()) (*gossip, error) {
	g := &gossip{
		log:     log.With("component", "gossip"),
		self:    cfg.Name,
		onEvent: onEvent,
		changed: changed,
		keyFile: filepath.Join(cfg.StateDir, keyringFile),
		local:   nodeMeta{Role: cfg.Role, RaftAddr: raftAddr},
		members: map[string]*Member{},
		removed: map[string]bool{},
	}
	enc, err := g.local.encode()
	if err != nil {
		return nil, err
	}
	g.encoded = enc
	if g.keyring, err = loadKeyring(g.keyFile, cfg.GossipKey); err != nil {
		return nil, err
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	bind := netip.MustParseAddrPort(cfg.GossipBind) // checked by Validate
	mc.BindAddr, mc.BindPort = bind.Addr().String(), int(bind.Port())
	mc.AdvertiseAddr, mc.AdvertisePort = "", mc.BindPort
	if cfg.GossipAdvertise != "" {
		adv := netip.MustParseAddrPort(cfg.GossipAdvertise)
		mc.AdvertiseAddr, mc.AdvertisePort = adv.Addr().String(), int(adv.Port())
	}
	t := cfg.Timing
	mc.GossipInterval = t.GossipInterval
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.PushPullInterval = t.PushPullInterval
	mc.Keyring = g.keyring
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = (*gossipDelegate)(g)
	mc.Events = (*gossipEvents)(g)
	mc.Logger = newStdLog(log, "memberlist")
	g.ml, err = memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting gossip on %s: %w", cfg.GossipBind, err)
	}
	// Read once: LocalNode returns memberlist's own record, which UpdateNode rewrites
	// without a lock the reader can take.
	n := g.ml.LocalNode()
	g.address = net.JoinHostPort(n.Addr.String(), fmt.Sprint(n.Port))
	return g, nil
}

// addr is the address other nodes reach this node's gossip at.
func (g *gossip) addr() string { return g.address }

// setMeta publishes new metadata; it fails, keeping the old, if it does not fit.
func (g *gossip) setMeta(update func(*nodeMeta)) error {
	g.metaMu.Lock()
	m := g.local
	update(&m)
	enc, err := m.encode()
	if err == nil {
		g.local, g.encoded = m, enc
	}
	g.metaMu.Unlock()
	if err != nil {
		return err
	}
	// UpdateNode waits until the update has gone to one peer; a timeout is no failure
	// (the update stays queued for gossip), so it is not reported.
	if err := g.ml.UpdateNode(time.Second); err != nil {
		g.log.Debug("metadata update not yet sent", "err", err)
	}
	return nil
}

// snapshot returns copies of the members, sorted by name.
func (g *gossip) snapshot() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (g *gossip) state(name string) (MemberState, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[name]
	if !ok {
		return "", false
	}
	return m.State, true
}

// ping probes a member directly, waiting up to Timing.ProbeTimeout for its answer.
func (g *gossip) ping(name, addr string) error {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	_, err = g.ml.Ping(name, ua)
	return err
}

// markRemoved records that Remove took the node out of raft.
func (g *gossip) markRemoved(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removed[name] = true
}

func (g *gossip) isRemoved(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.removed[name]
}

// event records a memberlist event in the table and passes it on.
func (g *gossip) event(t MemberEventType, n *memberlist.Node) {
	g.mu.Lock()
	m, ok := g.members[n.Name]
	if !ok {
		m = &Member{Name: n.Name}
		g.members[n.Name] = m
	}
	m.GossipAddr = net.JoinHostPort(n.Addr.String(), fmt.Sprint(n.Port))
	if meta, err := decodeNodeMeta(n.Meta); err != nil {
		g.log.Warn("member metadata does not decode", "member", n.Name, "err", err)
	} else {
		m.Role, m.RaftAddr, m.Leaving, m.Meta = meta.Role, meta.RaftAddr, meta.Leaving, meta.Meta
	}
	if t == MemberJoined {
		delete(g.removed, n.Name) // back after a restart: a member again
	}
	switch {
	case t != MemberGone:
		m.State = MemberAlive
	case m.Leaving:
		m.State = MemberLeft
	default:
		m.State = MemberDead
	}
	ev := MemberEvent{Type: t, Member: *m}
	g.mu.Unlock()
	g.log.Debug("member "+t.String(), "member", n.Name, "state", ev.Member.State, "addr", ev.Member.GossipAddr)
	if g.onEvent != nil {
		g.onEvent(ev)
	}
	g.changed()
}

// gossipEvents is memberlist's EventDelegate.
type gossipEvents gossip

func (e *gossipEvents) NotifyJoin(n *memberlist.Node)   { (*gossip)(e).event(MemberJoined, n) }
func (e *gossipEvents) NotifyLeave(n *memberlist.Node)  { (*gossip)(e).event(MemberGone, n) }
func (e *gossipEvents) NotifyUpdate(n *memberlist.Node) { (*gossip)(e).event(MemberUpdated, n) }

// gossipDelegate is memberlist's Delegate: it supplies the metadata; the agent sends
// no messages of its own through gossip.
type gossipDelegate gossip

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	if len(d.encoded) > limit { // cannot happen: encode checks the same limit
		return nil
	}
	return slices.Clone(d.encoded)
}

func (d *gossipDelegate) NotifyMsg([]byte)                           {}
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// KeyInfo describes an installed gossip key without revealing it.
type KeyInfo struct {
	// Fingerprint is the first 8 bytes of the key's SHA-256, in hex.
	Fingerprint string
	// Primary: the key that encrypts what this node sends. Every installed key is
	// tried on what it receives.
	Primary bool
}

func fingerprint(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:8])
}

// loadKeyring builds the keyring from the keyring file if there is one (the key in the
// config is added to it, as a secondary key, if missing), or else from the config's
// key alone, and writes the file.
func loadKeyring(path, configKey string) (*memberlist.Keyring, error) {
	key, err := decodeKey(configKey)
	if err != nil {
		return nil, fmt.Errorf("gossip_key: %w", err)
	}
	keys := [][]byte{key}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var enc []string
		if err := json.Unmarshal(b, &enc); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		keys = keys[:0]
		for i, s := range enc {
			k, err := decodeKey(s)
			if err != nil {
				return nil, fmt.Errorf("reading %s: key %d %w", path, i, err)
			}
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("reading %s: no keys", path)
		}
		if !slices.ContainsFunc(keys, func(k []byte) bool { return string(k) == string(key) }) {
			keys = append(keys, key)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("reading gossip keyring: %w", err)
	}
	kr, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	if err := saveKeyring(path, kr); err != nil {
		return nil, err
	}
	return kr, nil
}

// saveKeyring writes the keys, primary first, to a 0600 file (replaced atomically).
func saveKeyring(path string, kr *memberlist.Keyring) error {
	primary := kr.GetPrimaryKey()
	enc := []string{base64.StdEncoding.EncodeToString(primary)}
	for _, k := range kr.GetKeys() {
		if string(k) != string(primary) {
			enc = append(enc, base64.StdEncoding.EncodeToString(k))
		}
	}
	b, _ := json.Marshal(enc)
	fs := &fileStore{dir: filepath.Dir(path)}
	if err := fs.write(filepath.Base(path), b); err != nil {
		return fmt.Errorf("saving gossip keyring: %w", err)
	}
	return nil
}

// keyOp applies a keyring change and saves the keyring.
func (g *gossip) keyOp(what, b64 string, op func([]byte) error) error {
	k, err := decodeKey(b64)
	if err != nil {
		return fmt.Errorf("%s: key %w", what, err)
	}
	if err := op(k); err != nil {
		return fmt.Errorf("%s %s: %w", what, fingerprint(k), err)
	}
	return saveKeyring(g.keyFile, g.keyring)
}

func (g *gossip) keys() []KeyInfo {
	primary := g.keyring.GetPrimaryKey()
	var out []KeyInfo
	for _, k := range g.keyring.GetKeys() {
		out = append(out, KeyInfo{Fingerprint: fingerprint(k), Primary: string(k) == string(primary)})
	}
	return out
}
