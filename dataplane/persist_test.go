package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"lbd/dataplane/sticky"
	"lbd/internal/clock"
)

// ptKey is the cookie key of the tests.
const ptKey = "test-key-0123456789abcdef"

// ptCookieConfig is htConfig with cookie persistence over servers s0, s1, s2 that
// answer with their name.
func ptCookieConfig(t *testing.T) (Config, []*htBackend) {
	bs := []*htBackend{htNamed(t, "s0"), htNamed(t, "s1"), htNamed(t, "s2")}
	cfg := htConfig(BalanceRoundRobin, bs[0].addr(), bs[1].addr(), bs[2].addr())
	cfg.Backends[0].Persistence = &Persistence{Type: PersistCookie, Cookie: PersistenceCookie{Key: ptKey}}
	return cfg, bs
}

// ptGet does a GET with the given Cookie header ("" for none) and returns the body and
// the response.
func ptGet(t *testing.T, c *http.Client, url, cookie string, hdr ...string) (string, *http.Response) {
	t.Helper()
	if cookie != "" {
		hdr = append(hdr, "Cookie", cookie)
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b), resp
}

// ptLBDSRV returns the value of the LBDSRV cookie resp sets, "" for none.
func ptLBDSRV(resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == DefaultPersistCookieName {
			return c.Value
		}
	}
	return ""
}

func TestCookiePersistenceHTTP(t *testing.T) { forEachEngine(t, testCookiePersistenceHTTP) }

