package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// testTiming is fastTiming with some slack for -race on a busy machine.
func testTiming() Timing {
	t := fastTiming()
	t.ProbeInterval = 100 * time.Millisecond
	t.ProbeTimeout = 50 * time.Millisecond
	t.SuspicionMult = 2
	t.RaftHeartbeatTimeout = 300 * time.Millisecond
	t.RaftElectionTimeout = 300 * time.Millisecond
	t.RaftLeaderLease = 150 * time.Millisecond
	return t
}

// harness runs nodes in this process: gossip on 127.0.0.1 with ports the kernel
// picks, raft on raft's InmemTransport (wired here, and cut when a node stops) or,
// with tcp set, on 127.0.0.1.
type harness struct {
	t   *testing.T
	tcp bool
	key string
	dir string

	mu     sync.Mutex
	nodes  map[string]*Cluster
	logs   map[string]*logState
	events map[string]*eventLog
	gossip map[string]string // last gossip address by node name

	// tmu guards trans, the raft transports of the running nodes by node name. It
	// is not mu: a node makes its transport while start holds mu.
	tmu   sync.Mutex
	trans map[string]*raft.InmemTransport
}

func newHarness(t *testing.T, tcp bool) *harness {
	h := &harness{t: t, tcp: tcp, key: testKey, dir: t.TempDir(),
		nodes: map[string]*Cluster{}, logs: map[string]*logState{}, events: map[string]*eventLog{}, trans: map[string]*raft.InmemTransport{}, gossip: map[string]string{}}
	t.Cleanup(func() {
		for name := range h.nodes {
			h.stop(name)
		}
	})
	return h
}

func (h *harness) config(name string) Config {
	bind := "127.0.0.1:0"
	if a, ok := h.gossip[name]; ok {
		bind = a // a restart keeps its gossip address, as a real node does
	}
	return Config{Name: name, StateDir: filepath.Join(h.dir, name), GossipBind: bind,
		RaftBind: "127.0.0.1:0", GossipKey: h.key, Timing: testTiming()}
}

// start starts a node (again, with the same state directory, after stop).
func (h *harness) start(name string, change ...func(*Config, *[]Option)) *Cluster {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	cfg := h.config(name)
	log, logs := newTestLog(h.t)
	events := &eventLog{}
	opts := []Option{WithLogger(log), WithMemberEvents(events.add), func(o *options) { o.segmentSize = 1 << 20 }}
	if !h.tcp {
		opts = append(opts, func(o *options) { o.raftTransport = func() (raft.Transport, error) { return h.transport(name), nil } })
	}
	for _, ch := range change {
		ch(&cfg, &opts)
	}
	c, err := New(cfg, opts...)
	if err != nil {
		h.t.Fatalf("starting %s: %v", name, err)
	}
	h.nodes[name], h.logs[name], h.events[name], h.gossip[name] = c, logs, events, c.GossipAddr()
	return c
}

// transport makes a node's raft transport (at start, and again after RecoverForce)
// and wires it to the other running nodes'.
func (h *harness) transport(name string) *raft.InmemTransport {
	h.tmu.Lock()
	defer h.tmu.Unlock()
	_, trans := raft.NewInmemTransport(raft.ServerAddress("raft-" + name))
	for other, ot := range h.trans {
		if other != name {
			trans.Connect(ot.LocalAddr(), ot)
			ot.Connect(trans.LocalAddr(), trans)
		}
	}
	h.trans[name] = trans
	return trans
}

// stop closes a node as a crash would look to the others: no leave.
func (h *harness) stop(name string) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.nodes[name]
	if c == nil {
		return
	}
	h.tmu.Lock()
	if trans := h.trans[name]; trans != nil {
		for _, ot := range h.trans {
			ot.Disconnect(trans.LocalAddr())
		}
		delete(h.trans, name)
	}
	h.tmu.Unlock()
	if err := c.Close(); err != nil {
		h.t.Errorf("closing %s: %v", name, err)
	}
	delete(h.nodes, name)
}

