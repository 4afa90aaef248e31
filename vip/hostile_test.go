package vip

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// Adverts from a host on the LAN that is not one of the routers (issue 11): each case
// starts a pair, a (priority 200, master) and b (100), and a stranger at 198.18.0.9
// that sends what it likes.

var strangerAddr = netip.MustParseAddr("198.18.0.9")

// forge sends n advertisements of instance "web" (VRID 51) from the stranger to dst,
// with the priority and addresses given.
func forge(t *testing.T, l *testLAN, dst netip.Addr, prio uint8, n int, addrs ...string) {
	t.Helper()
	p := Packet{Version: 3, VRID: 51, Priority: prio, Interval: time.Second}
	if len(addrs) == 0 {
		addrs = []string{"198.18.0.100"}
	}
	for _, a := range addrs {
		p.Addresses = append(p.Addresses, netip.MustParseAddr(a))
	}
	b, err := p.Marshal(strangerAddr, dst, CodecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port := l.bus.port(strangerAddr)
	defer port.Close()
	for range n {
		if err := port.Send(b, dst); err != nil {
			t.Fatal(err)
		}
	}
}

func unicastWeb(prio int, self, peer string) Config {
	return webConfig(prio, func(in *Instance) { in.UnicastPeers, in.UnicastSource = []string{peer}, self })
}

// TestStrangerNotAUnicastPeer: with unicast peers, an advert from any other address is
// dropped (check_unicast_src, on by default): a stranger's priority 250 does not take
// the VIP.
func TestStrangerNotAUnicastPeer(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, _ := l.pair(unicastWeb(200, "198.18.0.1", "198.18.0.2"), unicastWeb(100, "198.18.0.2", "198.18.0.1"))
		l.advance(4 * time.Second)
		l.expect("owners", l.owners(webVIP), []string{"a"})
		for range 5 {
			forge(t, l, a.addr, 250, 1)
			l.advance(time.Second)
		}
		l.expect("owners after the stranger's adverts", l.owners(webVIP), []string{"a"})
		l.expect("states", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
		if st, _ := a.status("web"); st.Dropped[DropUnicastSource] != 5 {
			t.Errorf("a dropped %v, want 5 unicast_src", st.Dropped)
		}
	})
}

// TestStrangerOwnerPriority: a priority 255 advert carrying other addresses is dropped
// as any other's would be; it used to skip the address check and take the VIP.
func TestStrangerOwnerPriority(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, b := l.pair(webConfig(200), webConfig(100))
		l.advance(4 * time.Second)
		forge(t, l, MulticastGroupV4, 255, 1, "198.18.0.7")
		l.advance(500 * time.Millisecond)
		l.expect("owners", l.owners(webVIP), []string{"a"})
		l.expect("states", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
		for _, n := range []*testNode{a, b} {
			if st, _ := n.status("web"); st.Dropped[DropAddressList] != 1 {
				t.Errorf("%s dropped %v, want one address_list", n.name, st.Dropped)
			}
		}
	})
}

// TestStrangerPriorityZero: a stranger's priority 0 adverts do not make the backup
// take over (it takes priority 0 only from its master), and the master answers them at
// most once per advert interval.
func TestStrangerPriorityZero(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, b := l.pair(webConfig(200), webConfig(100))
		l.advance(4 * time.Second)
		stA, _ := a.status("web")
		stB, _ := b.status("web")
		for range 20 {
			forge(t, l, MulticastGroupV4, 0, 1)
			l.advance(250 * time.Millisecond)
		}
		l.expect("owners", l.owners(webVIP), []string{"a"})
		l.expect("states", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
		if st, _ := b.status("web"); st.Transitions != stB.Transitions {
			t.Errorf("b made %d transitions under the stranger's priority 0", st.Transitions-stB.Transitions)
		}
		// 5s: 5 regular adverts, and at most one answer per second.
		if st, _ := a.status("web"); st.AdvertsSent-stA.AdvertsSent > 10 {
			t.Errorf("a sent %d adverts in 5s answering 20 priority 0 adverts, want at most 10", st.AdvertsSent-stA.AdvertsSent)
		}
	})
}

