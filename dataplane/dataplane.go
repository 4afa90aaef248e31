package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"lbd/dataplane/balance"
	"lbd/internal/clock"
)

// Options configure a Dataplane.
type Options struct {
	// Logger receives one line per state change. Default: slog.Default().
	Logger *slog.Logger
	// Registry receives the dataplane's metrics. Default: none registered.
	Registry prometheus.Registerer
	// DrainTimeout bounds how long a listener removed by a reload, or closed by Close,
	// waits for its connections to finish before closing them. Default: 30s.
	DrainTimeout time.Duration
	// Clock drives the dataplane's timers: health checks, passive-check readmission,
	// queue timeouts, rate-limit delays, the udp idle sweeper, the certificate poller,
	// sticky-entry expiry. Default: clock.System().
	Clock clock.Clock
}

// Dataplane runs the frontends and backends of one Config, and switches to a new Config
// without dropping what is in flight.
type Dataplane struct {
	log     *slog.Logger
	metrics *metrics
	drain   time.Duration
	clock   clock.Clock

	// mu serializes Apply and Close and guards runners and closed.
	mu      sync.Mutex
	runners map[listenerKey]*runner
	closed  bool

	state atomic.Pointer[state]
	// retiring tracks runners shutting down after a reload.
	retiring sync.WaitGroup
	// ctl holds the run-time server changes (control.go); mu guards it.
	ctl control
	// loops are the event loops that tcp sessions and the http loop engine run on
	// (loops_linux.go): started with the first connection handed to one, stopped by
	// Close once the frontends have drained.
	loops *eventLoops
}

// state is one applied generation: what the admin API and the metrics collector read.
type state struct {
	cfg       Config
	backends  []*backend
	byName    map[string]*backend
	frontends []*frontendGen
}

// listenerKey identifies a listening socket; a frontend that keeps its key across a
// reload keeps its socket.
type listenerKey struct {
	proto     string // "tcp" or "udp"
	bind      string
	reusePort bool
}

// runner is a running frontend: its listener and the code serving it.
type runner struct {
	key  listenerKey
	mode string
	fe   frontendRunner
}

// frontendRunner serves one listener. It is implemented per mode (http.go, tcp.go,
// udp.go); constructors start serving at once and own their goroutines.
type frontendRunner interface {
	// update makes the runner serve gen for new connections and requests from now on.
	update(gen *frontendGen)
	// shutdown stops accepting, waits for connections in progress to finish until ctx is
	// done, then closes what is left.
	shutdown(ctx context.Context) error
}

// backend is the run-time form of a Backend.
type backend struct {
	cfg      Backend
	servers  []*Server
	byName   map[string]*Server
	balancer balance.Balancer[*Server]
	key      hashKey
	retries  int
	// http holds the connection pools to the servers, built by the http code.
	http *httpTransport
	// tls is the TLS to the servers, nil for plain connections (tls.go).
	tls *backendTLS
	// persist is the session persistence, nil when the backend has none (persist.go).
	persist *persistence
	// queue holds requests waiting for a server under its maxconn; limited is true when
	// a server has a maxconn (queue.go).
	queue   *queue
	limited bool
	// health runs the health checks, agent queries and passive checking (health.go).
	health *backendHealth
}

// pick returns a server for a new session, or nil when none is available.
func (b *backend) pick(p *Pick) *Server { return b.balancer.Pick(p) }

// frontendGen is the run-time form of a Frontend for one config generation.
type frontendGen struct {
	cfg     Frontend
	backend *backend // default backend
	routes  []route
	m       frontendMetrics
	metrics *metrics
	// proxyTrust holds the accept_proxy sources (proxyproto.go).
	proxyTrust proxyTrust
	// limit is the rate limit, nil for none (ratelimit.go).
	limit *limiter
	// tls terminates TLS, nil for a plain frontend; sni are a tcp frontend's sni
	// routes (tls.go, sni.go).
	tls *frontendTLS
	sni []sniRoute
}

type frontendMetrics struct {
	connsActive prometheus.Gauge
	connsTotal  prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	dropped     prometheus.Counter
	evicted     prometheus.Counter
}

// route is a compiled Route.
type route struct {
	host       string // lower case; "" matches any
	wildcard   bool   // host is a suffix such as ".example.com"
	pathPrefix string
	header     *HeaderMatch
	backend    *backend
}

