package vip

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/internal/clock"
)

// The manager tests run two or three "nodes" (managers) on a fake LAN (fakeBus) with a
// fake clock, inside a synctest bubble: the clock steps from timer to timer and waits
// for every goroutine to settle in between, so each assertion sees a quiet system at an
// exact time.

type testNode struct {
	name  string
	addr  netip.Addr
	m     *Manager
	addrs *fakeAddrs
	ann   *fakeAnnouncer
	run   *fakeRunner
	// deps, if set, changes the Deps the node's manager is made with.
	deps func(*Deps)
}

type testLAN struct {
	t     *testing.T
	clk   *clock.Fake // step it with advance
	bus   *fakeBus
	t0    time.Time
	nodes []*testNode
}

func newTestLAN(t *testing.T) *testLAN {
	c := clock.NewFake()
	return &testLAN{t: t, clk: c, bus: newFakeBus(), t0: c.Now()}
}

// advance steps the LAN's clock by d, letting every node handle each firing before the
// next (advance in fake_test.go).
func (l *testLAN) advance(d time.Duration) { advance(l.clk, d) }

// lanTest runs f in a synctest bubble on a fresh LAN, and closes every node on it when
// f returns.
func lanTest(t *testing.T, f func(t *testing.T, l *testLAN)) {
	synctest.Test(t, func(t *testing.T) {
		l := newTestLAN(t)
		defer l.closeAll()
		f(t, l)
	})
}

// pair starts the two nodes most tests use: "a" at 198.18.0.1 with cfgA, then "b" at
// 198.18.0.2 with cfgB.
func (l *testLAN) pair(cfgA, cfgB Config) (a, b *testNode) {
	l.t.Helper()
	a = l.node("a", "198.18.0.1", cfgA)
	b = l.node("b", "198.18.0.2", cfgB)
	return a, b
}

// node starts a manager on the LAN with address addr and cfg.
func (l *testLAN) node(name, addr string, cfg Config) *testNode {
	l.t.Helper()
	n := l.newNode(name, addr)
	l.join(n, cfg)
	return n
}

// newNode is a node with address addr and its own fake kernel, not started yet.
func (l *testLAN) newNode(name, addr string) *testNode {
	return &testNode{
		name: name, addr: netip.MustParseAddr(addr), addrs: newFakeAddrs(),
		ann: &fakeAnnouncer{clock: l.clk, t0: l.t0}, run: &fakeRunner{},
	}
}

// join starts n with cfg and counts it among the LAN's nodes.
func (l *testLAN) join(n *testNode, cfg Config) {
	l.t.Helper()
	l.start(n, cfg)
	l.nodes = append(l.nodes, n)
}