// TestStrangerLowerPriorityFlood: forged lower-priority adverts cost the master one
// answer and one announcement burst per advert interval, not one per packet.
func TestStrangerLowerPriorityFlood(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, _ := l.pair(webConfig(200), webConfig(100))
		l.advance(10 * time.Second)
		a.ann.take()
		st0, _ := a.status("web")
		forge(t, l, MulticastGroupV4, 50, 20)
		l.advance(100 * time.Millisecond)
		st, _ := a.status("web")
		if n := st.AdvertsSent - st0.AdvertsSent; n != 1 {
			t.Errorf("a answered 20 forged adverts with %d adverts, want 1", n)
		}
		if got := a.ann.take(); len(got) != 5 {
			t.Errorf("a announced %d times after 20 forged adverts, want one burst of 5: %v", len(got), got)
		}
	})
}

// lockedBuffer is a log sink shared by goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) count(s string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Count(w.b.String(), s)
}

// TestDropLogRateLimited: a flood of dropped packets is counted exactly and logged once
// per reason per dropLogEvery.
func TestDropLogRateLimited(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		var logs lockedBuffer
		a := l.newNode("a", "198.18.0.1")
		a.deps = func(d *Deps) { d.Logger = slog.New(slog.NewTextHandler(&logs, nil)) }
		l.join(a, webConfig(200))
		l.advance(4 * time.Second)
		forge(t, l, a.addr, 100, 100, "198.18.0.7")
		l.advance(time.Second)
		if st, _ := a.status("web"); st.Dropped[DropAddressList] != 100 {
			t.Errorf("dropped %v, want 100 address_list", st.Dropped)
		}
		if n := logs.count("vrrp packet dropped"); n != 1 {
			t.Errorf("%d log lines for 100 drops within a second, want 1", n)
		}
		l.advance(dropLogEvery)
		forge(t, l, a.addr, 100, 1, "198.18.0.7")
		l.advance(time.Second)
		if n := logs.count("not_logged_since_last=99"); n != 1 {
			t.Errorf("the next line does not say 99 were not logged:\n%s", logs.b.String())
		}
	})
}

// TestLowerPrioNoAdvert: with lower_prio_no_advert the master does not answer a
// lower-priority advert with an advert; it still announces, once per interval.
func TestLowerPrioNoAdvert(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		cfg := webConfig(200, func(in *Instance) { in.LowerPrioNoAdvert = true })
		a, _ := l.pair(cfg, webConfig(100))
		l.advance(10 * time.Second)
		a.ann.take()
		st0, _ := a.status("web")
		forge(t, l, MulticastGroupV4, 50, 3)
		l.advance(100 * time.Millisecond)
		st, _ := a.status("web")
		if n := st.AdvertsSent - st0.AdvertsSent; n != 0 {
			t.Errorf("a answered with %d adverts, want none", n)
		}
		if got := a.ann.take(); len(got) != 5 {
			t.Errorf("a announced %d times, want one burst of 5: %v", len(got), got)
		}
	})
}

