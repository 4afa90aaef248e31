package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Config is the VIP manager's part of the cluster-wide document: the virtual routers
// (VRRP instances) this node takes part in, and the groups that move together. The zero
// value runs nothing.
type Config struct {
	// Instances are the virtual routers. Default: none.
	Instances []Instance `yaml:"instances"`
	// SyncGroups move their member instances together. Default: none.
	SyncGroups []SyncGroup `yaml:"sync_groups"`
	// ScriptUser is the user track and notify scripts run as (keepalived's
	// script_user), with its primary group and supplementary groups; it must exist.
	// Default: "lbd_script" when that user exists, else the user lbd runs as (root,
	// with a warning), as keepalived falls back from keepalived_script.
	ScriptUser string `yaml:"script_user"`
	// ScriptSecurity refuses a track or notify script that a user other than root
	// (or lbd's own user) may change: the file, or a directory above it, is owned by
	// another user, or writable by a group other than root's or by others
	// (keepalived's enable_script_security). Checked when the config is validated and
	// again before each run (a refused run is a failure). A command not found at
	// validation passes; it fails when run. Default (nil, which SetDefaults leaves): true.
	ScriptSecurity *bool `yaml:"script_security"`
}

// Instance is one virtual router (keepalived's vrrp_instance).
type Instance struct {
	// Name identifies the instance in logs, metrics, notify scripts and the admin API.
	// Required, unique.
	Name string `yaml:"name"`
	// Interface is the interface VRRP runs on and the addresses are added to. Required.
	Interface string `yaml:"interface"`
	// VRID is the virtual router id, 1-255; unique per interface and address family.
	// Required.
	VRID int `yaml:"vrid"`
	// Version is the VRRP version: 3 (RFC 5798, IPv4 and IPv6) or 2 (RFC 3768, IPv4
	// only; for peers that run keepalived with vrrp_version 2). Default: 3.
	Version int `yaml:"version"`
	// Priority is this node's priority, 1-255; the highest live node is master; 255
	// means this node owns the addresses. Default: 100.
	Priority int `yaml:"priority"`
	// AdvertInterval is how often the master advertises: 10ms-40.95s in steps of 10ms
	// (version 3), or whole seconds 1s-255s (version 2). Default: 1s.
	AdvertInterval time.Duration `yaml:"advert_interval"`
	// Preempt lets a higher-priority backup take over from a live lower-priority
	// master. Default: true.
	Preempt *bool `yaml:"preempt"`
	// PreemptDelay is how long after startup (or a fault clearing) this node waits
	// before preempting a lower-priority master, 0-1h. Default: 0.
	PreemptDelay time.Duration `yaml:"preempt_delay"`
	// Accept is RFC 5798's Accept_Mode: a master that is not the owner accepts packets
	// addressed to the virtual addresses. lbd binds the addresses to serve them, so
	// this is reported, not enforced. Default: false.
	Accept bool `yaml:"accept"`
	// Addresses are the virtual addresses with their prefix length, all of one family,
	// e.g. "198.18.0.100/24"; a bare address means /32 or /128. At least one.
	Addresses []string `yaml:"addresses"`
	// Label marks the addresses lbd adds (an IPv4 label "<interface>:<label>"), so that
	// the ones left by a crash are found and removed. Default: "lbd".
	Label string `yaml:"label"`
	// UnicastPeers are the other routers' addresses, for networks that drop multicast;
	// advertisements go to each of them instead of 224.0.0.18 / ff02::12. Default:
	// none (multicast).
	UnicastPeers []string `yaml:"unicast_peers"`
	// UnicastSource is the address advertisements are sent from. Default: the
	// interface's first address of the family (IPv6: its link-local address).
	UnicastSource string `yaml:"unicast_source"`
	// CheckUnicastSource drops advertisements from any sender that is not one of
	// UnicastPeers (keepalived's check_unicast_src, which is off by default there). It
	// applies only with UnicastPeers. Default: true.
	CheckUnicastSource *bool `yaml:"check_unicast_src"`
	// LowerPrioNoAdvert: as master, do not answer a lower-priority advertisement with
	// an advertisement (RFC 5798 discards it; keepalived's lower_prio_no_advert). The
	// master still announces its addresses again, at most once per advert interval.
	// Default: false (answer at once, at most once per advert interval).
	LowerPrioNoAdvert bool `yaml:"lower_prio_no_advert"`
	// AuthPass is the version 2 simple-text password (auth_type PASS), at most 8 bytes;
	// empty means auth_type none. Version 2 only. Default: "".
	AuthPass string `yaml:"auth_pass"`
	// ChecksumAsV2 computes the version 3 IPv4 checksum without the pseudo-header, as
	// keepalived's v3_checksum_as_v2 does. Default: false.
	ChecksumAsV2 bool `yaml:"checksum_as_v2"`
	// AuthKey turns on lbd's authenticated VRRP (auth.go): every advertisement
	// carries an HMAC-SHA256 under this key and a sequence number, and adverts
	// without a valid one, or replayed, are dropped. At least 16 bytes, the same on
	// every router of the instance, which must all be lbd. Default: "" (off).
	AuthKey string `yaml:"auth_key"`
	// GARP configures the announcements made on becoming master.
	GARP GARP `yaml:"garp"`
	// TrackInterfaces adjust the priority by link state; the instance's own interface
	// is always tracked with weight 0. Default: none.
	TrackInterfaces []TrackInterface `yaml:"track_interfaces"`
	// TrackScripts adjust the priority by a command's exit status (keepalived's
	// vrrp_script). Default: none.
	TrackScripts []TrackScript `yaml:"track_scripts"`
	// TrackChecks adjust the priority by checks the node reports through
	// Manager.SetCheck: its own dataplane answering, the share of healthy servers in a
	// backend. Default: none.
	TrackChecks []TrackCheck `yaml:"track_checks"`
	// Notify runs commands on transitions.
	Notify Notify `yaml:"notify"`
}

