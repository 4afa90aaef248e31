package vip

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func validInstance() Instance {
	return Instance{Name: "web", Interface: "eth0", VRID: 51, Addresses: []string{"198.18.0.100/24"}}
}

func TestSetDefaults(t *testing.T) {
	c := Config{Instances: []Instance{validInstance()}}
	c.Instances[0].TrackScripts = []TrackScript{{Name: "s", Command: []string{"true"}}}
	c.SetDefaults()
	in := c.Instances[0]
	yes := true
	garpInterval, garpDelay := 10*time.Millisecond, 5*time.Second
	want := Instance{
		Name: "web", Interface: "eth0", VRID: 51, Addresses: []string{"198.18.0.100/24"},
		Version: 3, Priority: 100, AdvertInterval: time.Second, Preempt: &yes, Label: "lbd",
		CheckUnicastSource: &yes,
		GARP:               GARP{Repeat: 5, Interval: &garpInterval, Delay: &garpDelay},
		TrackScripts:       []TrackScript{{Name: "s", Command: []string{"true"}, Interval: 2 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 2}},
		Notify:             Notify{Timeout: 10 * time.Second},
	}
	if diff := cmp.Diff(want, in); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// Explicit values survive.
	no := false
	zero := time.Duration(0)
	in2 := validInstance()
	in2.Preempt, in2.GARP.Delay = &no, &zero
	in2.SetDefaults()
	if *in2.Preempt || *in2.GARP.Delay != 0 {
		t.Errorf("explicit preempt false / garp delay 0 overwritten: %v %v", *in2.Preempt, *in2.GARP.Delay)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(c *Config)
		path   string // the FieldPath of the one expected error; "" for none
		substr string // in its message
	}{
		{"valid", func(c *Config) {}, "", ""},
		{"valid v2 with password", func(c *Config) { c.Instances[0].Version = 2; c.Instances[0].AuthPass = "secret" }, "", ""},
		{"valid IPv6", func(c *Config) { c.Instances[0].Addresses = []string{"2001:2::100/64", "2001:2::101"} }, "", ""},
		{"valid bare IPv4", func(c *Config) { c.Instances[0].Addresses = []string{"198.18.0.100"} }, "", ""},
		{"valid 100ms", func(c *Config) { c.Instances[0].AdvertInterval = 100 * time.Millisecond }, "", ""},
		{"valid owner", func(c *Config) { c.Instances[0].Priority = 255 }, "", ""},
		{"name required", func(c *Config) { c.Instances[0].Name = "" }, "instances[0].name", "required"},
		{"name with space", func(c *Config) { c.Instances[0].Name = "a b" }, "instances[0].name", "spaces"},
		{"interface required", func(c *Config) { c.Instances[0].Interface = "" }, "instances[0].interface", "required"},
		{"vrid 0", func(c *Config) { c.Instances[0].VRID = 0 }, "instances[0].vrid", "(0) must be 1-255"},
		{"vrid 256", func(c *Config) { c.Instances[0].VRID = 256 }, "instances[0].vrid", "(256) must be 1-255"},
		{"version 4", func(c *Config) { c.Instances[0].Version = 4 }, "instances[0].version", "(4) must be 2 or 3"},
		{"priority 256", func(c *Config) { c.Instances[0].Priority = 256 }, "instances[0].priority", "(256)"},
		{"priority negative", func(c *Config) { c.Instances[0].Priority = -1 }, "instances[0].priority", "(-1)"},
		{"interval 5ms", func(c *Config) { c.Instances[0].AdvertInterval = 5 * time.Millisecond }, "instances[0].advert_interval", "(5ms) must be 10ms-40.95s"},
		{"interval 41s", func(c *Config) { c.Instances[0].AdvertInterval = 41 * time.Second }, "instances[0].advert_interval", "(41s)"},
		{"interval 15ms", func(c *Config) { c.Instances[0].AdvertInterval = 15 * time.Millisecond }, "instances[0].advert_interval", "multiple of 10ms"},
		{"v2 interval 1.5s", func(c *Config) { c.Instances[0].Version = 2; c.Instances[0].AdvertInterval = 1500 * time.Millisecond }, "instances[0].advert_interval", "whole seconds"},
		{"v2 interval 256s", func(c *Config) { c.Instances[0].Version = 2; c.Instances[0].AdvertInterval = 256 * time.Second }, "instances[0].advert_interval", "(4m16s)"},
		{"v2 IPv6", func(c *Config) { c.Instances[0].Version = 2; c.Instances[0].Addresses = []string{"2001:2::1/64"} }, "instances[0].version", "IPv4 only"},
		{"preempt delay negative", func(c *Config) { c.Instances[0].PreemptDelay = -time.Second }, "instances[0].preempt_delay", "(-1s)"},
		{"no addresses", func(c *Config) { c.Instances[0].Addresses = nil }, "instances[0].addresses", "at least one"},
		{"bad address", func(c *Config) { c.Instances[0].Addresses = []string{"198.18.0.300/24"} }, "instances[0].addresses[0]", `"198.18.0.300/24"`},
		{"multicast address", func(c *Config) { c.Instances[0].Addresses = []string{"224.0.0.18"} }, "instances[0].addresses[0]", "unicast"},
		{"mixed families", func(c *Config) { c.Instances[0].Addresses = []string{"198.18.0.1/24", "2001:2::1/64"} }, "instances[0].addresses[1]", "IPv6 but the first address is IPv4"},
		{"duplicate address", func(c *Config) { c.Instances[0].Addresses = []string{"198.18.0.1/24", "198.18.0.1/32"} }, "instances[0].addresses[1]", "duplicate"},
		{"label too long", func(c *Config) { c.Instances[0].Label = "abcdefghijklmnop" }, "instances[0].label", "1-15"},
		{"label with colon", func(c *Config) { c.Instances[0].Label = "a:b" }, "instances[0].label", "':'"},
		{"unicast peer bad", func(c *Config) { c.Instances[0].UnicastPeers = []string{"nope"} }, "instances[0].unicast_peers[0]", `("nope") is not an IP address`},
		{"unicast peer family", func(c *Config) { c.Instances[0].UnicastPeers = []string{"2001:2::2"} }, "instances[0].unicast_peers[0]", "not IPv4"},
		{"unicast source family", func(c *Config) { c.Instances[0].UnicastSource = "2001:2::2" }, "instances[0].unicast_source", "not IPv4"},
		{"auth pass v3", func(c *Config) { c.Instances[0].AuthPass = "x" }, "instances[0].auth_pass", "version 2 only"},
		{"auth pass long", func(c *Config) { c.Instances[0].Version = 2; c.Instances[0].AuthPass = "123456789" }, "instances[0].auth_pass", "(9 bytes)"},
		{"auth key short", func(c *Config) { c.Instances[0].AuthKey = "short" }, "instances[0].auth_key", "at least 16 bytes"},
		{"checksum as v2 on v2", func(c *Config) { c.Instances[0].Version = 2; c.Instances[0].ChecksumAsV2 = true }, "instances[0].checksum_as_v2", "version 3 over IPv4"},
		{"garp repeat", func(c *Config) { c.Instances[0].GARP.Repeat = 101 }, "instances[0].garp.repeat", "(101)"},
		{"garp refresh", func(c *Config) { c.Instances[0].GARP.Refresh = 10 * time.Millisecond }, "instances[0].garp.refresh", "(10ms)"},
		{"track interface name", func(c *Config) { c.Instances[0].TrackInterfaces = []TrackInterface{{Weight: -10}} }, "instances[0].track_interfaces[0].name", "required"},
		{"track weight range", func(c *Config) { c.Instances[0].TrackInterfaces = []TrackInterface{{Name: "eth1", Weight: 254}} }, "instances[0].track_interfaces[0].weight", "(254)"},
		{"owner weight", func(c *Config) {
			c.Instances[0].Priority = 255
			c.Instances[0].TrackChecks = []TrackCheck{{Name: "dataplane", Weight: -50}}
		}, "instances[0].track_checks[0].weight", "address owner"},
		{"script command", func(c *Config) { c.Instances[0].TrackScripts = []TrackScript{{Name: "s"}} }, "instances[0].track_scripts[0].command", "required"},
		{"script duplicate", func(c *Config) {
			c.Instances[0].TrackScripts = []TrackScript{{Name: "s", Command: []string{"a"}}, {Name: "s", Command: []string{"b"}}}
		}, "instances[0].track_scripts[1].name", "duplicate"},
		{"script interval", func(c *Config) {
			c.Instances[0].TrackScripts = []TrackScript{{Name: "s", Command: []string{"a"}, Interval: time.Millisecond}}
		}, "instances[0].track_scripts[0].interval", "(1ms)"},
		{"check duplicate", func(c *Config) { c.Instances[0].TrackChecks = []TrackCheck{{Name: "d"}, {Name: "d"}} }, "instances[0].track_checks[1].name", "duplicate"},
		{"notify empty program", func(c *Config) { c.Instances[0].Notify.Master = []string{""} }, "instances[0].notify.master", "empty program"},
		{"notify timeout", func(c *Config) { c.Instances[0].Notify.Timeout = time.Millisecond }, "instances[0].notify.timeout", "(1ms)"},
		{"duplicate name", func(c *Config) {
			in := validInstance()
			in.VRID = 52
			c.Instances = append(c.Instances, in)
		}, "instances[1].name", `duplicate instance name "web"`},
		{"duplicate vrid same interface and family", func(c *Config) {
			in := validInstance()
			in.Name = "api"
			c.Instances = append(c.Instances, in)
		}, "instances[1].vrid", `already used by instance "web"`},
		{"same vrid other family is fine", func(c *Config) {
			in := validInstance()
			in.Name, in.Addresses = "web6", []string{"2001:2::100/64"}
			c.Instances = append(c.Instances, in)
		}, "", ""},
		{"sync group unknown member", func(c *Config) { c.SyncGroups = []SyncGroup{{Name: "g", Instances: []string{"nope"}}} }, "sync_groups[0].instances[0]", `no instance named "nope"`},
		{"sync group empty", func(c *Config) { c.SyncGroups = []SyncGroup{{Name: "g"}} }, "sync_groups[0].instances", "at least one"},
		{"sync group name", func(c *Config) { c.SyncGroups = []SyncGroup{{Instances: []string{"web"}}} }, "sync_groups[0].name", "required"},
		{"instance in two groups", func(c *Config) {
			c.SyncGroups = []SyncGroup{{Name: "a", Instances: []string{"web"}}, {Name: "b", Instances: []string{"web"}}}
		}, "sync_groups[1].instances[0]", `already in sync group "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Instances: []Instance{validInstance()}}
			tt.mod(&c)
			c.SetDefaults()
			err := c.Validate()
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want an error at %s", tt.path)
			}
			var all []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				all = j.Unwrap()
			}
			if len(all) != 1 {
				t.Fatalf("want exactly one error, got %d:\n%v", len(all), err)
			}
			var fe *FieldError
			if !errors.As(all[0], &fe) {
				t.Fatalf("%v is not a *FieldError", all[0])
			}
			if fe.FieldPath() != tt.path || !strings.Contains(fe.Msg, tt.substr) {
				t.Errorf("got %q, want path %s and a message with %q", fe.Error(), tt.path, tt.substr)
			}
		})
	}
}

func TestInstanceHelpers(t *testing.T) {
	in := validInstance()
	in.Addresses = []string{"198.18.0.100/24", "198.18.1.1"}
	in.UnicastPeers = []string{"198.18.0.2", "198.18.0.3"}
	if in.Family() != 4 {
		t.Errorf("Family = %d", in.Family())
	}
	if got := in.Prefixes(); len(got) != 2 || got[0].String() != "198.18.0.100/24" || got[1].String() != "198.18.1.1/32" {
		t.Errorf("Prefixes = %v", got)
	}
	if got := in.Peers(); len(got) != 2 || got[1].String() != "198.18.0.3" {
		t.Errorf("Peers = %v", got)
	}
}

// TestValidateScripts: script_user must exist; with script_security a script others
// may change, or one in a directory others may change, is refused naming the field and
// the file.
func TestValidateScripts(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the check accepts files owned by lbd's own user")
	}
	dir := t.TempDir() // under /tmp, writable by others
	loose := filepath.Join(dir, "loose.sh")
	if err := os.WriteFile(loose, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	safeDir := filepath.Join(dir, "safe")
	if err := os.Mkdir(safeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // only /tmp above it is loose now
		t.Fatal(err)
	}
	worldWritable := filepath.Join(safeDir, "ww.sh")
	if err := os.WriteFile(worldWritable, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(worldWritable, 0o757); err != nil {
		t.Fatal(err)
	}
	off := false
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{"system command", func(c *Config) { c.Instances[0].Notify.Master = []string{"true"} }, nil},
		{"not found: checked when run", func(c *Config) { c.Instances[0].Notify.Master = []string{"/nonexistent/notify.sh"} }, nil},
		{"world-writable file", func(c *Config) { c.Instances[0].Notify.Any = []string{worldWritable} },
			[]string{"instances[0].notify.any", worldWritable, "writable by others"}},
		{"directory above writable by others", func(c *Config) {
			c.Instances[0].TrackScripts = []TrackScript{{Name: "s", Command: []string{loose, "x"}}}
		}, []string{"instances[0].track_scripts[0].command", loose, "in directory /tmp"}},
		{"sync group notify", func(c *Config) {
			c.SyncGroups = []SyncGroup{{Name: "g", Instances: []string{"web"}, Notify: Notify{Stop: []string{worldWritable}}}}
		}, []string{"sync_groups[0].notify.stop", worldWritable}},
		{"script_security off", func(c *Config) {
			c.ScriptSecurity = &off
			c.Instances[0].Notify.Any = []string{worldWritable}
		}, nil},
		{"unknown script_user", func(c *Config) { c.ScriptUser = "no-such-user-lbd" }, []string{"script_user", "no-such-user-lbd"}},
		{"script_user root", func(c *Config) { c.ScriptUser = "root" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Instances: []Instance{{Name: "web", Interface: "eth0", VRID: 1, Addresses: []string{"198.18.0.100/24"}}}}
			tt.edit(&c)
			c.SetDefaults()
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestRunAsScriptUser: a command runs with the credential of script_user.
func TestRunAsScriptUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to change user")
	}
	u, _, err := resolveScriptUser("nobody")
	if err != nil {
		t.Skipf("no user nobody here: %v", err)
	}
	if u.cred == nil || u.cred.Uid == 0 {
		t.Fatalf("nobody resolved to %+v", u.cred)
	}
	want := strconv.Itoa(int(u.cred.Uid))
	if err := runCommand(context.Background(), []string{"sh", "-c", `test "$(id -u)" = "$1"`, "sh", want}, u.cred); err != nil {
		t.Errorf("not run as uid %s: %v", want, err)
	}
	if err := runCommand(context.Background(), []string{"sh", "-c", `test "$(id -u)" = 0`}, u.cred); err == nil {
		t.Errorf("ran as root with the credential of nobody")
	}
}

// TestScriptSecurityAtRun: a script that became unsafe after the config was loaded is
// refused when it is run, and not run.
func TestScriptSecurityAtRun(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the check accepts files owned by lbd's own user")
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	script := filepath.Join(dir, "notify.sh") // under /tmp: others may replace it
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	u := &scriptUser{secure: true}
	if err := u.run(context.Background(), []string{script, marker}); err == nil || !strings.Contains(err.Error(), "script_security") {
		t.Errorf("run: %v, want a refusal by script_security", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the refused script ran")
	}
	u.secure = false
	if err := u.run(context.Background(), []string{script, marker}); err != nil {
		t.Fatalf("with script_security off: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the script did not run with script_security off: %v", err)
	}
}
