package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"lbd/dataplane/balance"
)

// Modes of a frontend.
const (
	ModeHTTP = "http"
	ModeTCP  = "tcp"
	ModeUDP  = "udp"
)

// Balancing algorithms, the values of Backend.Balance (package balance).
const (
	BalanceRoundRobin = balance.RoundRobin
	BalanceLeastConn  = balance.LeastConn
	BalanceLeastTime  = balance.LeastTime
	BalanceRandom     = balance.Random
	BalanceSource     = balance.Source
	BalanceConsistent = balance.Consistent
)

// HTTP engines, the values of Frontend.Engine.
const (
	EngineLoop     = "loop"
	EngineFastHTTP = "fasthttp"
)

// Hash methods for BalanceConsistent, the values of Backend.HashMethod.
const (
	HashRendezvous = balance.Rendezvous
	HashMaglev     = balance.Maglev
)

// Config is the dataplane's part of the cluster-wide document: what lbd listens on and
// where it sends the traffic. The zero value serves nothing.
type Config struct {
	// Frontends are the listeners. Default: none.
	Frontends []Frontend `yaml:"frontends"`
	// Backends are the named pools of servers that frontends send traffic to. Default: none.
	Backends []Backend `yaml:"backends"`
}

// Frontend is one listener and what it does with the traffic it accepts.
type Frontend struct {
	// Name identifies the frontend in logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// Mode is http, tcp or udp. Default: http.
	Mode string `yaml:"mode"`
	// Bind is the host:port to listen on, e.g. "0.0.0.0:80" or "[::]:443"; port 0 picks
	// a free port (for tests). Required.
	Bind string `yaml:"bind"`
	// ReusePort sets SO_REUSEPORT on the listening socket. Default: false.
	ReusePort bool `yaml:"reuse_port"`
	// Backend is the default backend, used when no route matches. Required.
	Backend string `yaml:"backend"`
	// Routes send matching HTTP requests to other backends; the first match wins
	// (http mode only). Default: none.
	Routes []Route `yaml:"routes"`
	// MaxConn bounds the client connections open at once; over it new connections wait
	// in the kernel's accept queue (udp: sessions; new clients' datagrams are dropped).
	// Default: 10000.
	MaxConn int `yaml:"maxconn"`
	// MaxHeaderBytes bounds the size of a request's header block (http mode); larger
	// requests get 431. Default: 16384.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes bounds a request body (http mode); larger requests get 413. Bodies
	// over 64 KiB stream to the server, so the limit does not bound memory; it bounds
	// what a client may send a server. Default: 10485760 (10 MiB).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// Timeouts of the client side.
	Timeouts FrontendTimeouts `yaml:"timeouts"`
	// AcceptProxy lists the sources (CIDR prefixes or single addresses) whose
	// connections must start with a PROXY protocol v1 or v2 header giving the real
	// client (http and tcp mode; see proxyproto.go). Default: none.
	AcceptProxy []string `yaml:"accept_proxy"`
	// RateLimit limits the request rate per client as nginx's limit_req (http and tcp
	// mode; see ratelimit.go). Default: none.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// TLS terminates TLS on the frontend (http mode; see tls.go). Default: none (plain).
	TLS *FrontendTLS `yaml:"tls"`
	// H2C serves cleartext HTTP/2 with prior knowledge beside HTTP/1.1 (http mode,
	// without tls). Default: false.
	H2C bool `yaml:"h2c"`
	// RedirectToHTTPS answers every request with a 301 to https://host/path (http mode,
	// without tls). Default: false.
	RedirectToHTTPS bool `yaml:"redirect_to_https"`
	// Engine is what serves plain HTTP/1.1 (http mode): "loop" serves the requests it
	// can on the event loops and hands the rest to "fasthttp", which serves them all
	// on goroutines (see httploop_linux.go). Default: loop.
	Engine string `yaml:"engine"`
}

// FrontendTimeouts are the client-side timeouts of a frontend.
type FrontendTimeouts struct {
	// ClientHeader bounds the time to read a request's headers (http mode).
	// Default: 10s.
	ClientHeader time.Duration `yaml:"client_header"`
	// ClientIdle bounds an idle keep-alive connection (http mode), a TCP connection with
	// no bytes moving either way (tcp mode), or a UDP session with no datagram
	// (udp mode). Default: 60s (30s for udp).
	ClientIdle time.Duration `yaml:"client_idle"`
}

