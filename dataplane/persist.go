package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"lbd/dataplane/sticky"
)

// Session persistence keeps a client on the server it was first sent to. A backend's
// persistence is asked first for each new request (http) or connection (tcp); when it
// names a server that may take it, the balancer is not consulted. A server in drain keeps
// its persistent clients (as in HAProxy); one that is down or disabled loses them to a
// server the balancer picks, and the client sticks to that one from then on. After a
// server has answered, persistence records it: a cookie (persist_cookie.go) or an entry
// of the backend's sticky table (package sticky).

// Persistence types, the values of Persistence.Type.
const (
	PersistCookie = "cookie"
	PersistTable  = "table"
)

// SameSite values of PersistenceCookie.SameSite.
const (
	SameSiteLax    = "lax"
	SameSiteStrict = "strict"
	SameSiteNone   = "none"
)

// Defaults of persistence, applied by SetDefaults.
const (
	DefaultPersistCookieName = "LBDSRV"
	DefaultPersistCookiePath = "/"
	DefaultStickyTTL         = 30 * time.Minute
	DefaultStickySize        = 100000
	maxStickySize            = 100_000_000
	minCookieKeyLen          = 16
)

// Persistence keeps each client of a backend on one server.
type Persistence struct {
	// Type is cookie (http mode: lbd inserts a cookie naming the server) or table (a
	// sticky table maps a request key to a server; http and tcp modes). Required.
	Type string `yaml:"type"`
	// Cookie holds the settings of type cookie.
	Cookie PersistenceCookie `yaml:"cookie"`
	// Table holds the settings of type table.
	Table PersistenceTable `yaml:"table"`
}

// PersistenceCookie configures cookie persistence, as HAProxy's
// "cookie NAME insert indirect nocache".
type PersistenceCookie struct {
	// Name of the cookie. Default: LBDSRV.
	Name string `yaml:"name"`
	// Path attribute of the cookie. Default: /.
	Path string `yaml:"path"`
	// Domain attribute of the cookie. Default: none (the request's host only).
	Domain string `yaml:"domain"`
	// MaxAge is the cookie's Max-Age, in whole seconds; 0 makes a session cookie, gone
	// when the browser closes. Default: 0.
	MaxAge time.Duration `yaml:"max_age"`
	// Secure sends the cookie over HTTPS only. Default: false.
	Secure bool `yaml:"secure"`
	// HTTPOnly hides the cookie from scripts. Default: true.
	HTTPOnly *bool `yaml:"http_only"`
	// SameSite is lax, strict or none (none needs secure). Default: lax.
	SameSite string `yaml:"same_site"`
	// Key is the secret the cookie values are signed with, the same on every node; at
	// least 16 characters. Default: a random key made when lbd starts, so cookies do not
	// survive a restart or work on another node (lbd logs a warning).
	Key string `yaml:"key"`
}

// PersistenceTable configures table persistence.
type PersistenceTable struct {
	// Key is what identifies a client: client_ip, header:NAME, cookie:NAME or uri; tcp
	// frontends can use client_ip only. Default: client_ip.
	Key string `yaml:"key"`
	// TTL is how long an entry lives after its last use. Default: 30m.
	TTL time.Duration `yaml:"ttl"`
	// Size bounds the entries; over it the entry closest to expiry is evicted.
	// Default: 100000.
	Size int `yaml:"size"`
}

func (p *Persistence) setDefaults() {
	if p == nil {
		return
	}
	switch p.Type {
	case PersistCookie:
		c := &p.Cookie
		if c.Name == "" {
			c.Name = DefaultPersistCookieName
		}
		if c.Path == "" {
			c.Path = DefaultPersistCookiePath
		}
		if c.HTTPOnly == nil {
			t := true
			c.HTTPOnly = &t
		}
		if c.SameSite == "" {
			c.SameSite = SameSiteLax
		}
	case PersistTable:
		t := &p.Table
		if t.Key == "" {
			t.Key = "client_ip"
		}
		if t.TTL == 0 {
			t.TTL = DefaultStickyTTL
		}
		if t.Size == 0 {
			t.Size = DefaultStickySize
		}
	}
}

func (p *Persistence) clone() *Persistence {
	if p == nil {
		return nil
	}
	c := *p
	if p.Cookie.HTTPOnly != nil {
		v := *p.Cookie.HTTPOnly
		c.Cookie.HTTPOnly = &v
	}
	return &c
}

