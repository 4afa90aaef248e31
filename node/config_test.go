package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"lbd/dataplane"
)

// file joins lines into a config file; line i of the file is lines[i-1].
func file(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// fakeHostname makes the default node name "testhost" for the test.
func fakeHostname(t *testing.T) {
	t.Helper()
	old := hostname
	hostname = func() (string, error) { return "testhost", nil }
	t.Cleanup(func() { hostname = old })
}

// good is a valid file that the bad cases below are variations of.
var good = []string{
	/* 1 */ "frontends:",
	/* 2 */ "  - name: web",
	/* 3 */ "    bind: \":80\"",
	/* 4 */ "    backend: app",
	/* 5 */ "backends:",
	/* 6 */ "  - name: app",
	/* 7 */ "    servers:",
	/* 8 */ "      - address: 10.0.0.1:80",
}

// with returns good with line n (1-based) replaced by repl (which may hold several lines,
// or none to delete it).
func with(n int, repl ...string) string { return edit(n, n, repl...) }

// edit returns good with lines from to to (1-based, inclusive) replaced by repl.
func edit(from, to int, repl ...string) string {
	out := append([]string(nil), good[:from-1]...)
	out = append(out, repl...)
	return file(append(out, good[to:]...)...)
}

func TestParseErrors(t *testing.T) {
	fakeHostname(t)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "unknown top-level key with suggestion",
			in:   file("frontend: []"),
			want: `lbd.yaml:1: frontend: unknown field "frontend" (did you mean "frontends"?)`,
		},
		{
			name: "unknown key in node.admin",
			in:   file("node:", "  admin:", "    port: 9180"),
			want: `lbd.yaml:3: node.admin.port: unknown field "port"`,
		},
		{
			name: "unknown key in a frontend with suggestion",
			in:   with(3, "    bnd: \":80\""),
			want: `lbd.yaml:3: frontends[0].bnd: unknown field "bnd" (did you mean "bind"?)`,
		},
		{
			name: "unknown key in a server with suggestion",
			in:   with(8, "      - adress: 10.0.0.1:80"),
			want: `lbd.yaml:8: backends[0].servers[0].adress: unknown field "adress" (did you mean "address"?)`,
		},
		{
			name: "unknown key in timeouts",
			in:   with(4, "    backend: app", "    timeouts:", "      idle: 5s"),
			want: `lbd.yaml:6: frontends[0].timeouts.idle: unknown field "idle"`,
		},
		{
			name: "unknown key in a route header",
			in: with(4, "    backend: app", "    routes:", "      - backend: app",
				"        header: {nam: X-A}"),
			want: `lbd.yaml:7: frontends[0].routes[0].header.nam: unknown field "nam" (did you mean "name"?)`,
		},
		{
			name: "duplicate key",
			in:   with(4, "    backend: app", "    bind: \":81\""),
			want: `lbd.yaml:5: frontends[0].bind: duplicate key "bind" (first on line 3)`,
		},
		{
			name: "wrong type: word for an integer",
			in:   with(8, "      - address: 10.0.0.1:80", "        weight: heavy"),
			want: `lbd.yaml:9: backends[0].servers[0].weight: cannot use "heavy" as an integer`,
		},
		{
			name: "wrong type: fraction for an integer",
			in:   with(6, "  - name: app", "    retries: 1.5"),
			want: `lbd.yaml:7: backends[0].retries: cannot use "1.5" as an integer`,
		},
		{
			name: "wrong type: word for a boolean",
			in:   with(4, "    backend: app", "    reuse_port: maybe"),
			want: `lbd.yaml:5: frontends[0].reuse_port: cannot use "maybe" as a boolean`,
		},
		{
			name: "wrong type: mapping for a list",
			in:   edit(7, 8, "    servers: {address: 10.0.0.1:80}"),
			want: `lbd.yaml:7: backends[0].servers: cannot use a mapping as a list`,
		},
		{
			name: "wrong type: list for a string",
			in:   with(4, "    backend: [app]"),
			want: `lbd.yaml:4: frontends[0].backend: cannot use a list as a string`,
		},
		{
			name: "the file is a list",
			in:   file("- frontends: []"),
			want: `lbd.yaml:1: the file must be a mapping of keys such as node, frontends and backends, not a list`,
		},
		{
			name: "bad duration",
			in:   with(6, "  - name: app", "    timeouts:", "      connect: 2x"),
			want: `lbd.yaml:8: backends[0].timeouts.connect: cannot use "2x" as a duration, such as "500ms", "2s" or "1m30s"`,
		},
		{
			name: "duration without a unit",
			in:   with(4, "    backend: app", "    timeouts: {client_idle: 30}"),
			want: `lbd.yaml:5: frontends[0].timeouts.client_idle: cannot use "30" as a duration: it needs a unit, such as "30s"`,
		},
		{
			name: "duration too short",
			in:   with(6, "  - name: app", "    timeouts:", "      response: 1us"),
			want: `lbd.yaml:8: backends[0].timeouts.response: (1µs) must be at least 1ms`,
		},
		{
			name: "bad mode",
			in:   with(4, "    backend: app", "    mode: ftp"),
			want: `lbd.yaml:5: frontends[0].mode: must be http, tcp or udp, not "ftp"`,
		},
		{
			name: "bad balance",
			in:   with(6, "  - name: app", "    balance: fastest"),
			want: `lbd.yaml:7: backends[0].balance: must be one of roundrobin, leastconn, least_time, random, source, consistent, not "fastest"`,
		},
		{
			name: "bad hash key",
			in:   with(6, "  - name: app", "    balance: consistent", "    hash_key: \"header:\""),
			want: `lbd.yaml:8: backends[0].hash_key: must be client_ip, uri, header:NAME or cookie:NAME, not "header:"`,
		},
		{
			name: "missing backend in a frontend",
			in:   with(4, "    backend: api2"),
			want: `lbd.yaml:4: frontends[0].backend: no backend named "api2"`,
		},
		{
			name: "missing backend in a route",
			in:   with(4, "    backend: app", "    routes:", "      - path_prefix: /api/", "        backend: api"),
			want: `lbd.yaml:7: frontends[0].routes[0].backend: no backend named "api"`,
		},
		{
			name: "route with no condition",
			in:   with(4, "    backend: app", "    routes:", "      - backend: app"),
			want: `lbd.yaml:6: frontends[0].routes[0]: needs at least one of host, path_prefix or header`,
		},
		{
			name: "required field absent reports its parent's line",
			in:   with(3),
			want: `lbd.yaml:2: frontends[0].bind: is required`,
		},
		{
			name: "duplicate backend names",
			in:   file(append(good, "  - name: app", "    servers:", "      - address: 10.0.0.2:80")...),
			want: `lbd.yaml:9: backends[1].name: duplicate backend name "app"`,
		},
		{
			name: "duplicate frontend names",
			in:   with(4, "    backend: app", "  - name: web", "    bind: \":81\"", "    backend: app"),
			want: `lbd.yaml:5: frontends[1].name: duplicate frontend name "web"`,
		},
		{
			name: "bad bind",
			in:   with(3, "    bind: 0.0.0.0"),
			want: `lbd.yaml:3: frontends[0].bind: "0.0.0.0" is not host:port`,
		},
		{
			name: "server port out of range",
			in:   with(8, "      - address: 10.0.0.1:0"),
			want: `lbd.yaml:8: backends[0].servers[0].address: "10.0.0.1:0": port must be 1-65535`,
		},
		{
			name: "bind taken by another frontend",
			in:   with(4, "    backend: app", "  - name: web2", "    bind: \":80\"", "    backend: app"),
			want: `lbd.yaml:6: frontends[1].bind: :80 is already bound by frontend "web"`,
		},
		{
			name: "weight out of range",
			in:   with(8, "      - address: 10.0.0.1:80", "        weight: 300"),
			want: `lbd.yaml:9: backends[0].servers[0].weight: must be between 0 and 256, not 300`,
		},
		{
			name: "retries out of range",
			in:   with(6, "  - name: app", "    retries: 17"),
			want: `lbd.yaml:7: backends[0].retries: must be between 0 and 16, not 17`,
		},
		{
			name: "missing servers",
			in:   edit(7, 8),
			want: `lbd.yaml:6: backends[0].servers: needs at least one server`,
		},
		{
			name: "empty server list",
			in:   edit(7, 8, "    servers: []"),
			want: `lbd.yaml:7: backends[0].servers: needs at least one server`,
		},
		{
			name: "bad server state",
			in:   with(8, "      - address: 10.0.0.1:80", "        state: off"),
			want: `lbd.yaml:9: backends[0].servers[0].state: must be enabled, drain or disabled, not "off"`,
		},
		{
			name: "bad node name",
			in:   file(append([]string{"node:", "  name: lb a"}, good...)...),
			want: `lbd.yaml:2: node.name: must be 1 to 63 letters, digits, '.', '-' or '_', starting with a letter or digit, not "lb a"`,
		},
		{
			name: "relative state_dir",
			in:   file(append([]string{"node:", "  state_dir: lbd"}, good...)...),
			want: `lbd.yaml:2: node.state_dir: must be an absolute path, not "lbd"`,
		},
		{
			name: "bad admin listen",
			in:   file(append([]string{"node:", "  admin: {socket: /run/x.sock, listen: localhost}"}, good...)...),
			want: `lbd.yaml:2: node.admin.listen: "localhost" is not host:port`,
		},
		{
			name: "two errors reported sorted by line",
			// Validate reports backends before frontends; the output is in file order.
			in: edit(3, 6, "    bind: \":99999\"", "    backend: app", "backends:", "  - name: app", "    balance: x"),
			want: file(
				`lbd.yaml:3: frontends[0].bind: ":99999": port must be 0-65535`,
				`lbd.yaml:7: backends[0].balance: must be one of roundrobin, leastconn, least_time, random, source, consistent, not "x"`,
			),
		},
		{
			name: "several decoding errors, all reported",
			in:   with(3, "    bnd: \":80\"", "    maxconn: lots"),
			want: file(
				`lbd.yaml:3: frontends[0].bnd: unknown field "bnd" (did you mean "bind"?)`,
				`lbd.yaml:4: frontends[0].maxconn: cannot use "lots" as an integer`,
			),
		},
		{
			name: "syntax error",
			in:   with(4, "    backend: [app"),
			want: `lbd.yaml:4: did not find expected ',' or ']'`,
		},
		{
			name: "syntax error on the first line",
			in:   file("frontends: a: b"),
			want: `lbd.yaml:1: mapping values are not allowed in this context`,
		},
		{
			name: "tab indentation",
			in:   file("node:", "\tname: a"),
			want: `lbd.yaml:2: found character that cannot start any token`,
		},
		{
			name: "unknown anchor",
			in:   with(7, "    servers: *servers"),
			want: `lbd.yaml:7: unknown anchor 'servers' referenced`,
		},
		{
			name: "alias to its own anchor",
			in:   with(6, "  - &app", "    name: app", "    <<: *app"),
			want: `lbd.yaml:8: backends[0]: alias *app refers to its own anchor`,
		},
		{
			name: "aliases that expand exponentially",
			in: file(append([]string{"backends:", "  - &a0 {name: x}"}, func() []string {
				var l []string
				for i := 1; i < 40; i++ {
					l = append(l, fmt.Sprintf("  - &a%d {<<: [*a%d, *a%d]}", i, i-1, i-1))
				}
				return l
			}()...)...),
			want: `lbd.yaml:14: backends[12]: more than 10000 aliases followed; the file expands too much`,
		},
		{
			name: "two documents",
			in:   file(append(append([]string(nil), good...), "---", "frontends: []")...),
			want: `lbd.yaml:9: a second YAML document; the file must hold one`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("lbd.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q; config:\n%+v", tt.want, c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
			if got, want := err.Error(), strings.TrimSuffix(tt.want, "\n"); got != want {
				t.Errorf("Parse error:\n got: %s\nwant: %s\nfile:\n%s", got, want, tt.in)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.File != "lbd.yaml" {
				t.Errorf("errors.As(%v, *ConfigError) = %v, %+v", err, ce != nil, ce)
			}
		})
	}
}

