package main

// lbctl vip …: the node's VRRP instances, and the operator's planned move.

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"lbd/node/api"
)

func newVIPCmd(cl *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vip",
		Short: "Show the node's VRRP instances, or move a VIP to another node",
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show each VRRP instance: its state, priority, master and addresses",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			vips, err := cl.client().VIPs(c.Context())
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), vips)
			}
			printVIPs(c.OutOrStdout(), vips)
			return nil
		},
	}
	move := &cobra.Command{
		Use:   "move NAME",
		Short: "Hand instance NAME's master role (and its sync group's) to the best backup",
		Long: `Hand instance NAME's master role (and its sync group's) to the best backup.

This node advertises priority 0 and keeps the addresses until the new master has
announced itself, so no traffic is lost. It does not take the role back by
preemption until it next becomes master by itself (the new master failing) or
lbd restarts. It fails when this node is not NAME's master.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%s needs the instance NAME (got %d argument(s)); usage: %s", cmd.Name(), len(args), cmd.UseLine())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			st, err := cl.client().MoveVIP(c.Context(), args[0])
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: handing over; this node is %s at priority %d until the new master announces itself\n",
				st.Name, st.State, st.Priority)
			return nil
		},
	}
	cmd.AddCommand(status, move)
	return cmd
}

func printVIPs(w io.Writer, vips []api.VIPStatus) {
	if len(vips) == 0 {
		fmt.Fprintln(w, "no vrrp instances")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tVRID\tSTATE\tPRIORITY\tMASTER\tADDRESSES\tTRANSITIONS")
	for _, v := range vips {
		state := v.State
		if len(v.Faults) > 0 {
			state += " (" + strings.Join(v.Faults, ", ") + ")"
		}
		prio := strconv.Itoa(v.Priority)
		if v.Priority != v.BasePriority {
			prio += fmt.Sprintf(" (base %d)", v.BasePriority)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\n", v.Name, v.VRID, state, prio,
			orDash(v.Master), orDash(strings.Join(v.Addresses, ",")), v.Transitions)
	}
	tw.Flush()
}