// Route sends the HTTP requests that match all of its non-empty conditions to Backend;
// in tcp mode, a route matches the server name (SNI) of a TLS connection instead.
type Route struct {
	// SNI matches the server name a TLS client asks for, case-insensitive;
	// "*.example.com" matches any subdomain (tcp mode only, TLS passed through).
	// Default: none.
	SNI string `yaml:"sni"`
	// Host matches the request's host (port removed, case-insensitive); "*.example.com"
	// matches any subdomain. Default: any host.
	Host string `yaml:"host"`
	// PathPrefix matches the start of the request path. Default: any path.
	PathPrefix string `yaml:"path_prefix"`
	// Header matches a request header. Default: no header condition.
	Header *HeaderMatch `yaml:"header"`
	// Backend receives the matching requests. Required.
	Backend string `yaml:"backend"`
}

// HeaderMatch is a condition on one request header.
type HeaderMatch struct {
	// Name of the header, case-insensitive. Required.
	Name string `yaml:"name"`
	// Value the header must equal; empty means the header must be present. Default: "".
	Value string `yaml:"value"`
}

// Backend is a named pool of servers and how to choose among them.
type Backend struct {
	// Name identifies the backend; frontends and routes refer to it. Required, unique.
	Name string `yaml:"name"`
	// Balance is the algorithm: roundrobin, leastconn, least_time, random, source or
	// consistent. Default: random (power of two choices).
	Balance string `yaml:"balance"`
	// HashKey is what the consistent algorithm hashes: client_ip, uri, header:NAME or
	// cookie:NAME. Default: client_ip.
	HashKey string `yaml:"hash_key"`
	// HashMethod is rendezvous or maglev (consistent only). Default: rendezvous.
	HashMethod string `yaml:"hash_method"`
	// HashBalanceFactor bounds the load of consistent hashing as HAProxy's
	// hash-balance-factor: no server takes more than ceil(factor/100 × average
	// in-flight); 0 turns it off, otherwise at least 100. Default: 0.
	HashBalanceFactor int `yaml:"hash_balance_factor"`
	// Retries is how many other servers a request or connection may try after the first
	// fails to connect (and, for idempotent HTTP requests, after a timeout or an empty
	// answer; never once the server has started answering). Default: 2.
	Retries *int `yaml:"retries"`
	// PoolSize bounds the connections to each server that lbd keeps open for reuse
	// (http mode). Default: 256.
	PoolSize int `yaml:"pool_size"`
	// Timeouts of the server side.
	Timeouts BackendTimeouts `yaml:"timeouts"`
	// Servers of the backend. At least one.
	Servers []ServerConfig `yaml:"servers"`
	// SendProxy starts each connection to a server with a PROXY protocol header, v1
	// or v2, naming the client (tcp frontends only; see proxyproto.go). Default: ""
	// (none).
	SendProxy string `yaml:"send_proxy"`
	// Queue holds requests while every server is at its maxconn (see queue.go).
	Queue QueueConfig `yaml:"queue"`
	// TLS makes lbd talk TLS to the servers (see tls.go). Default: none (plain).
	TLS *BackendTLS `yaml:"tls"`
	// Persistence keeps each client on one server: by a cookie lbd inserts (http) or
	// by a sticky table (see persist.go). Default: none.
	Persistence *Persistence `yaml:"persistence"`
	// HealthCheck runs active health checks on the servers (see health.go). Default:
	// none (servers are considered up).
	HealthCheck *HealthCheck `yaml:"health_check"`
	// Passive takes servers out on failures seen on real traffic, as nginx's max_fails
	// and fail_timeout (see health_passive.go). Default: none (off).
	Passive *PassiveCheck `yaml:"passive"`
	// SlowStart ramps the weight of a server coming back up (or enabled again) from
	// 1/20 to full over this time. Default: 0 (off).
	SlowStart time.Duration `yaml:"slow_start"`
	// Agent queries an agent on each server for a weight or a state (see agent.go).
	// Default: none.
	Agent *AgentCheck `yaml:"agent"`
}

