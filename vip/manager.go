package vip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"lbd/internal/clock"
)

// Sentinel errors of the Manager.
var (
	// ErrUnknownInstance: no instance has that name.
	ErrUnknownInstance = errors.New("no such vrrp instance")
	// ErrNotMaster: Move asked an instance that is not master here.
	ErrNotMaster = errors.New("not master")
	// ErrClosed: the manager is closed.
	ErrClosed = errors.New("vip manager closed")
)

// Deps are what a Manager runs with: the kernel (or fakes), the clock and the logger.
type Deps struct {
	// Transport opens the VRRP transport of an instance. Required. On Linux:
	//
	//	func(in vip.Instance) (vip.Transport, error) {
	//		src, _ := netip.ParseAddr(in.UnicastSource)
	//		return vip.NewTransport(vip.TransportOptions{Interface: in.Interface,
	//			Family: in.Family(), UnicastPeers: in.Peers(), Source: src,
	//			Multicast: len(in.UnicastPeers) == 0})
	//	}
	Transport func(in Instance) (Transport, error)
	// Addresses adds and removes the virtual addresses. Required (NewAddresses).
	Addresses Addresses
	// Announcer sends gratuitous ARP / unsolicited NA. Required (NewAnnouncer).
	Announcer Announcer
	// Clock drives every timer: the VRRP timers, the announcement bursts, the track
	// script intervals and timeouts, the notify timeouts and the link polling. Default:
	// clock.System().
	Clock clock.Clock
	// Logger receives the manager's log. Default: discard.
	Logger *slog.Logger
	// LinkState reads an interface's link state (LinkUp), polled every LinkPoll for
	// the instances' interfaces and their track_interfaces. Default: none (only
	// SetLink reports links; a netlink watcher such as WatchLinks should call it).
	LinkState func(ifname string) (up bool, err error)
	// LinkPoll is the polling interval of LinkState. Default: 1s.
	LinkPoll time.Duration
	// Run runs track and notify scripts. Default: as ExecRunner, as the config's
	// ScriptUser.
	Run Runner
}

// Manager runs the VRRP instances of one node. Its methods are safe for concurrent use.
type Manager struct {
	deps Deps
	log  *slog.Logger

	// opMu serializes Start, Apply and Close.
	opMu sync.Mutex

	// mu guards the fields below.
	mu        sync.Mutex
	cfg       Config
	instances map[string]*instance
	group     map[string]string   // instance name → its sync group
	links     map[string]bool     // interface → link up, as last reported
	checks    map[string]float64  // check → level, as last reported
	ownTrack  map[string]ownTrack // instance name → what its own tracking says
	// memberState is the last state (as notify names it) of each running member of a
	// sync group; groupState each group's, as its notify last saw it.
	memberState map[string]string
	groupState  map[string]string
	groupNotify map[string]*notifier // sync group → its notify queue
	// scriptUser is who the default runner runs scripts as (nil with an injected Run).
	scriptUser atomic.Pointer[scriptUser]
	started    bool
	closed     bool

	pollStop chan struct{}
	pollDone chan struct{}
}

// ownTrack is what an instance's own tracking says.
type ownTrack struct {
	fault  bool
	adjust int
}