// selectBackend returns the backend for a request: the first route that matches, else
// the default. host may carry a port; header looks a request header up by name.
func (g *frontendGen) selectBackend(host, path []byte, header func(name string) []byte) *backend {
	if len(g.routes) == 0 {
		return g.backend
	}
	if i := strings.LastIndexByte(string(host), ':'); i >= 0 && !strings.HasSuffix(string(host), "]") {
		host = host[:i]
	}
	for i := range g.routes {
		r := &g.routes[i]
		if r.host != "" {
			if r.wildcard {
				if len(host) <= len(r.host) || !equalFoldSuffix(host, r.host) {
					continue
				}
			} else if !strings.EqualFold(string(host), r.host) {
				continue
			}
		}
		if r.pathPrefix != "" && !strings.HasPrefix(string(path), r.pathPrefix) {
			continue
		}
		if r.header != nil {
			v := header(r.header.Name)
			if v == nil || (r.header.Value != "" && string(v) != r.header.Value) {
				continue
			}
		}
		return r.backend
	}
	return g.backend
}

func equalFoldSuffix(s []byte, suffix string) bool {
	return strings.EqualFold(string(s[len(s)-len(suffix):]), suffix)
}

// New returns a Dataplane serving nothing; Apply gives it a config.
func New(opts Options) *Dataplane {
	d := &Dataplane{
		log:     opts.Logger,
		drain:   opts.DrainTimeout,
		clock:   opts.Clock,
		runners: map[listenerKey]*runner{},
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.clock == nil {
		d.clock = clock.System()
	}
	if d.drain == 0 {
		d.drain = 30 * time.Second
	}
	d.loops = newEventLoops(d.clock, d.log)
	d.state.Store(&state{byName: map[string]*backend{}})
	d.metrics = newMetrics(opts.Registry, d)
	return d
}

func (d *Dataplane) snapshot() *state { return d.state.Load() }

// ErrPartlyListening wraps the error of an Apply that switched to the new config but
// could not open every listener: one whose address an old listener of another kind held
// (another mode or reuse_port) is opened only after that one closes, and can still fail
// then. The new config runs, without those frontends.
var ErrPartlyListening = errors.New("config applied, but not every frontend is listening")

// Apply validates cfg and switches to it. Listeners whose protocol, address and
// reuse_port stay the same keep their socket; connections in progress finish on the
// config they started with. On an error nothing changes and the old config keeps
// serving, except for an error wrapping ErrPartlyListening: then cfg runs.
func (d *Dataplane) Apply(cfg Config) error {
	cfg = cloneConfig(cfg)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("dataplane is closed")
	}
	old := d.snapshot()
	next, changes, err := d.build(cfg, old)
	if err != nil {
		return err
	}

	// Open every new listener before touching the running ones, so a port that cannot
	// be bound refuses the whole config. A listener whose address an old one of another
	// kind still holds is opened after that one closes.
	wanted := map[listenerKey]*frontendGen{}
	for _, g := range next.frontends {
		wanted[keyOf(g.cfg)] = g
	}
	opened := map[listenerKey]any{}
	var late []listenerKey
	for k, g := range wanted {
		if r, ok := d.runners[k]; ok && r.mode == g.cfg.Mode {
			continue
		}
		if d.boundByOld(k, wanted) {
			late = append(late, k)
			continue
		}
		l, err := listen(k)
		if err != nil {
			closeListeners(opened)
			return fmt.Errorf("frontend %q: %w", g.cfg.Name, err)
		}
		opened[k] = l
	}

	// Commit: give the servers, queues and sticky tables the running generation shares
	// their new settings, switch kept runners, retire the others, start the new ones.
	// Nothing above this line has changed what is running.
	changes.apply()
	d.state.Store(next)
	d.switchHealth(old, next)
	for k, r := range d.runners {
		if g, ok := wanted[k]; ok && r.mode == g.cfg.Mode {
			r.fe.update(g)
			continue
		}
		d.retire(r, len(late) > 0)
		delete(d.runners, k)
	}
	var errs []error
	for _, k := range late {
		l, err := listen(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("frontend %q: %w", wanted[k].cfg.Name, err))
			continue
		}
		opened[k] = l
	}
	for k, l := range opened {
		g := wanted[k]
		d.runners[k] = &runner{key: k, mode: g.cfg.Mode, fe: d.start(g, l)}
		d.log.Info("frontend listening", "frontend", g.cfg.Name, "mode", g.cfg.Mode, "bind", g.cfg.Bind)
	}
	for _, b := range old.backends {
		var nt *httpTransport
		if nb := next.byName[b.cfg.Name]; nb != nil {
			nt = nb.http
		}
		b.http.retire(nt, d.loops)
	}
	d.logServerChanges(old, next)
	d.pruneOverrides(next)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrPartlyListening, errors.Join(errs...))
	}
	return nil
}