func (l *testLAN) start(n *testNode, cfg Config) {
	l.t.Helper()
	deps := Deps{
		Transport: func(Instance) (Transport, error) { return l.bus.port(n.addr), nil },
		Addresses: n.addrs,
		Announcer: n.ann,
		Clock:     l.clk,
		Logger:    slog.New(slog.NewTextHandler(testLogWriter{l.t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", n.name),
		Run:       n.run.Run,
	}
	if n.deps != nil {
		n.deps(&deps)
	}
	m, err := New(cfg, deps)
	if err != nil {
		l.t.Fatalf("New %s: %v", n.name, err)
	}
	if err := m.Start(); err != nil {
		l.t.Fatalf("Start %s: %v", n.name, err)
	}
	n.m = m
}

// restart starts a stopped node again with cfg.
func (l *testLAN) restart(n *testNode, cfg Config) { l.start(n, cfg) }

// apply reloads n with cfg, failing the test if the manager refuses it.
func (n *testNode) apply(t *testing.T, cfg Config) {
	t.Helper()
	if err := n.m.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func (n *testNode) close(t *testing.T) {
	if err := n.m.Close(context.Background()); err != nil {
		t.Errorf("Close %s: %v", n.name, err)
	}
}

func (l *testLAN) closeAll() {
	for _, n := range l.nodes {
		n.close(l.t)
	}
	synctest.Wait()
}

// owners returns the nodes that hold prefix p.
func (l *testLAN) owners(p string) []string {
	var out []string
	for _, n := range l.nodes {
		if strings.Contains(n.addrs.String(), " "+p+" ") {
			out = append(out, n.name)
		}
	}
	return out
}

// states returns "node:STATE" for instance name on every node.
func (l *testLAN) states(name string) []string {
	var out []string
	for _, n := range l.nodes {
		st, ok := n.status(name)
		s := "STOPPED"
		if ok {
			s = st.State.String()
		}
		out = append(out, n.name+":"+s)
	}
	return out
}

func (n *testNode) status(name string) (InstanceStatus, bool) {
	for _, s := range n.m.Status() {
		if s.Name == name {
			return s, true
		}
	}
	return InstanceStatus{}, false
}

func (l *testLAN) expect(what string, got, want []string) {
	l.t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		l.t.Errorf("at +%v %s (-want +got):\n%s", l.clk.Now().Sub(l.t0), what, diff)
	}
}

func webConfig(priority int, mod ...func(*Instance)) Config {
	in := Instance{Name: "web", Interface: "eth0", VRID: 51, Priority: priority, Addresses: []string{"198.18.0.100/24"}}
	for _, f := range mod {
		f(&in)
	}
	return Config{Instances: []Instance{in}}
}

const webVIP = "198.18.0.100/24"

// groupConfig is sync group "g" of two instances at priority p: "ext" (eth0, VRID 51,
// 198.18.0.100/24) and "int" (eth1, VRID 52, 198.18.1.100/24), which tracks eth2.
func groupConfig(p int, mod ...func(ext, internal *Instance, g *SyncGroup)) Config {
	c := Config{
		Instances: []Instance{
			{Name: "ext", Interface: "eth0", VRID: 51, Priority: p, Addresses: []string{"198.18.0.100/24"}},
			{
				Name: "int", Interface: "eth1", VRID: 52, Priority: p, Addresses: []string{"198.18.1.100/24"},
				TrackInterfaces: []TrackInterface{{Name: "eth2"}},
			},
		},
		SyncGroups: []SyncGroup{{Name: "g", Instances: []string{"ext", "int"}}},
	}
	for _, f := range mod {
		f(&c.Instances[0], &c.Instances[1], &c.SyncGroups[0])
	}
	return c
}

func TestManagerElectionAndGracefulFailover(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, b := l.pair(webConfig(200), webConfig(100))

		l.advance(3 * time.Second)
		l.expect("owners before Master_Down_Interval", l.owners(webVIP), nil)
		// a's Master_Down_Interval is 3s + 56/256 s = 3.21875s.
		l.advance(300 * time.Millisecond)
		l.expect("owners", l.owners(webVIP), []string{"a"})
		l.expect("states", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
		want := []string{
			"+3.21875s eth0 198.18.0.100", "+3.22875s eth0 198.18.0.100", "+3.23875s eth0 198.18.0.100",
			"+3.24875s eth0 198.18.0.100", "+3.25875s eth0 198.18.0.100",
		}
		l.expect("first announcement burst", a.ann.take(), want)
		l.advance(5 * time.Second)
		l.expect("one after the neighbour locktime, second burst after garp.delay", a.ann.take(), []string{
			"+4.31875s eth0 198.18.0.100", "+8.21875s eth0 198.18.0.100", "+8.22875s eth0 198.18.0.100", "+8.23875s eth0 198.18.0.100",
			"+8.24875s eth0 198.18.0.100", "+8.25875s eth0 198.18.0.100",
		})
		l.advance(20 * time.Second)
		l.expect("no refresh by default", a.ann.take(), nil)
		if st, _ := b.status("web"); st.Master != a.addr || st.MasterPriority != 200 {
			t.Errorf("b sees master %v priority %d, want %v 200", st.Master, st.MasterPriority, a.addr)
		}
		if st, _ := a.status("web"); st.AdvertsSent < 25 || st.Dropped[DropOwn] == 0 || st.Transitions != 2 {
			t.Errorf("a's counters: sent %d, own dropped %d, transitions %d", st.AdvertsSent, st.Dropped[DropOwn], st.Transitions)
		}

		// Graceful stop: priority 0, so b takes over after its Skew_Time (609.375ms).
		stop := l.clk.Now()
		a.close(t)
		l.expect("a's addresses after close", []string{a.addrs.String()}, []string{""})
		l.advance(600 * time.Millisecond)
		l.expect("owners within skew", l.owners(webVIP), nil)
		l.advance(10 * time.Millisecond)
		l.expect("owners after skew", l.owners(webVIP), []string{"b"})
		if st, _ := b.status("web"); st.LastTransition.Sub(stop) != 609375*time.Microsecond {
			t.Errorf("b took over %v after the stop, want Skew_Time 609.375ms", st.LastTransition.Sub(stop))
		}
	})
}

func TestManagerSplitBrainHeals(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, b := l.pair(webConfig(200), webConfig(100))
		l.advance(4 * time.Second)
		l.expect("owners", l.owners(webVIP), []string{"a"})

		l.bus.partition(a.addr, b.addr, true)
		l.advance(4 * time.Second)
		l.expect("owners during the split", l.owners(webVIP), []string{"a", "b"})
		l.expect("states during the split", l.states("web"), []string{"a:MASTER", "b:MASTER"})

		a.ann.take()
		l.bus.partition(a.addr, b.addr, false)
		l.advance(1100 * time.Millisecond)
		l.expect("owners after healing", l.owners(webVIP), []string{"a"})
		l.expect("states after healing", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
		// a answered b's advertisement at once and announced again, so the neighbours
		// that followed b come back.
		if got := a.ann.take(); len(got) == 0 {
			t.Errorf("a did not announce after hearing the lower master")
		}
		l.advance(10 * time.Second)
		l.expect("owners, later", l.owners(webVIP), []string{"a"})
	})
}

func TestManagerPreempt(t *testing.T) {
	tests := []struct {
		name       string
		preempt    bool
		wantOwners []string
	}{
		{"preempt: the higher node takes the VIP back", true, []string{"a"}},
		{"preempt false: the VIP stays", false, []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lanTest(t, func(t *testing.T, l *testLAN) {
				cfgA := webConfig(200, func(in *Instance) { in.Preempt = &tt.preempt })
				a, _ := l.pair(cfgA, webConfig(100))
				l.advance(4 * time.Second)
				l.expect("owners", l.owners(webVIP), []string{"a"})

				a.close(t)
				l.advance(time.Second)
				l.expect("owners after a stops", l.owners(webVIP), []string{"b"})

				l.restart(a, cfgA)
				l.advance(10 * time.Second)
				l.expect("owners after a returns", l.owners(webVIP), tt.wantOwners)
			})
		})
	}
}

