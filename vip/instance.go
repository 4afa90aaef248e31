package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"lbd/internal/clock"
)

// instance runs one virtual router: one goroutine (loop) owns its Machine and steps it
// from the packets the receiver goroutine hands over, the clock's timer at the next
// deadline, and the commands other goroutines post (tracking changes, sync group
// members, Move). It carries out the actions itself: advertisements through the
// transport, addresses, announcement bursts, and notify scripts through its notifier.

// InstanceStatus is one instance as the admin API and the metrics show it.
type InstanceStatus struct {
	Name      string
	Interface string
	VRID      int
	// Source is the address this node advertises from (the transport's source).
	Source netip.Addr
	State  State
	// Priority is the priority advertised now; BasePriority the configured one.
	Priority     int
	BasePriority int
	// Master is the master's address (ours when master; invalid when unknown) and
	// MasterPriority what it advertises.
	Master         netip.Addr
	MasterPriority int
	// MasterAdvertInterval is the interval the master advertises (v3; our own in v2),
	// from which Skew_Time and Master_Down_Interval are computed.
	MasterAdvertInterval time.Duration
	// Holding: resigned (Move) but still holding the addresses until the new master
	// speaks. Yielding: resigned, does not preempt until it next becomes master.
	Holding  bool
	Yielding bool
	// Accept is the configured Accept_Mode.
	Accept bool
	// Faults lists what keeps the instance in FAULT.
	Faults []string
	// Transitions counts state changes since the instance started; LastTransition is
	// the time of the last one.
	Transitions    uint64
	LastTransition time.Time
	// Packet and error counters since the instance started.
	AdvertsSent     uint64
	AdvertsReceived uint64
	SendErrors      uint64
	AddressErrors   uint64
	// Dropped counts the received packets the checks dropped, by reason (every reason
	// of DropReasons is present).
	Dropped map[DropReason]uint64
}

type instance struct {
	mgr      *Manager
	cfg      Instance
	log      *slog.Logger
	clock    clock.Clock
	addrs    Addresses
	ann      Announcer
	tr       Transport
	prefixes []netip.Prefix
	expect   Expect
	dsts     []netip.Addr // the multicast group, or the unicast peers
	pkt      Packet       // the advertisement, without the priority
	codec    CodecOptions

	// Owned by the loop goroutine.
	machine *Machine
	garp    garpSchedule
	faulted bool // the FaultEvent given to the machine
	syncing bool // the step in progress comes from a sync group member
	dropLog map[DropReason]*dropLogState
	// authKey is cfg.AuthKey (nil: off); lastSeq the last sequence number accepted
	// from each sender, and lastSent the last one sent.
	authKey  []byte
	lastSeq  map[netip.Addr]uint64
	lastSent uint64
	// ifindex is the index of the interface the transport is bound to (0: unknown);
	// absent says the interface is gone (its transport is closed), deaf why a new
	// transport could not be opened, and addrErr why the addresses could not be
	// added: each keeps the instance in FAULT until retryAt, when it tries again.
	ifindex int
	trOpen  bool
	absent  bool
	deaf    error
	addrErr error
	retryAt time.Time
	// addrBackoff is the wait before the next try after a failed address add: it
	// doubles up to maxAddrRetry, so that a node that cannot add its addresses does
	// not take the master role from its peer every second.
	addrBackoff time.Duration

	cmds     mailbox[func()]
	recv     chan Received
	stop     chan struct{} // closed to stop the loop
	stopOnce sync.Once
	loopDone chan struct{}
	recvWG   sync.WaitGroup // the receivers, one per transport opened
	notify   *notifier

	scripts     []*scriptTracker
	scriptsStop chan struct{}
	scriptsWG   sync.WaitGroup

	// mu guards st.
	mu sync.Mutex
	st InstanceStatus
}

