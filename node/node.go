package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"lbd/dataplane"
	"lbd/internal/clock"
)

// Options configure a Node.
type Options struct {
	// ConfigPath is the config file. Required.
	ConfigPath string
	// Logger receives the node's logs. Default: slog.Default().
	Logger *slog.Logger
	// DrainTimeout bounds how long connections of a removed listener, or of all
	// listeners on shutdown, may take to finish. Default: 30s.
	DrainTimeout time.Duration
	// Version is lbd's version, told to the other nodes of a cluster. Default: "dev".
	Version string
}

// Node is one running lbd.
type Node struct {
	path string
	log  *slog.Logger
	reg  *prometheus.Registry
	dp   *dataplane.Dataplane
	// clock is the system clock, which the node gives the dataplane and the VIP manager.
	clock clock.Clock

	reloads    *prometheus.CounterVec
	configInfo *prometheus.GaugeVec
	lastReload prometheus.Gauge

	// mu serializes reloads and guards cfg, version and loadedAt.
	mu       sync.Mutex
	cfg      *Config
	version  string
	loadedAt time.Time

	admin []*http.Server

	// drain is the node's own drain, for /healthz (control.go).
	drain drainState

	// vrrp is the VIP manager and what feeds it (vrrp.go).
	vrrp vrrpState

	// cl is the cluster agent and what feeds it (cluster.go).
	cl clusterState

	// wit is the witness role (witness.go).
	wit witnessState
}

// New loads the config file and starts serving it: the dataplane's listeners and the
// admin API (a witness serves the admin API and runs its cluster agent only). It fails, serving nothing, when the file is invalid or a socket cannot be
// opened.
func New(opts Options) (*Node, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := LoadFile(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	n := &Node{path: opts.ConfigPath, log: log, reg: prometheus.NewRegistry(), clock: clock.System()}
	n.cl.version = cmp.Or(opts.Version, "dev")
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_config_reloads_total",
		Help: "Config reloads, by result (success or failure).",
	}, []string{"result"})
	n.configInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lbd_config_info",
		Help: "The loaded config: 1 for its version (content hash).",
	}, []string{"version"})
	n.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lbd_config_last_reload_success_timestamp_seconds",
		Help: "When the loaded config was applied, in seconds since the epoch.",
	})
	n.reg.MustRegister(n.reloads, n.configInfo, n.lastReload)
	n.initControl() // control.go
	n.reg.MustRegister(newVRRPCollector(n))
	n.reloads.WithLabelValues("success")
	n.reloads.WithLabelValues("failure")

	n.wit.on = isWitness(cfg)
	serve := n.served(cfg)                       // witness.go: a witness serves nothing
	if err := n.prepareVRRP(serve); err != nil { // before the frontends bind VIPs
		return nil, err
	}
	n.dp = dataplane.New(dataplane.Options{Logger: log, Registry: n.reg, DrainTimeout: opts.DrainTimeout, Clock: n.clock})
	if err := n.dp.Apply(serve.Config); err != nil {
		n.dp.Close(context.Background())
		return nil, err
	}
	n.setLoaded(cfg)
	if err := n.startAdmin(cfg.Node.Admin); err != nil {
		n.dp.Close(context.Background())
		return nil, err
	}
	// After the admin socket: a second lbd on this machine stops there, before it
	// touches the VIPs of the running one.
	if err := n.applyVRRP(context.Background(), serve); err != nil {
		n.Close(context.Background())
		return nil, err
	}
	if err := n.resumeCluster(cfg); err != nil { // cluster.go
		n.Close(context.Background())
		return nil, err
	}
	log.Info("lbd started", "node", cfg.Node.Name, "role", cfg.Node.Cluster.Role, "config", opts.ConfigPath, "version", n.version)
	return n, nil
}

func (n *Node) setLoaded(cfg *Config) {
	n.cfg = cfg
	n.configInfo.Reset()
	n.version = cfg.Hash()
	n.configInfo.WithLabelValues(n.version).Set(1)
	n.loadedAt = time.Now()
	n.lastReload.Set(float64(n.loadedAt.Unix()))
}

// ReloadOptions change what a reload accepts.
type ReloadOptions struct {
	// AllowEmpty applies a config without frontends and without vrrp instances over one
	// that has some: every frontend stops and every VIP is released. Without it such a
	// reload is refused with ErrEmptyConfig (a file emptied or cut short by mistake).
	AllowEmpty bool
}

// ErrEmptyConfig refuses a reload that would stop every frontend and release every VIP
// (the new config has neither) without ReloadOptions.AllowEmpty.
var ErrEmptyConfig = errors.New("the new config has no frontends and no vrrp instances: " +
	"it would stop every frontend and release every VIP (an empty or truncated file?); " +
	"to apply it anyway, reload with --allow-empty (lbd reload, lbctl reload)")

// Reload re-reads the config file and applies it. An invalid file is refused with its
// errors, and the old config keeps serving; so is a file that would remove every
// frontend and every VIP (ErrEmptyConfig; see ReloadWith). Changes to the node:
// section's admin listeners take effect at the next restart.
func (n *Node) Reload() (version string, err error) {
	return n.ReloadWith(ReloadOptions{})
}