func TestManagerPreemptDelay(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		cfgA := webConfig(200, func(in *Instance) { in.PreemptDelay = 20 * time.Second })
		a, _ := l.pair(webConfig(200), webConfig(100))
		l.advance(4 * time.Second)
		a.close(t)
		l.advance(time.Second)
		l.restart(a, cfgA)
		l.advance(19 * time.Second)
		l.expect("owners within preempt_delay", l.owners(webVIP), []string{"b"})
		l.advance(5 * time.Second)
		l.expect("owners after preempt_delay", l.owners(webVIP), []string{"a"})
	})
}

func TestManagerActiveActive(t *testing.T) {
	cfg := func(p1, p2 int) Config {
		return Config{Instances: []Instance{
			{Name: "web1", Interface: "eth0", VRID: 51, Priority: p1, Addresses: []string{"198.18.0.101/24"}},
			{Name: "web2", Interface: "eth0", VRID: 52, Priority: p2, Addresses: []string{"198.18.0.102/24"}},
		}}
	}
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, b := l.pair(cfg(200, 100), cfg(100, 200))
		l.advance(4 * time.Second)
		l.expect("owners of web1", l.owners("198.18.0.101/24"), []string{"a"})
		l.expect("owners of web2", l.owners("198.18.0.102/24"), []string{"b"})

		// b dies without a word: a notices after Master_Down_Interval (3.609375s).
		l.bus.partition(a.addr, b.addr, true)
		l.advance(3700 * time.Millisecond)
		l.expect("a's addresses", []string{a.addrs.String()}, []string{"eth0 198.18.0.101/24 lbd\neth0 198.18.0.102/24 lbd"})
		b.close(t)
		l.nodes = l.nodes[:1]
		l.bus.partition(a.addr, b.addr, false)
		l.advance(10 * time.Second)
		l.expect("states of web1", l.states("web1"), []string{"a:MASTER"})
		l.expect("states of web2", l.states("web2"), []string{"a:MASTER"})
	})
}

func TestManagerMove(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, b := l.pair(webConfig(200), webConfig(100))
		l.advance(4 * time.Second)
		if err := b.m.Move("web"); !errors.Is(err, ErrNotMaster) {
			t.Errorf("Move on the backup: %v, want ErrNotMaster", err)
		}
		if err := a.m.Move("nope"); !errors.Is(err, ErrUnknownInstance) {
			t.Errorf("Move of an unknown instance: %v, want ErrUnknownInstance", err)
		}
		if err := a.m.Move("web"); err != nil {
			t.Fatalf("Move: %v", err)
		}
		synctest.Wait()
		// a keeps the address until b speaks: there is no moment without an owner.
		l.expect("owners right after the move", l.owners(webVIP), []string{"a"})
		if st, _ := a.status("web"); !st.Holding || !st.Yielding || st.State != Backup {
			t.Errorf("a after Move: %+v", st)
		}
		l.advance(600 * time.Millisecond)
		l.expect("owners before b's skew", l.owners(webVIP), []string{"a"})
		l.advance(10 * time.Millisecond)
		l.expect("owners once b took over", l.owners(webVIP), []string{"b"})
		l.advance(30 * time.Second)
		l.expect("a does not preempt back", l.owners(webVIP), []string{"b"})
		l.expect("states", l.states("web"), []string{"a:BACKUP", "b:MASTER"})

		// When b fails, a takes the role back: the yield lasts while another master lives.
		b.close(t)
		l.advance(time.Second)
		l.expect("owners after b stops", l.owners(webVIP), []string{"a"})
	})
}

func TestManagerLinkDownFault(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, _ := l.pair(webConfig(200), webConfig(100))
		l.advance(4 * time.Second)
		a.m.SetLink("eth0", false)
		synctest.Wait()
		l.expect("owners at link down", l.owners(webVIP), nil)
		l.expect("states at link down", l.states("web"), []string{"a:FAULT", "b:BACKUP"})
		if st, _ := a.status("web"); !slices.Equal(st.Faults, []string{"interface eth0 down"}) {
			t.Errorf("faults = %q", st.Faults)
		}
		l.advance(610 * time.Millisecond) // priority 0 was sent: b waits Skew_Time
		l.expect("owners after skew", l.owners(webVIP), []string{"b"})

		a.m.SetLink("eth0", true)
		synctest.Wait()
		l.expect("states at link up", l.states("web"), []string{"a:BACKUP", "b:MASTER"})
		l.advance(4 * time.Second)
		l.expect("owners after preemption", l.owners(webVIP), []string{"a"})
	})
}

func TestManagerLinkPolling(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		var mu = make(chan struct{}, 1)
		mu <- struct{}{}
		up := true
		a := l.newNode("a", "198.18.0.1")
		a.deps = func(d *Deps) {
			d.LinkState = func(string) (bool, error) { <-mu; defer func() { mu <- struct{}{} }(); return up, nil }
			d.LinkPoll = 500 * time.Millisecond
		}
		l.join(a, webConfig(255))
		l.advance(time.Second)
		if got := a.addrs.String(); got != "eth0 198.18.0.100/24 lbd" {
			t.Errorf("owner's addresses = %q", got)
		}
		<-mu
		up = false
		mu <- struct{}{}
		l.advance(500 * time.Millisecond)
		if got := a.addrs.String(); got != "" {
			t.Errorf("addresses after the link went down = %q", got)
		}
		if st := a.m.Status()[0]; st.State != Fault {
			t.Errorf("state = %v, want FAULT", st.State)
		}
	})
}

