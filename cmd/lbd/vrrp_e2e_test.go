//go:build linux

package main

// End-to-end VRRP failover tests, as root: two real lbd nodes, three backends and a
// client in network namespaces on one bridge, built with scripts/lab.sh (the same
// harness as `make demo`), one bash per step. The client (scripts/demo-client) sends a
// request every 10 ms on a new connection; each scenario asserts who owns the VIP (the
// addresses in each namespace and the admin API's /v1/vips) and that traffic resumes,
// and logs the measured outage ("OUTAGE" lines, recorded in docs/benchmarks.md).
// Every scenario has its own lab prefix; processes are stopped by PID and the
// namespaces deleted in t.Cleanup, also on failure. Skipped unless root, and with -short.
//
//	go test -count=1 -run 'TestVRRP' -v ./cmd/lbd/ | grep -E 'OUTAGE|---'

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lbd/internal/testutil"
)

const (
	e2eAdvert = "100ms"
	e2eVIP    = "198.18.0.100"
	e2eVIP2   = "198.18.0.101"
	// e2eMaxOutage is the loose bound the tests assert (a loaded 2-core CI machine);
	// the real numbers are logged.
	e2eMaxOutage = 3 * time.Second
	e2eWait      = 20 * time.Second // the longest any condition is polled for
)

// ---- the lab: scripts/lab.sh, one bash per step ----

type e2eLab struct {
	t      *testing.T
	prefix string
	dir    string // LAB_DIR, removed by lab_down
}

var backendBin, clientBin string // built by requireE2E

// requireE2E skips the test unless it can build a lab (root, iproute2, not -short).
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the VRRP end-to-end tests with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: the VRRP end-to-end tests need root for network namespaces (sudo go test ./cmd/lbd/ -run VRRP)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: the ip tool (iproute2) is not installed")
	}
	backendBin, clientBin = bins.Path(t, "lbd/scripts/demo-backend"), bins.Path(t, "lbd/scripts/demo-client")
}

func newE2ELab(t *testing.T) *e2eLab {
	t.Helper()
	requireE2E(t)
	id := make([]byte, 3)
	rand.Read(id)
	l := &e2eLab{t: t, prefix: "lbdv-" + hex.EncodeToString(id)}
	out, err := l.bash(`LAB_NOTRAP=1 lab_init "$LAB_P" >/dev/null && echo "$LAB_DIR"`)
	if err != nil {
		l.bash(`lab_down "$LAB_P"`)
		t.Fatalf("lab_init: %v\n%s", err, out)
	}
	l.dir = strings.TrimSpace(out)
	t.Cleanup(func() {
		if out, err := l.bash(`lab_attach "$LAB_P" "$LAB_D" && lab_down`); err != nil {
			t.Errorf("lab_down %s: %v\n%s", l.prefix, err, out)
		}
	})
	return l
}

// bash runs script after sourcing scripts/lab.sh; LAB_P and LAB_D are the lab's prefix
// and state directory, $1... are args.
func (l *e2eLab) bash(script string, args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{"-c", "source ../../scripts/lab.sh || exit 1\n" + script, "lab"}, args...)...)
	cmd.Env = append(os.Environ(), "LAB_P="+l.prefix, "LAB_D="+l.dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// step runs script with the lab attached and fails the test if it fails.
func (l *e2eLab) step(script string, args ...string) string {
	l.t.Helper()
	out, err := l.bash(`lab_attach "$LAB_P" "$LAB_D" || exit 1`+"\n"+script, args...)
	if err != nil {
		l.t.Fatalf("lab step %q %q: %v\n%s", script, args, err, out)
	}
	return out
}

func (l *e2eLab) node(name string, index int) {
	l.t.Helper()
	l.step(`lab_node "$1" "$2" >/dev/null`, name, strconv.Itoa(index))
}

func (l *e2eLab) ns(name string) string { return l.prefix + "-" + name }

// hasAddr reports whether node has addr on eth0 (ip -o addr in its namespace).
func (l *e2eLab) hasAddr(node, addr string) bool {
	out, err := exec.Command("ip", "-n", l.ns(node), "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	return err == nil && strings.Contains(string(out), " "+addr+"/")
}

// ---- processes in the lab, by PID ----

type labProc struct {
	name string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
}

// start runs argv inside node's namespace until the test ends (stopped by PID in
// t.Cleanup: SIGCONT, SIGTERM, after 5 s SIGKILL); the PID is also recorded for lab_down.
func (l *e2eLab) start(node string, argv ...string) *labProc {
	l.t.Helper()
	p := &labProc{name: node + ":" + filepath.Base(argv[0]), out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", l.ns(node)}, argv...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		l.t.Fatalf("starting %v in %s: %v", argv, node, err)
	}
	if f, err := os.OpenFile(filepath.Join(l.dir, "pids"), os.O_APPEND|os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(f, p.cmd.Process.Pid)
		f.Close()
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t := l.t
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM, 5*time.Second)
		if t.Failed() && (strings.HasSuffix(p.name, ":lbd") || strings.HasSuffix(p.name, ":keepalived")) {
			t.Logf("%s output:\n%s", p.name, tail(p.out.String(), 40))
		}
	})
	return p
}

