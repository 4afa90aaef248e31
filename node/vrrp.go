package node

// VRRP: the node's side of package vip. The cluster-wide document's vrrp: section
// (vip.Config) says which virtual routers exist; the node: section's vrrp: says what
// belongs to this machine (its interface, its priority, its unicast source and peers),
// and is merged into the instances before they are validated and run. The node feeds
// the manager its link states (netlink) and two kinds of tracked checks: "dataplane"
// (every frontend's listener accepts a connection) and "backend:NAME" (the share of the
// backend's servers that are up and enabled).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lbd/dataplane"
	"lbd/vip"
)

// VRRPNode is the node: section's vrrp: what belongs to this machine in every VRRP
// instance. Each key overrides or fills in the instances of the cluster-wide vrrp:
// section on this node only.
type VRRPNode struct {
	// Interface is the interface of every instance that does not name its own.
	// Default: none.
	Interface string `yaml:"interface"`
	// Priority is this node's priority, 1-255, in every instance (it overrides the
	// instance's). Default: the instance's priority.
	Priority int `yaml:"priority"`
	// Priorities are per-instance priorities on this node, 1-255, by instance name;
	// they override Priority and the instance's. Default: none.
	Priorities map[string]int `yaml:"priorities"`
	// UnicastSource is the unicast source of every instance that does not set its own.
	// Default: none.
	UnicastSource string `yaml:"unicast_source"`
	// UnicastPeers are the unicast peers of every instance that does not list its own;
	// none means multicast. Default: none.
	UnicastPeers []string `yaml:"unicast_peers"`
	// LivenessPort is the TCP port of the liveness side channel (node/liveness.go),
	// listened on on the instances' source addresses (not the VIPs) while the node runs
	// VRRP instances, for VRRP peers only; a backup
	// connects to its master's port and takes over after Skew_Time when the master's
	// kernel closes the connection (its lbd process died). 0 disables both sides. Read
	// when VRRP starts. Default: 7948 (DefaultLivenessPort).
	LivenessPort *int `yaml:"liveness_port"`
	// LivenessInterval is the heartbeat interval a backup asks its master for over the
	// liveness connection: 10ms-10s, or 0s for none (a crash is still seen by the closed
	// connection). Default: a quarter of the master's advert interval, at least 10ms
	// and at most 50ms (25ms at 100ms, 50ms at 1s).
	LivenessInterval *time.Duration `yaml:"liveness_interval"`
	// LivenessKey is the secret every node of the cluster shares to authenticate the
	// liveness connections (an HMAC-SHA256 handshake with nonces from both sides, and a
	// MAC and sequence number on every heartbeat), at least 16 bytes. With it, only an
	// authenticated bye or heartbeats that stop count as the master's death, not a FIN
	// or a reset. Read when VRRP starts. Default: none (unauthenticated).
	LivenessKey string `yaml:"liveness_key"`
	// LivenessMultiplier is how many heartbeat intervals without a heartbeat make a
	// backup take the master for gone (then it takes over after Skew_Time), 2-100.
	// Default: 4 (DefaultLivenessMultiplier).
	LivenessMultiplier int `yaml:"liveness_multiplier"`
}

// setDefaults fills node.vrrp's unset fields.
func (v *VRRPNode) setDefaults() {
	if v.LivenessPort == nil {
		p := DefaultLivenessPort
		v.LivenessPort = &p
	}
	if v.LivenessMultiplier == 0 {
		v.LivenessMultiplier = DefaultLivenessMultiplier
	}
}

// Check names the node reports to the VIP manager (vip.TrackCheck.Name).
const (
	// CheckDataplane is 1 while every frontend's listener accepts connections.
	CheckDataplane = "dataplane"
	// CheckBackendPrefix + a backend's name is the share of its servers that are up
	// and enabled.
	CheckBackendPrefix = "backend:"
)

// probeTimeout bounds one frontend probe of the "dataplane" check.
const probeTimeout = time.Second