func TestManagerTracking(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		cfgA := webConfig(200, func(in *Instance) {
			in.TrackChecks = []TrackCheck{{Name: "dataplane", Weight: -150}, {Name: "backend:web", Weight: -40}}
			in.TrackScripts = []TrackScript{{Name: "haproxy-ish", Command: []string{"check-script"}, Weight: 0}}
		})
		a, _ := l.pair(cfgA, webConfig(100))
		l.advance(4 * time.Second)
		l.expect("owners", l.owners(webVIP), []string{"a"})

		// Half the servers are down: 200 - 40 × 0.5 = 180, still master.
		a.m.SetCheck("backend:web", 0.5)
		l.advance(2 * time.Second)
		if st, _ := a.status("web"); st.Priority != 180 || st.BasePriority != 200 {
			t.Errorf("priority %d (base %d), want 180 (200)", st.Priority, st.BasePriority)
		}
		l.expect("owners with half the servers", l.owners(webVIP), []string{"a"})

		// The dataplane stops answering: 200 - 150 - 20 = 30 < 100: b preempts.
		a.m.SetCheck("dataplane", 0)
		l.advance(4 * time.Second)
		l.expect("owners with the dataplane down", l.owners(webVIP), []string{"b"})
		a.m.SetCheck("dataplane", 1)
		a.m.SetCheck("backend:web", 1)
		l.advance(4 * time.Second)
		l.expect("owners with the dataplane back", l.owners(webVIP), []string{"a"})

		// The weight-0 script fails twice (fall 2): FAULT.
		a.run.setFail("check-script", true)
		l.advance(2 * time.Second)
		l.expect("states after one failure", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
		l.advance(2 * time.Second)
		l.expect("states after two failures", l.states("web"), []string{"a:FAULT", "b:BACKUP"})
		l.advance(time.Second)
		l.expect("owners with the script failed", l.owners(webVIP), []string{"b"})
	})
}

func TestManagerNotify(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a := l.node("a", "198.18.0.1", webConfig(200, func(in *Instance) {
			in.Notify = Notify{
				Master: []string{"on-master"}, Backup: []string{"on-backup", "x"},
				Fault: []string{"on-fault"}, Stop: []string{"on-stop"}, Any: []string{"notify"},
			}
		}))
		l.advance(4 * time.Second)
		a.m.SetLink("eth0", false)
		synctest.Wait()
		a.m.SetLink("eth0", true)
		synctest.Wait()
		a.close(t)
		l.nodes = nil
		want := []string{
			"on-backup x", "notify INSTANCE web BACKUP 200",
			"on-master", "notify INSTANCE web MASTER 200",
			"on-fault", "notify INSTANCE web FAULT 200",
			"on-backup x", "notify INSTANCE web BACKUP 200",
			"on-stop", "notify INSTANCE web STOP 200",
		}
		l.expect("notify commands", a.run.take(), want)
	})
}

func TestManagerSyncGroup(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, _ := l.pair(groupConfig(200), groupConfig(100))
		l.advance(4 * time.Second)
		l.expect("ext owners", l.owners("198.18.0.100/24"), []string{"a"})
		l.expect("int owners", l.owners("198.18.1.100/24"), []string{"a"})

		// int's tracked interface fails: the whole group goes to FAULT on a.
		a.m.SetLink("eth2", false)
		synctest.Wait()
		l.expect("ext states", l.states("ext"), []string{"a:FAULT", "b:BACKUP"})
		l.expect("int states", l.states("int"), []string{"a:FAULT", "b:BACKUP"})
		if st, _ := a.status("ext"); !slices.Equal(st.Faults, []string{"sync group member int in fault"}) {
			t.Errorf("ext faults = %q", st.Faults)
		}
		l.advance(time.Second)
		l.expect("ext owners after fault", l.owners("198.18.0.100/24"), []string{"b"})
		l.expect("int owners after fault", l.owners("198.18.1.100/24"), []string{"b"})

		a.m.SetLink("eth2", true)
		l.advance(5 * time.Second)
		l.expect("ext owners after recovery", l.owners("198.18.0.100/24"), []string{"a"})
		l.expect("int owners after recovery", l.owners("198.18.1.100/24"), []string{"a"})
	})
}