// ReloadWith is Reload with options.
func (n *Node) ReloadWith(opts ReloadOptions) (version string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer func() {
		if err != nil {
			// Logged before counted: whoever waits on the counter finds the line.
			n.log.Error("config reload refused; the old config keeps serving", "config", n.path, "err", err)
			n.reloads.WithLabelValues("failure").Inc()
		}
	}()
	cfg, err := LoadFile(n.path)
	if err != nil {
		return "", err
	}
	cfg, err = n.clusterOverlay(cfg) // cluster.go: the committed document, not the file's
	if err != nil {
		return "", err
	}
	if !opts.AllowEmpty && removesEverything(n.cfg, cfg) {
		return "", fmt.Errorf("%w (now: %d frontend(s), %d vrrp instance(s))",
			ErrEmptyConfig, len(n.cfg.Frontends), len(n.cfg.VRRP.Instances))
	}
	if cfg.Node.Admin.Socket != n.cfg.Node.Admin.Socket || !samePtr(cfg.Node.Admin.Listen, n.cfg.Node.Admin.Listen) {
		n.log.Warn("node.admin changed; it takes effect at the next restart")
	}
	if isWitness(cfg) != n.wit.on {
		n.log.Warn("node.cluster.role changed; it takes effect at the next restart")
	}
	old := n.version
	if err := n.applyLocked(cfg); err != nil {
		return "", err
	}
	n.log.Info("config reloaded", "config", n.path, "version", n.version, "previous", old)
	n.reloads.WithLabelValues("success").Inc()
	return n.version, nil
}

// applyLocked applies a valid config: the VRRP instances are checked, the dataplane takes
// it (or refuses it whole, and the old config keeps serving), then VRRP. n.mu is held.
// Reload and a committed cluster document (cluster.go) both come through here.
//
// Everything that can refuse the config runs before the dataplane commits: the VRRP
// config is validated here (vip's Apply would refuse only what this refuses), and
// prepareVRRP checks the raw socket. A refusal therefore leaves both parts on the old
// config. Once the dataplane has committed, the node's record and VRRP follow it, even
// when the dataplane could not open every listener or VRRP could not start an instance:
// those are reported, not treated as a refusal of a config that already runs.
func (n *Node) applyLocked(cfg *Config) error {
	vc := cfg.VIPConfig()
	vc.SetDefaults()
	if err := vc.Validate(); err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	serve := n.served(cfg) // witness.go: a witness serves nothing
	if err := n.prepareVRRP(serve); err != nil {
		return err
	}
	if err := n.dp.Apply(serve.Config); errors.Is(err, dataplane.ErrPartlyListening) {
		n.log.Error("config applied, but the dataplane did not apply it all", "err", err)
	} else if err != nil {
		return err
	}
	if err := n.applyVRRP(context.Background(), serve); err != nil {
		// The config is valid and applied; an instance that could not start is
		// reported, and the others run.
		n.log.Error("config applied, but vrrp did not apply it all", "err", err)
	}
	n.setLoaded(cfg)
	return nil
}

// removesEverything reports whether going from old to new stops every frontend and
// every vrrp instance: new has none of either, and old has some.
func removesEverything(old, new *Config) bool {
	return len(new.Frontends) == 0 && len(new.VRRP.Instances) == 0 &&
		(len(old.Frontends) > 0 || len(old.VRRP.Instances) > 0)
}

func samePtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Close stops the admin API and the dataplane, letting connections finish until ctx is
// done.
func (n *Node) Close(ctx context.Context) error {
	var errs []error
	// The VIPs go first: each master hands over with priority 0 while the dataplane
	// still serves.
	if err := n.stopVRRP(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := n.stopCluster(); err != nil { // cluster.go
		errs = append(errs, err)
	}
	n.stopControl()
	for _, s := range n.admin {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admin api: %w", err))
		}
	}
	if err := n.dp.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	n.log.Info("lbd stopped")
	return errors.Join(errs...)
}

// startAdmin opens the unix socket (full API) and the optional TCP listener (metrics and
// read-only API, behind the bearer token when node.admin.token_file is set: admin.go).
func (n *Node) startAdmin(a AdminConfig) error {
	if err := os.MkdirAll(filepath.Dir(a.Socket), 0o750); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	// A socket file left by a previous run that is not answering is removed; one that
	// answers belongs to a running lbd.
	if c, err := net.DialTimeout("unix", a.Socket, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("admin socket %s: another lbd is running", a.Socket)
	}
	os.Remove(a.Socket)
	ul, err := net.Listen("unix", a.Socket)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(a.Socket, 0o660); err != nil {
		ul.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	n.serveAdmin(ul, n.adminHandler(true))
	if a.Listen != nil && *a.Listen != "" {
		var token string
		if a.TokenFile != "" {
			var err error
			if token, err = readTokenFile(a.TokenFile); err != nil {
				n.admin[0].Close()
				return fmt.Errorf("node.admin.token_file: %w", err)
			}
		}
		tl, err := net.Listen("tcp", *a.Listen)
		if err != nil {
			n.admin[0].Close()
			return fmt.Errorf("node.admin.listen: %w", err)
		}
		n.serveAdmin(tl, n.tcpAdminHandler(token))
		n.log.Info("admin listening", "address", tl.Addr().String())
	}
	return nil
}

func (n *Node) serveAdmin(l net.Listener, h http.Handler) {
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	n.admin = append(n.admin, s)
	go func() {
		if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("admin api stopped", "address", l.Addr().String(), "err", err)
		}
	}()
}
