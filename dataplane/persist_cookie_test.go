package dataplane

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCookieValue(t *testing.T) {
	key := []byte("0123456789abcdef-shared-by-every-node")
	v := cookieValue(key, "app", "web1")
	if v != cookieValue(key, "app", "web1") {
		t.Fatal("cookieValue is not deterministic")
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) != cookieMACLen {
		t.Fatalf("value %q: not %d bytes of base64url (%v)", v, cookieMACLen, err)
	}
	if strings.Contains(v, "web1") || strings.Contains(v, "app") {
		t.Errorf("value %q reveals a name", v)
	}
	others := map[string]string{
		"other server":  cookieValue(key, "app", "web2"),
		"other backend": cookieValue(key, "api", "web1"),
		"other key":     cookieValue([]byte("another-key-0123456789"), "app", "web1"),
		// The names are length-prefixed, so moving a character between them changes the value.
		"shifted names": cookieValue(key, "appw", "eb1"),
	}
	for what, o := range others {
		if o == v {
			t.Errorf("%s gives the same value %q", what, v)
		}
	}
}

func TestCookieCodecDecode(t *testing.T) {
	key := []byte("0123456789abcdef")
	s1, s2 := NewServer("web1", "127.0.0.1:1", 1), NewServer("web2", "127.0.0.1:2", 1)
	c := newCookieCodec(PersistenceCookie{Name: "SRV", Path: "/"}, key, "app", []*Server{s1, s2})
	tests := []struct {
		name  string
		value string
		want  *Server
	}{
		{"web1", cookieValue(key, "app", "web1"), s1},
		{"web2", cookieValue(key, "app", "web2"), s2},
		{"server name in clear", "web1", nil},
		{"address", "127.0.0.1:1", nil},
		{"other backend", cookieValue(key, "api", "web1"), nil},
		{"other key", cookieValue([]byte("fedcba9876543210"), "app", "web1"), nil},
		{"removed server", cookieValue(key, "app", "web3"), nil},
		{"truncated", cookieValue(key, "app", "web1")[:10], nil},
		{"forged", base64.RawURLEncoding.EncodeToString([]byte("abcdefghijkl")), nil},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		if got := c.decode([]byte(tc.value)); got != tc.want {
			t.Errorf("%s: decode(%q) = %v, want %v", tc.name, tc.value, got, tc.want)
		}
	}
}

