package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"lbd/node"
	"lbd/node/api"
)

// releaseProbeTimeout bounds the check that no lbd answers on the admin socket.
const releaseProbeTimeout = 2 * time.Second

// newRelease is `lbd release`: remove this node's VIPs from their interfaces after lbd
// stopped without removing them itself (SIGKILL, a crash, an OOM kill). The packaged
// systemd unit runs it as ExecStopPost, so that a dead node's kernel does not keep
// answering ARP for a VIP that another node now owns.
func newRelease() *cobra.Command {
	var cfgPath, socket, stateDir string
	var force bool
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Remove this node's VIPs from their interfaces (after lbd stopped; the unit's ExecStopPost)",
		Long: `Remove the virtual addresses of every vrrp instance in the config from this node's
interfaces: the addresses lbd added (IPv4: labelled "<interface>:<label>"; IPv6: address
protocol 0x6c), those recorded in the state directory's vips.json (lbd writes there
every address it adds and removes), and, for IPv6 on older kernels, the configured VIPs
of instances this node does not own (priority < 255). Addresses already gone are not an
error.

When the config cannot be read (a bad edit, a removed file), it says so and removes
what vips.json records: in --state-dir, or the file's node.state_dir if that much of
it reads, or /var/lib/lbd.

It refuses while an lbd answers on the admin socket: a running master's VIPs are not
pulled from under it (stop lbd first; --force skips this check).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			cfg, cfgErr := node.LoadFile(cfgPath)
			if cfgErr != nil {
				fmt.Fprintln(errOut, cfgErr)
				fmt.Fprintln(errOut, "lbd release: cannot read the config; releasing the VIPs recorded in the state directory only")
			}
			if socket == "" {
				socket = node.DefaultAdminSocket
				if cfg != nil {
					socket = cfg.Node.Admin.Socket
				}
			}
			if stateDir == "" {
				stateDir = node.DefaultStateDir
				if cfg != nil {
					stateDir = cfg.Node.StateDir
				} else if d := node.SalvageStateDir(cfgPath); d != "" {
					stateDir = d
				}
			}
			if !force {
				ctx, cancel := context.WithTimeout(cmd.Context(), releaseProbeTimeout)
				st, err := api.NewClient(socket).Status(ctx)
				cancel()
				if err == nil {
					fmt.Fprintf(errOut, "lbd release: refused: an lbd (node %q) is running and answering on %s; "+
						"stop it first (its VIPs are released on a graceful stop)\n", st.Node, socket)
					return exitError(1)
				}
			}
			var removed int
			var err error
			if cfg != nil {
				cfg.Node.StateDir = stateDir
				removed, err = node.ReleaseVIPs(cfg, out)
			} else {
				removed, err = node.ReleaseRecorded(stateDir, out)
			}
			if err != nil {
				fmt.Fprintln(errOut, err)
				fmt.Fprintf(errOut, "lbd release: failed (%d address(es) released)\n", removed)
				return exitError(1)
			}
			if cfgErr != nil {
				// The record was released, but the config's own VIPs could not be
				// checked: the unit's ExecStopPost reports it.
				fmt.Fprintf(errOut, "lbd release: %d recorded address(es) released; fix the config and run lbd release again to check its VIPs\n", removed)
				return exitError(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", defaultConfig, "config file")
	cmd.Flags().StringVar(&socket, "socket", "", "admin socket checked for a running lbd (default: from the config file, or "+node.DefaultAdminSocket+")")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "state directory holding vips.json (default: from the config file, or "+node.DefaultStateDir+")")
	cmd.Flags().BoolVar(&force, "force", false, "release even if an lbd answers on the admin socket")
	return cmd
}