func newInstance(mgr *Manager, cfg Instance, tr Transport) *instance {
	d := mgr.deps
	in := &instance{
		mgr: mgr, cfg: cfg, clock: d.Clock, addrs: d.Addresses, ann: d.Announcer, tr: tr,
		log:         d.Logger.With("instance", cfg.Name),
		prefixes:    cfg.Prefixes(),
		codec:       CodecOptions{V3ChecksumAsV2: cfg.ChecksumAsV2},
		recv:        make(chan Received),
		stop:        make(chan struct{}),
		loopDone:    make(chan struct{}),
		scriptsStop: make(chan struct{}),
	}
	in.cmds.init()
	in.trOpen, in.ifindex = true, transportIndex(tr)
	if cfg.AuthKey != "" {
		in.authKey, in.lastSeq = []byte(cfg.AuthKey), map[netip.Addr]uint64{}
	}
	vips := make([]netip.Addr, len(in.prefixes))
	for i, p := range in.prefixes {
		vips[i] = p.Addr()
	}
	src := tr.Source()
	in.expect = Expect{
		Version: cfg.Version, VRID: uint8(cfg.VRID), Interval: cfg.AdvertInterval,
		Addresses: vips, Own: []netip.Addr{src}, Codec: in.codec,
	}
	if cfg.CheckUnicastSource == nil || *cfg.CheckUnicastSource {
		in.expect.Peers = cfg.Peers() // none: multicast, any sender
	}
	in.pkt = Packet{Version: cfg.Version, VRID: uint8(cfg.VRID), Interval: cfg.AdvertInterval, Addresses: vips}
	if cfg.Version == 2 && cfg.AuthPass != "" {
		data, _ := AuthDataFromPassword(cfg.AuthPass) // Validate checked the length
		in.expect.AuthType, in.expect.AuthData = AuthPassword, data
		in.pkt.AuthType, in.pkt.AuthData = AuthPassword, data
	}
	in.dsts = cfg.Peers()
	if len(in.dsts) == 0 {
		in.dsts = []netip.Addr{MulticastGroupV4}
		if cfg.Family() == 6 {
			in.dsts = []netip.Addr{MulticastGroupV6}
		}
	}
	in.machine = NewMachine(MachineConfig{
		Version: cfg.Version, Priority: cfg.Priority, Primary: src, Preempt: *cfg.Preempt,
		PreemptDelay: cfg.PreemptDelay, Accept: cfg.Accept, AdvertInterval: cfg.AdvertInterval,
		LowerPrioNoAdvert: cfg.LowerPrioNoAdvert,
	})
	in.st = InstanceStatus{
		Name: cfg.Name, Interface: cfg.Interface, VRID: cfg.VRID, Source: src, State: Initialize,
		Priority: cfg.Priority, BasePriority: cfg.Priority, Accept: cfg.Accept,
		MasterAdvertInterval: cfg.AdvertInterval,
		Dropped:              map[DropReason]uint64{},
	}
	for _, r := range DropReasons() {
		in.st.Dropped[r] = 0
	}
	in.notify = newNotifier(d.Run, d.Clock, in.log, cfg.Notify.Timeout)
	for _, s := range cfg.TrackScripts {
		st := &scriptTracker{cfg: s, run: d.Run, clock: d.Clock}
		name := s.Name
		st.onChange = func(healthy bool) {
			in.log.Info("track script changed", "script", name, "healthy", healthy)
			in.post(in.retrack)
		}
		in.scripts = append(in.scripts, st)
	}
	return in
}

// start removes the instance's addresses left by a crash, then runs it.
func (in *instance) start() {
	have, err := in.addrs.List(in.cfg.Interface, in.cfg.Label)
	if err != nil {
		in.log.Warn("listing leftover addresses", "err", err)
	}
	for _, p := range have {
		if slices.ContainsFunc(in.prefixes, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
			if err := in.addrs.Remove(in.cfg.Interface, p); err != nil {
				in.log.Warn("removing a leftover address", "address", p, "err", err)
			} else {
				in.log.Info("removed a leftover address", "address", p)
			}
		}
	}
	for _, s := range in.scripts {
		in.scriptsWG.Add(1)
		go func() {
			defer in.scriptsWG.Done()
			s.loop(in.scriptsStop)
		}()
	}
	in.startReceiver()
	go in.loop()
}