// eventLog records the member events a node reports.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e MemberEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf("%s %s %s", e.Member.Name, e.Type, e.Member.State))
}

func (l *eventLog) has(event string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e == event {
			return true
		}
	}
	return false
}

func (h *harness) node(name string) *Cluster {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodes[name]
}

// leader waits for one running node to lead and returns it.
func (h *harness) leader() *Cluster {
	h.t.Helper()
	var l *Cluster
	eventually(h.t, 10*time.Second, "a leader", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.nodes {
			if c.r().State() == raft.Leader {
				l = c
				return true
			}
		}
		return false
	})
	return l
}

func (h *harness) followers() []*Cluster {
	l := h.leader()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Cluster
	for _, c := range h.nodes {
		if c != l {
			out = append(out, c)
		}
	}
	return out
}

// form bootstraps the first name and joins the others to it.
func (h *harness) form(names ...string) {
	h.t.Helper()
	first := h.start(names[0])
	if err := first.Bootstrap(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	for _, name := range names[1:] {
		c := h.start(name)
		if err := c.Join(context.Background(), first.GossipAddr()); err != nil {
			h.t.Fatalf("%s joining: %v", name, err)
		}
	}
	h.waitVoters(names...)
}

// waitVoters waits until every running node's raft configuration has exactly these
// voters.
func (h *harness) waitVoters(names ...string) {
	h.t.Helper()
	want := strings.Join(sortedCopy(names), ",")
	eventually(h.t, 10*time.Second, "voters "+want, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.nodes {
			var got []string
			for _, s := range c.Status().Servers {
				if s.Voter {
					got = append(got, s.ID)
				}
			}
			if strings.Join(sortedCopy(got), ",") != want {
				return false
			}
		}
		return true
	})
}

// waitVersion waits until every running node has applied config version v.
func (h *harness) waitVersion(v uint64, doc string) {
	h.t.Helper()
	eventually(h.t, 10*time.Second, fmt.Sprintf("version %d everywhere", v), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.nodes {
			cur, ok := c.Config()
			if !ok || cur.Version != v || string(cur.Document) != doc {
				return false
			}
		}
		return true
	})
}