// New validates cfg (after SetDefaults, on a copy) and returns a manager that runs it
// once started.
func New(cfg Config, deps Deps) (*Manager, error) {
	if deps.Transport == nil || deps.Addresses == nil || deps.Announcer == nil {
		return nil, errors.New("vip manager: Deps.Transport, Deps.Addresses and Deps.Announcer are required")
	}
	if deps.Clock == nil {
		deps.Clock = clock.System()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if deps.LinkPoll <= 0 {
		deps.LinkPoll = time.Second
	}
	cfg = cloneConfig(cfg)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		deps: deps, log: deps.Logger, cfg: cfg,
		instances: map[string]*instance{},
		group:     groupsOf(cfg),
		links:     map[string]bool{},
		checks:    map[string]float64{},
		ownTrack:  map[string]ownTrack{},

		memberState: map[string]string{},
		groupState:  map[string]string{},
		groupNotify: map[string]*notifier{},
	}
	if deps.Run == nil {
		// Scripts run as script_user and are checked by script_security at each run
		// (a file may change after the config was loaded); a reload may change both.
		m.deps.Run = func(ctx context.Context, argv []string) error {
			return m.scriptUser.Load().run(ctx, argv)
		}
		if err := m.setScriptUser(cfg); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// setScriptUser resolves the user the default runner runs scripts as, and records
// whether it checks them.
func (m *Manager) setScriptUser(cfg Config) error {
	name := cfg.ScriptUser
	u, fallback, err := resolveScriptUser(name)
	if err != nil {
		return &FieldError{Path: "script_user", Msg: fmt.Sprintf("(%q): %v", name, err)}
	}
	u.secure = cfg.ScriptSecurity == nil || *cfg.ScriptSecurity
	if prev := m.scriptUser.Load(); fallback && os.Getuid() == 0 && (prev == nil || prev.name != u.name) {
		m.log.Warn("track and notify scripts run as root: set script_user, or create the user " + DefaultScriptUser)
	}
	m.scriptUser.Store(&u)
	return nil
}

// Start removes the addresses a crashed run left (every address carrying an instance's
// label on its interface), then starts every instance as backup (or master, for an
// address owner). An instance whose transport cannot be opened is reported in the
// error; the others run.
func (m *Manager) Start() error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	if m.closed || m.started {
		m.mu.Unlock()
		return errors.New("vip manager: already started or closed")
	}
	m.started = true
	cfg := m.cfg
	m.mu.Unlock()

	if err := Release(cfg, m.deps.Addresses); err != nil {
		m.log.Warn("removing leftover addresses", "err", err)
	}
	var errs []error
	for _, ic := range cfg.Instances {
		if err := m.startInstance(ic); err != nil {
			errs = append(errs, err)
		}
	}
	if m.deps.LinkState != nil {
		m.pollStop, m.pollDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(m.pollDone)
			pollLinks(m.pollStop, m.deps.Clock, m.deps.LinkPoll, m.trackedLinks, m.deps.LinkState,
				func(ifname string, up bool, err error) {
					if err != nil {
						m.log.Warn("reading link state", "interface", ifname, "err", err)
					}
					m.SetLink(ifname, up)
				})
		}()
	}
	return errors.Join(errs...)
}

func (m *Manager) startInstance(ic Instance) error {
	tr, err := m.deps.Transport(ic)
	if err != nil {
		return fmt.Errorf("starting vrrp instance %s: %w", ic.Name, err)
	}
	in := newInstance(m, ic, tr)
	m.mu.Lock()
	m.instances[ic.Name] = in
	m.mu.Unlock()
	in.start()
	return nil
}

// Close stops every instance gracefully: a master sends priority 0 (so a backup takes
// over after Skew_Time) and removes its addresses, and the notify stop scripts run. It
// waits for the notify queues until ctx is done.
func (m *Manager) Close(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	ins := slices.Collect(maps.Values(m.instances))
	m.mu.Unlock()
	if m.pollStop != nil {
		close(m.pollStop)
		<-m.pollDone
	}
	err := m.halt(ctx, ins)
	// The members have stopped: the groups' STOP commands are queued.
	m.mu.Lock()
	groups := slices.Collect(maps.Values(m.groupNotify))
	m.groupNotify = map[string]*notifier{}
	m.mu.Unlock()
	return errors.Join(err, closeNotifiers(ctx, groups))
}

func closeNotifiers(ctx context.Context, ns []*notifier) error {
	var errs []error
	for _, n := range ns {
		errs = append(errs, n.close(ctx))
	}
	return errors.Join(errs...)
}

// halt stops instances concurrently (each hands over at once) and forgets them.
func (m *Manager) halt(ctx context.Context, ins []*instance) error {
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Go(func() { errs[i] = in.halt(ctx) })
	}
	wg.Wait()
	m.mu.Lock()
	for _, in := range ins {
		if m.instances[in.cfg.Name] == in {
			delete(m.instances, in.cfg.Name)
			delete(m.ownTrack, in.cfg.Name)
			delete(m.memberState, in.cfg.Name)
		}
	}
	m.mu.Unlock()
	return errors.Join(errs...)
}

