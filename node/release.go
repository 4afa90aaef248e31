package node

// Releasing a dead node's VIPs: `lbd release` (the systemd unit's ExecStopPost) removes
// the virtual addresses that lbd added and could not remove itself (SIGKILL, a crash, an
// OOM kill), so that a dead node's kernel does not keep answering ARP for a VIP that
// another node now owns.

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"

	"lbd/vip"
)

// ReleaseVIPs removes the virtual addresses of cfg's vrrp instances from this node's
// interfaces: those lbd added (IPv4: labelled "<interface>:<label>"; IPv6: address
// protocol 0x6c), those recorded in the state directory's vips.json (viprecord.go) and,
// for IPv6 on kernels that do not keep the protocol, the configured VIPs of instances
// this node does not own (priority < 255). It writes one line to out for each address
// removed and each instance with nothing to release, and returns how many addresses it
// removed. Addresses already gone are not an error. It does not check that lbd is
// stopped: the caller does.
func ReleaseVIPs(cfg *Config, out io.Writer) (int, error) {
	return releaseVIPs(out, cfg.VIPConfig(), cfg.Node.StateDir, vip.NewAddresses())
}

// ReleaseRecorded removes the virtual addresses recorded in stateDir's vips.json, for
// when the config cannot be read: the record alone says what lbd added. Its output and
// result are ReleaseVIPs'.
func ReleaseRecorded(stateDir string, out io.Writer) (int, error) {
	return releaseVIPs(out, vip.Config{}, stateDir, vip.NewAddresses())
}

// releaseVIPs is ReleaseVIPs of vc and of the record in stateDir ("": none) with a.
func releaseVIPs(out io.Writer, vc vip.Config, stateDir string, a vip.Addresses) (int, error) {
	var errs []error
	var rec []recordedVIP
	recPath := ""
	if stateDir != "" {
		recPath = filepath.Join(stateDir, VIPRecordFile)
		var err error
		if rec, err = readVIPRecord(recPath); err != nil {
			errs = append(errs, fmt.Errorf("reading the record of added VIPs: %w", err))
		}
	}
	if len(vc.Instances) == 0 && len(rec) == 0 {
		if len(errs) > 0 {
			return 0, errors.Join(errs...)
		}
		fmt.Fprintln(out, "no vrrp instances configured and no VIP recorded: nothing to release")
		return 0, nil
	}
	for i := range vc.Instances {
		vc.Instances[i].SetDefaults()
	}
	// An interface that does not exist holds no address.
	var present vip.Config
	for _, in := range vc.Instances {
		if _, err := net.InterfaceByName(in.Interface); err != nil {
			fmt.Fprintf(out, "instance %s: interface %s not found: nothing to release\n", in.Name, in.Interface)
			continue
		}
		present.Instances = append(present.Instances, in)
	}
	var recPresent, recLeft []recordedVIP
	for _, e := range rec {
		if _, err := net.InterfaceByName(e.Interface); err != nil {
			fmt.Fprintf(out, "recorded %s: interface %s not found: nothing to release\n", e.Prefix, e.Interface)
			continue
		}
		recPresent = append(recPresent, e)
	}
	before := map[string][]netip.Prefix{}
	for _, in := range present.Instances {
		if _, ok := before[in.Interface]; !ok {
			before[in.Interface] = ifacePrefixes(in.Interface)
		}
	}
	for _, e := range recPresent {
		if _, ok := before[e.Interface]; !ok {
			before[e.Interface] = ifacePrefixes(e.Interface)
		}
	}
	if err := vip.Release(present, a); err != nil {
		errs = append(errs, err)
	}
	// IPv6 addresses carry no label; on kernels before 5.18 they carry no address
	// protocol either, so remove the configured ones too (Remove is idempotent). Not for
	// an address owner (priority 255), whose VIPs are its own addresses.
	for _, in := range present.Instances {
		if in.Priority == 255 {
			continue
		}
		for _, p := range in.Prefixes() {
			if p.Addr().Is6() && slices.Contains(before[in.Interface], p) {
				if err := a.Remove(in.Interface, p); err != nil {
					errs = append(errs, fmt.Errorf("removing %s from %s: %w", p, in.Interface, err))
				}
			}
		}
	}
	// What the record lists was added by lbd, whatever the config says now.
	for _, e := range recPresent {
		if err := a.Remove(e.Interface, e.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("removing recorded %s from %s: %w", e.Prefix, e.Interface, err))
			recLeft = append(recLeft, e)
		}
	}
	if recPath != "" && len(rec) > 0 {
		if err := writeVIPRecord(recPath, recLeft); err != nil {
			errs = append(errs, fmt.Errorf("updating the record of added VIPs: %w", err))
		}
	}
	removed := 0
	for _, ifname := range slices.Sorted(maps.Keys(before)) {
		after := ifacePrefixes(ifname)
		for _, p := range before[ifname] {
			if !slices.Contains(after, p) {
				fmt.Fprintf(out, "released %s from %s\n", p, ifname)
				removed++
			}
		}
	}
	if len(errs) > 0 {
		return removed, errors.Join(errs...)
	}
	if removed == 0 {
		fmt.Fprintln(out, "no VIP held on this node: nothing to release")
	}
	return removed, nil
}

// ifacePrefixes lists ifname's addresses (nil when it cannot be read).
func ifacePrefixes(ifname string) []netip.Prefix {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				bits, _ := n.Mask.Size()
				out = append(out, netip.PrefixFrom(ip.Unmap(), bits))
			}
		}
	}
	return out
}

// SalvageStateDir returns node.state_dir from the config file at path read loosely
// (unknown keys and invalid values elsewhere ignored), for `lbd release` when the file
// does not load; "" when it cannot be read or does not set an absolute state_dir.
func SalvageStateDir(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var doc struct {
		Node struct {
			StateDir string `yaml:"state_dir"`
		} `yaml:"node"`
	}
	if yaml.Unmarshal(data, &doc) != nil || !filepath.IsAbs(doc.Node.StateDir) {
		return ""
	}
	return doc.Node.StateDir
}
