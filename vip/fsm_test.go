package vip

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	fsmT0    = time.Unix(1_000_000, 0)
	fsmOurs  = netip.MustParseAddr("198.18.0.5")
	fsmHigh  = netip.MustParseAddr("198.18.0.9") // a peer with a higher address
	fsmLow   = netip.MustParseAddr("198.18.0.2") // a peer with a lower address
	noDeadln = time.Duration(-1)
)

func fsmConfig(mod ...func(*MachineConfig)) MachineConfig {
	c := MachineConfig{Version: 3, Priority: 100, Primary: fsmOurs, Preempt: true, AdvertInterval: time.Second}
	for _, f := range mod {
		f(&c)
	}
	return c
}

type fsmStep struct {
	at time.Duration // since fsmT0
	ev Event
}

// at is a step at offset d.
func fsmAt(d time.Duration, ev Event) fsmStep { return fsmStep{d, ev} }

func fsmAdv(prio int, src netip.Addr) Advert {
	return Advert{Priority: prio, Src: src, Interval: time.Second}
}

// ms builds durations with sub-millisecond parts readably: fsmMs(3609.375).
func fsmMs(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// TestMachine runs each rule of RFC 5798 section 6 (and lbd's additions) as a row: the
// machine takes the steps in order; the row checks the actions of the last step, the
// final state and the next deadline.
func TestMachine(t *testing.T) {
	mdi100 := fsmMs(3609.375) // 3 × 1s + (156 × 1s)/256
	tests := []struct {
		name         string
		cfg          MachineConfig
		steps        []fsmStep
		want         []Action
		wantState    State
		wantDeadline time.Duration // since fsmT0; noDeadln for none
		wantMaster   netip.Addr
	}{
		// 6.4.1 Initialize
		{
			name:         "6.4.1 startup, not owner: backup, Master_Down_Timer = Master_Down_Interval",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{})},
			want:         []Action{BecameBackup{}},
			wantState:    Backup,
			wantDeadline: mdi100,
		},
		{
			name:         "6.4.1 startup, owner (255): master at once, advertise and announce",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, Startup{})},
			want:         []Action{AddAddresses{}, SendAdvert{255}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "startup twice is a no-op",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, Startup{})},
			want:         nil,
			wantState:    Backup,
			wantDeadline: mdi100,
		},
		// 6.4.2 Backup
		{
			name:         "6.4.2 backup: Master_Down_Timer fires: master",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{})},
			want:         []Action{AddAddresses{}, SendAdvert{100}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: mdi100 + time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "6.4.2 backup: a timer before the deadline does nothing",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100-1, Timer{})},
			want:         nil,
			wantState:    Backup,
			wantDeadline: mdi100,
		},
		{
			name:         "6.4.2 backup: higher priority advert resets Master_Down_Timer",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(2*time.Second, fsmAdv(200, fsmLow))},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 2*time.Second + mdi100,
			wantMaster:   fsmLow,
		},
		{
			name:         "6.4.2 backup: equal priority advert (lower address) is accepted",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(2*time.Second, fsmAdv(100, fsmLow))},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 2*time.Second + mdi100,
			wantMaster:   fsmLow,
		},
		{
			name:         "6.4.2 backup, preempt: lower priority advert is discarded",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(2*time.Second, fsmAdv(50, fsmHigh))},
			want:         nil,
			wantState:    Backup,
			wantDeadline: mdi100,
		},
		{
			name: "6.4.2 backup, preempt: takes over from a lower master when the timer fires",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(50, fsmHigh)), fsmAt(2*time.Second, fsmAdv(50, fsmHigh)),
				fsmAt(3*time.Second, fsmAdv(50, fsmHigh)), fsmAt(mdi100, Timer{}),
			},
			want:         []Action{AddAddresses{}, SendAdvert{100}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: mdi100 + time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "6.4.2 backup, preempt false: lower priority advert resets the timer",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Preempt = false }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(2*time.Second, fsmAdv(50, fsmHigh))},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 2*time.Second + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name: "6.4.2 backup, preempt false: never preempts a live lower master",
			cfg:  fsmConfig(func(c *MachineConfig) { c.Preempt = false }),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(50, fsmHigh)), fsmAt(2*time.Second, fsmAdv(50, fsmHigh)),
				fsmAt(3*time.Second, fsmAdv(50, fsmHigh)), fsmAt(4*time.Second, fsmAdv(50, fsmHigh)), fsmAt(mdi100+time.Second, Timer{}),
			},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 4*time.Second + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name:         "6.4.2 backup: priority 0 sets Master_Down_Timer to Skew_Time",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(200, fsmHigh)), fsmAt(2*time.Second, fsmAdv(0, fsmHigh))},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 2*time.Second + fsmMs(609.375),
		},
		{
			name: "6.4.2 backup: after priority 0, master at Skew_Time",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(200, fsmHigh)), fsmAt(2*time.Second, fsmAdv(0, fsmHigh)),
				fsmAt(2*time.Second+fsmMs(609.375), Timer{}),
			},
			want:         []Action{AddAddresses{}, SendAdvert{100}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: 3*time.Second + fsmMs(609.375),
			wantMaster:   fsmOurs,
		},
		{
			name:         "master gone: from the current master, backup sets Master_Down_Timer to Skew_Time",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(200, fsmHigh)), fsmAt(2*time.Second, MasterGone{Src: fsmHigh})},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 2*time.Second + fsmMs(609.375),
		},
		{
			name: "master gone: master at Skew_Time",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(200, fsmHigh)), fsmAt(2*time.Second, MasterGone{Src: fsmHigh}),
				fsmAt(2*time.Second+fsmMs(609.375), Timer{}),
			},
			want:         []Action{AddAddresses{}, SendAdvert{100}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: 3*time.Second + fsmMs(609.375),
			wantMaster:   fsmOurs,
		},
		{
			name: "master gone, but it advertises within Skew_Time (only slow): Master_Down_Interval again",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(200, fsmHigh)), fsmAt(2*time.Second, MasterGone{Src: fsmHigh}),
				fsmAt(2*time.Second+fsmMs(300), fsmAdv(200, fsmHigh)),
			},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 2*time.Second + fsmMs(300) + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name:         "master gone: from another address, ignored",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(200, fsmHigh)), fsmAt(2*time.Second, MasterGone{Src: fsmLow})},
			want:         nil,
			wantState:    Backup,
			wantDeadline: time.Second + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name:         "master gone: no master known yet, ignored",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, MasterGone{Src: fsmHigh})},
			want:         nil,
			wantState:    Backup,
			wantDeadline: mdi100,
		},
		{
			name: "master gone: as master, ignored",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(mdi100+time.Second/2, MasterGone{Src: fsmHigh}),
			},
			want:         nil,
			wantState:    Master,
			wantDeadline: mdi100 + time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name: "6.4.2 backup v3: learns Master_Adver_Interval from the advert",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}),
				fsmAt(time.Second, Advert{Priority: 200, Src: fsmHigh, Interval: 2 * time.Second}),
			},
			want:         nil,
			wantState:    Backup,
			wantDeadline: time.Second + 6*time.Second + fsmMs(1218.75), // 3 × 2s + 156 × 2s / 256
			wantMaster:   fsmHigh,
		},
		{
			name: "6.4.2 backup v2: keeps its own interval",
			cfg:  fsmConfig(func(c *MachineConfig) { c.Version = 2 }),
			steps: []fsmStep{
				fsmAt(0, Startup{}),
				fsmAt(time.Second, Advert{Priority: 200, Src: fsmHigh, Interval: 2 * time.Second}),
			},
			want:         nil,
			wantState:    Backup,
			wantDeadline: time.Second + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name:         "6.4.2 backup: shutdown cancels the timer",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, Shutdown{})},
			want:         []Action{Stopped{}},
			wantState:    Initialize,
			wantDeadline: noDeadln,
		},
		{
			name:         "backup: our own advert looped back is ignored",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(200, fsmOurs))},
			want:         nil,
			wantState:    Backup,
			wantDeadline: mdi100,
		},
		// preempt_delay
		{
			name: "preempt_delay: within the delay a lower master is accepted",
			cfg:  fsmConfig(func(c *MachineConfig) { c.PreemptDelay = 10 * time.Second }),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(9*time.Second, fsmAdv(50, fsmHigh)),
			},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 9*time.Second + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name: "preempt_delay: after the delay a lower master is discarded",
			cfg:  fsmConfig(func(c *MachineConfig) { c.PreemptDelay = 10 * time.Second }),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(9*time.Second, fsmAdv(50, fsmHigh)), fsmAt(10*time.Second, fsmAdv(50, fsmHigh)),
			},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 9*time.Second + mdi100,
			wantMaster:   fsmHigh, // still the master on the wire
		},
		{
			name: "preempt_delay: preempts once the timer fires after the delay",
			cfg:  fsmConfig(func(c *MachineConfig) { c.PreemptDelay = 10 * time.Second }),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(9*time.Second, fsmAdv(50, fsmHigh)), fsmAt(10*time.Second, fsmAdv(50, fsmHigh)),
				fsmAt(9*time.Second+mdi100, Timer{}),
			},
			want:         []Action{AddAddresses{}, SendAdvert{100}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: 10*time.Second + mdi100,
			wantMaster:   fsmOurs,
		},
		// 6.4.3 Master
		{
			name:         "6.4.3 master: Adver_Timer fires: advertise, reset",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, Timer{})},
			want:         []Action{SendAdvert{255}},
			wantState:    Master,
			wantDeadline: 2 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "6.4.3 master: a timer before the deadline does nothing",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second-1, Timer{})},
			want:         nil,
			wantState:    Master,
			wantDeadline: time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "6.4.3 master: priority 0 received: advertise at once",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(fsmMs(300), fsmAdv(0, fsmHigh))},
			want:         []Action{SendAdvert{255}},
			wantState:    Master,
			wantDeadline: fsmMs(1300),
			wantMaster:   fsmOurs,
		},
		{
			name:         "6.4.3 master: higher priority advert: backup, addresses removed",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, fsmAdv(150, fsmLow))},
			want:         []Action{RemoveAddresses{}, BecameBackup{}},
			wantState:    Backup,
			wantDeadline: 5*time.Second + mdi100,
			wantMaster:   fsmLow,
		},
		{
			name: "6.4.3 master: higher priority advert: learns its interval",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}),
				fsmAt(5*time.Second, Advert{Priority: 150, Src: fsmLow, Interval: 100 * time.Millisecond}),
			},
			want:         []Action{RemoveAddresses{}, BecameBackup{}},
			wantState:    Backup,
			wantDeadline: 5*time.Second + 300*time.Millisecond + fsmMs(60.9375),
			wantMaster:   fsmLow,
		},
		{
			name:         "6.4.3 master: equal priority, higher address: backup",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, fsmAdv(100, fsmHigh))},
			want:         []Action{RemoveAddresses{}, BecameBackup{}},
			wantState:    Backup,
			wantDeadline: 5*time.Second + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name:         "6.4.3 master: equal priority, lower address: stays, answers at once",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, fsmAdv(100, fsmLow))},
			want:         []Action{SendAdvert{100}, Announce{}},
			wantState:    Master,
			wantDeadline: 6 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "split brain: master hears a lower master: answers at once and announces",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, fsmAdv(50, fsmHigh))},
			want:         []Action{SendAdvert{100}, Announce{}},
			wantState:    Master,
			wantDeadline: 6 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name: "answer bound: a second lower-priority advert within the interval is not answered",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, fsmAdv(50, fsmHigh)),
				fsmAt(5*time.Second+fsmMs(500), fsmAdv(50, fsmHigh)),
			},
			want:         nil,
			wantState:    Master,
			wantDeadline: 6 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name: "answer bound: a lower-priority advert an interval after the last answer is answered",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, fsmAdv(50, fsmHigh)),
				fsmAt(5*time.Second+fsmMs(500), fsmAdv(50, fsmHigh)), fsmAt(6*time.Second, fsmAdv(50, fsmHigh)),
			},
			want:         []Action{SendAdvert{100}, Announce{}},
			wantState:    Master,
			wantDeadline: 7 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name: "answer bound: priority 0 right after an answer is not answered",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, fsmAdv(50, fsmHigh)),
				fsmAt(5*time.Second+fsmMs(10), fsmAdv(0, fsmLow)),
			},
			want:         nil,
			wantState:    Master,
			wantDeadline: 6 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "lower_prio_no_advert: master hears a lower priority: announces, does not advertise",
			cfg:          fsmConfig(func(c *MachineConfig) { c.LowerPrioNoAdvert = true }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, fsmAdv(50, fsmHigh))},
			want:         []Action{Announce{}},
			wantState:    Master,
			wantDeadline: mdi100 + time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name: "backup: priority 0 from someone other than its master is ignored",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(200, fsmHigh)), fsmAt(2*time.Second, fsmAdv(0, fsmLow)),
			},
			want:         nil,
			wantState:    Backup,
			wantDeadline: time.Second + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name:         "backup: priority 0 with no master known yet sets Master_Down_Timer to Skew_Time",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(0, fsmLow))},
			want:         nil,
			wantState:    Backup,
			wantDeadline: time.Second + fsmMs(609.375),
		},
		{
			name:         "6.4.3 master: shutdown sends priority 0 and removes the addresses",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, Shutdown{})},
			want:         []Action{SendAdvert{0}, RemoveAddresses{}, Stopped{}},
			wantState:    Initialize,
			wantDeadline: noDeadln,
		},
		{
			name:         "shutdown before startup does nothing",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Shutdown{})},
			want:         nil,
			wantState:    Initialize,
			wantDeadline: noDeadln,
		},
		// Fault (keepalived)
		{
			name:         "fault as master: priority 0, addresses removed",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, FaultEvent{})},
			want:         []Action{SendAdvert{0}, RemoveAddresses{}, BecameFault{}},
			wantState:    Fault,
			wantDeadline: noDeadln,
		},
		{
			name:         "fault as backup: silent, no timer",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, FaultEvent{})},
			want:         []Action{BecameFault{}},
			wantState:    Fault,
			wantDeadline: noDeadln,
		},
		{
			name:         "fault: adverts and timers are ignored",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, FaultEvent{}), fsmAt(2*time.Second, fsmAdv(0, fsmHigh)), fsmAt(10*time.Second, Timer{})},
			want:         nil,
			wantState:    Fault,
			wantDeadline: noDeadln,
		},
		{
			name:         "fault cleared: backup with a fresh Master_Down_Timer",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, FaultEvent{}), fsmAt(5*time.Second, FaultCleared{})},
			want:         []Action{BecameBackup{}},
			wantState:    Backup,
			wantDeadline: 5*time.Second + mdi100,
		},
		{
			name:         "fault cleared, owner: master",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, FaultEvent{}), fsmAt(5*time.Second, FaultCleared{})},
			want:         []Action{AddAddresses{}, SendAdvert{255}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: 6 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "fault before startup: starts in fault",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, FaultEvent{}), fsmAt(time.Second, Startup{})},
			want:         []Action{BecameFault{}},
			wantState:    Fault,
			wantDeadline: noDeadln,
		},
		{
			name:         "fault, shutdown: stopped",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, FaultEvent{}), fsmAt(2*time.Second, Shutdown{})},
			want:         []Action{Stopped{}},
			wantState:    Initialize,
			wantDeadline: noDeadln,
		},
		{
			name: "fault cleared restarts preempt_delay",
			cfg:  fsmConfig(func(c *MachineConfig) { c.PreemptDelay = 10 * time.Second }),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(time.Second, FaultEvent{}), fsmAt(20*time.Second, FaultCleared{}),
				fsmAt(25*time.Second, fsmAdv(50, fsmHigh)),
			},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 25*time.Second + mdi100,
			wantMaster:   fsmHigh,
		},
		// Priority changes (tracking)
		{
			name:         "set priority as master: advertised at once",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, SetPriority{50})},
			want:         []Action{SendAdvert{50}},
			wantState:    Master,
			wantDeadline: 6 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "set priority clamps to 1",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, SetPriority{-20})},
			want:         []Action{SendAdvert{1}},
			wantState:    Master,
			wantDeadline: 6 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "set priority clamps to 254",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, SetPriority{300})},
			want:         []Action{SendAdvert{254}},
			wantState:    Master,
			wantDeadline: 6 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "set priority: owner keeps 255",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(fsmMs(500), SetPriority{10})},
			want:         nil,
			wantState:    Master,
			wantDeadline: time.Second,
			wantMaster:   fsmOurs,
		},
		{
			// The running Master_Down_Timer keeps the skew it was set with (6.4.2
			// recomputes it only on an accepted advertisement).
			name: "set priority as backup: now outranks the master, preempts",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(150, fsmHigh)), fsmAt(fsmMs(1500), SetPriority{200}),
				fsmAt(2*time.Second, fsmAdv(150, fsmHigh)), fsmAt(time.Second+mdi100, Timer{}),
			},
			want:         []Action{AddAddresses{}, SendAdvert{200}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: 2*time.Second + mdi100,
			wantMaster:   fsmOurs,
		},
		// Resign (operator move)
		{
			name:         "resign: priority 0, backup that still holds the addresses",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, Resign{})},
			want:         []Action{SendAdvert{0}, BecameBackup{}},
			wantState:    Backup,
			wantDeadline: 5*time.Second + mdi100,
		},
		{
			name: "resign: the new master's advert releases the addresses, no preemption",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, Resign{}),
				fsmAt(5*time.Second+fsmMs(700), fsmAdv(50, fsmHigh)),
			},
			want:         []Action{RemoveAddresses{}},
			wantState:    Backup,
			wantDeadline: 5*time.Second + fsmMs(700) + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name: "resign: yielding backup keeps accepting a lower master",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, Resign{}),
				fsmAt(5*time.Second+fsmMs(700), fsmAdv(50, fsmHigh)), fsmAt(6*time.Second+fsmMs(700), fsmAdv(50, fsmHigh)),
			},
			want:         nil,
			wantState:    Backup,
			wantDeadline: 6*time.Second + fsmMs(700) + mdi100,
			wantMaster:   fsmHigh,
		},
		{
			name: "resign: nobody takes over: master again when the timer fires",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, Resign{}),
				fsmAt(5*time.Second+mdi100, Timer{}),
			},
			want:         []Action{AddAddresses{}, SendAdvert{100}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: 6*time.Second + mdi100,
			wantMaster:   fsmOurs,
		},
		{
			name: "resign, shutdown while holding: addresses removed",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, Resign{}), fsmAt(fsmMs(5100), Shutdown{}),
			},
			want:         []Action{RemoveAddresses{}, Stopped{}},
			wantState:    Initialize,
			wantDeadline: noDeadln,
		},
		{
			name: "resign, fault while holding: addresses removed",
			cfg:  fsmConfig(),
			steps: []fsmStep{
				fsmAt(0, Startup{}), fsmAt(mdi100, Timer{}), fsmAt(5*time.Second, Resign{}), fsmAt(fsmMs(5100), FaultEvent{}),
			},
			want:         []Action{RemoveAddresses{}, BecameFault{}},
			wantState:    Fault,
			wantDeadline: noDeadln,
		},
		{
			name:         "resign as backup does nothing",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, Resign{})},
			want:         nil,
			wantState:    Backup,
			wantDeadline: mdi100,
		},
		// Sync groups
		{
			name:         "sync master: a backup member becomes master at once",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, fsmAdv(200, fsmHigh)), fsmAt(2*time.Second, SyncMaster{})},
			want:         []Action{AddAddresses{}, SendAdvert{100}, Announce{}, BecameMaster{}},
			wantState:    Master,
			wantDeadline: 3 * time.Second,
			wantMaster:   fsmOurs,
		},
		{
			name:         "sync backup: a master member becomes backup",
			cfg:          fsmConfig(func(c *MachineConfig) { c.Priority = 255 }),
			steps:        []fsmStep{fsmAt(0, Startup{}), fsmAt(time.Second, SyncBackup{})},
			want:         []Action{RemoveAddresses{}, BecameBackup{}},
			wantState:    Backup,
			wantDeadline: time.Second + 3*time.Second + fsmMs(3.90625),
		},
		{
			name:         "sync master in fault is ignored",
			cfg:          fsmConfig(),
			steps:        []fsmStep{fsmAt(0, FaultEvent{}), fsmAt(0, Startup{}), fsmAt(time.Second, SyncMaster{})},
			want:         nil,
			wantState:    Fault,
			wantDeadline: noDeadln,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(tt.cfg)
			var got []Action
			for i, s := range tt.steps {
				got = m.Step(s.ev, fsmT0.Add(s.at))
				t.Logf("step %d at %v %T%+v -> %s %v", i, s.at, s.ev, s.ev, m.State(), got)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("actions of the last step (-want +got):\n%s", diff)
			}
			if m.State() != tt.wantState {
				t.Errorf("state = %v, want %v", m.State(), tt.wantState)
			}
			d, ok := m.NextDeadline()
			switch {
			case tt.wantDeadline == noDeadln && ok:
				t.Errorf("deadline = %v, want none", d.Sub(fsmT0))
			case tt.wantDeadline != noDeadln && !ok:
				t.Errorf("no deadline, want %v", tt.wantDeadline)
			case ok && d.Sub(fsmT0) != tt.wantDeadline:
				t.Errorf("deadline = %v, want %v", d.Sub(fsmT0), tt.wantDeadline)
			}
			if master, _ := m.Master(); master != tt.wantMaster {
				t.Errorf("master = %v, want %v", master, tt.wantMaster)
			}
		})
	}
}