// BackendTimeouts are the server-side timeouts of a backend.
type BackendTimeouts struct {
	// Connect bounds establishing a connection to a server. Default: 5s.
	Connect time.Duration `yaml:"connect"`
	// Response bounds the wait for a server's response headers (http mode). Default: 60s.
	Response time.Duration `yaml:"response"`
}

// Server states. Drain takes no new sessions but keeps what it has; disabled takes nothing.
const (
	StateEnabled  = "enabled"
	StateDrain    = "drain"
	StateDisabled = "disabled"
)

// ServerConfig is one server of a backend.
type ServerConfig struct {
	// Name identifies the server within its backend. Default: its address.
	Name string `yaml:"name"`
	// Address is host:port. Required.
	Address string `yaml:"address"`
	// Weight is the server's share relative to the others, 0 to 256; 0 gets no new
	// sessions. Default: 1.
	Weight *int `yaml:"weight"`
	// State is enabled, drain or disabled. Default: enabled.
	State string `yaml:"state"`
	// MaxConn bounds the requests (http) or connections (tcp) in flight to the server;
	// over it, new ones wait in the backend's queue. 0 is unlimited. Default: 0.
	MaxConn int `yaml:"maxconn"`
}

// Defaults applied by SetDefaults.
const (
	DefaultMaxConn          = 10000
	DefaultMaxHeaderBytes   = 16384
	DefaultHTTPEngine       = EngineLoop
	DefaultMaxBodyBytes     = 10 << 20
	DefaultClientHeader     = 10 * time.Second
	DefaultClientIdle       = 60 * time.Second
	DefaultUDPClientIdle    = 30 * time.Second
	DefaultRetries          = 2
	DefaultPoolSize         = 256
	DefaultConnectTimeout   = 5 * time.Second
	DefaultResponseTimeout  = 60 * time.Second
	DefaultServerWeight     = 1
	MaxServerWeight         = 256
	minHashBalanceFactor    = balance.MinBalanceFactor
	maxRetries              = 16
	maxRoutesPerFrontendCap = 10000
)

// SetDefaults fills every unset field with its default. Fields set to invalid values are
// left for Validate to report.
func (c *Config) SetDefaults() {
	for i := range c.Frontends {
		f := &c.Frontends[i]
		if f.Mode == "" {
			f.Mode = ModeHTTP
		}
		if f.MaxConn == 0 {
			f.MaxConn = DefaultMaxConn
		}
		if f.Engine == "" {
			f.Engine = DefaultHTTPEngine
		}
		if f.MaxHeaderBytes == 0 {
			f.MaxHeaderBytes = DefaultMaxHeaderBytes
		}
		if f.MaxBodyBytes == 0 {
			f.MaxBodyBytes = DefaultMaxBodyBytes
		}
		if f.Timeouts.ClientHeader == 0 {
			f.Timeouts.ClientHeader = DefaultClientHeader
		}
		if f.Timeouts.ClientIdle == 0 {
			f.Timeouts.ClientIdle = DefaultClientIdle
			if f.Mode == ModeUDP {
				f.Timeouts.ClientIdle = DefaultUDPClientIdle
			}
		}
		f.TLS.setDefaults()
		f.RateLimit.setDefaults()
	}
	for i := range c.Backends {
		b := &c.Backends[i]
		if b.Balance == "" {
			b.Balance = BalanceRandom
		}
		if b.HashKey == "" {
			b.HashKey = "client_ip"
		}
		if b.HashMethod == "" {
			b.HashMethod = HashRendezvous
		}
		if b.Retries == nil {
			n := DefaultRetries
			b.Retries = &n
		}
		if b.PoolSize == 0 {
			b.PoolSize = DefaultPoolSize
		}
		if b.Timeouts.Connect == 0 {
			b.Timeouts.Connect = DefaultConnectTimeout
		}
		if b.Timeouts.Response == 0 {
			b.Timeouts.Response = DefaultResponseTimeout
		}
		b.Queue.setDefaults()
		b.Persistence.setDefaults()
		setHealthDefaults(b)
		for j := range b.Servers {
			s := &b.Servers[j]
			if s.Name == "" {
				s.Name = s.Address
			}
			if s.Weight == nil {
				w := DefaultServerWeight
				s.Weight = &w
			}
			if s.State == "" {
				s.State = StateEnabled
			}
		}
	}
}