func (p *labProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits up to limit for the process to exit, then kills it.
func (p *labProc) stop(sig syscall.Signal, limit time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond every 20 ms for up to e2eWait.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > e2eWait {
			t.Fatalf("%s: not after %v", what, e2eWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// ---- lbd nodes ----

type e2eInstance struct {
	name, vip string
	vrid      int
}

type e2eOpts struct {
	instances []e2eInstance
	version   int    // VRRP version, 0: default (3)
	advert    string // advert_interval, "": e2eAdvert
	preempt   *bool
	// livenessKey is node.vrrp.liveness_key on every node; "": none.
	livenessKey string
	// authKey is every instance's auth_key; "": none.
	authKey string
}

type lbNode struct {
	name       string
	index      int
	priority   int
	priorities map[string]int
	dir        string
	cfg        string
	sock       string
	proc       *labProc
	dead       bool // SIGKILLed or stopped: its kernel may still hold the addresses
}

type e2eCluster struct {
	t     *testing.T
	lab   *e2eLab
	opts  e2eOpts
	nodes []*lbNode
}

// newCluster builds a lab with nodes lb1 (index 1) and lb2 (2), backends b1-b3
// (11-13, answering their name on :8080) and a client (200). The lbd nodes are
// configured but not started.
func newCluster(t *testing.T, opts e2eOpts, lbs ...*lbNode) *e2eCluster {
	t.Helper()
	if len(opts.instances) == 0 {
		opts.instances = []e2eInstance{{name: "web", vip: e2eVIP, vrid: 51}}
	}
	l := newE2ELab(t)
	c := &e2eCluster{t: t, lab: l, opts: opts, nodes: lbs}
	for _, n := range lbs {
		l.node(n.name, n.index)
		n.dir = t.TempDir()
		n.cfg, n.sock = filepath.Join(n.dir, "lbd.yaml"), filepath.Join(n.dir, "lbd.sock")
		if err := os.WriteFile(n.cfg, []byte(c.config(n)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(lbdBin, "validate", "--config", n.cfg).CombinedOutput(); err != nil {
			t.Fatalf("lbd validate %s: %v\n%s\n%s", n.name, err, out, c.config(n))
		}
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("b%d", i)
		l.node(name, 10+i)
		l.start(name, backendBin, "-name", name, "-listen", fmt.Sprintf("198.18.0.%d:8080", 10+i))
	}
	l.node("client", 200)
	return c
}

func (c *e2eCluster) config(n *lbNode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node:\n  name: %s\n  state_dir: %s/state\n  admin: {socket: %s, listen: \"\"}\n", n.name, n.dir, n.sock)
	fmt.Fprintf(&b, "  vrrp:\n    interface: eth0\n    priority: %d\n", n.priority)
	if c.opts.livenessKey != "" {
		fmt.Fprintf(&b, "    liveness_key: %q\n", c.opts.livenessKey)
	}
	if len(n.priorities) > 0 {
		b.WriteString("    priorities:\n")
		for k, v := range n.priorities {
			fmt.Fprintf(&b, "      %s: %d\n", k, v)
		}
	}
	advert := c.opts.advert
	if advert == "" {
		advert = e2eAdvert
	}
	b.WriteString("vrrp:\n  instances:\n")
	for _, in := range c.opts.instances {
		fmt.Fprintf(&b, "    - name: %s\n      vrid: %d\n      advert_interval: %s\n      addresses: [\"%s/24\"]\n", in.name, in.vrid, advert, in.vip)
		if c.opts.version != 0 {
			fmt.Fprintf(&b, "      version: %d\n", c.opts.version)
		}
		if c.opts.preempt != nil {
			fmt.Fprintf(&b, "      preempt: %v\n", *c.opts.preempt)
		}
		if c.opts.authKey != "" {
			fmt.Fprintf(&b, "      auth_key: %q\n", c.opts.authKey)
		}
	}
	b.WriteString("frontends:\n")
	for _, in := range c.opts.instances {
		fmt.Fprintf(&b, "  - {name: fe-%s, mode: http, bind: \"%s:80\", backend: app}\n", in.name, in.vip)
	}
	b.WriteString("backends:\n  - name: app\n    servers:\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "      - {name: b%d, address: \"198.18.0.%d:8080\"}\n", i, 10+i)
	}
	return b.String()
}

func (c *e2eCluster) node(name string) *lbNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no lbd node %s", name)
	return nil
}

// startLBD starts (or restarts) lbd on node name and waits for its admin socket.
func (c *e2eCluster) startLBD(name string) *lbNode {
	c.t.Helper()
	n := c.node(name)
	os.Remove(n.sock)
	n.proc = c.lab.start(n.name, lbdBin, "run", "--config", n.cfg, "--drain-timeout", "2s")
	n.dead = false
	waitFor(c.t, n.name+"'s admin API", func() bool {
		if n.proc.exited() {
			c.t.Fatalf("lbd on %s exited:\n%s", n.name, n.proc.out.String())
		}
		_, err := vipStatus(n.sock)
		return err == nil
	})
	return n
}

// kill sends sig to node's lbd; SIGKILL and SIGSTOP mark it dead (its kernel keeps
// the addresses, so ownership is judged among the other nodes).
func (c *e2eCluster) kill(name string, sig syscall.Signal) {
	n := c.node(name)
	if err := n.proc.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to lbd on %s: %v", sig, name, err)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
		n.dead = true
	}
	if sig == syscall.SIGKILL {
		<-n.proc.done
	}
}

type vipInstance struct {
	Name     string
	State    string
	Priority int
	Master   string
}

// vipStatus asks the admin API (GET /v1/vips on the unix socket) for the instances.
func vipStatus(sock string) ([]vipInstance, error) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := hc.Get("http://lbd/v1/vips")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/vips: %s: %s", resp.Status, body)
	}
	var list []vipInstance
	if err := json.Unmarshal(body, &list); err == nil {
		return list, nil
	}
	var wrapped struct{ Instances, VIPs []vipInstance }
	if err := json.Unmarshal(body, &wrapped); err != nil {
		return nil, fmt.Errorf("GET /v1/vips: %v: %s", err, body)
	}
	return append(wrapped.Instances, wrapped.VIPs...), nil
}

func (c *e2eCluster) instanceOf(vip string) string {
	for _, in := range c.opts.instances {
		if in.vip == vip {
			return in.name
		}
	}
	c.t.Fatalf("no instance for %s", vip)
	return ""
}

// owners lists the live lbd nodes that have vip on eth0.
func (c *e2eCluster) owners(vip string) []string {
	var out []string
	for _, n := range c.nodes {
		if !n.dead && c.lab.hasAddr(n.name, vip) {
			out = append(out, n.name)
		}
	}
	return out
}

// state is the instance's state in node's admin API, "" when it does not answer.
func (c *e2eCluster) state(node, instance string) string {
	n := c.node(node)
	if n.dead || n.proc == nil || n.proc.exited() {
		return ""
	}
	list, err := vipStatus(n.sock)
	if err != nil {
		return ""
	}
	for _, s := range list {
		if s.Name == instance {
			return strings.ToUpper(s.State)
		}
	}
	return ""
}

// waitOwner waits until want is the only live node holding vip, its admin API says
// MASTER and every other running node's says BACKUP (or FAULT when listed in fault).
func (c *e2eCluster) waitOwner(vip, want string, fault ...string) time.Duration {
	c.t.Helper()
	in := c.instanceOf(vip)
	var last string
	start := time.Now()
	for {
		owners := c.owners(vip)
		states := map[string]string{}
		ok := slices.Equal(owners, []string{want})
		for _, n := range c.nodes {
			if n.dead || n.proc == nil || n.proc.exited() {
				continue
			}
			st := c.state(n.name, in)
			states[n.name] = st
			switch {
			case n.name == want:
				ok = ok && st == "MASTER"
			case slices.Contains(fault, n.name):
				ok = ok && st == "FAULT"
			default:
				ok = ok && st == "BACKUP"
			}
		}
		if ok {
			return time.Since(start)
		}
		last = fmt.Sprintf("owners %v, states %v", owners, states)
		if time.Since(start) > e2eWait {
			c.t.Fatalf("%s is not the only owner of %s after %v: %s", want, vip, e2eWait, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- the client ----

type clientRun struct {
	t       *testing.T
	proc    *labProc
	started time.Time
}

type reply struct {
	sent      time.Time
	ok        bool
	body, via string
}

// startClient runs scripts/demo-client in the client namespace: a request to vip every
// 10 ms on a new connection, at most 60 s or 6000 requests.
func (c *e2eCluster) startClient(vip string) *clientRun {
	c.t.Helper()
	p := c.lab.start("client", clientBin, "-url", "http://"+vip+"/", "-interval", "10ms", "-duration", "60s", "-count", "6000", "-v")
	return &clientRun{t: c.t, proc: p, started: time.Now()}
}

func (r *clientRun) replies() []reply {
	var out []reply
	sc := bufio.NewScanner(strings.NewReader(r.proc.out.String()))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (f[0] != "ok" && f[0] != "fail") {
			continue
		}
		ms, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		rp := reply{sent: time.UnixMilli(ms), ok: f[0] == "ok"}
		if rp.ok && len(f) >= 4 {
			rp.body, rp.via = f[2], f[3]
		}
		out = append(out, rp)
	}
	return out
}

// waitAnswered waits until n requests sent after since were answered through via
// (any node when via is ""), and none sent after those failed.
func (r *clientRun) waitAnswered(since time.Time, n int, via string) {
	r.t.Helper()
	waitFor(r.t, fmt.Sprintf("%d answers through %q after %s", n, via, since.Format("15:04:05.000")), func() bool {
		if r.proc.exited() {
			r.t.Fatalf("the client exited early:\n%s", tail(r.proc.out.String(), 20))
		}
		got := 0
		for _, rp := range r.replies() {
			if rp.sent.Before(since) {
				continue
			}
			switch {
			case rp.ok && (via == "" || rp.via == via):
				got++
			default:
				got = 0 // count a run of good answers only
			}
		}
		return got >= n
	})
}

// timeline compresses the replies sent after since into runs ("12:00:00.010 ok via
// 198.18.0.1 x30"), for failure messages.
func (r *clientRun) timeline(since time.Time) string {
	var b strings.Builder
	var key string
	n := 0
	flush := func() {
		if n > 0 {
			fmt.Fprintf(&b, "%s x%d\n", key, n)
		}
	}
	for _, rp := range r.replies() {
		if rp.sent.Before(since) {
			continue
		}
		k := "fail"
		if rp.ok {
			k = "ok via " + rp.via
		}
		if n == 0 || !strings.HasSuffix(key, " "+k) {
			flush()
			key, n = rp.sent.Format("15:04:05.000")+" "+k, 0
		}
		n++
	}
	flush()
	return b.String()
}

type clientSummary struct {
	sent, ok, failed, tailFailed int
	outage                       time.Duration
	backends, via                string
}

// stop ends the client (SIGTERM) and parses its summary.
func (r *clientRun) stop() clientSummary {
	r.t.Helper()
	r.proc.stop(syscall.SIGTERM, 10*time.Second)
	var s clientSummary
	found := false
	for _, line := range strings.Split(r.proc.out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "summary":
			found = true
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.Atoi(v)
				switch k {
				case "sent":
					s.sent = n
				case "ok":
					s.ok = n
				case "failed":
					s.failed = n
				case "tail_failed":
					s.tailFailed = n
				case "outage_ms":
					s.outage = time.Duration(n) * time.Millisecond
				}
			}
		case "backends":
			s.backends = strings.Join(f[1:], " ")
		case "via":
			s.via = strings.Join(f[1:], " ")
		}
	}
	if !found {
		r.t.Fatalf("no summary from the client:\n%s", tail(r.proc.out.String(), 20))
	}
	return s
}

// checkOutage logs the client's numbers and asserts traffic resumed within the loose
// bound.
func checkOutage(t *testing.T, scenario string, s clientSummary) {
	t.Helper()
	t.Logf("OUTAGE %-34s %5d ms, %3d failed of %4d requests (backends %s; via %s)", scenario, s.outage.Milliseconds(), s.failed, s.sent, s.backends, s.via)
	if s.ok == 0 || s.tailFailed > 0 {
		t.Errorf("%s: traffic did not resume: %d answered, the last %d failed", scenario, s.ok, s.tailFailed)
	}
	if s.outage > e2eMaxOutage {
		t.Errorf("%s: outage %v, want under %v", scenario, s.outage, e2eMaxOutage)
	}
}

// ---- scenarios ----

const (
	via1 = "198.18.0.1"
	via2 = "198.18.0.2"
)

func twoNodes(opts e2eOpts, t *testing.T) *e2eCluster {
	t.Helper()
	c := newCluster(t, opts, &lbNode{name: "lb1", index: 1, priority: 150}, &lbNode{name: "lb2", index: 2, priority: 100})
	c.startLBD("lb1")
	c.startLBD("lb2")
	c.waitOwner(e2eVIP, "lb1")
	return c
}

// failover runs the client, applies event, waits until newOwner owns the VIP and the
// client is answered through it, and returns the client's numbers.
func failover(c *e2eCluster, event func(), newOwner, via string, fault ...string) clientSummary {
	c.t.Helper()
	cl := c.startClient(e2eVIP)
	cl.waitAnswered(cl.started, 30, "")
	at := time.Now()
	event()
	took := c.waitOwner(e2eVIP, newOwner, fault...)
	c.t.Logf("%s owns %s %v after the event", newOwner, e2eVIP, took.Round(time.Millisecond))
	cl.waitAnswered(at, 30, via)
	return cl.stop()
}

func TestVRRPFailoverSIGKILL(t *testing.T) {
	c := twoNodes(e2eOpts{}, t)
	s := failover(c, func() { c.kill("lb1", syscall.SIGKILL) }, "lb2", via2)
	checkOutage(t, "master SIGKILL", s)

	// Failback with preempt: lb1 (150) comes back, removes the address its crash left
	// and takes the VIP back from lb2 (100).
	s = failover(c, func() { c.startLBD("lb1") }, "lb1", via1)
	checkOutage(t, "failback (preempt) after SIGKILL", s)
}

// TestVRRPFailoverSIGKILLKeyed: with node.vrrp.liveness_key the backup does not take
// the dead master's FIN for its death (it cannot be authenticated) but its silent
// heartbeats: the failover still takes a fraction of VRRP's 3 intervals.
func TestVRRPFailoverSIGKILLKeyed(t *testing.T) {
	c := twoNodes(e2eOpts{livenessKey: "e2e-liveness-key-0123456789"}, t)
	s := failover(c, func() { c.kill("lb1", syscall.SIGKILL) }, "lb2", via2)
	checkOutage(t, "master SIGKILL, liveness_key", s)
	// A graceful stop says goodbye; the handover keeps the traffic.
	s = failover(c, func() { c.startLBD("lb1") }, "lb1", via1)
	checkOutage(t, "failback (preempt), liveness_key", s)
}

func TestVRRPFailoverSIGSTOP(t *testing.T) {
	c := twoNodes(e2eOpts{}, t)
	s := failover(c, func() { c.kill("lb1", syscall.SIGSTOP) }, "lb2", via2)
	checkOutage(t, "master SIGSTOP (hang)", s)

	// SIGCONT: lb1 wakes up as a master with the higher priority; exactly one owner
	// afterwards (lb1, preempt on), and the client follows it, even though the flip
	// back comes within a second of lb2's announcements, inside the client's neighbour
	// locktime: lb1's announcement after that locktime brings it back.
	lb1 := c.node("lb1")
	s = failover(c, func() {
		lb1.proc.cmd.Process.Signal(syscall.SIGCONT)
		lb1.dead = false
	}, "lb1", via1)
	checkOutage(t, "SIGCONT after SIGSTOP", s)
}

func TestVRRPFailoverLinkDown(t *testing.T) {
	c := twoNodes(e2eOpts{}, t)
	s := failover(c, func() { c.lab.step(`lab_link lb1 down`) }, "lb2", via2, "lb1")
	checkOutage(t, "master link down", s)
	if c.lab.hasAddr("lb1", e2eVIP) {
		t.Errorf("lb1 still holds %s with its link down", e2eVIP)
	}
	s = failover(c, func() { c.lab.step(`lab_link lb1 up`) }, "lb1", via1)
	checkOutage(t, "link up again (preempt)", s)
}

func TestVRRPFailoverGracefulStop(t *testing.T) {
	c := twoNodes(e2eOpts{}, t)
	lb1 := c.node("lb1")
	s := failover(c, func() {
		// SIGTERM: lbd advertises priority 0 and removes the VIP; lb2 takes over
		// after its skew time instead of the master-down interval.
		lb1.proc.cmd.Process.Signal(syscall.SIGTERM)
		lb1.dead = true // draining; checked below
	}, "lb2", via2)
	select {
	case <-lb1.proc.done:
	case <-time.After(e2eWait):
		t.Fatal("lbd on lb1 did not exit after SIGTERM")
	}
	if err := lb1.proc.cmd.ProcessState; err != nil && !err.Success() {
		t.Errorf("lbd on lb1 exited with %v after SIGTERM", err)
	}
	if c.lab.hasAddr("lb1", e2eVIP) {
		t.Errorf("lb1 still holds %s after a graceful stop", e2eVIP)
	}
	checkOutage(t, "graceful stop (SIGTERM)", s)
}

func TestVRRPPreemptFalse(t *testing.T) {
	no := false
	c := twoNodes(e2eOpts{preempt: &no}, t)
	c.kill("lb1", syscall.SIGKILL)
	c.waitOwner(e2eVIP, "lb2")
	// lb1 (150, preempt: false) returns: it must stay backup behind lb2 (100).
	c.startLBD("lb1")
	cl := c.startClient(e2eVIP)
	waitFor(t, "lb1 to join as BACKUP", func() bool { return c.state("lb1", "web") == "BACKUP" })
	// It stays backup: watched for 2 s, more than 5 master-down intervals at 100 ms.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if o := c.owners(e2eVIP); !slices.Equal(o, []string{"lb2"}) {
			t.Fatalf("preempt: false: owners became %v", o)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.waitOwner(e2eVIP, "lb2")
	s := cl.stop()
	checkOutage(t, "preempt false: lb1 returns, no move", s)
	if s.failed > 0 || !strings.Contains(s.via, via2) || strings.Contains(s.via, via1) {
		t.Errorf("preempt: false: the client saw failures or another node: %+v", s)
	}
}

func TestVRRPSplitBrain(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") != "" || os.Geteuid() == 0 {
			exec.Command("apt-get", "install", "-y", "-qq", "nftables").Run()
		}
		if _, err := exec.LookPath("nft"); err != nil {
			t.Skip("skipping: nft (nftables) is not available to drop VRRP between the nodes")
		}
	}
	c := twoNodes(e2eOpts{}, t)
	cl := c.startClient(e2eVIP)
	cl.waitAnswered(cl.started, 30, via1)

	// Drop VRRP arriving at either node: lb2 stops hearing lb1 and becomes master too.
	c.lab.step(`lab_vrrp_block lb1 && lab_vrrp_block lb2`)
	waitFor(t, "both nodes to own the VIP (split brain)", func() bool {
		return slices.Equal(c.owners(e2eVIP), []string{"lb1", "lb2"}) &&
			c.state("lb1", "web") == "MASTER" && c.state("lb2", "web") == "MASTER"
	})
	t.Logf("split brain: both lb1 and lb2 own %s", e2eVIP)
	// Let it last a little, as a real one does (lb2's takeover burst of announcements
	// is over), and check it holds.
	time.Sleep(time.Second)
	if o := c.owners(e2eVIP); !slices.Equal(o, []string{"lb1", "lb2"}) {
		t.Fatalf("split brain did not hold: owners %v", o)
	}

	// Heal: lb2 hears the higher-priority master and steps down; lb1 hears a
	// lower-priority master, answers at once and re-announces, so the client comes back.
	healed := time.Now()
	c.lab.step(`lab_vrrp_unblock lb1 && lab_vrrp_unblock lb2`)
	took := c.waitOwner(e2eVIP, "lb1")
	t.Logf("healed: exactly one owner (lb1) %v after removing the rule", took.Round(time.Millisecond))
	cl.waitAnswered(healed, 50, via1)
	s := cl.stop()
	checkOutage(t, "split brain healed", s)
	if t.Failed() {
		t.Logf("client timeline from 1 s before healing:\n%s", cl.timeline(healed.Add(-time.Second)))
	}
}

func TestVRRPActiveActive(t *testing.T) {
	opts := e2eOpts{instances: []e2eInstance{{name: "web1", vip: e2eVIP, vrid: 51}, {name: "web2", vip: e2eVIP2, vrid: 52}}}
	c := newCluster(t, opts,
		&lbNode{name: "lb1", index: 1, priority: 100, priorities: map[string]int{"web1": 150}},
		&lbNode{name: "lb2", index: 2, priority: 100, priorities: map[string]int{"web2": 150}})
	c.startLBD("lb1")
	c.startLBD("lb2")
	c.waitOwner(e2eVIP, "lb1")
	c.waitOwner(e2eVIP2, "lb2")

	c1, c2 := c.startClient(e2eVIP), c.startClient(e2eVIP2)
	c1.waitAnswered(c1.started, 30, via1)
	c2.waitAnswered(c2.started, 30, via2)
	at := time.Now()
	c.kill("lb2", syscall.SIGKILL)
	c.waitOwner(e2eVIP2, "lb1")
	c.waitOwner(e2eVIP, "lb1")
	c1.waitAnswered(at, 30, via1)
	c2.waitAnswered(at, 30, via1)
	s1, s2 := c1.stop(), c2.stop()
	checkOutage(t, "active-active: VIP of the survivor", s1)
	checkOutage(t, "active-active: VIP of the killed node", s2)
	if s1.failed > 0 {
		t.Errorf("the survivor's own VIP lost %d requests", s1.failed)
	}
}

// ---- interoperability with keepalived ----

// TestVRRPKeepalivedInterop runs lbd and the real keepalived as the two routers of one
// VRID (VRRPv3 at 100 ms and VRRPv2 at 1 s, auth none), each as master in turn: the
// elections and the failovers must agree, with the VIP on exactly the expected one.
func TestVRRPKeepalivedInterop(t *testing.T) {
	requireE2E(t)
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		exec.Command("apt-get", "install", "-y", "-qq", "keepalived").Run()
		if ka, err = exec.LookPath("keepalived"); err != nil {
			t.Skip("skipping: keepalived is not installed and apt-get install keepalived failed")
		}
	}
	for _, v := range []struct {
		version int
		advert  string // lbd
		kaInt   string // keepalived advert_int
	}{{3, "100ms", "0.1"}, {2, "1s", "1"}} {
		for _, lbdMaster := range []bool{true, false} {
			name := fmt.Sprintf("v%d/keepalived-master", v.version)
			if lbdMaster {
				name = fmt.Sprintf("v%d/lbd-master", v.version)
			}
			t.Run(name, func(t *testing.T) {
				lbdPrio, kaPrio := 100, 150
				if lbdMaster {
					lbdPrio, kaPrio = 150, 100
				}
				c := newCluster(t, e2eOpts{version: v.version, advert: v.advert}, &lbNode{name: "lb1", index: 1, priority: lbdPrio})
				c.lab.node("ka", 2)
				dir := t.TempDir()
				conf := filepath.Join(dir, "keepalived.conf")
				text := fmt.Sprintf(`global_defs {
    router_id lbd-interop
    vrrp_version %d
}
vrrp_instance web {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int %s
    virtual_ipaddress {
        %s/24 dev eth0
    }
}
`, v.version, kaPrio, v.kaInt, e2eVIP)
				if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				var kaProc *labProc
				startKA := func() {
					kaProc = c.lab.start("ka", ka, "-n", "-l", "-D", "-P", "-f", conf,
						"-p", filepath.Join(dir, "ka.pid"), "-r", filepath.Join(dir, "ka-vrrp.pid"), "-c", filepath.Join(dir, "ka-chk.pid"))
				}
				lb1 := c.node("lb1")
				// kaSays waits until the running keepalived has logged entering state n times.
				kaSays := func(state string, n int) {
					t.Helper()
					waitFor(t, fmt.Sprintf("keepalived to enter %s (%d)", state, n), func() bool {
						return strings.Count(kaProc.out.String(), "Entering "+state+" STATE") >= n
					})
				}
				// want waits until the VIP is on exactly one of them: keepalived when kaOwns,
				// lbd (and its admin API says MASTER) otherwise; a running lbd that does not
				// own it must say BACKUP with keepalived's address as the master.
				want := func(what string, kaOwns bool) {
					t.Helper()
					start := time.Now()
					var last string
					for {
						kaHas := c.lab.hasAddr("ka", e2eVIP)
						lbdHas := !lb1.dead && c.lab.hasAddr("lb1", e2eVIP)
						st := c.state("lb1", "web")
						ok := kaHas == kaOwns && lbdHas == !kaOwns
						if lb1.proc != nil && !lb1.dead && !lb1.proc.exited() {
							ok = ok && (kaOwns && st == "BACKUP" || !kaOwns && st == "MASTER")
						} else if !kaOwns {
							ok = false
						}
						if ok {
							t.Logf("%s: after %v (keepalived has the VIP: %v, lbd: %s)", what, time.Since(start).Round(time.Millisecond), kaHas, st)
							return
						}
						last = fmt.Sprintf("keepalived has the VIP: %v, lbd has it: %v, lbd state %q", kaHas, lbdHas, st)
						if time.Since(start) > e2eWait {
							out := ""
							if kaProc != nil {
								out = tail(kaProc.out.String(), 30)
							}
							t.Fatalf("%s: not after %v: %s\nkeepalived:\n%s", what, e2eWait, last, out)
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				if lbdMaster {
					c.startLBD("lb1")
					want("lbd elected master alone", false)
					startKA()
					kaSays("BACKUP", 1)
					want("keepalived joins as backup", false)
					c.kill("lb1", syscall.SIGKILL)
					kaSays("MASTER", 1)
					want("lbd killed: keepalived takes over", true)
					c.startLBD("lb1")
					kaSays("BACKUP", 2)
					want("lbd returns and preempts keepalived", false)
					lb1.proc.cmd.Process.Signal(syscall.SIGTERM)
					lb1.dead = true
					kaSays("MASTER", 2)
					want("lbd stopped (priority 0): keepalived takes over", true)
				} else {
					startKA()
					kaSays("MASTER", 1)
					want("keepalived elected master alone", true)
					c.startLBD("lb1")
					want("lbd joins as backup", true)
					if st, err := vipStatus(lb1.sock); err == nil && len(st) > 0 && st[0].Master != "" && st[0].Master != "198.18.0.2" {
						t.Errorf("lbd sees master %q, want keepalived's 198.18.0.2", st[0].Master)
					}
					kaProc.stop(syscall.SIGTERM, 10*time.Second)
					want("keepalived stopped (priority 0): lbd takes over", false)
					startKA()
					kaSays("MASTER", 1)
					want("keepalived returns and preempts lbd", true)
				}
			})
		}
	}
}
