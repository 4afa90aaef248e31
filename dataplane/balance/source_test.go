package balance

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSourceStable pins where addresses go, so a change to the hash, which would move
// clients between servers across a rolling upgrade, fails here first.
func TestSourceStable(t *testing.T) {
	b := newSource(balServers(1, 2, 3, 1, 1))
	got := map[string]string{}
	for _, ip := range []string{"10.0.0.1", "10.0.0.2", "192.0.2.77", "203.0.113.200", "2001:db8::1", "2001:db8::2", "fe80::1", "::"} {
		got[ip] = b.Pick(&testPick{ClientIP: netip.MustParseAddr(ip)}).Name
	}
	want := map[string]string{
		"10.0.0.1":      "c",
		"10.0.0.2":      "d",
		"192.0.2.77":    "b",
		"203.0.113.200": "a",
		"2001:db8::1":   "b",
		"2001:db8::2":   "b",
		"fe80::1":       "c",
		"::":            "d",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("servers by address (-want +got):\n%s", diff)
	}
}

func TestSourceSameClientSameServer(t *testing.T) {
	servers := balServers(1, 2, 3)
	b := newSource(servers)
	other := newSource(balServers(1, 2, 3)) // another node, or after a restart
	for i := range 1000 {
		ip := balIP(i)
		first := b.Pick(&testPick{ClientIP: ip})
		for range 3 {
			if s := b.Pick(&testPick{ClientIP: ip}); s != first {
				t.Fatalf("%v: picked %s then %s", ip, first.Name, s.Name)
			}
		}
		if s := other.Pick(&testPick{ClientIP: ip}); s.Name != first.Name {
			t.Fatalf("%v: %s here, %s on another balancer", ip, first.Name, s.Name)
		}
		if s := b.Pick(&testPick{ClientIP: netip.AddrFrom16(ip.As16())}); s != first {
			t.Fatalf("%v: %s, but %s as IPv4-mapped IPv6", ip, first.Name, s.Name)
		}
		if s := b.Pick(&testPick{ClientIP: ip, Key: []byte("ignored")}); s != first {
			t.Fatalf("%v: %s, but %s with a Key", ip, first.Name, s.Name)
		}
	}
}

// TestSourceServerLeaves checks that a server going away moves only its own clients, and
// coming back brings them home.
func TestSourceServerLeaves(t *testing.T) {
	const n = 20000
	servers := balServers(1, 2, 3, 1)
	b := newSource(servers)
	before := balSequence(b, &testPick{}, n)
	servers[2].SetUp(false)
	during := balSequence(b, &testPick{}, n)
	moved := 0
	for i := range n {
		if during[i] != before[i] {
			moved++
			if before[i] != "c" {
				t.Fatalf("client %d moved from %s to %s when c went down", i, before[i], during[i])
			}
		}
		if during[i] == "c" {
			t.Fatalf("client %d on c, which is down", i)
		}
	}
	t.Logf("%d of %d clients moved", moved, n)
	servers[2].SetUp(true)
	if diff := cmp.Diff(before, balSequence(b, &testPick{}, n)); diff != "" {
		t.Errorf("after c came back (-before +after):\n%s", diff)
	}
}

func BenchmarkPickSource(b *testing.B) { benchPick(b, newSource) }