func TestParseGoodWithDefaults(t *testing.T) {
	fakeHostname(t)
	in := file(
		"# comments are fine",
		"frontends:",
		"  - name: web",
		"    bind: \":80\"",
		"    backend: app",
		"  - name: dns",
		"    mode: udp",
		"    bind: \":53\"",
		"    backend: app",
		"backends:",
		"  - name: app",
		"    retries: 0",
		"    servers:",
		"      - address: 10.0.0.1:80",
		"      - name: b",
		"        address: 10.0.0.2:80",
		"        weight: 0",
	)
	got, err := Parse("lbd.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	ptr := func(n int) *int { return &n }
	listen := DefaultAdminListen
	frontend := func(name, mode, bind string, idle time.Duration) dataplane.Frontend {
		return dataplane.Frontend{
			Name: name, Mode: mode, Bind: bind, Backend: "app",
			MaxConn: 10000, MaxHeaderBytes: 16384, MaxBodyBytes: 10 << 20, Engine: "loop",
			Timeouts: dataplane.FrontendTimeouts{ClientHeader: 10 * time.Second, ClientIdle: idle},
		}
	}
	want := &Config{
		Node: NodeConfig{
			Name:     "testhost",
			Admin:    AdminConfig{Socket: "/run/lbd/lbd.sock", Listen: &listen},
			StateDir: "/var/lib/lbd",
			VRRP:     VRRPNode{LivenessPort: ptr(DefaultLivenessPort), LivenessMultiplier: DefaultLivenessMultiplier},
			Cluster:  defaultClusterNode(),
		},
		Config: dataplane.Config{
			Frontends: []dataplane.Frontend{
				frontend("web", "http", ":80", time.Minute),
				frontend("dns", "udp", ":53", 30*time.Second),
			},
			Backends: []dataplane.Backend{{
				Name: "app", Balance: "random", HashKey: "client_ip", HashMethod: "rendezvous",
				Retries: ptr(0), PoolSize: 256,
				Timeouts: dataplane.BackendTimeouts{Connect: 5 * time.Second, Response: time.Minute},
				Queue:    dataplane.QueueConfig{Size: 1024, Timeout: 5 * time.Second},
				Servers: []dataplane.ServerConfig{
					{Name: "10.0.0.1:80", Address: "10.0.0.1:80", Weight: ptr(1), State: "enabled"},
					{Name: "b", Address: "10.0.0.2:80", Weight: ptr(0), State: "enabled"},
				},
			}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseEmpty(t *testing.T) {
	fakeHostname(t)
	listen := DefaultAdminListen
	livenessPort := DefaultLivenessPort
	want := &Config{Node: NodeConfig{
		Name:     "testhost",
		Admin:    AdminConfig{Socket: DefaultAdminSocket, Listen: &listen},
		StateDir: DefaultStateDir,
		VRRP:     VRRPNode{LivenessPort: &livenessPort, LivenessMultiplier: DefaultLivenessMultiplier},
		Cluster:  defaultClusterNode(),
	}}
	for _, in := range []string{"", "\n", "# nothing yet\n", "---\n", "~\n", "node:\n"} {
		got, err := Parse("lbd.yaml", []byte(in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", in, diff)
		}
	}
}

func TestParseAdminListenDisabled(t *testing.T) {
	c, err := Parse("lbd.yaml", []byte(file("node:", "  name: a", `  admin: {listen: ""}`)))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Node.Admin.Listen; l == nil || *l != "" {
		t.Errorf("admin.listen = %v, want a pointer to \"\"", l)
	}
}

// Anchors, aliases and merge keys work as in any YAML, and the merged keys are checked
// as strictly as written ones.
func TestParseAnchorsAndMerge(t *testing.T) {
	fakeHostname(t)
	in := file(
		"backends:",
		"  - &base",
		"    name: a",
		"    balance: leastconn",
		"    timeouts: &slow {connect: 9s}",
		"    servers: &servers",
		"      - address: 10.0.0.1:80",
		"  - <<: *base",
		"    name: b",
		"  - name: c",
		"    timeouts: *slow",
		"    servers: *servers",
	)
	c, err := Parse("lbd.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range c.Backends {
		if b.Timeouts.Connect != 9*time.Second || len(b.Servers) != 1 || b.Servers[0].Address != "10.0.0.1:80" {
			t.Errorf("backends[%d] = %+v, want connect 9s and server 10.0.0.1:80", i, b)
		}
	}
	if got := []string{c.Backends[0].Name, c.Backends[1].Name, c.Backends[1].Balance, c.Backends[2].Balance}; !cmp.Equal(got, []string{"a", "b", "leastconn", "random"}) {
		t.Errorf("names and balances = %q", got)
	}

	_, err = Parse("lbd.yaml", []byte(file(
		"backends:",
		"  - &base",
		"    name: a",
		"    servers: [{address: 10.0.0.1:80}]",
		"  - <<: [*base, {balanse: x}]",
		"    name: b",
	)))
	want := `lbd.yaml:5: backends[1].balanse: unknown field "balanse" (did you mean "balance"?)`
	if err == nil || err.Error() != want {
		t.Errorf("merged unknown key: got %v, want %s", err, want)
	}
}

func TestLoadFile(t *testing.T) {
	fakeHostname(t)
	dir := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "lbd.yaml")
	if err := os.WriteFile(path, []byte(with(4, "    backend: api2")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path)
	if want := `lbd.yaml:4: frontends[0].backend: no backend named "api2"`; err == nil || err.Error() != want {
		t.Errorf("LoadFile: got %v, want %s", err, want)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing): got %v, want os.ErrNotExist", err)
	}
}

func TestHash(t *testing.T) {
	fakeHostname(t)
	hash := func(in string) string {
		t.Helper()
		c, err := Parse("lbd.yaml", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return c.Hash()
	}
	base := hash(file(good...))
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(base) {
		t.Fatalf("Hash() = %q, want 12 hex digits", base)
	}
	same := map[string]string{
		"comments and layout": file(
			"# the web tier",
			"backends: [{name: app, servers: [{address: \"10.0.0.1:80\"}]}]",
			"frontends: [{backend: app, name: web, bind: \":80\"}]  # keys reordered",
		),
		"defaults spelled out": with(4, "    backend: app", "    mode: http", "    timeouts: {client_idle: 1m}"),
		"another node section": file(append([]string{"node: {name: other, state_dir: /srv/lbd}"}, good...)...),
	}
	for name, in := range same {
		if got := hash(in); got != base {
			t.Errorf("%s: Hash() = %s, want %s as for the base file", name, got, base)
		}
	}
	if got := hash(with(8, "      - address: 10.0.0.2:80")); got == base {
		t.Errorf("changed server address: Hash() = %s, the same as the base file", got)
	}
}

// TestTestdata parses every example in testdata/, and checks that full.yaml sets every key
// of the schema and survives a round trip through yaml.Marshal.
func TestTestdata(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata/*.yaml (%v)", err)
	}
	for _, p := range paths {
		if _, err := LoadFile(p); err != nil {
			t.Errorf("%s:\n%v", p, err)
		}
	}

	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, lines, err := parse("full.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	index := regexp.MustCompile(`\[\d+\]`)
	for p := range lines {
		present[index.ReplaceAllString(p, "[]")] = true
	}
	for _, k := range keyPaths() {
		if !present[k] {
			t.Errorf("testdata/full.yaml does not set %s", k)
		}
	}

	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("marshalled.yaml", out)
	if err != nil {
		t.Fatalf("re-parsing the marshalled full.yaml: %v\n%s", err, out)
	}
	if diff := cmp.Diff(c, again); diff != "" {
		t.Errorf("full.yaml after a round trip through yaml.Marshal (-want +got):\n%s", diff)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(file(good...))
	f.Add(with(4, "    backend: [app"))
	f.Add(with(6, "  - &app", "    name: app", "    <<: *app"))
	for _, p := range []string{"testdata/full.yaml", "testdata/minimal.yaml"} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(string(data))
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse("f.yaml", []byte(in))
		if err != nil {
			var ce ConfigErrors
			if !errors.As(err, &ce) || len(ce) == 0 {
				t.Fatalf("error %v is not a non-empty ConfigErrors", err)
			}
			for i, e := range ce {
				if e.File != "f.yaml" || (i > 0 && e.Line < ce[i-1].Line) {
					t.Fatalf("bad or unsorted errors:\n%v", err)
				}
			}
			return
		}
		c.Hash()
	})
}