func testCookiePersistenceHTTP(t *testing.T, engine string) {
	cfg, _ := ptCookieConfig(t)
	cfg = withEngine(cfg, engine)
	d := htDataplane(t, cfg)
	url := htURL(t, d)
	c := htClient(t)

	// A new client is balanced and gets a cookie naming its server, marked not for
	// caches, with the default attributes.
	first, resp := ptGet(t, c, url, "")
	v := ptLBDSRV(resp)
	if v != cookieValue([]byte(ptKey), "be", first) {
		t.Fatalf("cookie %q does not name %s", v, first)
	}
	if got := resp.Header.Get("Set-Cookie"); got != "LBDSRV="+v+"; Path=/; HttpOnly; SameSite=Lax" {
		t.Errorf("Set-Cookie: %s", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != `no-cache="Set-Cookie"` {
		t.Errorf("Cache-Control: %q", got)
	}
	// With the cookie it stays, and the cookie is not set again.
	for i := range 10 {
		body, resp := ptGet(t, c, url, "LBDSRV="+v)
		if body != first {
			t.Fatalf("request %d with the cookie went to %s, not %s", i, body, first)
		}
		if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
			t.Fatalf("cookie set again on a hit: %v", sc)
		}
	}
	// A forged value is ignored: the request is balanced and the cookie set.
	seen := map[string]bool{}
	for range 6 {
		body, resp := ptGet(t, c, url, "LBDSRV=Zm9yZ2VkLXZhbHVl")
		seen[body] = true
		if got := ptLBDSRV(resp); got != cookieValue([]byte(ptKey), "be", body) {
			t.Fatalf("after a forged cookie, set %q for %s", got, body)
		}
	}
	if len(seen) < 2 {
		t.Errorf("forged cookies all went to %v: they were not balanced", seen)
	}
	for _, r := range []string{"hit", "miss", "invalid"} {
		if got := l4Value(t, d.metrics.persist.total.WithLabelValues("be", r)); got == 0 {
			t.Errorf("lbd_persistence_total{result=%q} = 0", r)
		}
	}
}

func TestCookieIndirect(t *testing.T) { forEachEngine(t, testCookieIndirect) }

func testCookieIndirect(t *testing.T, engine string) {
	echo := htServe(t, htEcho)
	cfg := withEngine(htConfig(BalanceRoundRobin, echo.addr()), engine)
	cfg.Backends[0].Persistence = &Persistence{Type: PersistCookie, Cookie: PersistenceCookie{Key: ptKey, Name: "srv"}}
	d := htDataplane(t, cfg)
	c := htClient(t)
	v := cookieValue([]byte(ptKey), "be", "s0")
	for _, tc := range []struct{ sent, want string }{
		{"srv=" + v, ""},
		{"a=1; srv=" + v + "; b=2", "a=1; b=2"},
		{"a=1", "a=1"},
	} {
		body, _ := ptGet(t, c, htURL(t, d), tc.sent)
		if got := htDecode(t, body).Header.Get("Cookie"); got != tc.want {
			t.Errorf("client sent Cookie %q; server got %q, want %q", tc.sent, got, tc.want)
		}
	}
}

func TestCookieResponseHeaders(t *testing.T) { forEachEngine(t, testCookieResponseHeaders) }

func testCookieResponseHeaders(t *testing.T, engine string) {
	// The server sets the persistence cookie itself and has its own Cache-Control: lbd's
	// cookie replaces the server's, and the Cache-Control is extended.
	srv := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "LBDSRV=server-made")
		w.Header().Add("Set-Cookie", "session=abc; Path=/")
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write([]byte("ok"))
	})
	cfg := withEngine(htConfig(BalanceRoundRobin, srv.addr()), engine)
	cfg.Backends[0].Persistence = &Persistence{Type: PersistCookie, Cookie: PersistenceCookie{Key: ptKey}}
	d := htDataplane(t, cfg)
	c := htClient(t)
	_, resp := ptGet(t, c, htURL(t, d), "")
	want := cookieValue([]byte(ptKey), "be", "s0")
	var names []string
	for _, ck := range resp.Cookies() {
		names = append(names, ck.Name+"="+ck.Value)
	}
	if strings.Join(names, " ") != "session=abc LBDSRV="+want && strings.Join(names, " ") != "LBDSRV="+want+" session=abc" {
		t.Errorf("cookies %v, want session=abc and LBDSRV=%s", names, want)
	}
	if got := resp.Header.Values("Cache-Control"); len(got) != 1 || got[0] != `public, max-age=60, no-cache="Set-Cookie"` {
		t.Errorf("Cache-Control %q", got)
	}
	// On a hit, the server's own LBDSRV is still removed and nothing is added.
	_, resp = ptGet(t, c, htURL(t, d), "LBDSRV="+want)
	if got := resp.Header.Values("Set-Cookie"); len(got) != 1 || !strings.HasPrefix(got[0], "session=") {
		t.Errorf("Set-Cookie on a hit: %q", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "public, max-age=60" {
		t.Errorf("Cache-Control on a hit: %q", got)
	}
}

// ptReload applies cfg with server name's state changed.
func ptReload(t *testing.T, d *Dataplane, cfg Config, name, state string) Config {
	t.Helper()
	cfg = cloneConfig(cfg)
	for i := range cfg.Backends[0].Servers {
		if cfg.Backends[0].Servers[i].Name == name {
			cfg.Backends[0].Servers[i].State = state
		}
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestCookieServerStates(t *testing.T) { forEachEngine(t, testCookieServerStates) }

func testCookieServerStates(t *testing.T, engine string) {
	cfg, _ := ptCookieConfig(t)
	cfg = withEngine(cfg, engine)
	d := htDataplane(t, cfg)
	url := htURL(t, d)
	c := htClient(t)
	cookie := func(s string) string { return "LBDSRV=" + cookieValue([]byte(ptKey), "be", s) }

	// Drain keeps the sticky clients; new clients avoid the drained server.
	ptReload(t, d, cfg, "s1", StateDrain)
	for range 5 {
		if body, resp := ptGet(t, c, url, cookie("s1")); body != "s1" || ptLBDSRV(resp) != "" {
			t.Fatalf("sticky client of drained s1 went to %s (cookie %q)", body, ptLBDSRV(resp))
		}
		if body, _ := ptGet(t, c, url, ""); body == "s1" {
			t.Fatalf("a new client went to drained s1")
		}
	}
	// Disabled: the client moves, gets a new cookie and stays on its new server.
	ptReload(t, d, cfg, "s1", StateDisabled)
	body, resp := ptGet(t, c, url, cookie("s1"))
	if body == "s1" || ptLBDSRV(resp) != cookieValue([]byte(ptKey), "be", body) {
		t.Fatalf("client of disabled s1: went to %s, cookie %q", body, ptLBDSRV(resp))
	}
	for range 5 {
		if again, _ := ptGet(t, c, url, "LBDSRV="+ptLBDSRV(resp)); again != body {
			t.Fatalf("moved client went on to %s, not %s", again, body)
		}
	}
	if got := l4Value(t, d.metrics.persist.total.WithLabelValues("be", "redispatch")); got != 1 {
		t.Errorf("redispatch count = %v, want 1", got)
	}
	// Down (health checks) is the same as disabled.
	ptReload(t, d, cfg, "s1", StateEnabled)
	d.snapshot().byName["be"].byName["s2"].SetUp(false)
	if body, _ := ptGet(t, c, url, cookie("s2")); body == "s2" {
		t.Fatalf("client of down s2 went to it")
	}
}

func TestCookieRandomKey(t *testing.T) { forEachEngine(t, testCookieRandomKey) }

func testCookieRandomKey(t *testing.T, engine string) {
	bs := []*htBackend{htNamed(t, "s0")}
	cfg := withEngine(htConfig(BalanceRoundRobin, bs[0].addr()), engine)
	cfg.Backends[0].Persistence = &Persistence{Type: PersistCookie}
	d := htDataplane(t, cfg)
	_, resp := ptGet(t, htClient(t), htURL(t, d), "")
	if got := ptLBDSRV(resp); got != cookieValue(randomCookieKey(), "be", "s0") {
		t.Errorf("without a key, cookie %q is not signed with the process's random key", got)
	}
}

func TestTablePersistenceHTTP(t *testing.T) { forEachEngine(t, testTablePersistenceHTTP) }

func testTablePersistenceHTTP(t *testing.T, engine string) {
	bs := []*htBackend{htNamed(t, "s0"), htNamed(t, "s1"), htNamed(t, "s2")}
	cfg := withEngine(htConfig(BalanceRoundRobin, bs[0].addr(), bs[1].addr(), bs[2].addr()), engine)
	cfg.Backends[0].Persistence = &Persistence{Type: PersistTable, Table: PersistenceTable{Key: "header:X-User"}}
	d := htDataplane(t, cfg)
	url := htURL(t, d)
	c := htClient(t)
	where := map[string]string{}
	for i := range 12 {
		u := fmt.Sprintf("user%d", i)
		where[u], _ = ptGet(t, c, url, "", "X-User", u)
	}
	tb, err := d.Sticky("be")
	if err != nil {
		t.Fatal(err)
	}
	if tb.Len() != 12 {
		t.Fatalf("table holds %d entries, want 12", tb.Len())
	}
	for _, e := range tb.Entries() {
		if where[e.Key] != e.Server {
			t.Errorf("entry %s → %s, but the request went to %s", e.Key, e.Server, where[e.Key])
		}
	}
	// Requests without the header are balanced and not recorded.
	ptGet(t, c, url, "")
	// Keys stay on their servers, across a reload that changes the ttl.
	cfg.Backends[0].Persistence.Table.TTL = time.Hour
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if tb2, _ := d.Sticky("be"); tb2 != tb || tb.Len() != 12 {
		t.Fatalf("reload did not keep the table")
	}
	for u, s := range where {
		for range 3 {
			if got, _ := ptGet(t, c, url, "", "x-user", u); got != s {
				t.Fatalf("%s went to %s, not %s", u, got, s)
			}
		}
	}
	// A disabled server's keys move and are recorded on their new server.
	ptReload(t, d, cfg, "s0", StateDisabled)
	for u, s := range where {
		got, _ := ptGet(t, c, url, "", "X-User", u)
		if s == "s0" && got == "s0" || s != "s0" && got != s {
			t.Fatalf("with s0 disabled, %s (on %s) went to %s", u, s, got)
		}
		where[u] = got
	}
	for _, e := range tb.Entries() {
		if e.Server != where[e.Key] {
			t.Errorf("entry %s → %s after the move, want %s", e.Key, e.Server, where[e.Key])
		}
	}
	// A change of key starts a new table.
	cfg.Backends[0].Persistence.Table.Key = "client_ip"
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if tb2, _ := d.Sticky("be"); tb2 == tb || tb2.Len() != 0 {
		t.Errorf("a new key kept the old table")
	}
}

func TestStickyErrors(t *testing.T) {
	bs := htNamed(t, "s0")
	cfg := htConfig(BalanceRoundRobin, bs.addr())
	cfg.Backends = append(cfg.Backends,
		Backend{Name: "tab", Servers: []ServerConfig{{Address: bs.addr()}}, Persistence: &Persistence{Type: PersistTable}},
		Backend{Name: "ck", Servers: []ServerConfig{{Address: bs.addr()}}, Persistence: &Persistence{Type: PersistCookie, Cookie: PersistenceCookie{Key: ptKey}}})
	d := htDataplane(t, cfg)
	if _, err := d.Sticky("tab"); err != nil {
		t.Errorf("Sticky(tab): %v", err)
	}
	for name, want := range map[string]error{"nope": ErrNoBackend, "be": ErrNoStickyTable, "ck": ErrNoStickyTable} {
		_, err := d.Sticky(name)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), "backends with a sticky table: tab") {
			t.Errorf("Sticky(%s) = %v, want %v naming tab", name, err, want)
		}
	}
}

func TestTablePersistenceTCP(t *testing.T) {
	cfg := l4Config(ModeTCP, BalanceRoundRobin,
		tcpServer(t, tcpID("s0")), tcpServer(t, tcpID("s1")), tcpServer(t, tcpID("s2")))
	cfg.Backends[0].Persistence = &Persistence{Type: PersistTable}
	d := l4Dataplane(t, cfg)
	// Every connection comes from 127.0.0.1: round robin would spread them; the table
	// keeps them on the first server.
	first := tcpReadAll(t, tcpDial(t, d))
	for i := range 6 {
		if got := tcpReadAll(t, tcpDial(t, d)); got != first {
			t.Fatalf("connection %d went to %s, not %s", i, got, first)
		}
	}
	tb, err := d.Sticky("b")
	if err != nil {
		t.Fatal(err)
	}
	if e := tb.Entries(); len(e) != 1 || e[0].Key != "127.0.0.1" || e[0].Server != first {
		t.Errorf("entries %v, want 127.0.0.1 → %s", e, first)
	}
	// Its server disabled, the client moves and stays.
	cfg = cloneConfig(cfg)
	for i := range cfg.Backends[0].Servers {
		if cfg.Backends[0].Servers[i].Name == first {
			cfg.Backends[0].Servers[i].State = StateDisabled
		}
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	moved := tcpReadAll(t, tcpDial(t, d))
	if moved == first {
		t.Fatalf("went to disabled %s", first)
	}
	for range 3 {
		if got := tcpReadAll(t, tcpDial(t, d)); got != moved {
			t.Fatalf("moved client went to %s, not %s", got, moved)
		}
	}
}

var netipLoopback = netip.MustParseAddr("127.0.0.1")

// A table hit allocates nothing.
func TestPersistenceChooseAllocs(t *testing.T) {
	tb := sticky.New(clock.NewFake(), time.Hour, 100)
	s := NewServer("s0", "127.0.0.1:1", 1)
	p := &persistence{table: tb, byName: map[string]*Server{"s0": s}}
	p.key, _ = parseHashKey("header:X-User")
	var req fasthttp.Request
	req.Header.Set("X-User", "alice")
	var ps persistScratch
	p.choose(&req, netipLoopback, &ps)
	p.record(nil, s, &ps)
	allocs := testing.AllocsPerRun(100, func() {
		if p.choose(&req, netipLoopback, &ps) != s {
			t.Fatal("no hit")
		}
		p.record(nil, s, &ps)
	})
	if allocs != 0 {
		t.Errorf("a table hit allocates %v times", allocs)
	}
}