// boundByOld reports whether an old runner that is going away holds k's address.
func (d *Dataplane) boundByOld(k listenerKey, wanted map[listenerKey]*frontendGen) bool {
	for ok, r := range d.runners {
		if ok.proto != k.proto || ok.bind != k.bind {
			continue
		}
		if g, keep := wanted[ok]; keep && g.cfg.Mode == r.mode {
			continue
		}
		return true
	}
	return false
}

// retire shuts r down in the background, bounded by the drain timeout; with wait it
// first waits until r's listener is closed, so that its address can be bound again.
func (d *Dataplane) retire(r *runner, wait bool) {
	d.log.Info("frontend stopping", "bind", r.key.bind, "mode", r.mode)
	listenerClosed := make(chan struct{})
	d.retiring.Add(1)
	go func() {
		defer d.retiring.Done()
		ctx, cancel := context.WithTimeout(context.Background(), d.drain)
		defer cancel()
		err := r.fe.shutdown(&closeNotifyCtx{Context: ctx, closed: listenerClosed})
		if err != nil {
			d.log.Warn("frontend stopped with connections cut", "bind", r.key.bind, "err", err)
		}
	}()
	if wait {
		t := d.clock.NewTimer(5 * time.Second)
		defer t.Stop()
		select {
		case <-listenerClosed:
		case <-t.C():
		}
	}
}

// closeNotifyCtx lets a runner's shutdown say when its listener is closed.
type closeNotifyCtx struct {
	context.Context
	closed chan struct{}
	once   sync.Once
}

// listenerClosed tells whoever waits that the runner's listening socket is closed.
// Runners call it from shutdown right after closing their listener.
func listenerClosed(ctx context.Context) {
	if c, ok := ctx.(*closeNotifyCtx); ok {
		c.once.Do(func() { close(c.closed) })
	}
}

func (d *Dataplane) start(g *frontendGen, l any) frontendRunner {
	switch g.cfg.Mode {
	case ModeTCP:
		return newTCPFrontend(d, g, l.(*net.TCPListener))
	case ModeUDP:
		return newUDPFrontend(d, g, l.(*net.UDPConn))
	default:
		return newHTTPFrontend(d, g, l.(*net.TCPListener))
	}
}

// pending holds the changes a build makes to objects the running generation shares
// with the new one: servers carried over, a kept queue or sticky table. Apply runs them
// once nothing can fail any more, so that a refused config changes nothing.
type pending []func()

func (p *pending) add(f func()) { *p = append(*p, f) }

func (p pending) apply() {
	for _, f := range p {
		f()
	}
}