func TestRenderSetCookie(t *testing.T) {
	no := false
	tests := []struct {
		name string
		cfg  PersistenceCookie
		want string
	}{
		{"defaults", Persistence{Type: PersistCookie}.defaulted().Cookie, "LBDSRV=V; Path=/; HttpOnly; SameSite=Lax"},
		{"everything", PersistenceCookie{Name: "srv", Path: "/app", Domain: "example.com", MaxAge: 90 * time.Minute,
			Secure: true, HTTPOnly: &no, SameSite: SameSiteNone}, "srv=V; Path=/app; Domain=example.com; Max-Age=5400; Secure; SameSite=None"},
		{"strict", PersistenceCookie{Name: "s", Path: "/", SameSite: SameSiteStrict}, "s=V; Path=/; HttpOnly; SameSite=Strict"},
		{"max_age rounds down to seconds", PersistenceCookie{Name: "s", Path: "/", MaxAge: 1500 * time.Millisecond, SameSite: SameSiteLax}, "s=V; Path=/; Max-Age=1; HttpOnly; SameSite=Lax"},
	}
	for _, tc := range tests {
		if got := renderSetCookie(tc.cfg, "V"); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// defaulted returns p with its defaults set, for tests.
func (p Persistence) defaulted() Persistence {
	p.setDefaults()
	return p
}

func TestPersistenceValidate(t *testing.T) {
	tests := []struct {
		name string
		p    *Persistence
		mode string
		want []string // "path: message" substrings, one per error
	}{
		{"cookie defaults", &Persistence{Type: "cookie"}, ModeHTTP, nil},
		{"table defaults", &Persistence{Type: "table"}, ModeHTTP, nil},
		{"table in tcp", &Persistence{Type: "table"}, ModeTCP, nil},
		{"no type", &Persistence{}, ModeHTTP, []string{`backends[0].persistence.type: is required`}},
		{"bad type", &Persistence{Type: "source"}, ModeHTTP, []string{`backends[0].persistence.type: must be cookie or table, not "source"`}},
		{"bad cookie", &Persistence{Type: "cookie", Cookie: PersistenceCookie{
			Name: "my cookie", Path: "app", Domain: "a;b", MaxAge: -time.Second, SameSite: "loose", Key: "short"}}, ModeHTTP, []string{
			`backends[0].persistence.cookie.name: must be a cookie name`,
			`backends[0].persistence.cookie.path: must start with /`,
			`backends[0].persistence.cookie.domain: must be a domain name`,
			`backends[0].persistence.cookie.max_age: (-1s) must be 0`,
			`backends[0].persistence.cookie.same_site: must be lax, strict or none, not "loose"`,
			`backends[0].persistence.cookie.key: must be at least 16 characters`,
		}},
		{"samesite none without secure", &Persistence{Type: "cookie", Cookie: PersistenceCookie{SameSite: "none"}}, ModeHTTP,
			[]string{`backends[0].persistence.cookie.same_site: none needs secure: true`}},
		{"sub-second max_age", &Persistence{Type: "cookie", Cookie: PersistenceCookie{MaxAge: time.Millisecond}}, ModeHTTP,
			[]string{`backends[0].persistence.cookie.max_age: (1ms) must be 0 (a session cookie) or at least 1s`}},
		{"table settings on a cookie", &Persistence{Type: "cookie", Table: PersistenceTable{TTL: time.Hour}}, ModeHTTP,
			[]string{`backends[0].persistence.table: is set, but type is cookie`}},
		{"cookie settings on a table", &Persistence{Type: "table", Cookie: PersistenceCookie{Name: "x"}}, ModeHTTP,
			[]string{`backends[0].persistence.cookie: is set, but type is table`}},
		{"bad table", &Persistence{Type: "table", Table: PersistenceTable{Key: "header:", TTL: time.Millisecond, Size: -1}}, ModeHTTP, []string{
			`backends[0].persistence.table.key: must be client_ip, uri, header:NAME or cookie:NAME, not "header:"`,
			`backends[0].persistence.table.ttl: (1ms) must be at least 1s`,
			`backends[0].persistence.table.size: must be between 1 and 100000000, not -1`,
		}},
		{"cookie in tcp", &Persistence{Type: "cookie"}, ModeTCP,
			[]string{`frontends[0].backend: backend "be" uses cookie persistence, which needs mode http, not tcp`}},
		{"header table in tcp", &Persistence{Type: "table", Table: PersistenceTable{Key: "header:X-User"}}, ModeTCP,
			[]string{`frontends[0].backend: backend "be" keys its sticky table on "header:X-User"; mode tcp can use client_ip only`}},
		{"udp", &Persistence{Type: "table"}, ModeUDP,
			[]string{`frontends[0].backend: backend "be" has persistence, which udp mode does not support`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := htConfig("roundrobin", "127.0.0.1:1")
			cfg.Frontends[0].Mode = tc.mode
			cfg.Backends[0].Persistence = tc.p
			cfg.SetDefaults()
			err := cfg.Validate()
			var got []string
			for _, e := range leaves(err) {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Errorf("error %v is not a *FieldError", e)
				}
				got = append(got, e.Error())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], w)
				}
			}
		})
	}
}

func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

func TestPersistenceDefaults(t *testing.T) {
	p := Persistence{Type: PersistTable}.defaulted()
	if p.Table != (PersistenceTable{Key: "client_ip", TTL: DefaultStickyTTL, Size: DefaultStickySize}) || p.Cookie != (PersistenceCookie{}) {
		t.Errorf("table defaults: %+v", p)
	}
	c := Persistence{Type: PersistCookie}.defaulted()
	if c.Cookie.Name != "LBDSRV" || c.Cookie.Path != "/" || c.Cookie.HTTPOnly == nil || !*c.Cookie.HTTPOnly ||
		c.Cookie.SameSite != SameSiteLax || c.Cookie.MaxAge != 0 || c.Cookie.Key != "" || c.Table != (PersistenceTable{}) {
		t.Errorf("cookie defaults: %+v", c.Cookie)
	}
	// Apply works on a copy: the caller's config is not filled in.
	cfg := htConfig("roundrobin", "127.0.0.1:1")
	cfg.Backends[0].Persistence = &Persistence{Type: PersistCookie}
	cl := cloneConfig(cfg)
	cl.SetDefaults()
	if cfg.Backends[0].Persistence.Cookie.Name != "" {
		t.Errorf("SetDefaults on a clone changed the original")
	}
}
