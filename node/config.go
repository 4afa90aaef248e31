package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"lbd/dataplane"
	"lbd/node/api"
	"lbd/vip"
)

// Config is the schema of the config file (/etc/lbd/lbd.yaml): the node: section, which
// belongs to this machine only, and inline beside it the cluster-wide document, which a
// node in a cluster takes from raft instead of from its file. See docs/configuration.md.
type Config struct {
	// Node is what belongs to this machine only.
	Node NodeConfig `yaml:"node"`
	// Config is the dataplane's part of the cluster-wide document: frontends and
	// backends, at the top level of the file.
	dataplane.Config `yaml:",inline"`
	// VRRP is the VIP manager's part of the cluster-wide document: the VRRP instances
	// and sync groups (vrrp.go merges node.vrrp into them). Default: none.
	VRRP vip.Config `yaml:"vrrp"`
}

// NodeConfig is the node: section of the file.
type NodeConfig struct {
	// Name identifies the node in the cluster, in logs and in metrics: 1 to 63 letters,
	// digits, '.', '-' or '_'. Default: the machine's hostname.
	Name string `yaml:"name"`
	// Admin says where the node serves lbctl and metrics.
	Admin AdminConfig `yaml:"admin"`
	// StateDir holds the node's persistent state (raft log, snapshots, node id, and
	// vips.json, the record of the addresses lbd added: viprecord.go); an absolute
	// path. Default: /var/lib/lbd.
	StateDir string `yaml:"state_dir"`
	// VRRP is this machine's part of the VRRP instances: interface, priority, unicast
	// source and peers (vrrp.go).
	VRRP VRRPNode `yaml:"vrrp"`
	// Cluster is where this machine's cluster agent listens and whom it contacts
	// (cluster_config.go).
	Cluster ClusterNode `yaml:"cluster"`
}

// AdminConfig says where the node serves the admin API and metrics.
type AdminConfig struct {
	// Socket is the unix socket of the admin API that lbctl talks to; an absolute path.
	// Default: /run/lbd/lbd.sock.
	Socket string `yaml:"socket"`
	// Listen is the host:port of a plain HTTP listener serving /metrics and the admin
	// API read-only; "" disables it. It has no TLS, so the host must be a loopback
	// address or "localhost". Nil means unset. Default: 127.0.0.1:9180.
	Listen *string `yaml:"listen"`
	// TokenFile is a file (mode 0600 or stricter) holding a bearer token of at least 16
	// characters; when set, every request on the TCP listener must carry
	// "Authorization: Bearer TOKEN". Without it the TCP listener does not serve the
	// sticky tables (their keys are session cookies). An absolute path, read at start.
	// Default: none.
	TokenFile string `yaml:"token_file"`
}

// Defaults of the node: section, applied by SetDefaults.
const (
	DefaultAdminSocket = api.DefaultSocket
	DefaultAdminListen = "127.0.0.1:9180"
	DefaultStateDir    = "/var/lib/lbd"
)

// hostname gives the default node name; a variable so that tests can replace it.
var hostname = os.Hostname

// SetDefaults fills every unset field of the node: section and of the cluster-wide
// document with its default.
func (c *Config) SetDefaults() {
	c.Node.setDefaults()
	c.Config.SetDefaults()
	c.VRRP.SetDefaults()
}

func (n *NodeConfig) setDefaults() {
	if n.Name == "" {
		if h, err := hostname(); err == nil {
			n.Name = h
		}
	}
	if n.Admin.Socket == "" {
		n.Admin.Socket = DefaultAdminSocket
	}
	if n.Admin.Listen == nil {
		l := DefaultAdminListen
		n.Admin.Listen = &l
	}
	if n.StateDir == "" {
		n.StateDir = DefaultStateDir
	}
	n.VRRP.setDefaults()    // vrrp.go
	n.Cluster.setDefaults() // cluster_config.go
}

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks a config that SetDefaults has been applied to. It returns every problem
// it finds, joined; each is a *dataplane.FieldError naming the field's path in the file.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &dataplane.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	n := c.Node
	switch {
	case n.Name == "":
		add("node.name", "is required (the hostname is not available)")
	case !nodeNameRE.MatchString(n.Name):
		add("node.name", "must be 1 to 63 letters, digits, '.', '-' or '_', starting with a letter or digit, not %q", n.Name)
	}
	if !filepath.IsAbs(n.Admin.Socket) {
		add("node.admin.socket", "must be an absolute path, not %q", n.Admin.Socket)
	}
	if n.Admin.Listen != nil && *n.Admin.Listen != "" {
		if err := checkListen(*n.Admin.Listen); err != nil {
			add("node.admin.listen", "%v", err)
		} else if !loopbackListen(*n.Admin.Listen) {
			add("node.admin.listen", "(%q) must be a loopback address (127.0.0.1, ::1 or localhost): "+
				"the TCP admin listener has no TLS; reach it from elsewhere through a tunnel or a local proxy", *n.Admin.Listen)
		}
	}
	if n.Admin.TokenFile != "" && !filepath.IsAbs(n.Admin.TokenFile) {
		add("node.admin.token_file", "must be an absolute path, not %q", n.Admin.TokenFile)
	}
	if !filepath.IsAbs(n.StateDir) {
		add("node.state_dir", "must be an absolute path, not %q", n.StateDir)
	}
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateVRRP()...)    // vrrp.go
	errs = append(errs, c.validateCluster()...) // cluster_config.go
	return errors.Join(errs...)
}

// checkListen accepts host:port with port 1-65535.
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be 1-65535", s)
	}
	return nil
}

// loopbackListen reports whether host:port s listens on loopback only.
func loopbackListen(s string) bool {
	host, _, _ := net.SplitHostPort(s)
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Hash is the content version of the cluster-wide document: the first 12 hex digits of
// the SHA-256 of the document re-marshalled in canonical form (struct field order, the
// node: section left out). Call it after SetDefaults, as Parse does, so that two files
// that differ only in layout, comments, key order or spelled-out defaults hash the same,
// and nodes with different node: sections but one document agree.
func (c *Config) Hash() string {
	doc := *c
	doc.Node = NodeConfig{}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		// Marshalling plain structs of strings, numbers and durations does not fail.
		panic(fmt.Sprintf("node: marshalling config: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}