// TestTimers checks Skew_Time and Master_Down_Interval. Values are exact: the
// computation is integer nanoseconds (see SkewTime), so (256 - p) × 1s / 256 has no
// remainder; at 10ms the half nanosecond is truncated.
func TestTimers(t *testing.T) {
	tests := []struct {
		name       string
		version    int
		priority   int
		interval   time.Duration
		wantSkew   time.Duration
		wantMaster time.Duration
	}{
		{"v3 1s priority 1", 3, 1, time.Second, fsmMs(996.09375), fsmMs(3996.09375)},
		{"v3 1s priority 100", 3, 100, time.Second, fsmMs(609.375), fsmMs(3609.375)},
		{"v3 1s priority 254", 3, 254, time.Second, fsmMs(7.8125), fsmMs(3007.8125)},
		{"v3 1s priority 255", 3, 255, time.Second, fsmMs(3.90625), fsmMs(3003.90625)},
		{"v3 100ms priority 1", 3, 1, 100 * time.Millisecond, fsmMs(99.609375), fsmMs(399.609375)},
		{"v3 100ms priority 100", 3, 100, 100 * time.Millisecond, fsmMs(60.9375), fsmMs(360.9375)},
		{"v3 100ms priority 254", 3, 254, 100 * time.Millisecond, fsmMs(0.78125), fsmMs(300.78125)},
		{"v3 10ms priority 1 (half ns truncated)", 3, 1, 10 * time.Millisecond, 9960937, 39960937},
		{"v3 40.95s priority 100", 3, 100, 40950 * time.Millisecond, fsmMs(24953.90625), fsmMs(147803.90625)},
		{"v2 1s priority 100", 2, 100, time.Second, fsmMs(609.375), fsmMs(3609.375)},
		{"v2 3s priority 100: skew stays in seconds/256", 2, 100, 3 * time.Second, fsmMs(609.375), fsmMs(9609.375)},
		{"v2 1s priority 1", 2, 1, time.Second, fsmMs(996.09375), fsmMs(3996.09375)},
		{"v2 1s priority 254", 2, 254, time.Second, fsmMs(7.8125), fsmMs(3007.8125)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SkewTime(tt.version, tt.priority, tt.interval); got != tt.wantSkew {
				t.Errorf("SkewTime = %v, want %v", got, tt.wantSkew)
			}
			if got := MasterDownInterval(tt.version, tt.priority, tt.interval); got != tt.wantMaster {
				t.Errorf("MasterDownInterval = %v, want %v", got, tt.wantMaster)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Initialize: "INIT", Backup: "BACKUP", Master: "MASTER", Fault: "FAULT", 9: "State(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int(s), s.String(), want)
		}
		if b, _ := s.MarshalText(); string(b) != want {
			t.Errorf("%d: MarshalText %q, want %q", int(s), b, want)
		}
	}
}
