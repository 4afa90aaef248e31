package main

// Integration tests: the real lbd binary, started from a config file in a temp dir,
// with real backends on loopback.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"lbd/internal/testutil"
	"lbd/node/api"
)

// bins builds the commands these tests run (lbd, lbctl, the demo backend and client),
// each once, into a directory that TestMain removes.
var bins testutil.Bins

// lbdBin is the lbd binary, built before the tests run: every test needs it.
var lbdBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test here runs the lbd binary end to end (with real backends, timers and
		// reloads), so none is a unit test: make test runs them, make test-short does not.
		fmt.Println("skipping cmd/lbd's tests with -short: they build and run the lbd binary")
		os.Exit(0)
	}
	var err error
	if lbdBin, err = bins.Build("lbd/cmd/lbd"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		bins.Remove()
		os.Exit(1)
	}
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lbdProc struct {
	cmd    *exec.Cmd
	node   string // the node: section, %[1]s the temp dir (default nodeSection)
	cfg    string
	socket string
	client *api.Client
	logs   *testutil.SyncBuffer
}

// lbctlRun runs lbctl against p and returns its output and exit code.
func (p *lbdProc) lbctlRun(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins.Path(t, "lbd/cmd/lbctl"), append([]string{"--socket", p.socket}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("lbctl %v: %v", args, err)
	return "", 0
}

// nodeSection is the node: part of a test config; %s is the temp dir.
const nodeSection = `node:
  name: it
  state_dir: %[1]s/state
  admin:
    socket: %[1]s/lbd.sock
    listen: ""
`

// startLBD writes cfg (the cluster-wide part) beside a node: section and runs lbd on
// it until the test ends.
func startLBD(t *testing.T, cfg string) *lbdProc {
	t.Helper()
	return startLBDNode(t, nodeSection, cfg)
}

// startLBDNode is startLBD with node as the node: section (%[1]s is the temp dir).
func startLBDNode(t *testing.T, node, cfg string) *lbdProc {
	t.Helper()
	dir := t.TempDir()
	p := &lbdProc{node: node, cfg: filepath.Join(dir, "lbd.yaml"), socket: filepath.Join(dir, "lbd.sock"), logs: &testutil.SyncBuffer{}}
	p.write(t, cfg)
	p.cmd = exec.Command(lbdBin, "run", "--config", p.cfg, "--drain-timeout", "5s")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-exited
		}
		t.Logf("lbd log:\n%s", p.logs.String())
	})
	p.client = api.NewClient(p.socket)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.client.Status(ctx)
		cancel()
		if err == nil {
			return p
		}
		select {
		case err := <-exited:
			t.Fatalf("lbd exited: %v\n%s", err, p.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("lbd did not answer on %s: %v\n%s", p.socket, err, p.logs.String())
		}
	}
}