// GARP configures gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6).
type GARP struct {
	// Repeat is how many announcements one burst sends per address, 1-100. Default: 5.
	Repeat int `yaml:"repeat"`
	// Interval is the pause between the announcements of a burst, 0-1s. Default: 10ms.
	Interval *time.Duration `yaml:"interval"`
	// Delay is when the second burst follows the first after becoming master, 0 for no
	// second burst. Default: 5s.
	Delay *time.Duration `yaml:"delay"`
	// Refresh repeats a burst this often while master, for switches whose tables age
	// out; 0 turns it off, otherwise at least 1s. Default: 0.
	Refresh time.Duration `yaml:"refresh"`
}

// TrackInterface adjusts the priority by an interface's link state.
type TrackInterface struct {
	// Name of the interface. Required.
	Name string `yaml:"name"`
	// Weight, -253 to 253: a positive weight is added while the link is up, a negative
	// one while it is down; 0 puts the instance in FAULT while it is down. Default: 0.
	Weight int `yaml:"weight"`
}

// TrackScript is a command run periodically; it is healthy once it has exited 0 Rise
// times in a row and failed once it has failed Fall times in a row. It starts failed,
// one success away from healthy.
type TrackScript struct {
	// Name identifies the script in logs and status. Required, unique in the instance.
	Name string `yaml:"name"`
	// Command is the program and its arguments (no shell). Required.
	Command []string `yaml:"command"`
	// Interval between runs, at least 100ms. Default: 2s.
	Interval time.Duration `yaml:"interval"`
	// Timeout kills a run that takes longer (a failure), at least 10ms. Default: 2s.
	Timeout time.Duration `yaml:"timeout"`
	// Rise is the successes in a row that make the script healthy, 1-100. Default: 2.
	Rise int `yaml:"rise"`
	// Fall is the failures in a row that make it failed, 1-100. Default: 2.
	Fall int `yaml:"fall"`
	// Weight as TrackInterface.Weight: added while healthy if positive, while failed
	// if negative; 0 means FAULT while failed. Default: 0.
	Weight int `yaml:"weight"`
}

