package vip

import (
	"fmt"
	"net/netip"
	"time"
)

// The VRRP state machine of RFC 5798 section 6 (and RFC 3768 for version 2), as a pure
// step function: Machine.Step takes an event and the current time and returns what the
// caller must do. Nothing here touches the network, the kernel or a real clock, so each
// rule of the RFC is one row of a table test (fsm_test.go).
//
// Additions to the RFC, each marked where it happens:
//   - Fault (keepalived's FAULT): a tracked interface or check is down; a master gives
//     the addresses away with priority 0 and the machine stays silent until it clears.
//   - A master that hears a lower-priority master answers at once and announces its
//     addresses again (the RFC discards the advertisement), so that a split brain heals
//     within one round trip and the neighbours that followed the wrong node come back.
//     With LowerPrioNoAdvert (keepalived's lower_prio_no_advert) it announces without
//     advertising. Either way it answers at most once per advertisement interval
//     (lower-priority and priority 0 advertisements alike), so that a stream of forged
//     or stale advertisements costs one advertisement and one announcement burst per
//     interval, not one per packet.
//   - A backup that follows a master takes a priority 0 advertisement only from that
//     master: a priority 0 from anyone else (a stranger on the LAN, another backup) would
//     make it master after Skew_Time and flap the addresses. With no master known yet,
//     any sender's priority 0 counts, as in the RFC.
//   - preempt_delay: after startup (or a fault clearing) a backup that outranks the
//     master does not preempt until the delay has passed.
//   - Resign: a planned handover. The master sends priority 0 and becomes a backup that
//     keeps its addresses until it hears the new master (or its own Master_Down_Timer
//     fires and it takes the role back), and that does not preempt again until it next
//     becomes master by itself.

// State is a VRRP state.
type State int

// The states. Initialize is also the state of a stopped machine.
const (
	Initialize State = iota
	Backup
	Master
	Fault
)