func TestManagerSyncGroupMovesTogether(t *testing.T) {
	// "ext" tracks the dataplane, "int" tracks nothing: the group's members advertise
	// the same adjustment, so both move when the dataplane fails.
	cfg := func(p int) Config {
		return groupConfig(p, func(ext, internal *Instance, _ *SyncGroup) {
			ext.TrackChecks = []TrackCheck{{Name: "dataplane", Weight: -150}}
			internal.TrackInterfaces = nil
		})
	}
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, _ := l.pair(cfg(200), cfg(100))
		l.advance(4 * time.Second)
		a.m.SetCheck("dataplane", 0)
		synctest.Wait()
		for _, name := range []string{"ext", "int"} {
			if st, _ := a.status(name); st.Priority != 50 {
				t.Errorf("%s priority %d, want 50", name, st.Priority)
			}
		}
		l.advance(5 * time.Second)
		l.expect("ext states", l.states("ext"), []string{"a:BACKUP", "b:MASTER"})
		l.expect("int states", l.states("int"), []string{"a:BACKUP", "b:MASTER"})

		a.m.SetCheck("dataplane", 1)
		l.advance(5 * time.Second)
		l.expect("ext states after recovery", l.states("ext"), []string{"a:MASTER", "b:BACKUP"})
		l.expect("int states after recovery", l.states("int"), []string{"a:MASTER", "b:BACKUP"})

		// Moving one member moves the group.
		if err := a.m.Move("int"); err != nil {
			t.Fatal(err)
		}
		l.advance(5 * time.Second)
		l.expect("ext states after the move", l.states("ext"), []string{"a:BACKUP", "b:MASTER"})
		l.expect("int states after the move", l.states("int"), []string{"a:BACKUP", "b:MASTER"})
		l.expect("a's addresses after the move", []string{a.addrs.String()}, []string{""})
	})
}

func TestManagerSyncGroupNotify(t *testing.T) {
	cfg := func(p int) Config {
		return groupConfig(p, func(_, _ *Instance, g *SyncGroup) {
			g.Notify = Notify{
				Master: []string{"g-master"}, Backup: []string{"g-backup"}, Fault: []string{"g-fault"},
				Stop: []string{"g-stop"}, Any: []string{"notify"},
			}
		})
	}
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, b := l.pair(cfg(200), cfg(100))
		l.advance(4 * time.Second)
		l.expect("a: start, then master", a.run.take(), []string{
			"g-backup", "notify GROUP g BACKUP 0", "g-master", "notify GROUP g MASTER 0",
		})
		l.expect("b: start", b.run.take(), []string{"g-backup", "notify GROUP g BACKUP 0"})

		// Both members fault (int by its link, ext with it): one group transition.
		a.m.SetLink("eth2", false)
		l.advance(time.Second)
		l.expect("a: fault", a.run.take(), []string{"g-fault", "notify GROUP g FAULT 0"})
		l.expect("b: takes over", b.run.take(), []string{"g-master", "notify GROUP g MASTER 0"})

		a.m.SetLink("eth2", true)
		l.advance(5 * time.Second)
		l.expect("a: recovery, then preempts", a.run.take(), []string{
			"g-backup", "notify GROUP g BACKUP 0", "g-master", "notify GROUP g MASTER 0",
		})
		l.expect("b: preempted", b.run.take(), []string{"g-backup", "notify GROUP g BACKUP 0"})

		// A reload changes the commands without a transition.
		next := cfg(200)
		next.SyncGroups[0].Notify.Any = []string{"notify2"}
		a.apply(t, next)
		if err := a.m.Move("ext"); err != nil {
			t.Fatal(err)
		}
		l.advance(5 * time.Second)
		l.expect("a: moved", a.run.take(), []string{"g-backup", "notify2 GROUP g BACKUP 0"})

		a.close(t)
		l.nodes = l.nodes[1:]
		l.expect("a: stopped", a.run.take(), []string{"g-stop", "notify2 GROUP g STOP 0"})
	})
}

func TestManagerSyncGroupFaultedMemberDoesNotGoMaster(t *testing.T) {
	cfg := groupConfig(200, func(ext, _ *Instance, g *SyncGroup) {
		ext.Notify = Notify{Master: []string{"ext-master"}}
		g.Notify = Notify{Any: []string{"notify"}}
	})
	lanTest(t, func(t *testing.T, l *testLAN) {
		a := l.node("a", "198.18.0.1", cfg)
		synctest.Wait()
		a.m.mu.Lock()
		ext := a.m.instances["ext"]
		a.m.mu.Unlock()
		// ext's loop is busy while int faults, so the retrack int queues for it (which
		// faults it too) waits; meanwhile ext's Master_Down_Timer expires. Stepping it
		// first must not make ext master.
		release := make(chan struct{})
		ext.post(func() {
			<-release
			ext.step(Timer{})
		})
		synctest.Wait()
		a.m.SetLink("eth2", false)
		l.advance(4 * time.Second)
		close(release)
		l.advance(10 * time.Second)
		l.expect("ext states", l.states("ext"), []string{"a:FAULT"})
		l.expect("int states", l.states("int"), []string{"a:FAULT"})
		l.expect("a's addresses", []string{a.addrs.String()}, []string{""})
		// ext never became master, not even for a moment.
		l.expect("notify", a.run.take(), []string{"notify GROUP g BACKUP 0", "notify GROUP g FAULT 0"})
		if st, _ := a.status("ext"); st.Transitions != 2 {
			t.Errorf("ext made %d transitions, want 2 (BACKUP, FAULT)", st.Transitions)
		}
	})
}