func (p *lbdProc) write(t *testing.T, cfg string) {
	t.Helper()
	node := p.node
	if node == "" {
		node = nodeSection
	}
	text := fmt.Sprintf(node, filepath.Dir(p.cfg)) + cfg
	if err := os.WriteFile(p.cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload sends SIGHUP and waits until the reload counters show it was handled and its
// log line has arrived (lbd counts a reload before it logs it, and the log comes through
// a pipe: a test that reads the log right after the counter could miss the line).
func (p *lbdProc) reload(t *testing.T, result string) {
	t.Helper()
	logged := map[string]string{"success": "config reloaded", "failure": "config reload refused"}[result]
	before := p.metric(t, `lbd_config_reloads_total{result="`+result+`"}`)
	linesBefore := strings.Count(p.logs.String(), logged)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.metric(t, `lbd_config_reloads_total{result="`+result+`"}`) == before || strings.Count(p.logs.String(), logged) == linesBefore {
		if time.Now().After(deadline) {
			t.Fatalf("no %s reload counted and logged after SIGHUP\n%s", result, p.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *lbdProc) metric(t *testing.T, series string) string {
	t.Helper()
	text, err := p.client.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	return ""
}

// namedBackend answers with its name, optionally after a delay.
func namedBackend(t *testing.T, name string, delay time.Duration, inflight *atomic.Int64) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inflight != nil {
			inflight.Add(1)
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPEveryAlgorithm(t *testing.T) {
	b1, b2, b3 := namedBackend(t, "s1", 0, nil), namedBackend(t, "s2", 0, nil), namedBackend(t, "s3", 0, nil)
	algos := []string{"roundrobin", "leastconn", "least_time", "random", "source", "consistent"}
	var cfg strings.Builder
	ports := map[string]int{}
	cfg.WriteString("frontends:\n")
	for _, a := range algos {
		ports[a] = freePort(t, "tcp")
		fmt.Fprintf(&cfg, "  - {name: fe-%s, mode: http, bind: 127.0.0.1:%d, backend: be-%s}\n", a, ports[a], a)
	}
	cfg.WriteString("backends:\n")
	for _, a := range algos {
		fmt.Fprintf(&cfg, "  - name: be-%s\n    balance: %s\n", a, a)
		if a == "consistent" {
			cfg.WriteString("    hash_key: header:X-User\n")
		}
		cfg.WriteString("    servers:\n")
		for i, b := range []*httptest.Server{b1, b2, b3} {
			fmt.Fprintf(&cfg, "      - {name: s%d, address: %s}\n", i+1, b.Listener.Addr())
		}
	}
	startLBD(t, cfg.String())
	c := &http.Client{Timeout: 10 * time.Second}
	for _, a := range algos {
		t.Run(a, func(t *testing.T) {
			seen := map[string]int{}
			for i := range 300 {
				hdr := map[string]string{"X-User": fmt.Sprintf("user-%d", i%30)}
				code, body := get(t, c, fmt.Sprintf("http://127.0.0.1:%d/", ports[a]), hdr)
				if code != 200 {
					t.Fatalf("request %d: status %d %q", i, code, body)
				}
				seen[body]++
			}
			t.Logf("%s: %v", a, seen)
			switch a {
			case "source":
				// One client address: one server.
				if len(seen) != 1 {
					t.Errorf("source hashing sent one client to %d servers: %v", len(seen), seen)
				}
			case "roundrobin":
				for _, n := range []string{"s1", "s2", "s3"} {
					if seen[n] != 100 {
						t.Errorf("roundrobin: %s got %d of 300, want 100 (%v)", n, seen[n], seen)
					}
				}
			default:
				if len(seen) < 2 {
					t.Errorf("%s used only %v", a, seen)
				}
			}
		})
	}
	// The consistent backend keeps each key on one server.
	port := ports["consistent"]
	for i := range 30 {
		hdr := map[string]string{"X-User": fmt.Sprintf("user-%d", i)}
		_, first := get(t, c, fmt.Sprintf("http://127.0.0.1:%d/", port), hdr)
		for range 3 {
			if _, again := get(t, c, fmt.Sprintf("http://127.0.0.1:%d/", port), hdr); again != first {
				t.Fatalf("key user-%d moved from %s to %s", i, first, again)
			}
		}
	}
}

func TestTCPAndUDP(t *testing.T) {
	tcpEcho := startTCPEcho(t)
	udpEcho := startUDPEcho(t)
	tport, uport := freePort(t, "tcp"), freePort(t, "udp")
	startLBD(t, fmt.Sprintf(`frontends:
  - {name: tcp, mode: tcp, bind: "127.0.0.1:%d", backend: tcp-echo}
  - {name: udp, mode: udp, bind: "127.0.0.1:%d", backend: udp-echo}
backends:
  - name: tcp-echo
    servers: [{address: "%s"}]
  - name: udp-echo
    servers: [{address: "%s"}]
`, tport, uport, tcpEcho, udpEcho))

	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tport), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	payload := bytes.Repeat([]byte("lbd-tcp "), 64<<10)
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("tcp echo returned %d bytes, want %d identical", len(got), len(payload))
	}

	u, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", uport))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 1500)
	for i := range 20 {
		msg := fmt.Sprintf("query-%d", i)
		var n int
		// UDP may drop; a datagram is sent again up to 5 times.
		for try := 0; ; try++ {
			u.Write([]byte(msg))
			u.SetReadDeadline(time.Now().Add(time.Second))
			n, err = u.Read(buf)
			if err == nil || try == 4 {
				break
			}
		}
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("udp echo %q: got %q, %v", msg, buf[:n], err)
		}
	}
}

func startTCPEcho(t *testing.T) string {
	return serveTCP(t, func(c net.Conn) { io.Copy(c, c) })
}

// serveTCP accepts connections on a loopback port until the test ends, handling each
// with handle in its own goroutine and closing it afterwards.
func serveTCP(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

func startUDPEcho(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], addr)
		}
	}()
	return pc.LocalAddr().String()
}