// apply commits doc as version v on whichever node leads, retrying where a busy
// machine made the leader step down mid-write: BaseVersion makes a retry of a write
// that did commit fail with ErrVersionConflict instead of committing twice.
func (h *harness) apply(v uint64, doc string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	base := v - 1
	for {
		_, err := h.leader().Apply(context.Background(), []byte(doc), Change{BaseVersion: &base})
		if err == nil {
			return
		}
		if errors.Is(err, ErrVersionConflict) {
			if cur, ok := h.leader().Config(); ok && cur.Version == v && string(cur.Document) == doc {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("applying version %d: %v", v, err)
		}
		h.t.Logf("applying version %d: %v; again", v, err)
		time.Sleep(20 * time.Millisecond)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestClusterFormsAndReplicates(t *testing.T) {
	h := newHarness(t, false)
	h.form("a", "b", "c")
	ctx := context.Background()
	leader := h.leader()

	v, err := leader.Apply(ctx, []byte("frontends: []\n"), Change{Author: "ops", Comment: "first"})
	if err != nil || v != 1 {
		t.Fatalf("apply on the leader = %d, %v", v, err)
	}
	h.waitVersion(1, "frontends: []\n")
	if err := leader.PutFiles(ctx, FilesChange{Put: map[string][]byte{"web.key": []byte("KEY")}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "file everywhere", func() bool {
		for _, name := range []string{"a", "b", "c"} {
			p, _ := h.node(name).FilePath("web.key")
			info, err := os.Stat(p)
			b, _ := os.ReadFile(p)
			if err != nil || info.Mode().Perm() != 0o600 || string(b) != "KEY" {
				return false
			}
		}
		return true
	})

	f := h.followers()[0]
	_, err = f.Apply(ctx, []byte("x: 1\n"), Change{})
	var nl *NotLeaderError
	if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) || nl.LeaderID != leader.Name() || nl.LeaderAddr != leader.RaftAddr() {
		t.Errorf("apply on a follower = %v, want ErrNotLeader naming %s at %s", err, leader.Name(), leader.RaftAddr())
	}
	if err := f.Remove(ctx, "a"); !errors.Is(err, ErrNotLeader) && f.Name() != "a" {
		t.Errorf("remove on a follower = %v, want ErrNotLeader", err)
	}

	// A change based on a version that is not the current one is refused.
	seven := uint64(7)
	if _, err := leader.Apply(ctx, []byte("y: 2\n"), Change{BaseVersion: &seven}); !errors.Is(err, ErrVersionConflict) {
		t.Errorf("apply based on version 7 = %v, want ErrVersionConflict", err)
	}

	st := f.Status()
	if st.State != "follower" || st.LeaderID != leader.Name() || st.Term == 0 || st.CommitIndex == 0 || st.ConfigVersion != 1 || len(st.Servers) != 3 {
		t.Errorf("follower status = %+v", st)
	}

	// Metadata goes around through gossip; too much of it is refused.
	meta := Meta{Version: "v9", ConfigVersion: 1, DataplaneUp: true, VRRP: []VRRPState{{"vi_1", "MASTER"}}, Backends: []BackendHealth{{"web", 2, 3}}}
	if err := f.SetMeta(meta); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "metadata seen by the leader", func() bool {
		for _, m := range leader.Members() {
			if m.Name == f.Name() {
				return m.State == MemberAlive && m.Voter && m.Role == RoleVoter && m.Meta.Backends != nil && m.Meta.Version == "v9" && m.Meta.Backends[0] == meta.Backends[0]
			}
		}
		return false
	})
	big := Meta{Version: strings.Repeat("v", 600)}
	if err := f.SetMeta(big); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("SetMeta of 600 bytes = %v, want ErrMetaTooLarge", err)
	}
	if got := len(leader.Members()); got != 3 {
		t.Errorf("leader sees %d members, want 3", got)
	}
	for _, ev := range []string{"a joined alive", "b joined alive", "c joined alive", f.Name() + " updated alive"} {
		if !h.events[leader.Name()].has(ev) {
			t.Errorf("the leader had no event %q: %q", ev, h.events[leader.Name()].events)
		}
	}
}

// TestClusterOverTCPRestartCatchesUp runs raft over TCP on loopback: a follower stops,
// the others commit without it, and the follower, restarted from its state directory
// on a new raft port, shows what it had at once and then catches up.
func TestClusterOverTCPRestartCatchesUp(t *testing.T) {
	h := newHarness(t, true)
	h.form("a", "b", "c")
	ctx := context.Background()
	h.apply(1, "v1")
	h.waitVersion(1, "v1")

	victim := h.followers()[0].Name()
	oldRaft := h.node(victim).RaftAddr()
	h.stop(victim)
	h.apply(2, "v2") // with 2 of 3 voters

	c := h.start(victim)
	if c.RaftAddr() == oldRaft {
		t.Logf("raft port %s reused by chance", oldRaft)
	}
	if cur, ok := c.Config(); !ok || string(cur.Document) != "v1" {
		t.Errorf("restarted node before rejoining has %q, %v; want v1 from its state directory", cur.Document, ok)
	}
	var seeds []string
	for _, name := range []string{"a", "b", "c"} {
		if name != victim {
			seeds = append(seeds, h.node(name).GossipAddr())
		}
	}
	if err := c.Join(ctx, seeds...); err != nil {
		t.Fatal(err)
	}
	h.waitVersion(2, "v2")
	eventually(t, 10*time.Second, "leader knows the new raft address", func() bool {
		for _, s := range h.leader().Status().Servers {
			if s.ID == victim {
				return s.Address == c.RaftAddr()
			}
		}
		return false
	})
}

// TestClusterRestartAllFromDisk stops every node; one restarted alone has its state
// but no quorum; with both back, writes work again.
func TestClusterRestartAllFromDisk(t *testing.T) {
	h := newHarness(t, false)
	h.form("a", "b")
	ctx := context.Background()
	h.apply(1, "v1")
	h.apply(2, "v2")
	h.waitVersion(2, "v2")
	h.stop("a")
	h.stop("b")

	a := h.start("a")
	if cur, ok := a.Config(); !ok || cur.Version != 2 || string(cur.Document) != "v2" {
		t.Errorf("a restarted alone has %+v, %v; want v2", cur, ok)
	}
	if h := a.History(); len(h) != 2 {
		t.Errorf("a's history has %d versions, want 2", len(h))
	}
	_, err := a.Apply(ctx, []byte("v3"), Change{})
	if !errors.Is(err, ErrNoQuorum) || !strings.Contains(err.Error(), "1 of 2 voters reachable") {
		t.Errorf("apply alone = %v, want no quorum: 1 of 2", err)
	}

	b := h.start("b")
	if err := b.Join(ctx, a.GossipAddr()); err != nil {
		t.Fatal(err)
	}
	h.apply(3, "v3")
	h.waitVersion(3, "v3")
}

// TestClusterSnapshotInstall: a node that joins after the log was compacted gets the
// state by snapshot.
func TestClusterSnapshotInstall(t *testing.T) {
	h := newHarness(t, false)
	zero := uint64(0)
	noTrailing := func(_ *Config, opts *[]Option) {
		*opts = append(*opts, func(o *options) { o.trailingLogs = &zero })
	}
	a := h.start("a", noTrailing)
	ctx := context.Background()
	if err := a.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := a.Apply(ctx, fmt.Appendf(nil, "v%d", i), Change{Comment: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.PutFiles(ctx, FilesChange{Put: map[string][]byte{"ca.pem": []byte("CA")}}); err != nil {
		t.Fatal(err)
	}
	if err := a.r().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, err := a.stores.wal.FirstIndex(); err != nil || first == 1 {
		t.Fatalf("log not compacted: first index %d, %v", first, err)
	}
	b := h.start("b")
	if err := b.Join(ctx, a.GossipAddr()); err != nil {
		t.Fatal(err)
	}
	h.waitVersion(5, "v5")
	if got, want := len(b.History()), 5; got != want {
		t.Errorf("b's history has %d versions, want %d", got, want)
	}
	if data, ok := b.File("ca.pem"); !ok || string(data) != "CA" {
		t.Errorf("b's ca.pem = %q, %v", data, ok)
	}
	if !h.logs["b"].contains("Installed remote snapshot") {
		t.Error("b did not install a snapshot")
	}
}

func TestClusterRefusesUnknownEntry(t *testing.T) {
	h := newHarness(t, false)
	h.form("a", "b", "c")
	ctx := context.Background()
	h.apply(1, "v1")
	_, err := h.leader().propose(ctx, []byte{0xee, '{', '}'})
	var ue *UnknownEntryError
	if !errors.Is(err, ErrUnknownEntry) || !errors.As(err, &ue) || ue.Type != 0xee {
		t.Fatalf("unknown entry = %v, want ErrUnknownEntry for type 238", err)
	}
	eventually(t, 10*time.Second, "every node refused it, loudly", func() bool {
		for _, name := range []string{"a", "b", "c"} {
			if h.node(name).Status().RefusedUnknownEntries != 1 || !h.logs[name].contains("ERROR refusing raft entry of unknown type", "type=238") {
				return false
			}
		}
		return true
	})
	h.apply(2, "v2")
	h.waitVersion(2, "v2")
}

// TestClusterTwoVotersQuorumLoss: a pair that loses one node answers writes with
// ErrNoQuorum, in bounded time, whether the survivor led or followed.
func TestClusterTwoVotersQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping with -short: waits for raft to lose and regain a leader, twice (seconds of raft timers)")
	}
	for _, lost := range []string{"follower", "leader"} {
		t.Run(lost, func(t *testing.T) {
			h := newHarness(t, false)
			h.form("a", "b")
			leader, follower := h.leader(), h.followers()[0]
			survivor := leader
			if lost == "follower" {
				h.stop(follower.Name())
			} else {
				survivor = follower
				h.stop(leader.Name())
				eventually(t, 10*time.Second, "the leader is missed", func() bool { return survivor.Status().LeaderID == "" })
			}
			start := time.Now()
			_, err := survivor.Apply(context.Background(), []byte("v1"), Change{})
			took := time.Since(start)
			var qe *QuorumError
			if !errors.Is(err, ErrNoQuorum) || !errors.As(err, &qe) || !strings.HasPrefix(err.Error(), "no quorum: 1 of 2 voters reachable") {
				t.Fatalf("apply = %v, want no quorum: 1 of 2 voters reachable", err)
			}
			if bound := testTiming().ApplyTimeout + time.Second; took > bound {
				t.Errorf("answered after %v, more than %v", took, bound)
			}
			if _, ok := survivor.Config(); ok {
				t.Error("the refused write was applied")
			}
		})
	}
}

func TestClusterLeaveAndRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping with -short: runs membership changes on a four-node cluster (seconds of raft timers)")
	}
	h := newHarness(t, false)
	h.form("a", "b", "c", "d")
	ctx := context.Background()
	fs := h.followers()
	leaving, dead := fs[0], fs[1]

	if err := leaving.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	leavingName := leaving.Name()
	h.stop(leavingName)
	var rest []string
	for _, n := range []string{"a", "b", "c", "d"} {
		if n != leavingName {
			rest = append(rest, n)
		}
	}
	h.waitVoters(rest...)
	eventually(t, 10*time.Second, "the leader sees it left", func() bool {
		for _, m := range h.leader().Members() {
			if m.Name == leavingName {
				return m.State == MemberLeft && !m.Voter
			}
		}
		return false
	})

	if ev := leavingName + " gone left"; !h.events[h.leader().Name()].has(ev) {
		t.Errorf("no event %q", ev)
	}

	deadName := dead.Name()
	h.stop(deadName)
	if err := h.leader().Remove(ctx, deadName); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "gossip finds the stopped node dead", func() bool {
		return h.events[h.leader().Name()].has(deadName + " gone dead")
	})
	var left []string
	for _, n := range rest {
		if n != deadName {
			left = append(left, n)
		}
	}
	h.waitVoters(left...)
	if err := h.leader().Remove(ctx, "nobody"); err == nil {
		t.Error("removing an unknown node succeeded")
	}
	h.apply(1, "after") // with 2 of 2 voters

	// The leader leaves too; the last node leads alone and cannot leave.
	l := h.leader()
	if err := l.Leave(ctx); err != nil {
		t.Fatalf("the leader leaving: %v", err)
	}
	h.stop(l.Name())
	last := h.leader()
	h.waitVoters(last.Name())
	h.apply(2, "alone")
	if err := last.Leave(ctx); err == nil || !strings.Contains(err.Error(), "only member") {
		t.Errorf("the last node leaving = %v", err)
	}
}

