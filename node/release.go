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
	"slices"

	"lbd/vip"
)

// ReleaseVIPs removes the virtual addresses of cfg's vrrp instances from this node's
// interfaces: those lbd added (IPv4: labelled "<interface>:<label>"; IPv6: address
// protocol 0x6c) and, for IPv6 on kernels that do not keep the protocol, the configured
// VIPs of instances this node does not own (priority < 255). It writes one line to out
// for each address removed and each instance with nothing to release, and returns how
// many addresses it removed. Addresses already gone are not an error. It does not check
// that lbd is stopped: the caller does.
func ReleaseVIPs(cfg *Config, out io.Writer) (int, error) {
	return releaseVIPs(out, cfg.VIPConfig(), vip.NewAddresses())
}

// releaseVIPs is ReleaseVIPs of vc with a.
func releaseVIPs(out io.Writer, vc vip.Config, a vip.Addresses) (int, error) {
	if len(vc.Instances) == 0 {
		fmt.Fprintln(out, "no vrrp instances configured: nothing to release")
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
	before := map[string][]netip.Prefix{}
	for _, in := range present.Instances {
		if _, ok := before[in.Interface]; !ok {
			before[in.Interface] = ifacePrefixes(in.Interface)
		}
	}
	var errs []error
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