// halt stops the loop (which sends priority 0 when master and removes the addresses),
// then the receiver and the scripts, then waits for the notify queue or ctx.
func (in *instance) halt(ctx context.Context) error {
	in.stopOnce.Do(func() { close(in.stop) })
	<-in.loopDone
	var err error
	if in.trOpen {
		err = in.tr.Close()
	}
	in.recvWG.Wait()
	close(in.scriptsStop)
	in.scriptsWG.Wait()
	if err != nil {
		err = fmt.Errorf("closing the transport of %s: %w", in.cfg.Name, err)
	}
	return errors.Join(err, in.notify.close(ctx))
}

// post runs f on the loop goroutine.
func (in *instance) post(f func()) { in.cmds.put(f) }

// call runs f on the loop goroutine and returns its error, or ErrClosed when the
// instance has stopped.
func (in *instance) call(f func() error) error {
	done := make(chan error, 1)
	in.post(func() { done <- f() })
	select {
	case err := <-done:
		return err
	case <-in.loopDone:
		select {
		case err := <-done:
			return err
		default:
			return fmt.Errorf("instance %s stopped: %w", in.cfg.Name, ErrClosed)
		}
	}
}

// startReceiver runs a receiver for the current transport. Called before the loop
// starts and then from the loop goroutine.
func (in *instance) startReceiver() {
	tr := in.tr
	in.recvWG.Add(1)
	go func() {
		defer in.recvWG.Done()
		in.receive(tr)
	}()
}

// receive hands the packets of tr to the loop until tr is closed.
func (in *instance) receive(tr Transport) {
	for {
		r, err := tr.Receive()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			in.log.Warn("receiving vrrp", "err", err)
			// Do not spin on an error that repeats.
			t := in.clock.NewTimer(100 * time.Millisecond)
			select {
			case <-t.C():
			case <-in.loopDone:
				t.Stop()
				return
			}
			continue
		}
		select {
		case in.recv <- r:
		case <-in.loopDone:
			return
		}
	}
}