// build turns a validated config into run-time objects, reusing old's servers (their
// counters and health) where backend, name and address match. It changes nothing that
// old uses: the new settings of what both share are returned as pending changes.
func (d *Dataplane) build(cfg Config, old *state) (*state, pending, error) {
	st := &state{cfg: cfg, byName: map[string]*backend{}}
	var changes pending
	for _, bc := range cfg.Backends {
		b := &backend{cfg: bc, byName: map[string]*Server{}, retries: *bc.Retries}
		b.key, _ = parseHashKey(bc.HashKey)
		prev := old.byName[bc.Name]
		for _, sc := range bc.Servers {
			var s *Server
			if prev != nil {
				if ps := prev.byName[sc.Name]; ps != nil && ps.Addr == sc.Address {
					s = ps
				}
			}
			if s == nil {
				s = NewServer(sc.Name, sc.Address, *sc.Weight)
			}
			state, _ := ParseServerState(sc.State)
			state, weight := d.overridden(bc.Name, sc, state, *sc.Weight)
			changes.add(func() {
				s.SetWeight(weight)
				s.SetState(state)
			})
			b.servers = append(b.servers, s)
			b.byName[s.Name] = s
		}
		bal, err := balance.New(bc.Balance, b.servers, balance.Options{
			HashMethod: bc.HashMethod, HashBalanceFactor: bc.HashBalanceFactor,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("backend %q: %w", bc.Name, err)
		}
		b.balancer = bal
		var prevHTTP *httpTransport
		if prev != nil {
			prevHTTP = prev.http
		}
		if err := buildBackendTLS(b, len(st.backends)); err != nil {
			return nil, nil, err
		}
		b.http = newHTTPTransport(b, prevHTTP)
		b.health = newBackendHealth(d, b)
		b.persist = d.buildPersistence(b, prev, &changes)
		d.setupLimits(b, bc, prev, &changes)
		st.backends = append(st.backends, b)
		st.byName[bc.Name] = b
	}
	for _, fc := range cfg.Frontends {
		g := &frontendGen{cfg: fc, backend: st.byName[fc.Backend], metrics: d.metrics}
		g.proxyTrust = newProxyTrust(fc.AcceptProxy)
		g.limit = d.limiterFor(fc, old)
		g.m = frontendMetrics{
			connsActive: d.metrics.connsActive.WithLabelValues(fc.Name),
			connsTotal:  d.metrics.connsTotal.WithLabelValues(fc.Name),
			bytesIn:     d.metrics.bytesIn.WithLabelValues(fc.Name),
			bytesOut:    d.metrics.bytesOut.WithLabelValues(fc.Name),
			dropped:     d.metrics.dropped.WithLabelValues(fc.Name),
			evicted:     d.metrics.evicted.WithLabelValues(fc.Name),
		}
		for _, rc := range fc.Routes {
			r := route{pathPrefix: rc.PathPrefix, header: rc.Header, backend: st.byName[rc.Backend]}
			r.host = strings.ToLower(rc.Host)
			if strings.HasPrefix(r.host, "*.") {
				r.host, r.wildcard = r.host[1:], true
			}
			if rc.SNI == "" {
				g.routes = append(g.routes, r)
			}
		}
		g.sni = compileSNIRoutes(fc, st.byName)
		if err := d.buildFrontendTLS(g, len(st.frontends)); err != nil {
			return nil, nil, err
		}
		st.frontends = append(st.frontends, g)
	}
	return st, changes, nil
}

// logServerChanges logs one line per server whose weight or state a reload changed.
func (d *Dataplane) logServerChanges(old, next *state) {
	for _, b := range next.backends {
		for i, s := range b.servers {
			sc := b.cfg.Servers[i]
			pb := old.byName[b.cfg.Name]
			if pb == nil || pb.byName[s.Name] == nil {
				d.log.Info("server added", "backend", b.cfg.Name, "server", s.Name, "address", s.Addr)
				continue
			}
			for _, ps := range pb.cfg.Servers {
				if ps.Name == s.Name && (ps.State != sc.State || *ps.Weight != *sc.Weight) {
					d.log.Info("server changed", "backend", b.cfg.Name, "server", s.Name,
						"state", sc.State, "weight", *sc.Weight)
				}
			}
		}
	}
}

func keyOf(f Frontend) listenerKey {
	proto := "tcp"
	if f.Mode == ModeUDP {
		proto = "udp"
	}
	return listenerKey{proto: proto, bind: f.Bind, reusePort: f.ReusePort}
}

// listen opens the socket for k: a *net.TCPListener or a *net.UDPConn.
func listen(k listenerKey) (any, error) {
	lc := net.ListenConfig{}
	if k.reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			return errors.Join(err, serr)
		}
	}
	if k.proto == "udp" {
		return lc.ListenPacket(context.Background(), "udp", k.bind)
	}
	return lc.Listen(context.Background(), "tcp", k.bind)
}

func closeListeners(m map[listenerKey]any) {
	for _, l := range m {
		if c, ok := l.(interface{ Close() error }); ok {
			c.Close()
		}
	}
}

// Close stops every frontend, waiting up to ctx for connections to finish, and then the
// event loops.
func (d *Dataplane) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	runners := d.runners
	d.runners = nil
	d.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, 0, len(runners))
	var emu sync.Mutex
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.fe.shutdown(ctx); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("frontend on %s: %w", r.key.bind, err))
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	d.retiring.Wait()
	for _, b := range d.snapshot().backends {
		b.http.retire(nil, d.loops)
		b.health.stop(true)
	}
	d.loops.stop() // closes the idle server connections still on them
	return errors.Join(errs...)
}

// Addr returns the address a frontend listens on, which tells the port when the config
// asked for port 0. It returns nil when no frontend has that name.
func (d *Dataplane) Addr(frontend string) net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.snapshot().frontends {
		if g.cfg.Name != frontend {
			continue
		}
		if r := d.runners[keyOf(g.cfg)]; r != nil {
			if a, ok := r.fe.(interface{ addr() net.Addr }); ok {
				return a.addr()
			}
		}
	}
	return nil
}

func cloneConfig(c Config) Config {
	out := Config{Frontends: make([]Frontend, len(c.Frontends)), Backends: make([]Backend, len(c.Backends))}
	copy(out.Frontends, c.Frontends)
	for i := range out.Frontends {
		out.Frontends[i].Routes = append([]Route(nil), c.Frontends[i].Routes...)
		out.Frontends[i].TLS = c.Frontends[i].TLS.clone()
		if r := c.Frontends[i].RateLimit; r != nil {
			rc := *r
			out.Frontends[i].RateLimit = &rc
		}
	}
	copy(out.Backends, c.Backends)
	for i := range out.Backends {
		out.Backends[i].Servers = append([]ServerConfig(nil), c.Backends[i].Servers...)
		out.Backends[i].TLS = c.Backends[i].TLS.clone()
		out.Backends[i].Persistence = c.Backends[i].Persistence.clone()
	}
	return out
}