// VIPConfig returns the vrrp: section with this node's node.vrrp settings merged into
// every instance: what the VIP manager runs.
func (c *Config) VIPConfig() vip.Config {
	out, _ := c.mergeVRRP()
	return out
}

// mergeVRRP merges node.vrrp into a copy of the instances. origin maps the path of every
// field that took its value from node.vrrp ("instances[0].priority") to the node: path
// it came from ("node.vrrp.priorities.web"), so that a problem with it is reported
// where it was written.
func (c *Config) mergeVRRP() (vip.Config, map[string]string) {
	nv := c.Node.VRRP
	out := vip.Config{SyncGroups: slices.Clone(c.VRRP.SyncGroups)}
	origin := map[string]string{}
	for i, in := range c.VRRP.Instances {
		p := fmt.Sprintf("instances[%d]", i)
		if in.Interface == "" && nv.Interface != "" {
			in.Interface = nv.Interface
			origin[p+".interface"] = "node.vrrp.interface"
		}
		if pr, ok := nv.Priorities[in.Name]; ok {
			in.Priority = pr
			origin[p+".priority"] = "node.vrrp.priorities." + in.Name
		} else if nv.Priority != 0 {
			in.Priority = nv.Priority
			origin[p+".priority"] = "node.vrrp.priority"
		}
		if in.UnicastSource == "" && nv.UnicastSource != "" {
			in.UnicastSource = nv.UnicastSource
			origin[p+".unicast_source"] = "node.vrrp.unicast_source"
		}
		if len(in.UnicastPeers) == 0 && len(nv.UnicastPeers) > 0 {
			in.UnicastPeers = slices.Clone(nv.UnicastPeers)
			origin[p+".unicast_peers"] = "node.vrrp.unicast_peers"
		}
		if in.Preempt != nil {
			v := *in.Preempt
			in.Preempt = &v
		}
		if in.CheckUnicastSource != nil {
			v := *in.CheckUnicastSource
			in.CheckUnicastSource = &v
		}
		out.Instances = append(out.Instances, in)
	}
	return out, origin
}