// Apply runs cfg instead of the current config (a reload). An instance whose config
// is unchanged keeps running untouched: its VIP does not move. An instance whose
// changes are limited to its priority, notify commands, garp settings and tracking
// weights and checks (see reconfigurable) is updated in place, as keepalived's reload
// does: no transition, no address change; it advertises the new priority at once, and
// a backup that now outranks the master preempts it (when preempt is on). Any other
// change restarts the instance (as a master it hands over with priority 0 first); a
// removed one stops; a new one starts. Sync groups change without restarting anyone.
func (m *Manager) Apply(ctx context.Context, cfg Config) error {
	cfg = cloneConfig(cfg)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if m.scriptUser.Load() != nil {
		if err := m.setScriptUser(cfg); err != nil {
			return err
		}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	started := m.started
	next := map[string]Instance{}
	for _, ic := range cfg.Instances {
		next[ic.Name] = ic
	}
	// Compare with the config last applied, not with in.cfg: the instance's loop owns
	// that one and updates it in place.
	prev := map[string]Instance{}
	for _, ic := range m.cfg.Instances {
		prev[ic.Name] = ic
	}
	var stop []*instance
	type update struct {
		in *instance
		ic Instance
	}
	var updates []update
	for name, in := range m.instances {
		ic, ok := next[name]
		switch {
		case !ok || !reconfigurable(prev[name], ic):
			stop = append(stop, in)
		case !reflect.DeepEqual(ic, prev[name]):
			updates = append(updates, update{in, ic})
		}
	}
	var start []Instance
	for _, ic := range cfg.Instances {
		if _, ok := m.instances[ic.Name]; !ok || !reconfigurable(prev[ic.Name], ic) {
			start = append(start, ic)
		}
	}
	m.cfg = cfg
	m.group = groupsOf(cfg)
	// A group's notify commands are read from m.cfg at each transition; its timeout
	// is its queue's. A removed group's queue drains and goes.
	var removed []*notifier
	for name, n := range m.groupNotify {
		if i := slices.IndexFunc(cfg.SyncGroups, func(g SyncGroup) bool { return g.Name == name }); i >= 0 {
			n.setTimeout(cfg.SyncGroups[i].Notify.Timeout)
		} else {
			removed = append(removed, n)
			delete(m.groupNotify, name)
			delete(m.groupState, name)
		}
	}
	m.mu.Unlock()
	if !started {
		return nil
	}
	for _, in := range stop {
		m.log.Info("vrrp instance changed or removed: stopping it", "instance", in.cfg.Name)
	}
	var errs []error
	for _, u := range updates {
		m.log.Info("vrrp instance changed: updating it in place", "instance", u.ic.Name)
		if err := u.in.call(func() error { u.in.reconfigure(u.ic); return nil }); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, m.halt(ctx, stop))
	for _, ic := range start {
		m.log.Info("starting vrrp instance", "instance", ic.Name)
		errs = append(errs, m.startInstance(ic))
	}
	m.retrackAll() // group membership may have changed
	errs = append(errs, closeNotifiers(ctx, removed))
	return errors.Join(errs...)
}

// reconfigurable reports whether a running instance with config old can take config
// next without restarting: they differ at most in the priority (not to or from the
// owner's 255, which changes the state machine's startup), the notify commands (not
// their timeout), the garp settings, the tracked interfaces and checks, and the
// weights of the track scripts. Everything else (the vrid, interface, addresses,
// version, interval, unicast peers and source, auth, label, accept, preempt,
// preempt_delay, a track script's command or timing) is fixed for an instance's run.
func reconfigurable(old, next Instance) bool {
	if (old.Priority == OwnerPriority) != (next.Priority == OwnerPriority) {
		return false
	}
	if len(old.TrackScripts) != len(next.TrackScripts) {
		return false
	}
	next.TrackScripts = slices.Clone(next.TrackScripts)
	for i := range next.TrackScripts {
		next.TrackScripts[i].Weight = old.TrackScripts[i].Weight
	}
	next.Priority = old.Priority
	next.GARP = old.GARP
	next.TrackInterfaces = old.TrackInterfaces
	next.TrackChecks = old.TrackChecks
	timeout := next.Notify.Timeout
	next.Notify = old.Notify
	next.Notify.Timeout = timeout
	return reflect.DeepEqual(old, next)
}

// Status returns every running instance, in config order.
func (m *Manager) Status() []InstanceStatus {
	m.mu.Lock()
	var ins []*instance
	for _, ic := range m.cfg.Instances {
		if in, ok := m.instances[ic.Name]; ok {
			ins = append(ins, in)
		}
	}
	m.mu.Unlock()
	out := make([]InstanceStatus, len(ins))
	for i, in := range ins {
		out[i] = in.status()
	}
	return out
}

// Move hands the master role of instance name (and of the other members of its sync
// group) over to the best backup: this node sends priority 0 and keeps the addresses
// until the new master's advertisement arrives (or its own Master_Down_Timer fires
// and it takes the role back), so no traffic is lost; it then does not preempt until
// it next becomes master by itself (the new master failing) or the instance restarts.
// It returns ErrNotMaster when this node is not the master of name.
func (m *Manager) Move(name string) error {
	m.mu.Lock()
	in, ok := m.instances[name]
	others := m.groupMembers(name)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("moving %q: %w", name, ErrUnknownInstance)
	}
	if err := in.call(in.move); err != nil {
		return err
	}
	for _, o := range others {
		// The members of a sync group move together; one that is not master has
		// nothing to hand over.
		if err := o.call(o.move); err != nil && !errors.Is(err, ErrNotMaster) {
			return err
		}
	}
	return nil
}