// FieldError is a problem with one field of the config. Path is the field's place in the
// document, such as "frontends[0].backend".
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// FieldPath returns the field's place in the document.
func (e *FieldError) FieldPath() string { return e.Path }

type errList []error

func (l *errList) add(path, format string, args ...any) {
	*l = append(*l, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks a config that SetDefaults has been applied to. It returns every
// problem it finds, joined; each is a *FieldError.
func (c *Config) Validate() error {
	var errs errList
	backends := map[string]bool{}
	for i, b := range c.Backends {
		p := fmt.Sprintf("backends[%d]", i)
		validateBackend(&errs, p, b)
		if b.Name != "" {
			if backends[b.Name] {
				errs.add(p+".name", "duplicate backend name %q", b.Name)
			}
			backends[b.Name] = true
		}
	}
	names := map[string]bool{}
	binds := map[string]string{}
	for i, f := range c.Frontends {
		p := fmt.Sprintf("frontends[%d]", i)
		if f.Name == "" {
			errs.add(p+".name", "is required")
		} else if names[f.Name] {
			errs.add(p+".name", "duplicate frontend name %q", f.Name)
		}
		names[f.Name] = true
		switch f.Mode {
		case ModeHTTP, ModeTCP, ModeUDP:
		default:
			errs.add(p+".mode", "must be http, tcp or udp, not %q", f.Mode)
		}
		if f.Bind == "" {
			errs.add(p+".bind", "is required")
		} else if err := checkHostPort(f.Bind, 0); err != nil {
			errs.add(p+".bind", "%v", err)
		} else {
			proto := "tcp"
			if f.Mode == ModeUDP {
				proto = "udp"
			}
			k := proto + " " + f.Bind
			if other, ok := binds[k]; ok {
				errs.add(p+".bind", "%s is already bound by frontend %q", f.Bind, other)
			}
			binds[k] = f.Name
		}
		checkBackendRef(&errs, p+".backend", f.Backend, backends)
		validateFrontendTLS(&errs, p, f, c.Backends)
		if len(f.Routes) > maxRoutesPerFrontendCap {
			errs.add(p+".routes", "%d routes is more than the limit of %d", len(f.Routes), maxRoutesPerFrontendCap)
		}
		for j, r := range f.Routes {
			rp := fmt.Sprintf("%s.routes[%d]", p, j)
			if r.SNI == "" && r.Host == "" && r.PathPrefix == "" && r.Header == nil {
				if f.Mode == ModeTCP {
					errs.add(rp, "needs sni")
				} else {
					errs.add(rp, "needs at least one of host, path_prefix or header")
				}
			}
			if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
				errs.add(rp+".path_prefix", "must start with /, not %q", r.PathPrefix)
			}
			if r.Header != nil && r.Header.Name == "" {
				errs.add(rp+".header.name", "is required")
			}
			checkBackendRef(&errs, rp+".backend", r.Backend, backends)
		}
		if f.MaxConn < 0 {
			errs.add(p+".maxconn", "must not be negative, not %d", f.MaxConn)
		}
		if f.Engine != EngineLoop && f.Engine != EngineFastHTTP {
			errs.add(p+".engine", "must be %s or %s, not %q", EngineLoop, EngineFastHTTP, f.Engine)
		}
		if f.MaxHeaderBytes < 1024 || f.MaxHeaderBytes > 1<<20 {
			errs.add(p+".max_header_bytes", "must be between 1024 and 1048576, not %d", f.MaxHeaderBytes)
		}
		if f.MaxBodyBytes < 0 {
			errs.add(p+".max_body_bytes", "must not be negative, not %d", f.MaxBodyBytes)
		}
		checkTimeout(&errs, p+".timeouts.client_header", f.Timeouts.ClientHeader)
		checkTimeout(&errs, p+".timeouts.client_idle", f.Timeouts.ClientIdle)
		validateRateLimit(&errs, p+".rate_limit", f)
	}
	validateProxy(&errs, c)
	validatePersistenceModes(&errs, c)
	return errors.Join(errs...)
}

func validateBackend(errs *errList, p string, b Backend) {
	if b.Name == "" {
		errs.add(p+".name", "is required")
	}
	switch b.Balance {
	case BalanceRoundRobin, BalanceLeastConn, BalanceLeastTime, BalanceRandom, BalanceSource, BalanceConsistent:
	default:
		errs.add(p+".balance", "must be one of roundrobin, leastconn, least_time, random, source, consistent, not %q", b.Balance)
	}
	if _, err := parseHashKey(b.HashKey); err != nil {
		errs.add(p+".hash_key", "%v", err)
	}
	switch b.HashMethod {
	case HashRendezvous, HashMaglev:
	default:
		errs.add(p+".hash_method", "must be rendezvous or maglev, not %q", b.HashMethod)
	}
	if b.HashBalanceFactor != 0 && b.HashBalanceFactor < minHashBalanceFactor {
		errs.add(p+".hash_balance_factor", "must be 0 (off) or at least 100, not %d", b.HashBalanceFactor)
	}
	if b.Retries != nil && (*b.Retries < 0 || *b.Retries > maxRetries) {
		errs.add(p+".retries", "must be between 0 and %d, not %d", maxRetries, *b.Retries)
	}
	if b.PoolSize < 0 {
		errs.add(p+".pool_size", "must not be negative, not %d", b.PoolSize)
	}
	checkTimeout(errs, p+".timeouts.connect", b.Timeouts.Connect)
	checkTimeout(errs, p+".timeouts.response", b.Timeouts.Response)
	validateQueue(errs, p, b)
	validateBackendTLS(errs, p+".tls", b.TLS)
	validatePersistence(errs, p+".persistence", b.Persistence)
	validateHealth(errs, p, b)
	if len(b.Servers) == 0 {
		errs.add(p+".servers", "needs at least one server")
	}
	names := map[string]bool{}
	for j, s := range b.Servers {
		sp := fmt.Sprintf("%s.servers[%d]", p, j)
		if s.Address == "" {
			errs.add(sp+".address", "is required")
		} else if err := checkHostPort(s.Address, 1); err != nil {
			errs.add(sp+".address", "%v", err)
		}
		if s.Name != "" {
			if names[s.Name] {
				errs.add(sp+".name", "duplicate server name %q in backend %q", s.Name, b.Name)
			}
			names[s.Name] = true
		}
		if s.Weight != nil && (*s.Weight < 0 || *s.Weight > MaxServerWeight) {
			errs.add(sp+".weight", "must be between 0 and %d, not %d", MaxServerWeight, *s.Weight)
		}
		if _, err := ParseServerState(s.State); err != nil {
			errs.add(sp+".state", "%v", err)
		}
	}
}

func checkBackendRef(errs *errList, path, name string, backends map[string]bool) {
	switch {
	case name == "":
		errs.add(path, "is required")
	case !backends[name]:
		errs.add(path, "no backend named %q", name)
	}
}

func checkTimeout(errs *errList, path string, d time.Duration) {
	if d < time.Millisecond {
		errs.add(path, "(%v) must be at least 1ms", d)
	}
}

// checkHostPort accepts host:port where host is an IP address, a name or empty, and port
// is minPort-65535 (a bind may say 0 for a free port).
func checkHostPort(s string, minPort int) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < minPort || n > 65535 {
		return fmt.Errorf("%q: port must be %d-65535", s, minPort)
	}
	if host != "" && strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: bad host", s)
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: bad IPv6 address", s)
		}
	}
	return nil
}

// hashKey says what a consistent-hashing backend hashes.
type hashKey struct {
	kind string // "client_ip", "uri", "header", "cookie"
	name string // header or cookie name
}

func parseHashKey(s string) (hashKey, error) {
	switch {
	case s == "client_ip" || s == "uri":
		return hashKey{kind: s}, nil
	case strings.HasPrefix(s, "header:") && len(s) > len("header:"):
		return hashKey{kind: "header", name: s[len("header:"):]}, nil
	case strings.HasPrefix(s, "cookie:") && len(s) > len("cookie:"):
		return hashKey{kind: "cookie", name: s[len("cookie:"):]}, nil
	}
	return hashKey{}, fmt.Errorf("must be client_ip, uri, header:NAME or cookie:NAME, not %q", s)
}