func (s State) String() string {
	switch s {
	case Initialize:
		return "INIT"
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	case Fault:
		return "FAULT"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText writes the state as its name (MASTER, BACKUP, FAULT, INIT), for the admin
// API's JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// OwnerPriority is the priority of the router that owns the addresses (RFC 5798 5.2.4).
const OwnerPriority = 255

// Event is an input of Machine.Step: one of Startup, Shutdown, Timer, Advert, FaultEvent,
// FaultCleared, SetPriority, Resign, SyncMaster, SyncBackup, MasterGone.
type Event interface{ event() }

// Startup starts the machine (RFC 5798 6.4.1).
type Startup struct{}

// Shutdown stops the machine; a master sends priority 0 (6.4.2, 6.4.3).
type Shutdown struct{}

// Timer tells the machine that now is at or after NextDeadline; the machine decides
// which timer fired.
type Timer struct{}

// Advert is a received advertisement that passed the receive checks (5.2, 7.1).
type Advert struct {
	Priority int           // 0 to 255
	Src      netip.Addr    // the sender's primary address (IP source)
	Interval time.Duration // the advertised Max Adver Int
}

// FaultEvent puts the machine in Fault (a tracked interface or check failed).
type FaultEvent struct{}

// FaultCleared leaves Fault: the machine starts again as from Initialize.
type FaultCleared struct{}

// SetPriority changes the priority the machine runs with (1-254; tracking weights).
// An owner's priority (255) does not change.
type SetPriority struct{ Priority int }

// Resign hands the master role over (an operator's move): see the package comment.
type Resign struct{}

// SyncMaster and SyncBackup make a sync group member follow another member: a backup
// becomes master at once, a master becomes backup. They are ignored in other states.
type (
	SyncMaster struct{}
	SyncBackup struct{}
)

// MasterGone says that the master at Src is gone: the node's liveness connection to it
// ended with a FIN or a reset (the master's kernel closing the sockets of a killed
// process), or the master's liveness heartbeats stopped (a hung process, a dead link).
// A backup whose current master is Src treats it as a priority 0 advertisement (6.4.2:
// Master_Down_Timer = Skew_Time); it is ignored in other states and for another sender.
// An advertisement that arrives within the skew time restarts Master_Down_Interval as
// usual, so a master that was only slow keeps its role.
type MasterGone struct{ Src netip.Addr }

func (Startup) event()      {}
func (Shutdown) event()     {}
func (Timer) event()        {}
func (Advert) event()       {}
func (FaultEvent) event()   {}
func (FaultCleared) event() {}
func (SetPriority) event()  {}
func (Resign) event()       {}
func (SyncMaster) event()   {}
func (SyncBackup) event()   {}
func (MasterGone) event()   {}

// Action is an output of Machine.Step, for the caller to carry out in order.
type Action interface{ action() }

// SendAdvert sends an advertisement with this priority (0 on shutdown and resign).
type SendAdvert struct{ Priority int }

// AddAddresses adds the virtual addresses; RemoveAddresses removes them.
type (
	AddAddresses    struct{}
	RemoveAddresses struct{}
)

// Announce sends gratuitous ARP / unsolicited neighbour advertisements for the
// addresses (the caller repeats it as garp configures).
type Announce struct{}

// BecameMaster, BecameBackup, BecameFault and Stopped report a transition (for notify
// scripts, sync groups and metrics).
type (
	BecameMaster struct{}
	BecameBackup struct{}
	BecameFault  struct{}
	Stopped      struct{}
)

func (SendAdvert) action()      {}
func (AddAddresses) action()    {}
func (RemoveAddresses) action() {}
func (Announce) action()        {}
func (BecameMaster) action()    {}
func (BecameBackup) action()    {}
func (BecameFault) action()     {}
func (Stopped) action()         {}

// MachineConfig is what a Machine runs with.
type MachineConfig struct {
	Version        int           // 3 (RFC 5798) or 2 (RFC 3768)
	Priority       int           // 1-255; 255 owns the addresses
	Primary        netip.Addr    // our primary address, the tie breaker
	Preempt        bool          // Preempt_Mode
	PreemptDelay   time.Duration // see the package comment
	Accept         bool          // Accept_Mode: reported only, the caller decides
	AdvertInterval time.Duration // Advertisement_Interval
	// LowerPrioNoAdvert: a master that hears a lower priority does not answer with an
	// advertisement (it still announces its addresses); see the package comment.
	LowerPrioNoAdvert bool
}

// Machine is one virtual router's state. It is not safe for concurrent use: one
// goroutine owns it.
type Machine struct {
	cfg      MachineConfig
	priority int // the priority in use (cfg.Priority adjusted by SetPriority)

	state               State
	masterAdverInterval time.Duration
	masterDown          time.Time // Master_Down_Timer deadline; zero when not running
	adverTimer          time.Time // Adver_Timer deadline; zero when not running
	preemptAfter        time.Time // no preemption before this (preempt_delay)
	faulted             bool      // a FaultEvent not yet cleared
	holding             bool      // a resigned master still holds the addresses
	yielding            bool      // resigned: do not preempt until master again
	master              netip.Addr
	masterPriority      int
	// lastAnswer is when a master last answered a lower-priority or priority 0
	// advertisement; it answers again only an AdvertInterval later.
	lastAnswer time.Time
}

// NewMachine returns a machine in Initialize.
func NewMachine(c MachineConfig) *Machine {
	if c.Version == 0 {
		c.Version = 3
	}
	return &Machine{cfg: c, priority: c.Priority, masterAdverInterval: c.AdvertInterval}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Priority returns the priority the machine advertises.
func (m *Machine) Priority() int { return m.priority }

// Config returns what the machine runs with.
func (m *Machine) Config() MachineConfig { return m.cfg }

// Master returns the current master's address and priority as far as the machine
// knows: its own when master, the last accepted advertisement's sender when backup.
func (m *Machine) Master() (netip.Addr, int) {
	if m.state == Master {
		return m.cfg.Primary, m.priority
	}
	return m.master, m.masterPriority
}

// Holding reports whether a resigned master still holds the addresses.
func (m *Machine) Holding() bool { return m.holding }

// Yielding reports whether the machine resigned and does not preempt.
func (m *Machine) Yielding() bool { return m.yielding }

// MasterAdverInterval is the master's advertised interval (v3), or our own (v2).
func (m *Machine) MasterAdverInterval() time.Duration { return m.masterAdverInterval }

// NextDeadline returns when the caller must next step a Timer event; ok is false when
// no timer runs.
func (m *Machine) NextDeadline() (t time.Time, ok bool) {
	switch m.state {
	case Master:
		return m.adverTimer, !m.adverTimer.IsZero()
	case Backup:
		return m.masterDown, !m.masterDown.IsZero()
	}
	return time.Time{}, false
}

// SkewTime is Skew_Time. Version 3 (RFC 5798 6.1): ((256 - priority) ×
// Master_Adver_Interval) / 256. Version 2 (RFC 3768 6.1): (256 - priority) / 256
// seconds. The RFC counts in centiseconds without saying how to round; this computes in
// nanoseconds with integer arithmetic, which is exact for every interval that is a
// whole number of centiseconds up to half a nanosecond (truncated). keepalived truncates
// v3 skew to whole centiseconds, which makes it 0 for priority 254 at 1s and equal for
// neighbouring priorities; the finer value keeps backups of different priorities from
// firing at the same moment.
func SkewTime(version, priority int, masterAdverInterval time.Duration) time.Duration {
	if version == 2 {
		masterAdverInterval = time.Second
	}
	return time.Duration(int64(256-priority) * int64(masterAdverInterval) / 256)
}

// MasterDownInterval is Master_Down_Interval: 3 × Master_Adver_Interval + Skew_Time
// (v2: 3 × Advertisement_Interval + Skew_Time).
func MasterDownInterval(version, priority int, masterAdverInterval time.Duration) time.Duration {
	return 3*masterAdverInterval + SkewTime(version, priority, masterAdverInterval)
}

func (m *Machine) skew() time.Duration {
	return SkewTime(m.cfg.Version, m.priority, m.masterAdverInterval)
}

func (m *Machine) masterDownInterval() time.Duration {
	return MasterDownInterval(m.cfg.Version, m.priority, m.masterAdverInterval)
}

// Step applies ev at time now and returns the actions to carry out, in order.
func (m *Machine) Step(ev Event, now time.Time) []Action {
	switch ev := ev.(type) {
	case Startup:
		if m.state != Initialize {
			return nil
		}
		m.preemptAfter = now.Add(m.cfg.PreemptDelay)
		if m.faulted {
			m.state = Fault
			return []Action{BecameFault{}}
		}
		return m.initialize(now)
	case Shutdown:
		return m.shutdown()
	case Timer:
		return m.timer(now)
	case Advert:
		return m.advert(ev, now)
	case FaultEvent:
		return m.fault()
	case FaultCleared:
		m.faulted = false
		if m.state != Fault {
			return nil
		}
		m.state = Initialize
		m.preemptAfter = now.Add(m.cfg.PreemptDelay)
		return m.initialize(now)
	case SetPriority:
		return m.setPriority(ev.Priority, now)
	case Resign:
		if m.state != Master {
			return nil
		}
		m.yielding = true
		m.holding = true
		m.becomeBackup(now)
		return []Action{SendAdvert{Priority: 0}, BecameBackup{}}
	case SyncMaster:
		if m.state != Backup {
			return nil
		}
		return m.becomeMaster(now)
	case SyncBackup:
		if m.state != Master {
			return nil
		}
		m.becomeBackup(now)
		return []Action{RemoveAddresses{}, BecameBackup{}}
	case MasterGone:
		if m.state != Backup || !ev.Src.IsValid() || ev.Src != m.master {
			return nil
		}
		// As a priority 0 advertisement (6.4.2); never later than the running timer.
		if d := now.Add(m.skew()); d.Before(m.masterDown) {
			m.masterDown = d
		}
		m.master, m.masterPriority = netip.Addr{}, 0
		return nil
	}
	return nil
}

// initialize is RFC 5798 6.4.1 (from Initialize on Startup).
func (m *Machine) initialize(now time.Time) []Action {
	if m.cfg.Priority == OwnerPriority {
		return m.becomeMaster(now)
	}
	m.masterAdverInterval = m.cfg.AdvertInterval
	m.becomeBackup(now)
	return []Action{BecameBackup{}}
}

func (m *Machine) becomeMaster(now time.Time) []Action {
	m.state = Master
	m.masterDown = time.Time{}
	m.adverTimer = now.Add(m.cfg.AdvertInterval)
	m.holding = false
	m.yielding = false
	// Addresses first, so that the router answers for them by the time the others hear
	// the advertisement and the neighbours the announcement.
	return []Action{AddAddresses{}, SendAdvert{Priority: m.priority}, Announce{}, BecameMaster{}}
}

func (m *Machine) becomeBackup(now time.Time) {
	m.state = Backup
	m.adverTimer = time.Time{}
	m.master, m.masterPriority = netip.Addr{}, 0
	m.masterDown = now.Add(m.masterDownInterval())
}

func (m *Machine) shutdown() []Action {
	if m.state == Initialize {
		return nil
	}
	return append(m.leave(Initialize), Stopped{})
}

func (m *Machine) fault() []Action {
	m.faulted = true
	if m.state == Initialize || m.state == Fault {
		return nil
	}
	return append(m.leave(Fault), BecameFault{})
}

// leave quits Master or Backup for Initialize (shutdown) or Fault: a master sends
// priority 0 (6.4.3) and removes its addresses, a backup still holding them after a
// move removes them, and every timer and what is known of the master are cleared.
func (m *Machine) leave(to State) []Action {
	var acts []Action
	switch {
	case m.state == Master:
		acts = append(acts, SendAdvert{Priority: 0}, RemoveAddresses{})
	case m.state == Backup && m.holding:
		acts = append(acts, RemoveAddresses{})
	}
	m.state = to
	m.masterDown, m.adverTimer = time.Time{}, time.Time{}
	m.holding, m.yielding = false, false
	m.master, m.masterPriority = netip.Addr{}, 0
	return acts
}

func (m *Machine) timer(now time.Time) []Action {
	switch m.state {
	case Master:
		if m.adverTimer.IsZero() || now.Before(m.adverTimer) {
			return nil
		}
		// 6.4.3: send an advertisement, reset Adver_Timer.
		m.adverTimer = now.Add(m.cfg.AdvertInterval)
		return []Action{SendAdvert{Priority: m.priority}}
	case Backup:
		if m.masterDown.IsZero() || now.Before(m.masterDown) {
			return nil
		}
		// 6.4.2: Master_Down_Timer fired.
		return m.becomeMaster(now)
	}
	return nil
}

func (m *Machine) advert(a Advert, now time.Time) []Action {
	if a.Src == m.cfg.Primary {
		return nil // our own, looped back
	}
	switch m.state {
	case Backup:
		if a.Priority == 0 {
			if m.master.IsValid() && a.Src != m.master {
				// Not our master's: a stranger's or another backup's (lbd's addition).
				return nil
			}
			// 6.4.2: the master is leaving; take over after Skew_Time.
			m.masterDown = now.Add(m.skew())
			m.master, m.masterPriority = netip.Addr{}, 0
			return nil
		}
		preempt := m.cfg.Preempt && !m.yielding && !now.Before(m.preemptAfter)
		if !preempt || a.Priority >= m.priority {
			// 6.4.2: accept the master; learn its interval (v3 only: a v2 interval
			// that differs from ours was dropped by the receive checks).
			if m.cfg.Version != 2 && a.Interval > 0 {
				m.masterAdverInterval = a.Interval
			}
			m.masterDown = now.Add(m.masterDownInterval())
			m.master, m.masterPriority = a.Src, a.Priority
			if m.holding {
				// A resigned master lets go once the new master speaks.
				m.holding = false
				return []Action{RemoveAddresses{}}
			}
			return nil
		}
		// 6.4.2: preempt: discard, so that Master_Down_Timer fires.
		return nil
	case Master:
		if a.Priority == 0 {
			// 6.4.3: another master left; advertise at once (once per interval).
			if !m.answer(now) {
				return nil
			}
			m.adverTimer = now.Add(m.cfg.AdvertInterval)
			return []Action{SendAdvert{Priority: m.priority}}
		}
		if a.Priority > m.priority || (a.Priority == m.priority && a.Src.Compare(m.cfg.Primary) > 0) {
			// 6.4.3: a better master: become backup.
			if m.cfg.Version != 2 && a.Interval > 0 {
				m.masterAdverInterval = a.Interval
			}
			m.becomeBackup(now)
			m.master, m.masterPriority = a.Src, a.Priority
			return []Action{RemoveAddresses{}, BecameBackup{}}
		}
		// 6.4.3 discards the advertisement. We answer at once and announce again, so
		// that the other master steps down now and its neighbours come back to us; at
		// most once per interval, and without the advertisement with
		// LowerPrioNoAdvert.
		if !m.answer(now) {
			return nil
		}
		if m.cfg.LowerPrioNoAdvert {
			return []Action{Announce{}}
		}
		m.adverTimer = now.Add(m.cfg.AdvertInterval)
		return []Action{SendAdvert{Priority: m.priority}, Announce{}}
	}
	return nil
}

// answer reports whether a master may answer an advertisement at now (the last answer
// is at least an AdvertInterval old), and records the answer.
func (m *Machine) answer(now time.Time) bool {
	if !m.lastAnswer.IsZero() && now.Before(m.lastAnswer.Add(m.cfg.AdvertInterval)) {
		return false
	}
	m.lastAnswer = now
	return true
}

func (m *Machine) setPriority(p int, now time.Time) []Action {
	if m.cfg.Priority == OwnerPriority {
		return nil
	}
	p = min(max(p, 1), OwnerPriority-1)
	if p == m.priority {
		return nil
	}
	m.priority = p
	if m.state == Master {
		// Tell the backups (and a peer's status) now rather than at the next
		// Adver_Timer.
		m.adverTimer = now.Add(m.cfg.AdvertInterval)
		return []Action{SendAdvert{Priority: p}}
	}
	return nil
}