func TestReloadKeepsServing(t *testing.T) {
	var inflight atomic.Int64
	slow := namedBackend(t, "slow", 300*time.Millisecond, &inflight)
	other := namedBackend(t, "other", 0, nil)
	port := freePort(t, "tcp")
	base := fmt.Sprintf(`frontends:
  - {name: web, bind: "127.0.0.1:%d", backend: app}
backends:
  - name: app
    pool_size: 512
    servers: [{name: slow, address: "%s"}]
  - name: api
    servers: [{name: other, address: "%s"}]
`, port, slow.Listener.Addr(), other.Listener.Addr())
	p := startLBD(t, base)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0}}

	// An invalid file is refused and the old config keeps serving.
	p.write(t, base+"  - name: broken\n    servers: []\n")
	p.reload(t, "failure")
	if code, body := get(t, c, url, nil); code != 200 || body != "slow" {
		t.Fatalf("after a refused reload: %d %q", code, body)
	}
	if !strings.Contains(p.logs.String(), "backends[2].servers: needs at least one server") {
		t.Errorf("the refused reload's error is not logged with its field:\n%s", p.logs.String())
	}

	// 200 requests in flight survive a reload that adds a route.
	const n = 200
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "slow" {
					err = fmt.Errorf("status %d body %q", resp.StatusCode, b)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for inflight.Load() < n/2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.write(t, strings.Replace(base, "backend: app}", "backend: app, routes: [{path_prefix: /api, backend: api}]}", 1))
	p.reload(t, "success")
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d in-flight requests failed across the reload; first: %v", f, n, firstErr.Load())
	}
	if code, body := get(t, c, url+"api/x", nil); code != 200 || body != "other" {
		t.Fatalf("new route after reload: %d %q", code, body)
	}
	if got := p.metric(t, `lbd_http_requests_total{backend="app",class="2xx",frontend="web",server="slow"}`); got == "" {
		t.Errorf("no request metrics for the app backend")
	}
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "lbd.yaml")
	os.WriteFile(good, []byte("frontends:\n  - {name: web, bind: \"127.0.0.1:8080\", backend: app}\nbackends:\n  - name: app\n    servers: [{address: \"127.0.0.1:9000\"}]\n"), 0o644)
	os.WriteFile(bad, []byte("frontends:\n  - name: web\n    bind: \"127.0.0.1:8080\"\n    backend: api2\nbackends:\n  - name: app\n    servers: [{address: \"127.0.0.1:9000\"}]\n"), 0o644)

	out, err := exec.Command(lbdBin, "validate", "--config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid") {
		t.Fatalf("validate good file: %v\n%s", err, out)
	}
	out, err = exec.Command(lbdBin, "validate", "--config", bad).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("validate bad file: want exit 1, got %v\n%s", err, out)
	}
	want := `lbd.yaml:4: frontends[0].backend: no backend named "api2"`
	if !strings.Contains(string(out), want) {
		t.Fatalf("validate bad file printed\n%s\nwant a line %q", out, want)
	}
	// Nothing after the message: one line per problem.
	if sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan() && strings.TrimSpace(sc.Text()) != want {
		t.Errorf("first line %q, want %q", sc.Text(), want)
	}
}