// TestHungMasterWakes: a master woken from a hang (SIGSTOP) finds 51 adverts in its
// socket, sent by the backup that took over meanwhile, over the last 5s. It drops those
// older than 3 advert intervals and answers the others once: one advert, one
// announcement burst (it used to answer each: 51 adverts and 59 GARPs were seen).
func TestHungMasterWakes(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		a, b := l.pair(webConfig(200), webConfig(100))
		l.advance(10 * time.Second)
		a.ann.take()
		st0, _ := a.status("web")
		p := Packet{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.100")}}
		raw, err := p.Marshal(b.addr, MulticastGroupV4, CodecOptions{})
		if err != nil {
			t.Fatal(err)
		}
		now := l.clk.Now()
		l.bus.mu.Lock()
		for _, q := range l.bus.ports {
			if q.src != a.addr {
				continue
			}
			for i := range 51 {
				at := now.Add(-5*time.Second + time.Duration(i)*100*time.Millisecond)
				q.in <- Received{Payload: raw, Src: b.addr, Dst: MulticastGroupV4, TTL: RequiredTTL, IfIndex: 1, At: at}
			}
		}
		l.bus.mu.Unlock()
		l.advance(100 * time.Millisecond)
		st, _ := a.status("web")
		if n := st.AdvertsSent - st0.AdvertsSent; n != 1 {
			t.Errorf("a answered the queued adverts with %d adverts, want 1", n)
		}
		if got := a.ann.take(); len(got) != 5 {
			t.Errorf("a announced %d times, want one burst of 5: %v", len(got), got)
		}
		if st.Dropped[DropStale] != 20 {
			t.Errorf("a dropped %d stale adverts, want the 20 older than 3s", st.Dropped[DropStale])
		}
		if n := st.AdvertsReceived - st0.AdvertsReceived; n != 31 {
			t.Errorf("a received %d adverts, want 31", n)
		}
		l.expect("states", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
	})
}

// TestAuthenticatedVRRP: with auth_key, adverts carry an HMAC and a sequence number: a
// stranger's advert (without the trailer, or under another key) and a replayed one are
// dropped, and the pair elects as usual.
func TestAuthenticatedVRRP(t *testing.T) {
	lanTest(t, func(t *testing.T, l *testLAN) {
		key := func(k string) func(*Instance) { return func(in *Instance) { in.AuthKey = k } }
		spy := l.bus.port(netip.MustParseAddr("198.18.0.8"))
		defer spy.Close()
		a, b := l.pair(webConfig(200, key("0123456789abcdef")), webConfig(100, key("0123456789abcdef")))
		l.advance(4 * time.Second)
		l.expect("owners", l.owners(webVIP), []string{"a"})
		l.expect("states", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
		var genuine Received
		for len(spy.in) > 0 {
			if r := <-spy.in; r.Src == a.addr {
				genuine = r
			}
		}
		if genuine.Payload == nil {
			t.Fatal("the spy heard nothing from a")
		}

		// A stranger with a higher priority, without a trailer.
		forge(t, l, MulticastGroupV4, 250, 1)
		// The same under another key.
		p := Packet{Version: 3, VRID: 51, Priority: 250, Interval: time.Second, Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.100")}}
		raw, _ := p.Marshal(strangerAddr, MulticastGroupV4, CodecOptions{})
		port := l.bus.port(strangerAddr)
		port.Send(sealAdvert([]byte("another-key-0123"), raw, strangerAddr, MulticastGroupV4, uint64(l.clk.Now().UnixNano())), MulticastGroupV4)
		port.Close()
		l.advance(500 * time.Millisecond)
		l.expect("owners after the stranger", l.owners(webVIP), []string{"a"})
		for _, n := range []*testNode{a, b} {
			if st, _ := n.status("web"); st.Dropped[DropAuth] != 2 {
				t.Errorf("%s dropped %v, want 2 auth", n.name, st.Dropped)
			}
		}

		// a's genuine advert again, later: a replay.
		l.advance(2 * time.Second)
		l.bus.mu.Lock()
		for _, q := range l.bus.ports {
			if q.src == b.addr {
				q.in <- genuine
			}
		}
		l.bus.mu.Unlock()
		l.advance(10 * time.Millisecond)
		if st, _ := b.status("web"); st.Dropped[DropReplay] != 1 {
			t.Errorf("b dropped %v, want one replay", st.Dropped)
		}
		l.advance(5 * time.Second)
		l.expect("states, later", l.states("web"), []string{"a:MASTER", "b:BACKUP"})
		if st, _ := b.status("web"); st.Master != a.addr {
			t.Errorf("b follows %v, want a", st.Master)
		}
	})
}
