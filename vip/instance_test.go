package vip

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestGARPSchedule lists when announcements go out after becoming master.
func TestGARPSchedule(t *testing.T) {
	d := func(v time.Duration) *time.Duration { return &v }
	tests := []struct {
		name string
		cfg  GARP
		want []time.Duration // announcement times within the first 70s
	}{
		{"defaults: 5 × 10ms, once after the neighbour locktime, again after 5s", GARP{Repeat: 5, Interval: d(10 * time.Millisecond), Delay: d(5 * time.Second)},
			[]time.Duration{0, 10e6, 20e6, 30e6, 40e6, 1.1e9, 5e9, 5.01e9, 5.02e9, 5.03e9, 5.04e9}},
		{"no second burst", GARP{Repeat: 2, Interval: d(0), Delay: d(0)}, []time.Duration{0, 0, 1.1e9}},
		{"second burst before the locktime: no extra one", GARP{Repeat: 2, Interval: d(0), Delay: d(time.Second)},
			[]time.Duration{0, 0, 1e9, 1e9}},
		{"burst longer than the locktime: no extra one", GARP{Repeat: 3, Interval: d(time.Second), Delay: d(5 * time.Second)},
			[]time.Duration{0, 1e9, 2e9, 5e9, 6e9, 7e9}},
		{"refresh every 30s", GARP{Repeat: 1, Interval: d(0), Delay: d(5 * time.Second), Refresh: 30 * time.Second},
			[]time.Duration{0, 1.1e9, 5e9, 35e9, 65e9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Unix(0, 0)
			var g garpSchedule
			g.start(tt.cfg, t0)
			var got []time.Duration
			for now := t0; now.Sub(t0) <= 70*time.Second && g.active; now = g.next {
				for g.due(tt.cfg, now) {
					got = append(got, now.Sub(t0))
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestInstanceUnicastV2: version 2 with a password over unicast peers elects as v3
// over multicast does, and a packet with the wrong password or TTL is dropped and
// counted by reason (with check_unicast_src off on b, so that a stranger's packets reach
// those checks; hostile_test.go has it on).
func TestInstanceUnicastV2(t *testing.T) {
	cfg := func(prio int, self, peer string) Config {
		return webConfig(prio, func(in *Instance) {
			in.Version, in.AuthPass = 2, "s3cret"
			in.UnicastPeers, in.UnicastSource = []string{peer}, self
		})
	}
	synctest.Test(t, func(t *testing.T) {
		l := newTestLAN(t)
		defer l.closeAll()
		a := l.node("a", "198.18.0.1", cfg(200, "198.18.0.1", "198.18.0.2"))
		cfgB := cfg(100, "198.18.0.2", "198.18.0.1")
		no := false
		cfgB.Instances[0].CheckUnicastSource = &no
		b := l.node("b", "198.18.0.2", cfgB)
		l.advance(4 * time.Second)
		l.expect("owners", l.owners(webVIP), []string{"a"})
		if st, _ := a.status("web"); st.Dropped[DropOwn] != 0 {
			t.Errorf("unicast looped back our own packets: %v", st.Dropped)
		}

		// A stranger with the wrong password, and a packet that crossed a router.
		wrong := Packet{Version: 2, VRID: 51, Priority: 254, Interval: time.Second, AuthType: AuthPassword,
			AuthData: [8]byte{'n', 'o', 'p', 'e'}, Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.100")}}
		stranger := netip.MustParseAddr("198.18.0.9")
		raw, err := wrong.Marshal(stranger, b.addr, CodecOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := l.bus.port(stranger)
		defer p.Close()
		p.Send(raw, b.addr)
		right := wrong
		right.AuthData = [8]byte{'s', '3', 'c', 'r', 'e', 't'}
		raw, _ = right.Marshal(stranger, b.addr, CodecOptions{})
		l.bus.mu.Lock()
		for _, q := range l.bus.ports {
			if q.src == b.addr {
				q.in <- Received{Payload: raw, Src: stranger, Dst: b.addr, TTL: 64}
			}
		}
		l.bus.mu.Unlock()
		synctest.Wait()
		st, _ := b.status("web")
		if st.Dropped[DropAuthPassword] != 1 || st.Dropped[DropTTL] != 1 {
			t.Errorf("dropped = %v, want one auth_password and one ttl", st.Dropped)
		}
		if st.Master != a.addr {
			t.Errorf("b's master = %v, want %v", st.Master, a.addr)
		}
	})
}