func validatePersistence(errs *errList, path string, p *Persistence) {
	if p == nil {
		return
	}
	switch p.Type {
	case PersistCookie:
		if p.Table != (PersistenceTable{}) {
			errs.add(path+".table", "is set, but type is cookie")
		}
		validateCookie(errs, path+".cookie", p.Cookie)
	case PersistTable:
		if p.Cookie != (PersistenceCookie{}) {
			errs.add(path+".cookie", "is set, but type is table")
		}
		t := p.Table
		if _, err := parseHashKey(t.Key); err != nil {
			errs.add(path+".table.key", "%v", err)
		}
		if t.TTL < time.Second {
			errs.add(path+".table.ttl", "(%v) must be at least 1s", t.TTL)
		}
		if t.Size < 1 || t.Size > maxStickySize {
			errs.add(path+".table.size", "must be between 1 and %d, not %d", maxStickySize, t.Size)
		}
	case "":
		errs.add(path+".type", "is required: cookie or table")
	default:
		errs.add(path+".type", "must be cookie or table, not %q", p.Type)
	}
}

func validateCookie(errs *errList, path string, c PersistenceCookie) {
	if !isCookieName(c.Name) {
		errs.add(path+".name", "must be a cookie name (letters, digits and !#$%%&'*+-.^_`|~), not %q", c.Name)
	}
	if !strings.HasPrefix(c.Path, "/") || !cookieAttrOK(c.Path) {
		errs.add(path+".path", "must start with / and hold no ';', space or control character, not %q", c.Path)
	}
	if c.Domain != "" && (!cookieAttrOK(c.Domain) || strings.ContainsAny(c.Domain, " ,/")) {
		errs.add(path+".domain", "must be a domain name such as example.com, not %q", c.Domain)
	}
	if c.MaxAge < 0 || (c.MaxAge > 0 && c.MaxAge < time.Second) {
		errs.add(path+".max_age", "(%v) must be 0 (a session cookie) or at least 1s", c.MaxAge)
	}
	switch c.SameSite {
	case SameSiteLax, SameSiteStrict:
	case SameSiteNone:
		if !c.Secure {
			errs.add(path+".same_site", "none needs secure: true; browsers refuse SameSite=None cookies that are not Secure")
		}
	default:
		errs.add(path+".same_site", "must be lax, strict or none, not %q", c.SameSite)
	}
	if c.Key != "" && len(c.Key) < minCookieKeyLen {
		errs.add(path+".key", "must be at least %d characters (a random string every node shares), not %d", minCookieKeyLen, len(c.Key))
	}
}

// validatePersistenceModes checks that every frontend can use the persistence of the
// backends it sends traffic to: cookies need http, tcp tables can key on client_ip only,
// and udp has none (its sessions keep a client on its server already).
func validatePersistenceModes(errs *errList, c *Config) {
	byName := map[string]*Persistence{}
	for _, b := range c.Backends {
		byName[b.Name] = b.Persistence
	}
	for i, f := range c.Frontends {
		if f.Mode == ModeHTTP {
			continue
		}
		check := func(path, backend string) {
			p := byName[backend]
			switch {
			case p == nil:
			case f.Mode == ModeUDP:
				errs.add(path, "backend %q has persistence, which udp mode does not support", backend)
			case p.Type == PersistCookie:
				errs.add(path, "backend %q uses cookie persistence, which needs mode http, not %s", backend, f.Mode)
			case p.Type == PersistTable && p.Table.Key != "client_ip":
				errs.add(path, "backend %q keys its sticky table on %q; mode %s can use client_ip only", backend, p.Table.Key, f.Mode)
			}
		}
		check(fmt.Sprintf("frontends[%d].backend", i), f.Backend)
		for j, r := range f.Routes {
			check(fmt.Sprintf("frontends[%d].routes[%d].backend", i, j), r.Backend)
		}
	}
}

// isCookieName reports whether s is a non-empty RFC 9110 token, as a cookie name must be.
func isCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func cookieAttrOK(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x21 || c == 0x7f || c == ';' {
			return false
		}
	}
	return true
}

// Results of persistence, the result label of lbd_persistence_total.
const (
	persistNone       = iota // no key in the request: not counted
	persistHit               // the client went to its server
	persistMiss              // the client had no server yet
	persistRedispatch        // its server was down or disabled; it moved
	persistInvalid           // the cookie or entry named no server of the backend
	numPersistResults
)

