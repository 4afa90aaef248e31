//go:build linux

package vip

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// inNamespace runs fn on a locked OS thread switched into namespace ns and returns
// its error. Unlike labNode.do it may run on any goroutine: the manager opens its
// transports from its instances' goroutines.
func inNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		target, err := netns.GetFromName(ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// An interface deleted and created again under the same name (a veth re-plugged, a
// VLAN recreated by a network manager): the backup's VRRP socket was bound to the old
// index, so without a reopen it hears nothing and becomes master next to the real
// master, announcing the VIP by name on the new interface: split brain.
func TestManagerInterfaceRecreatedNetns(t *testing.T) {
	l := newLab(t)
	a := l.node("a", "198.18.0.1/24")
	b := l.node("b", "198.18.0.2/24")

	// a is a master at priority 200 that advertises every 100ms.
	peer := openTransport(t, a, TransportOptions{Interface: "eth0", Family: 4, Multicast: true})
	vip := netip.MustParseAddr("198.18.0.100")
	adv := Packet{Version: 3, VRID: 51, Priority: 200, Interval: 100 * time.Millisecond, Addresses: []netip.Addr{vip}}
	pkt, err := adv.Marshal(peer.Source(), MulticastGroupV4, CodecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stopAdverts := make(chan struct{})
	advertsDone := make(chan struct{})
	go func() {
		defer close(advertsDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopAdverts:
				return
			case <-tick.C:
				peer.Send(pkt, MulticastGroupV4) // errors: a lost advert, as on a wire
			}
		}
	}()
	defer func() { close(stopAdverts); <-advertsDone }()

	cfg := webConfig(100, func(in *Instance) { in.AdvertInterval = 100 * time.Millisecond })
	m, err := New(cfg, Deps{
		Transport: func(in Instance) (tr Transport, err error) {
			err = inNamespace(b.ns, func() error {
				tr, err = NewTransport(TransportOptions{Interface: in.Interface, Family: 4, Multicast: true})
				return err
			})
			return tr, err
		},
		Addresses: newFakeAddrs(),
		Announcer: nopAnnouncer{},
		Logger:    slog.New(slog.NewTextHandler(testLogWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := b.goDo(func() {
		WatchLinks(ctx, func(ifname string, index int, up bool) {
			if ifname == "eth0" {
				m.SetLinkIndex(ifname, index)
				m.SetLink(ifname, up)
			}
		})
	})
	defer func() { cancel(); <-watchDone }()

	state := func() InstanceStatus { return m.Status()[0] }
	waitState := func(what string, want State, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for state().State != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: state %s, want %s within %v", what, state().State, want, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitState("at start", Backup, 5*time.Second)

	// Delete b's eth0 and create it again, as the lab did.
	b.ip("link", "del", "eth0")
	waitState("with eth0 deleted", Fault, 5*time.Second)
	l.ip(b.ns, "link", "add", "eth0", "type", "veth", "peer", "name", b.port, "netns", l.bridge)
	l.ip(l.bridge, "link", "set", b.port, "master", "br0", "up")
	b.ip("addr", "add", "198.18.0.2/24", "dev", "eth0", "nodad")
	b.ip("link", "set", "eth0", "up")
	b.waitUp()

	// Back to BACKUP, and it stays there: it hears a's adverts on the new socket (a deaf
	// backup becomes master after Master_Down_Interval, about 360ms here).
	waitState("after eth0 came back", Backup, 5*time.Second)
	received := state().AdvertsReceived
	time.Sleep(2 * time.Second)
	st := state()
	if st.State != Backup {
		t.Fatalf("state %s two seconds after eth0 came back, want BACKUP (faults %q)", st.State, st.Faults)
	}
	if st.AdvertsReceived <= received {
		t.Fatalf("adverts received %d, no more than %d: the socket is deaf", st.AdvertsReceived, received)
	}
	if got, want := fmt.Sprint(st.Master), "198.18.0.1"; got != want {
		t.Errorf("master = %s, want %s", got, want)
	}
}

// nopAnnouncer announces nothing: the test watches the instance's state.
type nopAnnouncer struct{}

func (nopAnnouncer) Announce(string, netip.Addr) error { return nil }