func TestGossipWrongKeyRefused(t *testing.T) {
	h := newHarness(t, false)
	h.form("a")
	a := h.node("a")

	other := base64.StdEncoding.EncodeToString([]byte("another key of 32 bytes, really!"))
	d := h.start("d", func(c *Config, _ *[]Option) { c.GossipKey = other })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := d.Join(ctx, a.GossipAddr()); err == nil {
		t.Fatal("a node with another key joined")
	}

	// A node with no key at all (plain memberlist) is refused too.
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "plain", "127.0.0.1", 0
	mc.Logger = newStdLog(slog.New(slog.DiscardHandler), "memberlist")
	plain, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown()
	if n, err := plain.Join([]string{a.GossipAddr()}); err == nil && n > 0 {
		t.Error("a node without the key joined")
	}
	for _, m := range a.Members() {
		if m.Name != "a" {
			t.Errorf("a sees member %s", m.Name)
		}
	}
	if len(a.Status().Servers) != 1 {
		t.Errorf("raft servers = %+v", a.Status().Servers)
	}
}

func TestGossipKeyRotation(t *testing.T) {
	h := newHarness(t, false)
	h.form("a", "b")
	k1 := testKey
	k2 := base64.StdEncoding.EncodeToString([]byte("the second key, 32 bytes long..."))
	for _, step := range []func(*Cluster) error{
		func(c *Cluster) error { return c.InstallKey(k2) },
		func(c *Cluster) error { return c.UseKey(k2) },
		func(c *Cluster) error { return c.RemoveKey(k1) },
	} {
		for _, name := range []string{"a", "b"} {
			if err := step(h.node(name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys := h.node("a").Keys()
	if len(keys) != 1 || !keys[0].Primary || keys[0].Fingerprint == "" || strings.Contains(keys[0].Fingerprint, k2) {
		t.Errorf("keys after rotation = %+v", keys)
	}
	if err := h.node("a").RemoveKey(k2); err == nil {
		t.Error("removed the key in use")
	}
	p := filepath.Join(h.dir, "a", keyringFile)
	if info, err := os.Stat(p); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("keyring file: %v, %v", info, err)
	}
	if b, _ := os.ReadFile(p); strings.Contains(string(b), k1) || !strings.Contains(string(b), k2) {
		t.Errorf("keyring file holds %s", b)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	old := h.start("old") // has only k1
	if err := old.Join(ctx, h.node("a").GossipAddr()); err == nil {
		t.Error("a node with the removed key joined")
	}
	h.key = k2
	c := h.start("c")
	if err := c.Join(context.Background(), h.node("a").GossipAddr()); err != nil {
		t.Fatalf("a node with the new key: %v", err)
	}
	h.stop("old")
	h.waitVoters("a", "b", "c")
}

// TestClusterRecoverForce: a pair that lost a node for good is shrunk to the survivor,
// which then commits alone; the lost node, back, is added again and catches up.
func TestClusterRecoverForce(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping with -short: loses a majority and recovers it, twice (seconds of raft timers)")
	}
	for _, lost := range []string{"follower", "leader"} {
		t.Run(lost, func(t *testing.T) {
			h := newHarness(t, false)
			h.form("a", "b")
			ctx := context.Background()
			h.apply(1, "v1")
			survivor, gone := h.leader(), h.followers()[0]
			if lost == "leader" {
				survivor, gone = gone, survivor
			}
			if _, err := survivor.RecoverForce(ctx); err == nil {
				t.Fatal("recover with a leader succeeded")
			}
			h.stop(gone.Name())
			eventually(t, 10*time.Second, "no leader, and gossip finds the lost node dead", func() bool {
				if survivor.Status().LeaderID != "" {
					return false
				}
				st, ok := survivor.gossip.state(gone.Name())
				return ok && st == MemberDead
			})
			if _, err := survivor.Apply(ctx, []byte("v2"), Change{}); !errors.Is(err, ErrNoQuorum) {
				t.Fatalf("apply before recover = %v, want ErrNoQuorum", err)
			}

			got, err := survivor.RecoverForce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != survivor.Name() {
				t.Errorf("survivors = %v, want [%s]", got, survivor.Name())
			}
			h.waitVoters(survivor.Name())
			h.apply(2, "v2")
			if cur, _ := survivor.Config(); cur.Version != 2 || len(survivor.History()) != 2 {
				t.Errorf("after recover: version %d, %d kept", cur.Version, len(survivor.History()))
			}

			back := h.start(gone.Name())
			if err := back.Join(ctx, survivor.GossipAddr()); err != nil {
				t.Fatal(err)
			}
			h.waitVoters("a", "b")
			h.waitVersion(2, "v2")
		})
	}
}