// SetLink reports an interface's link state (from a netlink watcher such as
// WatchLinks, or LinkState polling). When a link goes down, the instances on it, and
// those tracking it with weight 0, go to FAULT at once.
func (m *Manager) SetLink(ifname string, up bool) {
	m.mu.Lock()
	prev, ok := m.links[ifname]
	m.links[ifname] = up
	m.mu.Unlock()
	if !ok || prev != up {
		m.log.Info("link state", "interface", ifname, "up", up)
		m.retrackAll()
	}
}

// SetLinkIndex reports the index of interface ifname (from a netlink watcher such as
// WatchLinks), 0 when no interface has that name. A VRRP socket stays bound to the
// index it was opened on: when the interface is deleted, the instances on it go to
// FAULT and close their sockets, and when an interface of that name appears (again)
// with another index, they open new ones on it.
func (m *Manager) SetLinkIndex(ifname string, index int) {
	m.mu.Lock()
	var ins []*instance
	for _, in := range m.instances {
		if in.cfg.Interface == ifname {
			ins = append(ins, in)
		}
	}
	m.mu.Unlock()
	for _, in := range ins {
		in.post(func() { in.linkIndex(index) })
	}
}

// SetCheck reports a check the node runs (see TrackCheck): level 1 is healthy, 0
// failed, and a level in between (such as the share of a backend's healthy servers)
// scales the weights. A check never reported counts as healthy.
func (m *Manager) SetCheck(name string, level float64) {
	level = min(max(level, 0), 1)
	m.mu.Lock()
	prev, ok := m.checks[name]
	m.checks[name] = level
	m.mu.Unlock()
	if !ok || prev != level {
		m.retrackAll()
	}
}

// PeerGone reports that the lbd process at addr is gone (the node's liveness connection
// to it ended with a FIN or a reset, or its heartbeats stopped): every instance whose
// current master is addr takes over after Skew_Time, as on a priority 0 advertisement
// (see MasterGone).
func (m *Manager) PeerGone(addr netip.Addr) {
	m.mu.Lock()
	ins := slices.Collect(maps.Values(m.instances))
	m.mu.Unlock()
	m.log.Info("peer reported gone by the liveness channel", "peer", addr)
	for _, in := range ins {
		in.post(func() { in.step(MasterGone{Src: addr}) })
	}
}

func (m *Manager) retrackAll() {
	m.mu.Lock()
	ins := slices.Collect(maps.Values(m.instances))
	m.mu.Unlock()
	for _, in := range ins {
		in.post(in.retrack)
	}
}

// trackInputs returns a copy of the reported links and checks.
func (m *Manager) trackInputs() trackInputs {
	m.mu.Lock()
	defer m.mu.Unlock()
	return trackInputs{links: maps.Clone(m.links), checks: maps.Clone(m.checks)}
}