func (in *instance) loop() {
	defer close(in.loopDone)
	in.retrack()
	in.step(Startup{})
	for {
		var timeout <-chan time.Time
		var timer clock.Timer
		if d, ok := in.nextDeadline(); ok {
			timer = in.clock.NewTimer(d.Sub(in.clock.Now()))
			timeout = timer.C()
		}
		select {
		case r := <-in.recv:
			in.received(r)
		case <-timeout:
			now := in.clock.Now()
			if d, ok := in.machine.NextDeadline(); ok && !now.Before(d) {
				in.step(Timer{})
			}
			in.garpDue(now)
			if !in.retryAt.IsZero() && !now.Before(in.retryAt) {
				in.retry()
			}
		case <-in.cmds.ready:
			for _, f := range in.cmds.take() {
				f()
			}
		case <-in.stop:
			if timer != nil {
				timer.Stop()
			}
			in.step(Shutdown{})
			return
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (in *instance) nextDeadline() (time.Time, bool) {
	d, ok := in.machine.NextDeadline()
	if in.garp.active && (!ok || in.garp.next.Before(d)) {
		d, ok = in.garp.next, true
	}
	if !in.retryAt.IsZero() && (!ok || in.retryAt.Before(d)) {
		d, ok = in.retryAt, true
	}
	return d, ok
}

// retryEvery is how often an instance in FAULT for a failed address add or a VRRP
// socket that could not be reopened tries again.
const retryEvery = time.Second

// maxAddrRetry is the longest wait between two tries to add the addresses.
const maxAddrRetry = 32 * time.Second

// transportIndex is the interface index tr is bound to, 0 when it does not say.
func transportIndex(tr Transport) int {
	if x, ok := tr.(interface{ IfIndex() int }); ok {
		return x.IfIndex()
	}
	return 0
}

// linkIndex follows the index of the instance's interface (Manager.SetLinkIndex): 0
// when the interface is gone. A socket bound to an interface stays bound to its
// index, so when the interface is deleted the instance closes its transport and
// stays in FAULT (it would hear nothing and become master: split brain), and when an
// interface of that name appears with another index it opens a new transport on it.
func (in *instance) linkIndex(index int) {
	switch {
	case index == 0:
		if in.absent {
			return
		}
		in.absent = true
		in.log.Warn("interface gone; closing its vrrp socket", "interface", in.cfg.Interface)
		in.retrack() // a master sends priority 0 while it still can
		in.closeTransport()
	case in.absent || in.deaf != nil || in.ifindex != 0 && index != in.ifindex:
		in.absent = false
		in.closeTransport()
		in.reopen(index)
	case in.ifindex == 0:
		in.ifindex = index
	}
}

func (in *instance) closeTransport() {
	if !in.trOpen {
		return
	}
	in.trOpen = false
	if err := in.tr.Close(); err != nil {
		in.log.Warn("closing the vrrp socket", "err", err)
	}
}

// reopen opens a new transport on the instance's interface (now at index, 0 when
// not known); while it cannot, the instance is in FAULT and tries again every
// retryEvery.
func (in *instance) reopen(index int) {
	tr, err := in.mgr.deps.Transport(in.cfg)
	if err != nil {
		if in.deaf == nil {
			in.log.Warn("reopening the vrrp socket", "interface", in.cfg.Interface, "err", err)
		}
		in.deaf = err
		in.retryAt = in.clock.Now().Add(retryEvery)
		in.retrack()
		return
	}
	in.tr, in.trOpen, in.deaf = tr, true, nil
	in.ifindex = transportIndex(tr)
	if in.ifindex == 0 {
		in.ifindex = index
	}
	src := tr.Source()
	in.expect.Own = []netip.Addr{src}
	in.update(func(st *InstanceStatus) { st.Source = src })
	in.log.Info("vrrp socket reopened", "interface", in.cfg.Interface, "index", in.ifindex, "source", src)
	in.startReceiver()
	in.retrack()
}

// retry tries again what failed: reopening the transport, adding the addresses
// (by leaving FAULT: the instance becomes master again through the election).
func (in *instance) retry() {
	in.retryAt = time.Time{}
	in.addrErr = nil
	if in.deaf != nil && !in.absent {
		in.reopen(in.ifindex) // retracks
		return
	}
	in.retrack()
}

func (in *instance) received(r Received) {
	var seq uint64
	if in.authKey != nil {
		// Only VRRP of our VRID: another virtual router's packets (without a trailer,
		// or with another key) count as vrid, not auth, as Check would count them.
		if len(r.Payload) >= vrrpHeaderLen && r.Payload[1] == uint8(in.cfg.VRID) && r.Src.Unmap() != in.tr.Source() {
			b, s, err := openAdvert(in.authKey, r)
			if err != nil {
				in.update(func(st *InstanceStatus) { st.Dropped[DropAuth]++ })
				in.logDrop(DropAuth, err)
				return
			}
			r.Payload, seq = b, s
		}
	}
	adv, err := in.expect.Check(r)
	if err != nil {
		var drop *DropError
		reason := DropLength
		if errors.As(err, &drop) {
			reason = drop.Reason
		}
		in.update(func(st *InstanceStatus) { st.Dropped[reason]++ })
		if !reason.Quiet() {
			in.logDrop(reason, err)
		}
		return
	}
	if now := in.clock.Now(); in.machine.State() == Master && !r.At.IsZero() && now.Sub(r.At) > staleAfter*in.cfg.AdvertInterval {
		// Read after a hang of ours: the sender has advertised since, or is gone. As a
		// backup, an old advertisement of the master still says it was alive, and
		// dropping it could let Master_Down_Timer fire before the fresh ones are read.
		in.update(func(st *InstanceStatus) { st.Dropped[DropStale]++ })
		in.logDrop(DropStale, dropf(DropStale, adv.Src, "received %v ago, more than %d advert intervals", now.Sub(r.At), staleAfter))
		return
	}
	if in.authKey != nil {
		src := adv.Src.WithZone("")
		last, seen := in.lastSeq[src]
		oldest := uint64(max(in.clock.Now().Add(-authReplayWindow).UnixNano(), 0))
		if seen && seq <= last || !seen && seq < oldest {
			in.update(func(st *InstanceStatus) { st.Dropped[DropReplay]++ })
			in.logDrop(DropReplay, dropf(DropReplay, src, "sequence %d, last accepted %d", seq, last))
			return
		}
		in.lastSeq[src] = seq
	}
	in.update(func(st *InstanceStatus) { st.AdvertsReceived++ })
	if adv.IntervalDiffers {
		in.log.Debug("master advertises another interval", "master", adv.Src, "interval", adv.Interval, "ours", in.cfg.AdvertInterval)
	}
	in.step(Advert{Priority: int(adv.Priority), Src: adv.Src, Interval: adv.Interval})
}

// staleAfter is how many advert intervals a packet may wait in the socket before a
// master drops it as stale (DropStale).
const staleAfter = 3

// dropLogEvery is how often the log shows a dropped packet of one reason: a host that
// floods the instance with bad packets costs one line per reason per period, and the
// counters (lbd_vrrp_dropped_total) still count every packet.
const dropLogEvery = 10 * time.Second

// dropLogState is when a reason was last logged and how many drops were not logged
// since.
type dropLogState struct {
	last       time.Time
	suppressed uint64
}

// logDrop logs a dropped packet, at most once per dropLogEvery for each reason; the
// line says how many were not logged before it.
func (in *instance) logDrop(reason DropReason, err error) {
	if in.dropLog == nil {
		in.dropLog = map[DropReason]*dropLogState{}
	}
	now := in.clock.Now()
	s := in.dropLog[reason]
	if s == nil {
		s = &dropLogState{}
		in.dropLog[reason] = s
	} else if now.Before(s.last.Add(dropLogEvery)) {
		s.suppressed++
		return
	}
	if s.suppressed > 0 {
		in.log.Info("vrrp packet dropped", "err", err, "not_logged_since_last", s.suppressed)
	} else {
		in.log.Info("vrrp packet dropped", "err", err)
	}
	s.last, s.suppressed = now, 0
}

// step applies ev to the machine and carries out its actions.
func (in *instance) step(ev Event) {
	switch ev.(type) {
	case Timer, Advert, SyncMaster:
		// Another member of the sync group is in fault, and in's retrack, which
		// faults it too, is still queued: fault first, so that in cannot become
		// master meanwhile (the group becomes master only when no member is faulty).
		if !in.faulted && in.mgr.groupFaulted(in) {
			in.retrack()
		}
	}
	now := in.clock.Now()
	before := in.machine.State()
	acts := in.machine.Step(ev, now)
	for _, a := range acts {
		in.execute(a, before, now)
	}
	master, mprio := in.machine.Master()
	in.update(func(st *InstanceStatus) {
		st.State = in.machine.State()
		st.Priority = in.machine.Priority()
		st.Master, st.MasterPriority = master, mprio
		st.MasterAdvertInterval = in.machine.MasterAdverInterval()
		st.Holding, st.Yielding = in.machine.Holding(), in.machine.Yielding()
	})
}

func (in *instance) execute(a Action, before State, now time.Time) {
	switch a := a.(type) {
	case SendAdvert:
		in.send(a.Priority)
	case AddAddresses:
		var errs []error
		for _, p := range in.prefixes {
			if err := in.addrs.Add(in.cfg.Interface, p, in.cfg.Label); err != nil {
				in.update(func(st *InstanceStatus) { st.AddressErrors++ })
				in.log.Error("adding a virtual address", "address", p, "err", err)
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			// A master without its addresses would draw the traffic to itself and
			// drop it: go to FAULT (a master sends priority 0 so a backup takes
			// over) and try again after retryEvery.
			in.addrErr = errors.Join(errs...)
			in.addrBackoff = min(max(2*in.addrBackoff, retryEvery), maxAddrRetry)
			in.retryAt = now.Add(in.addrBackoff)
			in.post(in.retrack)
		} else {
			in.addrBackoff = 0
		}
	case RemoveAddresses:
		in.garp.active = false
		for _, p := range in.prefixes {
			if err := in.addrs.Remove(in.cfg.Interface, p); err != nil {
				in.update(func(st *InstanceStatus) { st.AddressErrors++ })
				in.log.Error("removing a virtual address", "address", p, "err", err)
			}
		}
	case Announce:
		in.garp.start(in.cfg.GARP, now)
		in.garpDue(now)
	case BecameMaster:
		in.transition("MASTER", now)
		if !in.syncing {
			in.mgr.follow(in, SyncMaster{})
		}
	case BecameBackup:
		in.garp.active = false
		in.transition("BACKUP", now)
		if !in.syncing && before == Master {
			in.mgr.follow(in, SyncBackup{})
		}
	case BecameFault:
		in.garp.active = false
		in.transition("FAULT", now)
	case Stopped:
		in.garp.active = false
		in.transition("STOP", now)
	}
}

func (in *instance) transition(state string, now time.Time) {
	prio := in.machine.Priority()
	in.update(func(st *InstanceStatus) {
		st.Transitions++
		st.LastTransition = now
	})
	in.log.Info("vrrp transition", "state", state, "priority", prio)
	in.notify.enqueue(notifyCommands(in.cfg.Notify, in.cfg.Name, state, prio)...)
	in.mgr.memberTransition(in.cfg.Name, state)
}

func (in *instance) send(priority int) {
	p := in.pkt
	p.Priority = uint8(priority)
	src := in.tr.Source()
	for _, dst := range in.dsts {
		b, err := p.Marshal(src, dst, in.codec)
		if err == nil && in.authKey != nil {
			// The sender's clock in nanoseconds, strictly increasing.
			in.lastSent = max(in.lastSent+1, uint64(max(in.clock.Now().UnixNano(), 0)))
			b = sealAdvert(in.authKey, b, src, dst, in.lastSent)
		}
		if err == nil {
			err = in.tr.Send(b, dst)
		}
		if err != nil {
			in.update(func(st *InstanceStatus) { st.SendErrors++ })
			in.log.Warn("sending a vrrp advertisement", "to", dst, "err", err)
			continue
		}
		in.update(func(st *InstanceStatus) { st.AdvertsSent++ })
	}
}

// garpDue sends the announcements that are due.
func (in *instance) garpDue(now time.Time) {
	for in.garp.due(in.cfg.GARP, now) {
		for _, p := range in.prefixes {
			if err := in.ann.Announce(in.cfg.Interface, p.Addr()); err != nil {
				in.log.Warn("announcing a virtual address", "address", p.Addr(), "err", err)
			}
		}
	}
}

// retrack recomputes the priority and the fault state from what is tracked.
func (in *instance) retrack() {
	inputs := in.mgr.trackInputs()
	inputs.scripts = map[string]bool{}
	for _, s := range in.scripts {
		if known, healthy := s.status(); known {
			inputs.scripts[s.cfg.Name] = healthy
		}
	}
	res := evalTracking(&in.cfg, inputs)
	faults := slices.Clone(res.faults)
	switch {
	case in.absent:
		faults = append(faults, "interface "+in.cfg.Interface+" absent")
	case in.deaf != nil:
		faults = append(faults, "no vrrp socket on "+in.cfg.Interface+": "+in.deaf.Error())
	}
	if in.addrErr != nil {
		faults = append(faults, "adding the virtual addresses failed: "+in.addrErr.Error())
	}
	members, groupAdjust := in.mgr.setOwnTrack(in, ownTrack{fault: len(faults) > 0, adjust: res.adjust})
	for _, member := range members {
		faults = append(faults, "sync group member "+member+" in fault")
	}
	priority := res.priority
	if in.cfg.Priority != OwnerPriority {
		priority = min(max(in.cfg.Priority+res.adjust+groupAdjust, 1), OwnerPriority-1)
	}
	in.update(func(st *InstanceStatus) { st.Faults = faults })
	faulted := len(faults) > 0
	if faulted && !in.faulted {
		in.faulted = true
		in.log.Warn("fault", "reasons", faults)
		in.step(FaultEvent{})
	}
	in.step(SetPriority{Priority: priority})
	if !faulted && in.faulted {
		in.faulted = false
		in.log.Info("fault cleared")
		in.step(FaultCleared{})
	}
}

// reconfigure takes the fields of ic that change in place (see reconfigurable) and
// applies the new priority and weights through retrack: no transition, no address
// change. in.cfg.Name and the other fields are left alone (other goroutines read
// the name).
func (in *instance) reconfigure(ic Instance) {
	in.cfg.Priority = ic.Priority
	in.cfg.GARP = ic.GARP
	in.cfg.Notify = ic.Notify
	in.cfg.TrackInterfaces = slices.Clone(ic.TrackInterfaces)
	in.cfg.TrackChecks = slices.Clone(ic.TrackChecks)
	scripts := slices.Clone(in.cfg.TrackScripts) // shared with the manager's config
	for i := range scripts {
		scripts[i].Weight = ic.TrackScripts[i].Weight
	}
	in.cfg.TrackScripts = scripts
	in.update(func(st *InstanceStatus) { st.BasePriority = ic.Priority })
	in.retrack()
}

// syncStep applies a sync group member's transition.
func (in *instance) syncStep(ev Event) {
	in.syncing = true
	in.step(ev)
	in.syncing = false
}

// move resigns the master role (Manager.Move).
func (in *instance) move() error {
	if in.machine.State() != Master {
		return fmt.Errorf("instance %s is %s: %w", in.cfg.Name, in.machine.State(), ErrNotMaster)
	}
	in.log.Info("handing over the master role")
	// Manager.Move resigns each member of a sync group itself: a member must hand
	// over with priority 0 too, not just follow to backup.
	in.syncStep(Resign{})
	return nil
}

func (in *instance) update(f func(*InstanceStatus)) {
	in.mu.Lock()
	f(&in.st)
	in.mu.Unlock()
}

func (in *instance) status() InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := in.st
	st.Faults = slices.Clone(st.Faults)
	st.Dropped = maps.Clone(st.Dropped)
	return st
}

// neighLocktime is when a master announces once more after its first burst: just over
// Linux's default neighbour locktime (1 s), within which a host ignores an ARP update
// that follows another. When two nodes announce the same VIP less than a second apart
// (a split brain healing, a hung master waking up), the later burst is ignored by such
// hosts; this announcement is not, so they follow the right node at once instead of at
// the second burst.
const neighLocktime = 1100 * time.Millisecond

// garpSchedule is the announcement schedule of a master: a burst of Repeat
// announcements Interval apart, one more neighLocktime after the start, a second burst
// Delay after the first, then a burst every Refresh.
type garpSchedule struct {
	active bool
	left   int       // announcements left in the current burst
	next   time.Time // the next announcement
	lock   time.Time // the announcement after neighLocktime; zero when none is pending
	second time.Time // start of the second burst; zero when none is pending
}

func (g *garpSchedule) start(c GARP, now time.Time) {
	*g = garpSchedule{active: true, left: c.Repeat, next: now}
	burstEnd := now.Add(time.Duration(max(c.Repeat-1, 0)) * derefDuration(c.Interval))
	d := derefDuration(c.Delay)
	if c.Repeat > 0 && burstEnd.Before(now.Add(neighLocktime)) && (d == 0 || d > neighLocktime) {
		g.lock = now.Add(neighLocktime)
	}
	if d > 0 {
		g.second = now.Add(d)
	}
}

// due reports whether an announcement is due at now, and advances the schedule past it.
func (g *garpSchedule) due(c GARP, now time.Time) bool {
	if !g.active || now.Before(g.next) {
		return false
	}
	g.left--
	switch {
	case g.left > 0:
		g.next = g.next.Add(derefDuration(c.Interval))
	case !g.lock.IsZero():
		g.left, g.next, g.lock = 1, g.lock, time.Time{}
	case !g.second.IsZero():
		g.left, g.next, g.second = c.Repeat, g.second, time.Time{}
	case c.Refresh > 0:
		g.left, g.next = c.Repeat, now.Add(c.Refresh)
	default:
		g.active = false
	}
	return true
}

func derefDuration(d *time.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return *d
}