func TestManagerReload(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, b := l.pair(webConfig(200), webConfig(100))
		l.advance(4 * time.Second)
		before, _ := a.status("web")

		// The same config: nothing restarts, nothing moves.
		a.apply(t, webConfig(200))
		l.advance(5 * time.Second)
		after, _ := a.status("web")
		if after.Transitions != before.Transitions || after.LastTransition != before.LastTransition {
			t.Errorf("unchanged reload restarted the instance: %+v", after)
		}
		l.expect("owners after an unchanged reload", l.owners(webVIP), []string{"a"})

		// A backup's changed priority is applied in place; the master is not disturbed.
		b.apply(t, webConfig(110))
		l.advance(5 * time.Second)
		if st, _ := b.status("web"); st.BasePriority != 110 || st.State != Backup {
			t.Errorf("b after reload: %+v", st)
		}
		if st, _ := a.status("web"); st.Transitions != before.Transitions {
			t.Errorf("a moved when b reloaded: %+v", st)
		}

		// An added instance starts; a removed one stops and releases its address.
		two := webConfig(200)
		two.Instances = append(two.Instances, Instance{Name: "api", Interface: "eth0", VRID: 60, Priority: 255, Addresses: []string{"198.18.0.200/24"}})
		a.apply(t, two)
		l.advance(time.Second)
		l.expect("a's addresses with api", []string{a.addrs.String()}, []string{"eth0 198.18.0.100/24 lbd\neth0 198.18.0.200/24 lbd"})
		a.apply(t, Config{Instances: two.Instances[1:]})
		l.advance(time.Second)
		l.expect("a's addresses without web", []string{a.addrs.String()}, []string{"eth0 198.18.0.200/24 lbd"})
		l.expect("owners of web", l.owners(webVIP), []string{"b"})

		if err := a.m.Apply(context.Background(), Config{Instances: []Instance{{Name: "bad"}}}); err == nil {
			t.Errorf("Apply accepted an invalid config")
		}
	})
}