// validateVRRP checks node.vrrp and the vrrp: section with node.vrrp merged in. A problem
// with a value that came from node.vrrp is reported at its node.vrrp path, naming the
// instance.
func (c *Config) validateVRRP() []error {
	var errs []error
	direct := map[string]bool{}
	add := func(path, format string, args ...any) {
		direct[path] = true
		errs = append(errs, &dataplane.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	nv := c.Node.VRRP
	if nv.Priority != 0 && (nv.Priority < 1 || nv.Priority > vip.OwnerPriority) {
		add("node.vrrp.priority", "(%d) must be 1-255", nv.Priority)
	}
	names := map[string]bool{}
	for _, in := range c.VRRP.Instances {
		names[in.Name] = true
	}
	for _, name := range sortedKeys(nv.Priorities) {
		p := "node.vrrp.priorities." + name
		if pr := nv.Priorities[name]; pr < 1 || pr > vip.OwnerPriority {
			add(p, "(%d) must be 1-255", pr)
		}
		if !names[name] {
			add(p, "no vrrp instance named %q", name)
		}
	}
	if p := nv.LivenessPort; p != nil && (*p < 0 || *p > 65535) {
		add("node.vrrp.liveness_port", "(%d) must be 0-65535 (0 disables)", *p)
	}
	if iv := nv.LivenessInterval; iv != nil && *iv != 0 && (*iv < MinLivenessInterval || *iv > MaxLivenessInterval) {
		add("node.vrrp.liveness_interval", "(%v) must be %v-%v, or 0s for no heartbeats", *iv, MinLivenessInterval, MaxLivenessInterval)
	}
	if k := nv.LivenessKey; k != "" && len(k) < 16 {
		add("node.vrrp.liveness_key", "(%d bytes) must be at least 16 bytes", len(k))
	}
	if m := nv.LivenessMultiplier; m != 0 && (m < 2 || m > 100) {
		add("node.vrrp.liveness_multiplier", "(%d) must be 2-100", m)
	}
	if nv.UnicastSource != "" {
		if _, err := netip.ParseAddr(nv.UnicastSource); err != nil {
			add("node.vrrp.unicast_source", "(%q) is not an IP address", nv.UnicastSource)
		}
	}
	for i, s := range nv.UnicastPeers {
		if _, err := netip.ParseAddr(s); err != nil {
			add(fmt.Sprintf("node.vrrp.unicast_peers[%d]", i), "(%q) is not an IP address", s)
		}
	}

	merged, origin := c.mergeVRRP()
	merged.SetDefaults()
	seen := map[string]bool{}
	for _, err := range leafErrors(merged.Validate()) {
		var fe *vip.FieldError
		if !errors.As(err, &fe) {
			errs = append(errs, err)
			continue
		}
		path, msg := "vrrp."+fe.Path, fe.Msg
		if from, rest, ok := mergedFrom(origin, fe.Path); ok {
			path = from + rest
			msg += fmt.Sprintf(" (in vrrp instance %q)", instanceName(merged, fe.Path))
		} else if strings.HasSuffix(fe.Path, ".interface") && fe.Msg == "is required" {
			msg = "is required (here, or for every instance in node.vrrp.interface)"
		}
		if direct[path] || seen[path+"\x00"+msg] {
			continue
		}
		seen[path+"\x00"+msg] = true
		errs = append(errs, &dataplane.FieldError{Path: path, Msg: msg})
	}

	// The checks the node reports: anything else would never be reported and would
	// silently count as healthy.
	backends := map[string]bool{}
	for _, b := range c.Backends {
		backends[b.Name] = true
	}
	for i, in := range c.VRRP.Instances {
		for j, tc := range in.TrackChecks {
			p := fmt.Sprintf("vrrp.instances[%d].track_checks[%d].name", i, j)
			switch b, isBackend := strings.CutPrefix(tc.Name, CheckBackendPrefix); {
			case tc.Name == "" || tc.Name == CheckDataplane:
			case isBackend && backends[b]:
			case isBackend:
				add(p, "no backend named %q", b)
			default:
				add(p, "(%q) must be %q or \"backend:NAME\"", tc.Name, CheckDataplane)
			}
		}
	}
	return errs
}

// mergedFrom finds the node.vrrp origin of path or of one of its parents, returning it
// and the rest of path below that parent ("[1]" for a unicast peer).
func mergedFrom(origin map[string]string, path string) (from, rest string, ok bool) {
	for p := path; p != ""; p = parentPath(p) {
		if from, ok := origin[p]; ok {
			return from, path[len(p):], true
		}
	}
	return "", "", false
}

// instanceName returns the name of the instance a vip path ("instances[2]...") is in.
func instanceName(c vip.Config, path string) string {
	var i int
	if _, err := fmt.Sscanf(path, "instances[%d]", &i); err == nil && i >= 0 && i < len(c.Instances) {
		return c.Instances[i].Name
	}
	return ""
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// vrrpState is the node's VIP manager and the goroutines that feed it.
type vrrpState struct {
	// mu guards every field.
	mu     sync.Mutex
	mgr    *vip.Manager
	cancel context.CancelFunc // stops the goroutines below
	wg     sync.WaitGroup     // the health loop and the link watcher
	// interval is the health loop's period, from the config's advert intervals.
	interval time.Duration
	// links are the interfaces the instances run on and track.
	links map[string]bool
	// levels are the checks last reported, to log their changes.
	levels map[string]float64
	// deps builds the manager's kernel; nil means Linux (linuxVIPDeps). Tests set fakes.
	deps func() vip.Deps
	// watchLinks makes the node watch links through netlink; tests leave it off.
	watchLinks bool
	// liveness is the liveness listener (liveness.go); nil when disabled.
	liveness *livenessListener
}

// manager returns the VIP manager, or nil when the node runs no VRRP.
func (n *Node) manager() *vip.Manager {
	n.vrrp.mu.Lock()
	defer n.vrrp.mu.Unlock()
	return n.vrrp.mgr
}

// linuxVIPDeps is the VIP manager on the real kernel.
func (n *Node) linuxVIPDeps() vip.Deps {
	return vip.Deps{
		Transport: func(in vip.Instance) (vip.Transport, error) {
			var src netip.Addr
			if in.UnicastSource != "" {
				src, _ = netip.ParseAddr(in.UnicastSource) // validated
			}
			return vip.NewTransport(vip.TransportOptions{
				Interface: in.Interface, Family: in.Family(), UnicastPeers: in.Peers(),
				Source: src, Multicast: len(in.UnicastPeers) == 0,
			})
		},
		Addresses: vip.NewAddresses(),
		Announcer: vip.NewAnnouncer(),
		Logger:    n.log.With("part", "vrrp"),
		LinkState: vip.LinkUp,
		Clock:     n.clock,
	}
}

// prepareVRRP checks, before the dataplane binds anything, that this process can run
// the configured VRRP instances: it needs raw sockets (CAP_NET_RAW), and sets
// net.ipv4/ipv6.ip_nonlocal_bind so that every node can bind the frontends on the VIPs.
// A config without instances needs nothing.
func (n *Node) prepareVRRP(cfg *Config) error {
	if len(cfg.VRRP.Instances) == 0 {
		return nil
	}
	n.vrrp.mu.Lock()
	fake := n.vrrp.deps != nil
	n.vrrp.mu.Unlock()
	if fake {
		return nil
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, 112)
	if err != nil {
		return fmt.Errorf("vrrp: %d instance(s) configured, but lbd cannot open a raw VRRP socket "+
			"(run it as root, or with CAP_NET_RAW and CAP_NET_ADMIN): %w", len(cfg.VRRP.Instances), err)
	}
	syscall.Close(fd)
	if err := vip.EnableNonlocalBind(); err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	return nil
}

// applyVRRP runs cfg's VRRP instances: it starts the manager the first time the config
// has instances, and afterwards applies each new config to it (an unchanged instance
// keeps running and its VIP does not move; a config without instances stops them all).
func (n *Node) applyVRRP(ctx context.Context, cfg *Config) error {
	vc := cfg.VIPConfig()
	n.vrrp.mu.Lock()
	n.vrrp.interval = probeInterval(vc)
	n.vrrp.links = map[string]bool{}
	for _, in := range vc.Instances {
		n.vrrp.links[in.Interface] = true
		for _, ti := range in.TrackInterfaces {
			n.vrrp.links[ti.Name] = true
		}
	}
	m := n.vrrp.mgr
	n.vrrp.mu.Unlock()
	if m != nil {
		return m.Apply(ctx, vc)
	}
	if len(vc.Instances) == 0 {
		return nil
	}
	n.vrrp.mu.Lock()
	depsFn := n.vrrp.deps
	n.vrrp.mu.Unlock()
	deps := vip.Deps{}
	if depsFn != nil {
		deps = depsFn()
	} else {
		deps = n.linuxVIPDeps()
	}
	// Every address added is recorded in the state directory for `lbd release`
	// (viprecord.go); what a previous run left there (a crash) is removed first.
	rec, left := openVIPRecord(filepath.Join(cfg.Node.StateDir, VIPRecordFile), n.log.With("part", "vrrp"))
	deps.Addresses = recordingAddresses{Addresses: deps.Addresses, rec: rec}
	for _, e := range left {
		if err := deps.Addresses.Remove(e.Interface, e.Prefix); err != nil {
			n.log.Warn("removing an address a previous run added", "interface", e.Interface, "address", e.Prefix, "err", err)
		} else {
			n.log.Info("removed an address a previous run added", "interface", e.Interface, "address", e.Prefix)
		}
	}
	m, err := vip.New(vc, deps)
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	// The checks are known before the instances start, so that none advertises a
	// priority its node cannot serve.
	n.reportChecks(ctx, m)
	if err := m.Start(); err != nil {
		m.Close(ctx)
		return fmt.Errorf("vrrp: %w", err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	var live *livenessListener
	port := 0
	if p := cfg.Node.VRRP.LivenessPort; p != nil && depsFn == nil {
		// Only on the real kernel: with fake deps (tests) there are no peers.
		port = *p
	}
	var key []byte
	if k := cfg.Node.VRRP.LivenessKey; k != "" {
		key = []byte(k)
	}
	if port != 0 {
		if key == nil {
			n.log.Warn("vrrp liveness port: node.vrrp.liveness_key is not set: the port takes unauthenticated " +
				"connections from the VRRP peers, and a forged reset on the path counts as the master's death")
		}
		lo := livenessOptions{port: port, addrs: vipSources(m), allow: n.livenessPeer, key: key, log: n.log.With("part", "vrrp")}
		if live, err = listenLiveness(lo); err != nil {
			// Not fatal: the backups fall back to VRRP silence.
			n.log.Warn("vrrp liveness port: cannot listen; a crash of this node is seen after 3 advert intervals",
				"port", port, "err", err)
		}
	}
	n.vrrp.mu.Lock()
	n.vrrp.mgr, n.vrrp.cancel, n.vrrp.liveness = m, cancel, live
	if port != 0 {
		nv := cfg.Node.VRRP
		d := &livenessDialer{port: port, log: n.log.With("part", "vrrp"), poll: livenessPoll,
			multiplier: nv.LivenessMultiplier, key: key,
			masters: func() []livenessTarget { return vipMasters(m, nv.LivenessInterval) },
			gone:    m.PeerGone}
		n.vrrp.wg.Go(func() { d.run(loopCtx) })
	}
	watch := n.vrrp.watchLinks || depsFn == nil
	n.vrrp.wg.Add(1)
	go func() {
		defer n.vrrp.wg.Done()
		n.healthLoop(loopCtx, m)
	}()
	if watch {
		n.vrrp.wg.Add(1)
		go func() {
			defer n.vrrp.wg.Done()
			n.watchLinks(loopCtx, m)
		}()
	}
	n.vrrp.mu.Unlock()
	n.log.Info("vrrp started", "instances", len(vc.Instances))
	return nil
}

// stopVRRP stops the feeding goroutines and closes the manager: each master sends
// priority 0 and removes its addresses.
func (n *Node) stopVRRP(ctx context.Context) error {
	n.vrrp.mu.Lock()
	m, cancel := n.vrrp.mgr, n.vrrp.cancel
	n.vrrp.mu.Unlock()
	if m == nil {
		return nil
	}
	cancel()
	n.vrrp.wg.Wait()
	n.handOver(ctx, m)
	err := m.Close(ctx)
	// Last: the backups must hear the priority 0 before the liveness FIN.
	n.vrrp.mu.Lock()
	live := n.vrrp.liveness
	n.vrrp.liveness = nil
	n.vrrp.mu.Unlock()
	if live != nil {
		live.Close()
	}
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	return nil
}

// handOver is the planned part of a stop: every instance this node is master of hands
// over as `lbctl vip move` does (priority 0, the addresses kept) and the node waits until
// the new masters have announced themselves, so that clients lose nothing, or until 3
// advert intervals have passed (no backup answered) or ctx is done. Close then removes
// the addresses.
func (n *Node) handOver(ctx context.Context, m *vip.Manager) {
	var wait time.Duration
	intervals := map[string]time.Duration{}
	n.mu.Lock()
	if n.cfg != nil {
		for _, in := range n.cfg.VIPConfig().Instances {
			intervals[in.Name] = in.AdvertInterval
		}
	}
	n.mu.Unlock()
	moved := 0
	for _, st := range m.Status() {
		if st.State != vip.Master || st.Holding {
			continue
		}
		if err := m.Move(st.Name); err != nil {
			continue // no longer master (a sync group member moved it), or closed
		}
		moved++
		wait = max(wait, 3*cmp.Or(intervals[st.Name], vip.DefaultAdvertInterval))
	}
	if moved == 0 {
		return
	}
	n.log.Info("handing the VIPs over before stopping", "instances", moved, "wait_at_most", wait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		holding := false
		for _, st := range m.Status() {
			holding = holding || st.Holding
		}
		if !holding {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			n.log.Warn("no new master announced itself; removing the VIPs anyway", "waited", wait)
			return
		case <-tick.C:
		}
	}
}

// probeInterval is how often the node reports its checks: twice the shortest advert
// interval, at most 1s and at least 100ms.
func probeInterval(c vip.Config) time.Duration {
	d := time.Second
	for _, in := range c.Instances {
		iv := in.AdvertInterval
		if iv == 0 {
			iv = vip.DefaultAdvertInterval
		}
		d = min(d, 2*iv)
	}
	return max(d, 100*time.Millisecond)
}

// healthLoop reports the checks every probe interval until ctx is done.
func (n *Node) healthLoop(ctx context.Context, m *vip.Manager) {
	for {
		n.vrrp.mu.Lock()
		d := n.vrrp.interval
		n.vrrp.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		n.reportChecks(ctx, m)
	}
}

// watchLinks reports link changes from netlink as they happen (a link down releases the
// VIP at once instead of at the next poll); it re-subscribes after an error.
func (n *Node) watchLinks(ctx context.Context, m *vip.Manager) {
	for {
		err := vip.WatchLinks(ctx, func(ifname string, index int, up bool) {
			n.vrrp.mu.Lock()
			tracked := n.vrrp.links[ifname]
			n.vrrp.mu.Unlock()
			if tracked {
				m.SetLinkIndex(ifname, index)
				m.SetLink(ifname, up)
			}
		})
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("watching links failed; retrying in 1s (links are polled meanwhile)", "err", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// checkSink is what the checks are reported to: the VIP manager.
type checkSink interface {
	SetCheck(name string, level float64)
}

// reportChecks computes the checks and reports them to m, logging each change.
func (n *Node) reportChecks(ctx context.Context, m checkSink) {
	st := n.dp.Status()
	levels := backendLevels(st)
	levels[CheckDataplane] = n.dataplaneLevel(ctx, st)
	if ctx.Err() != nil {
		// The node is stopping (stopVRRP cancelled ctx): probes cut short by it say
		// nothing about the dataplane, and a 0 reported now would put the instances
		// tracking it in FAULT before the priority-0 handover runs.
		return
	}
	n.vrrp.mu.Lock()
	if n.vrrp.levels == nil {
		n.vrrp.levels = map[string]float64{}
	}
	for _, name := range sortedKeys(levels) {
		l := levels[name]
		if prev, ok := n.vrrp.levels[name]; !ok || prev != l {
			n.log.Info("vrrp tracked check", "check", name, "level", l)
			n.vrrp.levels[name] = l
		}
	}
	n.vrrp.mu.Unlock()
	for _, name := range sortedKeys(levels) {
		m.SetCheck(name, levels[name])
	}
}

// backendLevels returns "backend:NAME" → the share of the backend's servers that are up
// and enabled (0 for a backend without servers).
func backendLevels(st dataplane.Status) map[string]float64 {
	out := map[string]float64{}
	for _, b := range st.Backends {
		good := 0
		for _, s := range b.Servers {
			if s.Up && s.State == dataplane.StateEnabled {
				good++
			}
		}
		l := 0.0
		if len(b.Servers) > 0 {
			l = float64(good) / float64(len(b.Servers))
		}
		out[CheckBackendPrefix+b.Name] = l
	}
	return out
}

// dataplaneLevel is 1 when every frontend's listener is open and every TCP and HTTP
// listener accepts a connection within probeTimeout, 0 otherwise.
func (n *Node) dataplaneLevel(ctx context.Context, st dataplane.Status) float64 {
	local := localAddrs()
	var wg sync.WaitGroup
	results := make([]error, len(st.Frontends))
	for i, f := range st.Frontends {
		addr := n.dp.Addr(f.Name)
		if addr == nil {
			results[i] = fmt.Errorf("frontend %s has no listener", f.Name)
			continue
		}
		if f.Mode == "udp" {
			continue // an open socket is all there is to check
		}
		wg.Go(func() { results[i] = probeListener(ctx, addr, local) })
	}
	wg.Wait()
	if err := errors.Join(results...); err != nil {
		n.log.Debug("dataplane check failed", "err", err)
		return 0
	}
	return 1
}

// localAddrs returns the addresses of this host's interfaces; nil when unknown.
func localAddrs() map[netip.Addr]bool {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := map[netip.Addr]bool{}
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap()] = true
		}
	}
	return out
}

// probeListener connects to a listener: on loopback when it listens on every address,
// on its own address when this host has it. A listener on an address the host does not
// have (a VIP held by another node, bound thanks to ip_nonlocal_bind) is open, which is
// all a probe could learn: a connection to it would leave the host.
func probeListener(ctx context.Context, addr net.Addr, local map[netip.Addr]bool) error {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return fmt.Errorf("probing %s: %w", addr, err)
	}
	ip := ap.Addr().Unmap()
	switch {
	case ip.IsUnspecified() && ip.Is4():
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case ip.IsUnspecified():
		ip = netip.IPv6Loopback()
	case local != nil && !local[ip] && !ip.IsLoopback():
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, ap.Port()).String())
	if err != nil {
		return fmt.Errorf("probing %s: %w", addr, err)
	}
	return c.Close()
}

// vrrpCollector exports the VIP manager's status as metrics.
type vrrpCollector struct {
	n *Node

	state, priority, transitions, sent, received, dropped *prometheus.Desc
}

func newVRRPCollector(n *Node) *vrrpCollector {
	return &vrrpCollector{
		n: n,
		state: prometheus.NewDesc("lbd_vrrp_state",
			"1 for the state each VRRP instance is in (INIT, BACKUP, MASTER, FAULT), 0 for the others.",
			[]string{"instance", "state"}, nil),
		priority: prometheus.NewDesc("lbd_vrrp_priority",
			"The priority each VRRP instance advertises now (its configured priority adjusted by tracking).",
			[]string{"instance"}, nil),
		transitions: prometheus.NewDesc("lbd_vrrp_transitions_total",
			"State changes of each VRRP instance since it started.", []string{"instance"}, nil),
		sent: prometheus.NewDesc("lbd_vrrp_adverts_sent_total",
			"VRRP advertisements sent by each instance since it started.", []string{"instance"}, nil),
		received: prometheus.NewDesc("lbd_vrrp_adverts_received_total",
			"VRRP advertisements each instance accepted since it started.", []string{"instance"}, nil),
		dropped: prometheus.NewDesc("lbd_vrrp_dropped_total",
			"Received VRRP packets each instance dropped, by reason.", []string{"instance", "reason"}, nil),
	}
}

// vrrpStates are the values of the state label.
var vrrpStates = []vip.State{vip.Initialize, vip.Backup, vip.Master, vip.Fault}

func (c *vrrpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.priority, c.transitions, c.sent, c.received, c.dropped} {
		ch <- d
	}
}

func (c *vrrpCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.n.manager()
	if m == nil {
		return
	}
	for _, st := range m.Status() {
		for _, s := range vrrpStates {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, st.Name, s.String())
		}
		ch <- prometheus.MustNewConstMetric(c.priority, prometheus.GaugeValue, float64(st.Priority), st.Name)
		ch <- prometheus.MustNewConstMetric(c.transitions, prometheus.CounterValue, float64(st.Transitions), st.Name)
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(st.AdvertsSent), st.Name)
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(st.AdvertsReceived), st.Name)
		for _, r := range sortedKeys(st.Dropped) {
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.Dropped[r]), st.Name, string(r))
		}
	}
}
