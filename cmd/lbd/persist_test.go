package main

// Integration tests of session persistence: cookies and sticky tables, with the real
// binary, across reloads and server state changes, and lbctl sticky.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lbd/node/api"
)

// persistCookieConfig is an http frontend on port sending to backend app, with cookie
// persistence over servers s1..s3 at addrs; states sets some servers' state.
func persistCookieConfig(port int, addrs []string, states map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `frontends:
  - {name: web, bind: "127.0.0.1:%d", backend: app}
backends:
  - name: app
    balance: roundrobin
    persistence:
      type: cookie
      cookie: {key: "integration-test-key-0123456789"}
    servers:
`, port)
	for i, a := range addrs {
		name := fmt.Sprintf("s%d", i+1)
		state := states[name]
		if state == "" {
			state = "enabled"
		}
		fmt.Fprintf(&b, "      - {name: %s, address: %q, state: %s}\n", name, a, state)
	}
	return b.String()
}

// persistClient is one browser: its own cookie jar.
type persistClient struct {
	c    *http.Client
	home string
}

func newPersistClients(t *testing.T, n int, tr http.RoundTripper) []*persistClient {
	out := make([]*persistClient, n)
	for i := range out {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = &persistClient{c: &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second}}
	}
	return out
}

// visit makes each client do n requests, in parallel, and returns the servers each one
// reached, in order.
func visit(t *testing.T, clients []*persistClient, url string, n int) [][]string {
	t.Helper()
	out := make([][]string, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				resp, err := c.c.Get(url)
				if err != nil {
					errs[i] = err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs[i] = fmt.Errorf("status %d: %s", resp.StatusCode, b)
					return
				}
				out[i] = append(out[i], string(b))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("clients failed: %v", err)
	}
	return out
}

// same returns the one server of seen, or "" when there are several.
func same(seen []string) string {
	for _, s := range seen[1:] {
		if s != seen[0] {
			return ""
		}
	}
	return seen[0]
}

func TestPersistenceCookieClients(t *testing.T) {
	addrs := []string{}
	for _, name := range []string{"s1", "s2", "s3"} {
		addrs = append(addrs, namedBackend(t, name, 0, nil).Listener.Addr().String())
	}
	port := freePort(t, "tcp")
	p := startLBD(t, persistCookieConfig(port, addrs, nil))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	t.Cleanup(tr.CloseIdleConnections)

	// 100 clients, 5 requests each: every client stays on its server, and round robin
	// spread the clients.
	clients := newPersistClients(t, 100, tr)
	perServer := map[string]int{}
	for i, seen := range visit(t, clients, url, 5) {
		home := same(seen)
		if home == "" {
			t.Fatalf("client %d moved: %v", i, seen)
		}
		clients[i].home = home
		perServer[home]++
	}
	t.Logf("clients per server: %v", perServer)
	if len(perServer) != 3 {
		t.Fatalf("clients on %v: not spread over 3 servers", perServer)
	}

	// s2 disabled: only its clients move, once, and stay where they went.
	p.write(t, persistCookieConfig(port, addrs, map[string]string{"s2": "disabled"}))
	p.reload(t, "success")
	for i, seen := range visit(t, clients, url, 4) {
		c := clients[i]
		now := same(seen)
		switch {
		case c.home != "s2" && now != c.home:
			t.Fatalf("client %d of %s moved when s2 was disabled: %v", i, c.home, seen)
		case c.home == "s2" && (now == "" || now == "s2"):
			t.Fatalf("client %d of disabled s2 did not move to one other server: %v", i, seen)
		}
		c.home = now
	}
	if got := p.metric(t, `lbd_persistence_total{backend="app",result="redispatch"}`); got != fmt.Sprint(perServer["s2"]) {
		t.Errorf("redispatch count %s, want %d (the clients of s2)", got, perServer["s2"])
	}

	// s2 back, s3 drained: s3's clients stay on it; new clients avoid it.
	p.write(t, persistCookieConfig(port, addrs, map[string]string{"s3": "drain"}))
	p.reload(t, "success")
	for i, seen := range visit(t, clients, url, 3) {
		if now := same(seen); now != clients[i].home {
			t.Fatalf("client %d of %s went to %v with s3 drained", i, clients[i].home, seen)
		}
	}
	fresh := newPersistClients(t, 30, tr)
	for i, seen := range visit(t, fresh, url, 3) {
		if now := same(seen); now == "" || now == "s3" {
			t.Fatalf("new client %d with s3 drained: %v", i, seen)
		}
	}

	if got := p.metric(t, `lbd_persistence_total{backend="app",result="invalid"}`); got != "" && got != "0" {
		t.Errorf("valid cookies counted invalid: %s", got)
	}

	// A restarted lbd with the same key understands the cookies: nobody moves.
	p.cmd.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("lbd did not stop")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr.CloseIdleConnections()
	p2 := startLBD(t, persistCookieConfig(port, addrs, map[string]string{"s3": "drain"}))
	for i, seen := range visit(t, clients, url, 2) {
		if now := same(seen); now != clients[i].home {
			t.Fatalf("after a restart, client %d of %s went to %v", i, clients[i].home, seen)
		}
	}
	if got := p2.metric(t, `lbd_persistence_total{backend="app",result="hit"}`); got != "200" {
		t.Errorf("hits after the restart: %s, want 200", got)
	}
}