// trackedLinks lists the interfaces the instances run on and track.
func (m *Manager) trackedLinks() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for _, ic := range m.cfg.Instances {
		names = append(names, ic.Interface)
		for _, t := range ic.TrackInterfaces {
			names = append(names, t.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// groupMembers returns the running members of name's sync group other than name.
// m.mu must be held.
func (m *Manager) groupMembers(name string) []*instance {
	g := m.group[name]
	if g == "" {
		return nil
	}
	var out []*instance
	for member, mg := range m.group {
		if mg != g || member == name {
			continue
		}
		if o, ok := m.instances[member]; ok {
			out = append(out, o)
		}
	}
	return out
}

// setOwnTrack records what in's own tracking says, tells the other members of its sync
// group when that changes, and returns what the group adds: the other members in fault
// (a member's fault is the group's, as in keepalived's sync groups) and the sum of the
// other members' weights. Every member of a group advertises the same adjustment, so a
// group whose members have equal priorities on each node moves as one, whichever
// member tracks what.
func (m *Manager) setOwnTrack(in *instance, own ownTrack) (faulted []string, adjust int) {
	name := in.cfg.Name
	m.mu.Lock()
	changed := m.ownTrack[name] != own
	m.ownTrack[name] = own
	others := m.groupMembers(name)
	for _, o := range others {
		if t := m.ownTrack[o.cfg.Name]; t.fault {
			faulted = append(faulted, o.cfg.Name)
		} else {
			adjust += t.adjust
		}
	}
	m.mu.Unlock()
	if changed {
		for _, o := range others {
			o.post(o.retrack)
		}
	}
	slices.Sort(faulted)
	return faulted, adjust
}

// groupFaulted reports whether another member of in's sync group is in fault by its
// own tracking: in is about to be (its retrack is queued), so it must not become
// master meanwhile.
func (m *Manager) groupFaulted(in *instance) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.groupMembers(in.cfg.Name) {
		if m.ownTrack[o.cfg.Name].fault {
			return true
		}
	}
	return false
}

// memberTransition records that instance name entered state and, when that changes
// the state of its sync group, queues the group's notify commands. A group is MASTER,
// BACKUP or STOP when all its members are, and FAULT when any is; while its members
// disagree otherwise (one has become master, the others are following) it keeps its
// state. Queueing under m.mu keeps a group's commands in the order of its transitions.
func (m *Manager) memberTransition(name, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gname := m.group[name]
	if gname == "" {
		return
	}
	m.memberState[name] = state
	i := slices.IndexFunc(m.cfg.SyncGroups, func(g SyncGroup) bool { return g.Name == gname })
	if i < 0 {
		return
	}
	g := m.cfg.SyncGroups[i]
	next := ""
	for j, member := range g.Instances {
		s := m.memberState[member]
		switch {
		case s == "FAULT":
			next = "FAULT"
		case next == "FAULT":
		case j == 0:
			next = s
		case s != next:
			next = "mixed"
		}
	}
	if next == "" || next == "mixed" || next == m.groupState[gname] {
		return
	}
	m.groupState[gname] = next
	m.log.Info("vrrp sync group transition", "group", gname, "state", next)
	cmds := notifyCommandsFor(g.Notify, "GROUP", gname, next, 0)
	n := m.groupNotify[gname]
	if n == nil && len(cmds) == 0 {
		return
	}
	// A transition without commands still replaces one waiting in the queue.
	if n == nil {
		n = newNotifier(m.deps.Run, m.deps.Clock, m.log.With("sync_group", gname), g.Notify.Timeout)
		m.groupNotify[gname] = n
	}
	n.enqueue(cmds...)
}

// follow makes the other members of in's sync group follow its transition.
func (m *Manager) follow(in *instance, ev Event) {
	m.mu.Lock()
	others := m.groupMembers(in.cfg.Name)
	m.mu.Unlock()
	for _, o := range others {
		o.post(func() { o.syncStep(ev) })
	}
}

// Release removes every address that carries an instance's label on the instance's
// interface: what a crashed or killed lbd left behind (the unit's ExecStopPost runs it).
func Release(cfg Config, a Addresses) error {
	type key struct{ ifname, label string }
	seen := map[key]bool{}
	var errs []error
	for _, ic := range cfg.Instances {
		label := ic.Label
		if label == "" {
			label = DefaultLabel
		}
		k := key{ic.Interface, label}
		if seen[k] {
			continue
		}
		seen[k] = true
		have, err := a.List(ic.Interface, label)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing the addresses of %s: %w", ic.Interface, err))
			continue
		}
		for _, p := range have {
			if err := a.Remove(ic.Interface, p); err != nil {
				errs = append(errs, fmt.Errorf("removing %s from %s: %w", p, ic.Interface, err))
			}
		}
	}
	return errors.Join(errs...)
}

func groupsOf(cfg Config) map[string]string {
	g := map[string]string{}
	for _, sg := range cfg.SyncGroups {
		for _, name := range sg.Instances {
			g[name] = sg.Name
		}
	}
	return g
}

// cloneConfig copies what SetDefaults writes to, so that the caller's config is not
// modified.
func cloneConfig(c Config) Config {
	out := Config{SyncGroups: slices.Clone(c.SyncGroups), ScriptUser: c.ScriptUser}
	if c.ScriptSecurity != nil {
		v := *c.ScriptSecurity
		out.ScriptSecurity = &v
	}
	for _, in := range c.Instances {
		if in.Preempt != nil {
			v := *in.Preempt
			in.Preempt = &v
		}
		if in.CheckUnicastSource != nil {
			v := *in.CheckUnicastSource
			in.CheckUnicastSource = &v
		}
		if in.GARP.Interval != nil {
			v := *in.GARP.Interval
			in.GARP.Interval = &v
		}
		if in.GARP.Delay != nil {
			v := *in.GARP.Delay
			in.GARP.Delay = &v
		}
		in.TrackScripts = slices.Clone(in.TrackScripts)
		out.Instances = append(out.Instances, in)
	}
	return out
}