func TestManagerReloadInPlace(t *testing.T) {
	t.Run("master's priority lowered but still highest: stays master, advertises it", func(t *testing.T) {
		lanTest(t, func(t *testing.T, l *testLAN) {
			a, b := l.pair(webConfig(200), webConfig(100))
			l.advance(10 * time.Second)
			a.ann.take()
			before, _ := a.status("web")

			cfg := webConfig(150, func(in *Instance) {
				in.Notify.Master = []string{"/bin/true"}
				in.GARP.Repeat = 2
				in.TrackChecks = []TrackCheck{{Name: "dataplane", Weight: -10}}
			})
			a.apply(t, cfg)
			synctest.Wait()
			// SetPriority advertises at once, without waiting for Adver_Timer.
			if st, _ := b.status("web"); st.MasterPriority != 150 || st.Master != a.addr {
				t.Errorf("b sees master %v priority %d right after the reload, want %v 150", st.Master, st.MasterPriority, a.addr)
			}
			l.advance(5 * time.Second)
			after, _ := a.status("web")
			if after.Transitions != before.Transitions || after.LastTransition != before.LastTransition ||
				after.AdvertsSent <= before.AdvertsSent || after.State != Master {
				t.Errorf("a restarted or moved: before %+v, after %+v", before, after)
			}
			if after.Priority != 150 || after.BasePriority != 150 {
				t.Errorf("a's priority %d base %d, want 150 150", after.Priority, after.BasePriority)
			}
			l.expect("owners", l.owners(webVIP), []string{"a"})
			l.expect("states", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
			l.expect("a's announcements", a.ann.take(), nil)
			l.expect("notify commands", a.run.take(), nil)
			if st, _ := b.status("web"); st.MasterPriority != 150 {
				t.Errorf("b sees master priority %d, want 150", st.MasterPriority)
			}

			// The new weights apply.
			a.m.SetCheck("dataplane", 0)
			synctest.Wait()
			if st, _ := b.status("web"); st.MasterPriority != 140 {
				t.Errorf("b sees master priority %d after the check failed, want 140", st.MasterPriority)
			}
		})
	})

	t.Run("backup's priority raised above the master's with preempt: takes over", func(t *testing.T) {
		lanTest(t, func(t *testing.T, l *testLAN) {
			a, b := l.pair(webConfig(200), webConfig(100))
			l.advance(10 * time.Second)
			before, _ := b.status("web")

			b.apply(t, webConfig(250))
			synctest.Wait()
			if st, _ := b.status("web"); st.AdvertsReceived < before.AdvertsReceived || st.Transitions != before.Transitions || st.State != Backup {
				t.Errorf("b restarted: before %+v, after %+v", before, st)
			}
			// b discards a's lower advertisements; its Master_Down_Timer fires.
			l.advance(5 * time.Second)
			l.expect("owners", l.owners(webVIP), []string{"b"})
			l.expect("states", l.states("web"), []string{"a:BACKUP", "b:MASTER"})
			if st, _ := a.status("web"); st.MasterPriority != 250 {
				t.Errorf("a sees master priority %d, want 250", st.MasterPriority)
			}
			if st, _ := b.status("web"); st.Transitions != before.Transitions+1 {
				t.Errorf("b's transitions %d, want %d", st.Transitions, before.Transitions+1)
			}
		})
	})

	t.Run("changed vrid restarts", func(t *testing.T) {
		lanTest(t, func(t *testing.T, l *testLAN) {
			a, b := l.pair(webConfig(200), webConfig(100))
			l.advance(10 * time.Second)

			a.apply(t, webConfig(150, func(in *Instance) { in.VRID = 52 }))
			synctest.Wait()
			st, _ := a.status("web")
			if st.VRID != 52 || st.State != Backup || st.Transitions != 1 || st.AdvertsReceived != 0 {
				t.Errorf("a did not restart: %+v", st)
			}
			l.expect("a's addresses right after the restart", []string{a.addrs.String()}, []string{""})
			// a handed over with priority 0: b takes over after its Skew_Time.
			l.advance(time.Second)
			if st, _ := b.status("web"); st.State != Master {
				t.Errorf("b is %v after a restarted, want MASTER", st.State)
			}
		})
	})
}

func TestReconfigurable(t *testing.T) {
	d := func(v time.Duration) *time.Duration { return &v }
	f := false
	base := func() Instance {
		in := webConfig(100, func(in *Instance) {
			in.TrackScripts = []TrackScript{{Name: "s", Command: []string{"/bin/true"}, Weight: 5}}
		}).Instances[0]
		in.SetDefaults()
		return in
	}
	tests := []struct {
		name string
		mod  func(*Instance)
		want bool
	}{
		{"unchanged", func(*Instance) {}, true},
		{"priority", func(in *Instance) { in.Priority = 200 }, true},
		{"notify commands", func(in *Instance) { in.Notify.Master = []string{"/bin/true"} }, true},
		{"garp", func(in *Instance) { in.GARP.Repeat, in.GARP.Delay, in.GARP.Refresh = 3, d(0), time.Minute }, true},
		{"track interfaces", func(in *Instance) { in.TrackInterfaces = []TrackInterface{{Name: "eth1", Weight: -20}} }, true},
		{"track checks", func(in *Instance) { in.TrackChecks = []TrackCheck{{Name: "dataplane"}} }, true},
		{"track script weight", func(in *Instance) { in.TrackScripts[0].Weight = -5 }, true},
		{"priority to owner", func(in *Instance) { in.Priority = OwnerPriority }, false},
		{"vrid", func(in *Instance) { in.VRID = 52 }, false},
		{"interface", func(in *Instance) { in.Interface = "eth1" }, false},
		{"addresses", func(in *Instance) { in.Addresses = []string{"198.18.0.101/24"} }, false},
		{"version", func(in *Instance) { in.Version = 2 }, false},
		{"interval", func(in *Instance) { in.AdvertInterval = 2 * time.Second }, false},
		{"unicast peers", func(in *Instance) { in.UnicastPeers = []string{"198.18.0.2"} }, false},
		{"unicast source", func(in *Instance) { in.UnicastSource = "198.18.0.1" }, false},
		{"auth", func(in *Instance) { in.AuthPass = "secret" }, false},
		{"label", func(in *Instance) { in.Label = "x" }, false},
		{"accept", func(in *Instance) { in.Accept = true }, false},
		{"preempt", func(in *Instance) { in.Preempt = &f }, false},
		{"preempt delay", func(in *Instance) { in.PreemptDelay = time.Minute }, false},
		{"notify timeout", func(in *Instance) { in.Notify.Timeout = time.Second }, false},
		{"track script command", func(in *Instance) { in.TrackScripts[0].Command = []string{"/bin/false"} }, false},
		{"track script added", func(in *Instance) { in.TrackScripts = append(in.TrackScripts, TrackScript{Name: "t"}) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, next := base(), base()
			tt.mod(&next)
			if got := reconfigurable(old, next); got != tt.want {
				t.Errorf("reconfigurable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestManagerRemovesLeftovers(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		// b crashed as master: its kernel still holds the VIP, and an address another
		// tool added (label "other") must stay.
		b := l.newNode("b", "198.18.0.2")
		b.addrs.Add("eth0", netip.MustParsePrefix(webVIP), "lbd")
		b.addrs.Add("eth0", netip.MustParsePrefix("198.18.0.50/24"), "other")
		l.node("a", "198.18.0.1", webConfig(200))
		l.join(b, webConfig(100))
		synctest.Wait()
		l.expect("b's addresses after start", []string{b.addrs.String()}, []string{"eth0 198.18.0.50/24 other"})
		l.advance(4 * time.Second)
		l.expect("owners", l.owners(webVIP), []string{"a"})
	})
}

func TestRelease(t *testing.T) {
	a := newFakeAddrs()
	a.Add("eth0", netip.MustParsePrefix("198.18.0.100/24"), "lbd")
	a.Add("eth0", netip.MustParsePrefix("198.18.0.101/24"), "lbd")
	a.Add("eth0", netip.MustParsePrefix("198.18.0.5/24"), "")
	a.Add("eth1", netip.MustParsePrefix("198.18.1.100/24"), "lbd")
	if err := Release(webConfig(100), a); err != nil {
		t.Fatal(err)
	}
	if got, want := a.String(), "eth0 198.18.0.5/24 \neth1 198.18.1.100/24 lbd"; got != want {
		t.Errorf("after Release:\n%s\nwant:\n%s", got, want)
	}
}

func TestNewValidates(t *testing.T) {
	deps := Deps{Transport: func(Instance) (Transport, error) { return nil, nil }, Addresses: newFakeAddrs(), Announcer: &fakeAnnouncer{}}
	if _, err := New(Config{Instances: []Instance{{Name: "x"}}}, deps); err == nil {
		t.Errorf("New accepted an invalid config")
	}
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Errorf("New accepted missing deps")
	}
	cfg := webConfig(100)
	if _, err := New(cfg, deps); err != nil {
		t.Fatal(err)
	}
	if cfg.Instances[0].Preempt != nil {
		t.Errorf("New modified the caller's config")
	}
	cfg.SyncGroups = []SyncGroup{{Name: "g", Instances: []string{"web"}, Notify: Notify{Master: []string{""}, Timeout: time.Millisecond}}}
	_, err := New(cfg, deps)
	for _, path := range []string{"sync_groups[0].notify.master", "sync_groups[0].notify.timeout"} {
		var fe *FieldError
		found := false
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			if errors.As(e, &fe) && fe.Path == path {
				found = true
			}
		}
		if !found {
			t.Errorf("New(bad group notify) = %v, want an error at %s", err, path)
		}
	}
	cfg.SyncGroups[0].Notify = Notify{}
	if _, err := New(cfg, deps); err != nil {
		t.Errorf("New with a group notify defaulted: %v", err)
	}
}

// An interface deleted and created again under the same name: the socket bound to the
// old index hears nothing (here: its fake port leaves the bus), so an instance that kept
// it would become master next to the real one. The instance must be in FAULT while the
// interface is absent and open a new socket on the new index.
func TestManagerInterfaceRecreated(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		var ports []*fakePort
		b := l.newNode("b", "198.18.0.2")
		b.deps = func(d *Deps) {
			d.Transport = func(Instance) (Transport, error) {
				p := l.bus.port(b.addr)
				ports = append(ports, p)
				return p, nil
			}
		}
		a := l.node("a", "198.18.0.1", webConfig(200))
		l.join(b, webConfig(100))
		b.m.SetLinkIndex("eth0", 2)
		l.advance(4 * time.Second)
		l.expect("states at start", l.states("web"), []string{"a:MASTER", "b:BACKUP"})

		// The interface is deleted: the old port hears nothing from now on.
		l.bus.mu.Lock()
		l.bus.ports = slices.DeleteFunc(l.bus.ports, func(q *fakePort) bool { return q == ports[0] })
		l.bus.mu.Unlock()
		b.m.SetLinkIndex("eth0", 0)
		synctest.Wait()
		l.expect("states with the interface absent", l.states("web"), []string{"a:MASTER", "b:FAULT"})
		if st, _ := b.status("web"); !slices.Equal(st.Faults, []string{"interface eth0 absent"}) {
			t.Errorf("faults = %q", st.Faults)
		}
		l.advance(4 * time.Second)
		l.expect("owners with the interface absent", l.owners(webVIP), []string{"a"})

		// Created again under the same name, at another index.
		b.m.SetLinkIndex("eth0", 3)
		synctest.Wait()
		if len(ports) != 2 {
			t.Fatalf("transports opened = %d, want 2 (a new one on the new index)", len(ports))
		}
		l.advance(10 * time.Second)
		l.expect("states after the interface came back", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
		l.expect("owners after the interface came back", l.owners(webVIP), []string{"a"})

		// The new socket works: b takes over when a leaves.
		a.close(t)
		l.advance(4 * time.Second)
		l.expect("owners after a left", l.owners(webVIP), []string{"b"})
	})
}

// A VRRP socket that cannot be reopened (no address on the new interface yet) keeps
// the instance in FAULT; it tries again every second.
func TestManagerInterfaceRecreatedReopenFails(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		opens, fail := 0, false
		b := l.newNode("b", "198.18.0.2")
		b.deps = func(d *Deps) {
			d.Transport = func(Instance) (Transport, error) {
				opens++
				if fail {
					return nil, errors.New("no IPv4 address to send from")
				}
				return l.bus.port(b.addr), nil
			}
		}
		l.join(b, webConfig(100))
		b.m.SetLinkIndex("eth0", 2)
		l.advance(4 * time.Second)
		l.expect("owners at start", l.owners(webVIP), []string{"b"})

		fail = true
		b.m.SetLinkIndex("eth0", 5)
		synctest.Wait()
		l.expect("owners while the socket cannot open", l.owners(webVIP), nil)
		l.expect("states while the socket cannot open", l.states("web"), []string{"b:FAULT"})
		l.advance(5 * time.Second)
		l.expect("owners while the socket cannot open", l.owners(webVIP), nil)
		if opens < 5 {
			t.Errorf("opens = %d, want a retry every second", opens)
		}
		fail = false
		l.advance(5 * time.Second)
		l.expect("owners once the socket opens", l.owners(webVIP), []string{"b"})
	})
}

// An address that cannot be added must not leave the node advertising as master (it
// would draw the traffic and drop it): FAULT, a backup takes over, and a retry.
func TestManagerAddressAddFails(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a := l.newNode("a", "198.18.0.1")
		a.addrs.setAddErr(errors.New("netlink: operation not permitted"))
		l.join(a, webConfig(200))
		l.node("b", "198.18.0.2", webConfig(100))
		l.advance(4 * time.Second)
		if st, _ := a.status("web"); st.State == Master {
			t.Errorf("a is MASTER without its addresses")
		}
		l.expect("owners while a cannot add", l.owners(webVIP), []string{"b"})
		l.advance(10 * time.Second)
		l.expect("owners while a cannot add", l.owners(webVIP), []string{"b"})

		a.addrs.setAddErr(nil)
		l.advance(10 * time.Second)
		l.expect("owners once a can add", l.owners(webVIP), []string{"a"})
	})
}
