//go:build linux

package vip

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// A small network-namespace lab for the kernel tests (the shell version for the demo
// and the end-to-end tests is scripts/lab.sh; same layout):
//
//	          lbdt-<id>-br  (bridge namespace, br0, multicast snooping off)
//	         /      |       \
//	 v-<name>   v-<name>   ...        veth ports in the bridge namespace
//	     |          |
//	   eth0        eth0                in lbdt-<id>-<name>, one namespace per node
//
// Every namespace is deleted in t.Cleanup, also when the test fails; deleting a
// namespace deletes its veth ends. Addresses come from 198.18.0.0/15 and 2001:2::/48
// only. DAD is off in the node namespaces, so IPv6 addresses are usable at once.

// requireRoot skips the test unless it runs as root with the ip tool available, and
// under -short.
func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping with -short: builds network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (run `sudo go test ./vip/`)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: the ip tool (iproute2) is not installed")
	}
}

type lab struct {
	t      *testing.T
	prefix string // lbdt-<id>
	bridge string // the bridge namespace
}

type labNode struct {
	lab  *lab
	name string
	ns   string // namespace name
	port string // the veth end in the bridge namespace
}

// newLab creates the bridge namespace of a new lab, or skips the test when not root.
func newLab(t *testing.T) *lab {
	t.Helper()
	requireRoot(t)
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, prefix: "lbdt-" + hex.EncodeToString(id)}
	l.bridge = l.addNamespace("br")
	l.ip(l.bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	l.ip(l.bridge, "link", "set", "br0", "up")
	return l
}

// addNamespace creates namespace <prefix>-<suffix> with lo up and DAD off, and deletes
// it in t.Cleanup.
func (l *lab) addNamespace(suffix string) string {
	l.t.Helper()
	ns := l.prefix + "-" + suffix
	l.run("ip", "netns", "add", ns)
	l.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Logf("deleting namespace %s: %v: %s", ns, err, out)
		}
	})
	l.ip(ns, "link", "set", "lo", "up")
	for _, s := range []string{"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"} {
		l.run("ip", "netns", "exec", ns, "sysctl", "-qw", s)
	}
	return ns
}

// node creates namespace <prefix>-<name> with eth0 plugged into the bridge and the
// given addresses ("198.18.0.1/24", "2001:2::1/64") on eth0.
func (l *lab) node(name string, addrs ...string) *labNode {
	l.t.Helper()
	n := &labNode{lab: l, name: name, ns: l.addNamespace(name), port: "v-" + name}
	l.ip(n.ns, "link", "add", "eth0", "type", "veth", "peer", "name", n.port, "netns", l.bridge)
	l.ip(l.bridge, "link", "set", n.port, "master", "br0", "up")
	for _, a := range addrs {
		l.ip(n.ns, "addr", "add", a, "dev", "eth0", "nodad")
	}
	l.ip(n.ns, "link", "set", "eth0", "up")
	n.waitUp()
	return n
}

// waitUp waits until eth0 and its bridge port carry packets. The kernel turns a link on
// (its queue, its operstate, a bridge port's forwarding state) in deferred link-watch
// work, up to a second after `ip link set up`, and until then drops what is sent on it
// without a trace: a gratuitous ARP or an advert sent at once could be lost.
func (n *labNode) waitUp() {
	n.lab.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		eth := n.ip("-o", "link", "show", "dev", "eth0")
		port := n.lab.ip(n.lab.bridge, "-d", "-o", "link", "show", "dev", n.port)
		if linkOn(eth) && linkOn(port) && strings.Contains(port, "bridge_slave state forwarding") {
			return
		}
		if time.Now().After(deadline) {
			n.lab.t.Fatalf("%s's eth0 not up within 10s:\n%s\n%s", n.name, eth, port)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// linkOn reports whether a line of `ip -o link show` is of a link that is up and has its
// queue attached (noop is the queue of a link not yet turned on: it drops every packet).
func linkOn(line string) bool {
	return strings.Contains(line, " state UP ") && !strings.Contains(line, " qdisc noop ")
}

// ip runs `ip -n ns args...` and fails the test on error.
func (l *lab) ip(ns string, args ...string) string {
	l.t.Helper()
	return l.run("ip", append([]string{"-n", ns}, args...)...)
}

// run runs a command and fails the test on error; it returns the combined output.
func (l *lab) run(name string, args ...string) string {
	l.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ip runs `ip -n <node ns> args...`.
func (n *labNode) ip(args ...string) string {
	n.lab.t.Helper()
	return n.lab.ip(n.ns, args...)
}

// exec runs a command inside the node's namespace and returns its output.
func (n *labNode) exec(name string, args ...string) string {
	n.lab.t.Helper()
	return n.lab.run("ip", append([]string{"netns", "exec", n.ns, name}, args...)...)
}

// do runs fn on the calling goroutine with its OS thread switched into the node's
// namespace, so sockets and netlink requests made by fn act there (sockets keep their
// namespace after do returns). fn may call t.Fatal. If the thread cannot be switched
// back, it stays locked and dies with the goroutine instead of serving other goroutines
// in the wrong namespace.
func (n *labNode) do(fn func()) {
	t := n.lab.t
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("getting current namespace: %v", err)
	}
	target, err := netns.GetFromName(n.ns)
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("opening namespace %s: %v", n.ns, err)
	}
	defer func() {
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		orig.Close()
		target.Close()
	}()
	if err := netns.Set(target); err != nil {
		t.Fatalf("entering namespace %s: %v", n.ns, err)
	}
	fn()
}

// goDo runs fn on a new goroutine whose OS thread is switched into the node's namespace
// for good (the thread stays locked and exits with the goroutine), for functions that
// block, such as WatchLinks. fn must not call t.Fatal. The returned channel is closed
// when fn returns.
func (n *labNode) goDo(fn func()) <-chan struct{} {
	t := n.lab.t
	t.Helper()
	target, err := netns.GetFromName(n.ns)
	if err != nil {
		t.Fatalf("opening namespace %s: %v", n.ns, err)
	}
	entered := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		err := netns.Set(target)
		target.Close()
		entered <- err
		if err == nil {
			fn()
		}
	}()
	if err := <-entered; err != nil {
		t.Fatalf("entering namespace %s: %v", n.ns, err)
	}
	return done
}

// mac returns the hardware address of the node's eth0.
func (n *labNode) mac() string {
	n.lab.t.Helper()
	out := n.ip("-o", "link", "show", "eth0")
	f := strings.Fields(out)
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	n.lab.t.Fatalf("no MAC in %q", out)
	return ""
}

// linkLocal returns the IPv6 link-local address of the node's eth0.
func (n *labNode) linkLocal() string {
	n.lab.t.Helper()
	out := n.ip("-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet6" && i+1 < len(f) {
			return strings.Split(f[i+1], "/")[0]
		}
	}
	n.lab.t.Fatalf("no link-local address in %q", out)
	return ""
}

func (n *labNode) String() string { return fmt.Sprintf("%s (%s)", n.name, n.ns) }
