package cluster

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var testKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func validConfig() Config {
	c := DefaultConfig()
	c.Name = "lb1"
	c.StateDir = "/var/lib/lbd"
	c.GossipKey = testKey
	return c
}

func TestDefaultConfigValid(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Role != RoleVoter || c.GossipBind != "0.0.0.0:7946" || c.RaftBind != "0.0.0.0:7947" || c.Timing.ProbeInterval != time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Config)
		want   string // one error, whole
	}{
		{"name", func(c *Config) { c.Name = "lb 1" }, `name: ("lb 1") must be 1 to 63 letters, digits, '.', '-' or '_', starting with a letter or digit`},
		{"role", func(c *Config) { c.Role = "observer" }, `role: ("observer") must be voter or witness`},
		{"state dir", func(c *Config) { c.StateDir = "state" }, `state_dir: ("state") must be an absolute path`},
		{"gossip bind", func(c *Config) { c.GossipBind = "eth0:7946" }, `gossip_bind: ("eth0:7946") must be IP:port`},
		{"gossip advertise", func(c *Config) { c.GossipAdvertise = "0.0.0.0:7946" }, `gossip_advertise: ("0.0.0.0:7946") must name a specific IP, not 0.0.0.0`},
		{"raft advertise port", func(c *Config) { c.RaftAdvertise = "198.18.0.1:0" }, `raft_advertise: ("198.18.0.1:0"): port must be 1-65535`},
		{"raft any port", func(c *Config) { c.RaftBind = "0.0.0.0:0" }, `raft_bind: (0.0.0.0:0) with port 0 needs a specific IP or raft_advertise`},
		{"same ports", func(c *Config) { c.RaftBind = c.GossipBind }, `raft_bind: (0.0.0.0:7946) is the same as gossip_bind`},
		{"seed", func(c *Config) { c.Seeds = []string{"lb2"} }, `seeds[0]: ("lb2") must be host:port`},
		{"seed port", func(c *Config) { c.Seeds = []string{"lb2:7946", "lb3:99999"} }, `seeds[1]: ("lb3:99999"): port must be 1-65535`},
		{"no key", func(c *Config) { c.GossipKey = "" }, `gossip_key: is required (base64 of 16, 24 or 32 random bytes)`},
		{"short key", func(c *Config) { c.GossipKey = base64.StdEncoding.EncodeToString([]byte("short")) }, `gossip_key: is 5 bytes, must be 16, 24 or 32`},
		{"bad key", func(c *Config) { c.GossipKey = "!!!" }, `gossip_key: (3 characters) is not valid base64`},
		{"probe timeout", func(c *Config) { c.Timing.ProbeTimeout = 2 * time.Second }, `timing.probe_timeout: (2s) must be shorter than probe_interval (1s)`},
		{"suspicion", func(c *Config) { c.Timing.SuspicionMult = 30 }, `timing.suspicion_mult: (30) must be 1-20`},
		{"lease", func(c *Config) { c.Timing.RaftLeaderLease = 2 * time.Second }, `timing.raft_leader_lease: (2s) must be at most raft_heartbeat_timeout (1s)`},
		{"election", func(c *Config) { c.Timing.RaftElectionTimeout = 500 * time.Millisecond }, `timing.raft_election_timeout: (500ms) must be at least raft_heartbeat_timeout (1s)`},
		{"apply timeout", func(c *Config) { c.Timing.ApplyTimeout = time.Millisecond }, `timing.apply_timeout: (1ms) must be 10ms-10m0s`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(tc.want, fe.FieldPath()+":") {
				t.Errorf("error %v is not a *FieldError for its field", err)
			}
		})
	}
}

func TestConfigErrorNeverShowsKey(t *testing.T) {
	c := validConfig()
	c.GossipKey = base64.StdEncoding.EncodeToString([]byte("secret-but-wrong-length"))
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), c.GossipKey) {
		t.Errorf("error %v shows the key", err)
	}
}