func TestPersistenceCookieServerGone(t *testing.T) {
	s1 := namedBackend(t, "s1", 0, nil)
	s2 := namedBackend(t, "s2", 0, nil)
	port := freePort(t, "tcp")
	startLBD(t, persistCookieConfig(port, []string{s1.Listener.Addr().String(), s2.Listener.Addr().String()}, nil))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	tr := &http.Transport{MaxIdleConnsPerHost: 40}
	t.Cleanup(tr.CloseIdleConnections)
	clients := newPersistClients(t, 40, tr)
	for i, seen := range visit(t, clients, url, 2) {
		clients[i].home = same(seen)
	}
	// s1 stops answering: its clients' requests fail over to s2 (retries), which sets
	// their cookie; they stay there.
	s1.Close()
	for i, seen := range visit(t, clients, url, 3) {
		if now := same(seen); now != "s2" {
			t.Fatalf("client %d of %s with s1 gone: %v", i, clients[i].home, seen)
		}
	}
}

func TestPersistenceTable(t *testing.T) {
	var addrs []string
	for _, name := range []string{"s1", "s2", "s3", "s4"} {
		addrs = append(addrs, namedBackend(t, name, 0, nil).Listener.Addr().String())
	}
	port := freePort(t, "tcp")
	cfg := func(ttl string, servers int) string {
		var b strings.Builder
		fmt.Fprintf(&b, `frontends:
  - {name: web, bind: "127.0.0.1:%d", backend: api}
backends:
  - name: api
    balance: roundrobin
    persistence:
      type: table
      table: {key: "header:X-User", ttl: %s}
    servers:
`, port, ttl)
		for i := range servers {
			fmt.Fprintf(&b, "      - {name: s%d, address: %q}\n", i+1, addrs[i])
		}
		return b.String()
	}
	p := startLBD(t, cfg("30m", 3))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	c := &http.Client{Timeout: 10 * time.Second}
	home := map[string]string{}
	for i := range 30 {
		u := fmt.Sprintf("user-%02d", i)
		_, home[u] = get(t, c, url, map[string]string{"X-User": u})
	}
	check := func(when string) {
		t.Helper()
		for u, s := range home {
			for range 2 {
				if _, got := get(t, c, url, map[string]string{"X-User": u}); got != s {
					t.Fatalf("%s: %s went to %s, not %s", when, u, got, s)
				}
			}
		}
	}
	check("before the reload")
	// A reload that adds a server and changes the ttl keeps the table: round robin
	// would send the users elsewhere, the table keeps them.
	p.write(t, cfg("1h", 4))
	p.reload(t, "success")
	check("after the reload")
	if got := p.metric(t, `lbd_sticky_entries{backend="api"}`); got != "30" {
		t.Errorf("lbd_sticky_entries = %q, want 30", got)
	}

	// Export hands out the local changes in batches; an imported entry is used at once
	// and not exported again.
	ctx := context.Background()
	var mark uint64
	exported := 0
	for range 10 {
		batch, err := p.client.StickyExport(ctx, "api", mark, 8)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch.Entries) == 0 {
			break
		}
		exported += len(batch.Entries)
		mark = batch.Next
	}
	if exported != 30 {
		t.Errorf("exported %d entries in batches, want 30", exported)
	}
	exp := time.Now().Add(time.Hour).UnixNano()
	if r, err := p.client.StickyImport(ctx, "api", []api.StickyEntry{{Key: "remote-user", Server: "s4", Expires: exp}}); err != nil || r.Imported != 1 {
		t.Fatalf("import: %+v, %v", r, err)
	}
	for range 3 {
		if _, got := get(t, c, url, map[string]string{"X-User": "remote-user"}); got != "s4" {
			t.Fatalf("imported remote-user → s4 went to %s", got)
		}
	}
	if batch, err := p.client.StickyExport(ctx, "api", mark, 0); err != nil || len(batch.Entries) != 0 {
		t.Errorf("export after an import: %+v, %v; want nothing (no echo)", batch, err)
	}
	if _, err := p.client.StickyDelete(ctx, "api", "remote-user", ""); err != nil {
		t.Fatal(err)
	}

	out, code := p.lbctlRun(t, "sticky", "list", "api")
	if code != 0 {
		t.Fatalf("lbctl sticky list: exit %d\n%s", code, out)
	}
	t.Logf("lbctl sticky list api:\n%s", out)
	for u, s := range home {
		if !regexpLine(out, u, s) {
			t.Errorf("lbctl sticky list has no line for %s → %s", u, s)
		}
	}
	if !strings.Contains(out, "30 entries") {
		t.Errorf("lbctl sticky list does not count 30 entries")
	}

	out, code = p.lbctlRun(t, "sticky", "delete", "api", "--key", "user-07")
	if code != 0 || !strings.Contains(out, "deleted 1 entry") {
		t.Fatalf("lbctl sticky delete --key: exit %d\n%s", code, out)
	}
	out, code = p.lbctlRun(t, "sticky", "delete", "api", "--server", home["user-03"])
	if code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("lbctl sticky delete --server: exit %d\n%s", code, out)
	}
	out, _ = p.lbctlRun(t, "--json", "sticky", "list", "api")
	if strings.Contains(out, `"user-07"`) || strings.Contains(out, `"user-03"`) {
		t.Errorf("deleted entries still listed:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sticky", "list", "nope"}, `backend "nope": no such backend (backends with a sticky table: api)`},
		{[]string{"sticky", "delete", "nope", "--key", "k"}, `backend "nope": no such backend`},
		{[]string{"sticky", "delete", "api", "--key", "nobody"}, `backend "api" has no sticky entry for key "nobody"`},
		{[]string{"sticky", "delete", "api", "--server", "s9"}, `backend "api" has no server named "s9"`},
		{[]string{"sticky", "delete", "api"}, `give either --key KEY or --server SERVER`},
		{[]string{"sticky", "list"}, `list needs BACKEND`},
	} {
		out, code := p.lbctlRun(t, tc.args...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("lbctl %s: exit %d\n%s\nwant exit 1 and %q", strings.Join(tc.args, " "), code, out, tc.want)
		}
	}
}

// regexpLine reports whether out has a line starting with key and then server.
func regexpLine(out, key, server string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == key && f[1] == server {
			return true
		}
	}
	return false
}