var persistResultNames = [numPersistResults]string{"", "hit", "miss", "redispatch", "invalid"}

// persistence is the run-time form of a backend's Persistence.
type persistence struct {
	backend string
	cookie  *cookieCodec  // type cookie
	table   *sticky.Table // type table
	key     hashKey       // the table's key
	byName  map[string]*Server
	results [numPersistResults]prometheus.Counter
}

// persistScratch carries what choose found to record, per request; it lives in the
// pooled proxyState (http) or on the stack (tcp).
type persistScratch struct {
	result int
	// chosen is the server persistence sent the request to, nil when it chose none.
	chosen *Server
	// key is the table key; hasKey is false when the request had none.
	key    []byte
	hasKey bool
	buf    [48]byte
}

// usable reports whether a server may take a persistent client: up, not disabled and
// not in maintenance by its agent. Drain (configured or by the agent) and weight 0 keep
// their clients, as in HAProxy.
func usable(s *Server) bool { return s.Serving() && s.health.agentMode.Load() != agentMaint }

// choose returns the server req's client sticks to, or nil to let the balancer pick.
// It removes the persistence cookie from req.
func (p *persistence) choose(req *fasthttp.Request, ip netip.Addr, ps *persistScratch) *Server {
	ps.chosen, ps.hasKey, ps.result = nil, false, persistNone
	var s *Server
	if p.cookie != nil {
		s = p.chooseCookie(req, ps)
	} else {
		var k []byte
		switch p.key.kind {
		case "client_ip":
			k = ip.AppendTo(ps.buf[:0])
		case "uri":
			k = req.Header.RequestURI()
		case "header":
			k = peekHeader(&req.Header, p.key.name)
		case "cookie":
			k = req.Header.Cookie(p.key.name)
		}
		s = p.chooseKey(k, ps)
	}
	p.count(ps.result)
	return s
}

// chooseConn is choose for a tcp connection from ip.
func (p *persistence) chooseConn(ip netip.Addr, ps *persistScratch) *Server {
	ps.chosen, ps.hasKey, ps.result = nil, false, persistNone
	if p.table == nil || p.key.kind != "client_ip" {
		return nil
	}
	s := p.chooseKey(ip.AppendTo(ps.buf[:0]), ps)
	p.count(ps.result)
	return s
}

func (p *persistence) chooseKey(k []byte, ps *persistScratch) *Server {
	if len(k) == 0 {
		return nil
	}
	ps.key = append(ps.key[:0], k...)
	ps.hasKey = true
	name, ok := p.table.Lookup(ps.key)
	if !ok {
		ps.result = persistMiss
		return nil
	}
	s := p.byName[name]
	switch {
	case s == nil:
		ps.result = persistInvalid
		return nil
	case !usable(s):
		ps.result = persistRedispatch
		return nil
	}
	ps.result, ps.chosen = persistHit, s
	return s
}

func (p *persistence) count(result int) {
	if c := p.results[result]; c != nil {
		c.Inc()
	}
}

// record notes that s answered the request choose was asked about: it sets the cookie
// on the response head h, or the table entry, unless s is the server the client already
// had.
func (p *persistence) record(h *fasthttp.ResponseHeader, s *Server, ps *persistScratch) {
	if p.cookie != nil {
		p.recordCookie(h, s, ps)
		return
	}
	p.recordConn(s, ps)
}

// recordConn is record for a table: a tcp connection to s, or an http answer from it.
func (p *persistence) recordConn(s *Server, ps *persistScratch) {
	if p.table == nil || !ps.hasKey || ps.chosen == s {
		return
	}
	p.table.Set(ps.key, s.Name)
}

