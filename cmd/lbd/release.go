package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"lbd/node"
	"lbd/vip"
)

// releaseProbeTimeout bounds the check that no lbd answers on the admin socket.
const releaseProbeTimeout = 2 * time.Second

// newRelease is `lbd release`: remove this node's VIPs from their interfaces after lbd
// stopped without removing them itself (SIGKILL, a crash, an OOM kill). The packaged
// systemd unit runs it as ExecStopPost, so that a dead node's kernel does not keep
// answering ARP for a VIP that another node now owns.
func newRelease() *cobra.Command {
	var cfgPath, socket string
	var force bool
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Remove this node's VIPs from their interfaces (after lbd stopped; the unit's ExecStopPost)",
		Long: `Remove the virtual addresses of every vrrp instance in the config from this node's
interfaces: the addresses lbd added (IPv4: labelled "<interface>:<label>"; IPv6: address
protocol 0x6c) and, for IPv6 on older kernels, the configured VIPs of instances this node
does not own (priority < 255). Addresses already gone are not an error.

It refuses while an lbd answers on the config's admin socket: a running master's VIPs
are not pulled from under it (stop lbd first; --force skips this check).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			cfg, err := node.LoadFile(cfgPath)
			if err != nil {
				fmt.Fprintln(errOut, err)
				fmt.Fprintln(errOut, "lbd release: cannot read the config, no address released")
				return exitError(1)
			}
			if socket == "" {
				socket = cfg.Node.Admin.Socket
			}
			if !force {
				ctx, cancel := context.WithTimeout(cmd.Context(), releaseProbeTimeout)
				st, err := node.NewClient(socket).Status(ctx)
				cancel()
				if err == nil {
					fmt.Fprintf(errOut, "lbd release: refused: an lbd (node %q) is running and answering on %s; "+
						"stop it first (its VIPs are released on a graceful stop)\n", st.Node, socket)
					return exitError(1)
				}
			}
			return releaseVIPs(out, errOut, cfg.VIPConfig(), vip.NewAddresses())
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", defaultConfig, "config file")
	cmd.Flags().StringVar(&socket, "socket", "", "admin socket checked for a running lbd (default: from the config file)")
	cmd.Flags().BoolVar(&force, "force", false, "release even if an lbd answers on the admin socket")
	return cmd
}

// releaseVIPs removes cfg's VIPs with a, printing each address removed; it returns
// exitError(1) after printing the errors when some could not be removed.
func releaseVIPs(out, errOut io.Writer, cfg vip.Config, a vip.Addresses) error {
	if len(cfg.Instances) == 0 {
		fmt.Fprintln(out, "no vrrp instances configured: nothing to release")
		return nil
	}
	for i := range cfg.Instances {
		cfg.Instances[i].SetDefaults()
	}
	// An interface that does not exist holds no address.
	var present vip.Config
	for _, in := range cfg.Instances {
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
	for _, ifname := range sortedIfaces(before) {
		after := ifacePrefixes(ifname)
		for _, p := range before[ifname] {
			if !slices.Contains(after, p) {
				fmt.Fprintf(out, "released %s from %s\n", p, ifname)
				removed++
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(errOut, errors.Join(errs...))
		fmt.Fprintf(errOut, "lbd release: failed (%d address(es) released)\n", removed)
		return exitError(1)
	}
	if removed == 0 {
		fmt.Fprintln(out, "no VIP held on this node: nothing to release")
	}
	return nil
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

func sortedIfaces(m map[string][]netip.Prefix) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