// TrackCheck adjusts the priority by a check the node reports (Manager.SetCheck) with
// a level from 0 (failed) to 1 (healthy); a level in between, such as the share of a
// backend's healthy servers, scales the weight.
type TrackCheck struct {
	// Name of the check, as the node reports it (e.g. "dataplane", "backend:web").
	// Required, unique in the instance.
	Name string `yaml:"name"`
	// Weight, -253 to 253: a positive weight adds weight × level, a negative one
	// weight × (1 - level), rounded; 0 puts the instance in FAULT while the level is 0.
	// Default: 0.
	Weight int `yaml:"weight"`
}

// Notify are the commands run on transitions, in order and one at a time per instance.
// Each is a program with its arguments (no shell). A transition that happens while a
// command runs replaces any transition still waiting, so only the latest state's
// commands run after a burst; stopping waits for the commands at most Timeout.
type Notify struct {
	// Master runs on becoming master. Default: none.
	Master []string `yaml:"master"`
	// Backup runs on becoming backup. Default: none.
	Backup []string `yaml:"backup"`
	// Fault runs on entering FAULT. Default: none.
	Fault []string `yaml:"fault"`
	// Stop runs when the instance stops. Default: none.
	Stop []string `yaml:"stop"`
	// Any runs after the specific command on every transition, with four arguments
	// appended as keepalived's notify: "INSTANCE", the name, the state (MASTER, BACKUP,
	// FAULT, STOP) and the priority. Default: none.
	Any []string `yaml:"any"`
	// Timeout kills a command that runs longer (with its process group), at least
	// 10ms; it also bounds how long stopping waits for the commands. Default: 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// SyncGroup moves its instances together (keepalived's vrrp_sync_group): when one
// becomes master or backup, the others follow; when one is in FAULT, they all are, so
// the group becomes master only when no member is faulty.
type SyncGroup struct {
	// Name identifies the group. Required, unique.
	Name string `yaml:"name"`
	// Instances are the names of the members; an instance is in at most one group. At
	// least one.
	Instances []string `yaml:"instances"`
	// Notify runs commands once per transition of the group, after (not instead of)
	// the members' own: the group is MASTER, BACKUP or STOP when all its members are,
	// and FAULT when any is. Any gets "GROUP", the group's name, the state and 0 (as
	// keepalived's notify for a group). The commands run in order, one at a time per
	// group.
	Notify Notify `yaml:"notify"`
}

// Defaults applied by SetDefaults.
const (
	DefaultVersion        = 3
	DefaultPriority       = 100
	DefaultAdvertInterval = time.Second
	DefaultLabel          = "lbd"
	DefaultGARPRepeat     = 5
	DefaultGARPInterval   = 10 * time.Millisecond
	DefaultGARPDelay      = 5 * time.Second
	DefaultScriptInterval = 2 * time.Second
	DefaultScriptTimeout  = 2 * time.Second
	DefaultScriptRise     = 2
	DefaultScriptFall     = 2
	DefaultNotifyTimeout  = 10 * time.Second
	maxWeight             = 253
)

// SetDefaults fills every unset field with its default. Fields set to invalid values are
// left for Validate to report.
func (c *Config) SetDefaults() {
	for i := range c.Instances {
		c.Instances[i].SetDefaults()
	}
	for i := range c.SyncGroups {
		if c.SyncGroups[i].Notify.Timeout == 0 {
			c.SyncGroups[i].Notify.Timeout = DefaultNotifyTimeout
		}
	}
}

// SetDefaults fills the instance's unset fields with their defaults.
func (in *Instance) SetDefaults() {
	if in.Version == 0 {
		in.Version = DefaultVersion
	}
	if in.Priority == 0 {
		in.Priority = DefaultPriority
	}
	if in.AdvertInterval == 0 {
		in.AdvertInterval = DefaultAdvertInterval
	}
	if in.Preempt == nil {
		t := true
		in.Preempt = &t
	}
	if in.Label == "" {
		in.Label = DefaultLabel
	}
	if in.CheckUnicastSource == nil {
		t := true
		in.CheckUnicastSource = &t
	}
	g := &in.GARP
	if g.Repeat == 0 {
		g.Repeat = DefaultGARPRepeat
	}
	if g.Interval == nil {
		d := DefaultGARPInterval
		g.Interval = &d
	}
	if g.Delay == nil {
		d := DefaultGARPDelay
		g.Delay = &d
	}
	for i := range in.TrackScripts {
		s := &in.TrackScripts[i]
		if s.Interval == 0 {
			s.Interval = DefaultScriptInterval
		}
		if s.Timeout == 0 {
			s.Timeout = DefaultScriptTimeout
		}
		if s.Rise == 0 {
			s.Rise = DefaultScriptRise
		}
		if s.Fall == 0 {
			s.Fall = DefaultScriptFall
		}
	}
	if in.Notify.Timeout == 0 {
		in.Notify.Timeout = DefaultNotifyTimeout
	}
}

// FieldError is a problem with one field of the config. Path is the field's place in the
// document, such as "instances[0].vrid".
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// FieldPath returns the field's place in the document.
func (e *FieldError) FieldPath() string { return e.Path }

type fieldErrors []error

func (l *fieldErrors) add(path, format string, args ...any) {
	*l = append(*l, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (l fieldErrors) err() error { return errors.Join(l...) }

// Validate checks a config that SetDefaults has been applied to. It returns every
// problem it finds, joined; each is a *FieldError.
func (c *Config) Validate() error {
	var errs fieldErrors
	names := map[string]bool{}
	type router struct {
		ifname string
		family int
		vrid   int
	}
	routers := map[router]string{}
	for i := range c.Instances {
		in := &c.Instances[i]
		p := fmt.Sprintf("instances[%d]", i)
		in.validate(&errs, p)
		if in.Name != "" {
			if names[in.Name] {
				errs.add(p+".name", "duplicate instance name %q", in.Name)
			}
			names[in.Name] = true
		}
		if fam := in.Family(); fam != 0 && in.Interface != "" && in.VRID >= 1 && in.VRID <= 255 {
			r := router{in.Interface, fam, in.VRID}
			if other, ok := routers[r]; ok {
				errs.add(p+".vrid", "(%d) is already used by instance %q on %s for IPv%d", in.VRID, other, in.Interface, fam)
			} else {
				routers[r] = in.Name
			}
		}
	}
	groups := map[string]bool{}
	member := map[string]string{}
	for i, g := range c.SyncGroups {
		p := fmt.Sprintf("sync_groups[%d]", i)
		switch {
		case g.Name == "":
			errs.add(p+".name", "is required")
		case groups[g.Name]:
			errs.add(p+".name", "duplicate sync group name %q", g.Name)
		}
		groups[g.Name] = true
		if len(g.Instances) == 0 {
			errs.add(p+".instances", "needs at least one instance")
		}
		for j, name := range g.Instances {
			q := fmt.Sprintf("%s.instances[%d]", p, j)
			switch {
			case !names[name]:
				errs.add(q, "no instance named %q", name)
			case member[name] != "":
				errs.add(q, "instance %q is already in sync group %q", name, member[name])
			default:
				member[name] = g.Name
			}
		}
		validateNotify(&errs, p+".notify", g.Notify)
	}
	c.validateScripts(&errs)
	return errs.err()
}

func (in *Instance) validate(errs *fieldErrors, p string) {
	if in.Name == "" {
		errs.add(p+".name", "is required")
	} else if strings.ContainsAny(in.Name, " \t\n/") {
		errs.add(p+".name", "(%q) must not contain spaces or slashes", in.Name)
	}
	if in.Interface == "" {
		errs.add(p+".interface", "is required")
	}
	if in.VRID < 1 || in.VRID > 255 {
		errs.add(p+".vrid", "(%d) must be 1-255", in.VRID)
	}
	if in.Version != 2 && in.Version != 3 {
		errs.add(p+".version", "(%d) must be 2 or 3", in.Version)
	}
	if in.Priority < 1 || in.Priority > OwnerPriority {
		errs.add(p+".priority", "(%d) must be 1-255", in.Priority)
	}
	switch in.Version {
	case 3:
		if in.AdvertInterval < 10*time.Millisecond || in.AdvertInterval > 40950*time.Millisecond {
			errs.add(p+".advert_interval", "(%v) must be 10ms-40.95s for version 3", in.AdvertInterval)
		} else if in.AdvertInterval%(10*time.Millisecond) != 0 {
			errs.add(p+".advert_interval", "(%v) must be a multiple of 10ms for version 3", in.AdvertInterval)
		}
	case 2:
		if in.AdvertInterval < time.Second || in.AdvertInterval > 255*time.Second || in.AdvertInterval%time.Second != 0 {
			errs.add(p+".advert_interval", "(%v) must be whole seconds 1s-255s for version 2", in.AdvertInterval)
		}
	}
	if in.PreemptDelay < 0 || in.PreemptDelay > time.Hour {
		errs.add(p+".preempt_delay", "(%v) must be 0-1h", in.PreemptDelay)
	}
	fam := 0
	if len(in.Addresses) == 0 {
		errs.add(p+".addresses", "needs at least one address")
	}
	seen := map[netip.Addr]bool{}
	for i, s := range in.Addresses {
		q := fmt.Sprintf("%s.addresses[%d]", p, i)
		pfx, err := parsePrefix(s)
		if err != nil {
			errs.add(q, "%v", err)
			continue
		}
		f := familyOf(pfx.Addr())
		if fam == 0 {
			fam = f
		} else if f != fam {
			errs.add(q, "(%s) is IPv%d but the first address is IPv%d; use one instance per family", s, f, fam)
		}
		if seen[pfx.Addr()] {
			errs.add(q, "duplicate address %s", pfx.Addr())
		}
		seen[pfx.Addr()] = true
	}
	if in.Version == 2 && fam == 6 {
		errs.add(p+".version", "2 is IPv4 only; IPv6 addresses need version 3")
	}
	if in.Label == "" || len(in.Label) > 15 || strings.ContainsAny(in.Label, " \t\n:/") {
		errs.add(p+".label", "(%q) must be 1-15 characters without spaces, ':' or '/'", in.Label)
	}
	for i, s := range in.UnicastPeers {
		q := fmt.Sprintf("%s.unicast_peers[%d]", p, i)
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			errs.add(q, "(%q) is not an IP address", s)
		case fam != 0 && familyOf(a) != fam:
			errs.add(q, "(%s) is not IPv%d like the addresses", s, fam)
		}
	}
	if in.UnicastSource != "" {
		a, err := netip.ParseAddr(in.UnicastSource)
		switch {
		case err != nil:
			errs.add(p+".unicast_source", "(%q) is not an IP address", in.UnicastSource)
		case fam != 0 && familyOf(a) != fam:
			errs.add(p+".unicast_source", "(%s) is not IPv%d like the addresses", in.UnicastSource, fam)
		}
	}
	if in.AuthPass != "" {
		if in.Version != 2 {
			errs.add(p+".auth_pass", "is version 2 only (RFC 5798 removed authentication)")
		}
		if len(in.AuthPass) > 8 {
			errs.add(p+".auth_pass", "(%d bytes) must be at most 8 bytes", len(in.AuthPass))
		}
	}
	if in.AuthKey != "" && len(in.AuthKey) < 16 {
		errs.add(p+".auth_key", "(%d bytes) must be at least 16 bytes", len(in.AuthKey))
	}
	if in.ChecksumAsV2 && (in.Version != 3 || fam == 6) {
		errs.add(p+".checksum_as_v2", "applies to version 3 over IPv4 only")
	}
	g := in.GARP
	if g.Repeat < 1 || g.Repeat > 100 {
		errs.add(p+".garp.repeat", "(%d) must be 1-100", g.Repeat)
	}
	if g.Interval != nil && (*g.Interval < 0 || *g.Interval > time.Second) {
		errs.add(p+".garp.interval", "(%v) must be 0-1s", *g.Interval)
	}
	if g.Delay != nil && (*g.Delay < 0 || *g.Delay > time.Hour) {
		errs.add(p+".garp.delay", "(%v) must be 0-1h", *g.Delay)
	}
	if g.Refresh != 0 && (g.Refresh < time.Second || g.Refresh > 24*time.Hour) {
		errs.add(p+".garp.refresh", "(%v) must be 0 (off) or 1s-24h", g.Refresh)
	}
	for i, t := range in.TrackInterfaces {
		q := fmt.Sprintf("%s.track_interfaces[%d]", p, i)
		if t.Name == "" {
			errs.add(q+".name", "is required")
		}
		checkWeight(errs, q+".weight", t.Weight, in.Priority)
	}
	scripts := map[string]bool{}
	for i, s := range in.TrackScripts {
		q := fmt.Sprintf("%s.track_scripts[%d]", p, i)
		switch {
		case s.Name == "":
			errs.add(q+".name", "is required")
		case scripts[s.Name]:
			errs.add(q+".name", "duplicate script name %q", s.Name)
		}
		scripts[s.Name] = true
		if len(s.Command) == 0 || s.Command[0] == "" {
			errs.add(q+".command", "is required")
		}
		if s.Interval < 100*time.Millisecond {
			errs.add(q+".interval", "(%v) must be at least 100ms", s.Interval)
		}
		if s.Timeout < 10*time.Millisecond {
			errs.add(q+".timeout", "(%v) must be at least 10ms", s.Timeout)
		}
		if s.Rise < 1 || s.Rise > 100 {
			errs.add(q+".rise", "(%d) must be 1-100", s.Rise)
		}
		if s.Fall < 1 || s.Fall > 100 {
			errs.add(q+".fall", "(%d) must be 1-100", s.Fall)
		}
		checkWeight(errs, q+".weight", s.Weight, in.Priority)
	}
	checks := map[string]bool{}
	for i, c := range in.TrackChecks {
		q := fmt.Sprintf("%s.track_checks[%d]", p, i)
		switch {
		case c.Name == "":
			errs.add(q+".name", "is required")
		case checks[c.Name]:
			errs.add(q+".name", "duplicate check name %q", c.Name)
		}
		checks[c.Name] = true
		checkWeight(errs, q+".weight", c.Weight, in.Priority)
	}
	validateNotify(errs, p+".notify", in.Notify)
}

func validateNotify(errs *fieldErrors, p string, n Notify) {
	for _, c := range []struct {
		name string
		argv []string
	}{{"master", n.Master}, {"backup", n.Backup}, {"fault", n.Fault}, {"stop", n.Stop}, {"any", n.Any}} {
		if len(c.argv) > 0 && c.argv[0] == "" {
			errs.add(p+"."+c.name, "(%q) has an empty program name", c.argv)
		}
	}
	if n.Timeout < 10*time.Millisecond {
		errs.add(p+".timeout", "(%v) must be at least 10ms", n.Timeout)
	}
}

func checkWeight(errs *fieldErrors, path string, w, priority int) {
	if w < -maxWeight || w > maxWeight {
		errs.add(path, "(%d) must be -253 to 253", w)
	} else if w != 0 && priority == OwnerPriority {
		errs.add(path, "(%d) must be 0 for an address owner (priority 255), whose priority does not change", w)
	}
}

// parsePrefix parses "198.18.0.100/24", keeping the host bits; a bare address gets the
// full length.
func parsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("(%q) is not an address with a prefix length", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("(%q) is not an address with a prefix length", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("(%q) is not a usable unicast address", s)
	}
	return p, nil
}

func familyOf(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 4
	}
	return 6
}

// Family is 4 or 6, by the first address; 0 when it has none that parses.
func (in *Instance) Family() int {
	for _, s := range in.Addresses {
		if p, err := parsePrefix(s); err == nil {
			return familyOf(p.Addr())
		}
	}
	return 0
}

// Prefixes returns the parsed addresses (of a validated instance; others are skipped).
func (in *Instance) Prefixes() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range in.Addresses {
		if p, err := parsePrefix(s); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// Peers returns the parsed unicast peers (of a validated instance).
func (in *Instance) Peers() []netip.Addr {
	var as []netip.Addr
	for _, s := range in.UnicastPeers {
		if a, err := netip.ParseAddr(s); err == nil {
			as = append(as, a)
		}
	}
	return as
}
