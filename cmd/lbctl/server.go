package main

// lbctl server …: a server's state and weight at run time; lbctl node …: the node's own
// drain.

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"lbd/node/api"
)

// backendServerArgs requires exactly BACKEND and SERVER.
func backendServerArgs(cmd *cobra.Command, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("%s needs BACKEND and SERVER (got %d argument(s)); usage: %s", cmd.Name(), len(args), cmd.UseLine())
	}
	return nil
}

func newServerCmd(cl *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Change a server's state or weight at run time, without a reload",
		Long: `Change a server's state or weight at run time, without a reload.

drain takes no new sessions but finishes those in flight and still serves the
clients that session persistence sends to it; disabled takes nothing; enabled
takes traffic again. A change lasts until the config file changes that value of
that server (a reload that leaves it alone keeps it), or until lbd restarts.`,
	}
	set := func(state *string, weight *int) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, args []string) error {
			st, err := cl.client().SetServer(c.Context(), args[0], args[1], api.ServerChange{State: state, Weight: weight})
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			printServer(c.OutOrStdout(), args[0], st)
			return nil
		}
	}

	var stateFlag string
	var weightFlag int
	setCmd := &cobra.Command{
		Use:   "set BACKEND SERVER [--state enabled|drain|disabled] [--weight N]",
		Short: "Set a server's state and/or weight",
		Args:  backendServerArgs,
		RunE: func(c *cobra.Command, args []string) error {
			var state *string
			var weight *int
			if c.Flags().Changed("state") {
				if err := api.CheckServerState(stateFlag); err != nil {
					return fmt.Errorf("--state %v", err)
				}
				state = &stateFlag
			}
			if c.Flags().Changed("weight") {
				if weightFlag < 0 || weightFlag > api.MaxServerWeight {
					return fmt.Errorf("--weight must be between 0 and %d, not %d", api.MaxServerWeight, weightFlag)
				}
				weight = &weightFlag
			}
			if state == nil && weight == nil {
				return fmt.Errorf("nothing to change: give --state, --weight or both")
			}
			return set(state, weight)(c, args)
		},
	}
	setCmd.Flags().StringVar(&stateFlag, "state", "", "enabled, drain or disabled")
	setCmd.Flags().IntVar(&weightFlag, "weight", 0, fmt.Sprintf("weight, 0 to %d", api.MaxServerWeight))
	cmd.AddCommand(setCmd)

	for _, s := range []struct{ name, state, short string }{
		{"drain", api.StateDrain, "Drain a server: no new sessions; those in flight and persistent clients are still served"},
		{"enable", api.StateEnabled, "Enable a server: it takes new sessions again"},
		{"disable", api.StateDisabled, "Disable a server: it takes nothing"},
	} {
		state := s.state
		cmd.AddCommand(&cobra.Command{
			Use:   s.name + " BACKEND SERVER",
			Short: s.short,
			Args:  backendServerArgs,
			RunE:  set(&state, nil),
		})
	}
	return cmd
}

func printServer(w io.Writer, backend string, s *api.ServerStatus) {
	fmt.Fprintf(w, "server %s/%s (%s): state %s, weight %d, up %v, active %d\n",
		backend, s.Name, s.Address, s.State, s.Weight, s.Up, s.Active)
}

func newNodeCmd(cl *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Drain or undrain this node for the load balancer in front of it",
		Long: `Drain or undrain this node for the load balancer in front of it.

A drained node's GET /healthz (admin socket and admin TCP listener) answers 503
"draining" instead of 200 "ok", so that an outer load balancer checking it stops
sending new clients. lbd keeps serving all the traffic it gets. Once the grace
period is over (lbd logs it), stop the node: systemctl stop lbd.`,
	}
	var grace time.Duration
	var wait bool
	drain := &cobra.Command{
		Use:   "drain [--grace 30s] [--wait]",
		Short: "Make /healthz answer 503 so an outer load balancer stops sending new clients",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if grace < 0 {
				return fmt.Errorf("--grace must not be negative, not %v", grace)
			}
			st, err := cl.client().Drain(c.Context(), grace)
			if err != nil {
				return err
			}
			if cl.asJSON {
				if err := printJSON(c.OutOrStdout(), st); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(c.OutOrStdout(), "node draining: /healthz answers 503, traffic is still served; stop it after %s (grace %s)\n",
					st.GraceEnds.Local().Format(time.DateTime), st.Grace)
			}
			if wait {
				select {
				case <-time.After(st.GraceEnds.Sub(cl.now())):
					fmt.Fprintln(c.OutOrStdout(), "grace period over: the node may be stopped")
				case <-c.Context().Done():
					return c.Context().Err()
				}
			}
			return nil
		},
	}
	drain.Flags().DurationVar(&grace, "grace", api.DefaultDrainGrace, "how long the outer load balancer needs to stop sending clients")
	drain.Flags().BoolVar(&wait, "wait", false, "wait until the grace period is over")
	undrain := &cobra.Command{
		Use:   "undrain",
		Short: "Make /healthz answer 200 again",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := cl.client().Undrain(c.Context())
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			fmt.Fprintln(c.OutOrStdout(), "node undrained: /healthz answers 200")
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show whether the node is drained",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := cl.client().DrainStatus(c.Context())
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			if !st.Draining {
				fmt.Fprintln(c.OutOrStdout(), "node not drained: /healthz answers 200")
				return nil
			}
			state := "grace period over: the node may be stopped"
			if cl.now().Before(*st.GraceEnds) {
				state = "in its grace period until " + st.GraceEnds.Local().Format(time.DateTime)
			}
			fmt.Fprintf(c.OutOrStdout(), "node draining since %s (%s): /healthz answers 503\n",
				st.Since.Local().Format(time.DateTime), strings.TrimSpace(state))
			return nil
		},
	}
	cmd.AddCommand(drain, undrain, status)
	return cmd
}