// buildPersistence returns b's persistence, or nil when it has none. A sticky table is
// kept from prev, the backend of the same name in the running config, while its key
// stays the same; a new ttl or size applies to it when Apply runs pend (a smaller size
// evicts, so a refused reload must not have set it).
func (d *Dataplane) buildPersistence(b, prev *backend, pend *pending) *persistence {
	pc := b.cfg.Persistence
	if pc == nil {
		return nil
	}
	p := &persistence{backend: b.cfg.Name, byName: b.byName}
	for r := persistHit; r < numPersistResults; r++ {
		p.results[r] = d.metrics.persist.total.WithLabelValues(b.cfg.Name, persistResultNames[r])
	}
	var old *persistence
	if prev != nil {
		old = prev.persist
	}
	switch pc.Type {
	case PersistCookie:
		key := []byte(pc.Cookie.Key)
		if len(key) == 0 {
			key = randomCookieKey()
			if old == nil || old.cookie == nil || prev.cfg.Persistence.Cookie.Key != "" {
				d.log.Warn("cookie persistence has no key; using a random one: sessions will not survive a restart of lbd or move to another node",
					"backend", b.cfg.Name, "setting", "persistence.cookie.key")
			}
		}
		p.cookie = newCookieCodec(pc.Cookie, key, b.cfg.Name, b.servers)
	case PersistTable:
		p.key, _ = parseHashKey(pc.Table.Key)
		if old != nil && old.table != nil && old.key == p.key {
			table, ttl, size := old.table, pc.Table.TTL, pc.Table.Size
			p.table = table
			pend.add(func() { table.SetLimits(ttl, size) })
		} else {
			p.table = sticky.New(d.clock, pc.Table.TTL, pc.Table.Size)
			d.log.Info("sticky table created", "backend", b.cfg.Name, "key", pc.Table.Key,
				"ttl", pc.Table.TTL, "size", pc.Table.Size)
		}
	}
	return p
}

// Errors of Dataplane.Sticky, for callers to branch on.
var (
	ErrNoBackend     = errors.New("no such backend")
	ErrNoStickyTable = errors.New("backend has no sticky table")
)

// Sticky returns the sticky table of backend, for listing, deleting and replicating
// entries. It fails with ErrNoBackend or ErrNoStickyTable (wrapped, with the names of
// the backends that have one).
func (d *Dataplane) Sticky(backend string) (*sticky.Table, error) {
	st := d.snapshot()
	b := st.byName[backend]
	if b != nil && b.persist != nil && b.persist.table != nil {
		return b.persist.table, nil
	}
	var with []string
	for _, ob := range st.backends {
		if ob.persist != nil && ob.persist.table != nil {
			with = append(with, ob.cfg.Name)
		}
	}
	slices.Sort(with)
	hint := "no backend has a sticky table"
	if len(with) > 0 {
		hint = "backends with a sticky table: " + strings.Join(with, ", ")
	}
	switch {
	case b == nil:
		return nil, fmt.Errorf("backend %q: %w (%s)", backend, ErrNoBackend, hint)
	case b.persist != nil && b.persist.cookie != nil:
		return nil, fmt.Errorf("backend %q: %w: it uses cookie persistence, whose sessions live in the clients' cookies (%s)", backend, ErrNoStickyTable, hint)
	}
	return nil, fmt.Errorf("backend %q: %w: it has no persistence (%s)", backend, ErrNoStickyTable, hint)
}

// persistMetrics are the metrics of session persistence.
type persistMetrics struct {
	total *prometheus.CounterVec // backend, result
}

var (
	stickyEntriesDesc = prometheus.NewDesc("lbd_sticky_entries",
		"Entries in a backend's sticky table.", []string{"backend"}, nil)
	stickyEvictionsDesc = prometheus.NewDesc("lbd_sticky_evictions_total",
		"Entries evicted from a backend's sticky table because it was full.", []string{"backend"}, nil)
)

func newPersistMetrics(reg prometheus.Registerer, d *Dataplane) *persistMetrics {
	m := &persistMetrics{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_persistence_total",
		Help: "Persistence decisions, by backend and result: hit (the client went to its server), miss (it had none yet), redispatch (its server was down or disabled) or invalid (its cookie or entry named no server).",
	}, []string{"backend", "result"})}
	if reg != nil {
		reg.MustRegister(m.total, &stickyCollector{d: d})
	}
	return m
}

// stickyCollector reports the sticky tables of the current backends at scrape time.
type stickyCollector struct{ d *Dataplane }

func (c *stickyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stickyEntriesDesc
	ch <- stickyEvictionsDesc
}

func (c *stickyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.d.snapshot().backends {
		if b.persist == nil || b.persist.table == nil {
			continue
		}
		t := b.persist.table
		ch <- prometheus.MustNewConstMetric(stickyEntriesDesc, prometheus.GaugeValue, float64(t.Len()), b.cfg.Name)
		ch <- prometheus.MustNewConstMetric(stickyEvictionsDesc, prometheus.CounterValue, float64(t.Evictions()), b.cfg.Name)
	}
}
