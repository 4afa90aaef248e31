// Command lbctl drives a running lbd node through its admin API.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"lbd/node/api"
)

var version = "dev"

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "lbctl:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var target string
	var asJSON bool
	root := &cobra.Command{
		Use:           "lbctl",
		Short:         "Drive a running lbd node",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().StringVar(&target, "socket", api.DefaultSocket, "admin API: unix socket path, or http://host:port for read-only commands")
	root.PersistentFlags().BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	client := func() *api.Client { return api.NewClient(target) }

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the node, its config version, frontends, backends and servers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	reload := &cobra.Command{
		Use:   "reload",
		Short: "Re-read the node's config file; an invalid file is refused and the old config keeps serving",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := client().Reload(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reloaded: config version %s\n", resp.ConfigVersion)
			return nil
		},
	}
	metrics := &cobra.Command{
		Use:   "metrics",
		Short: "Print the node's Prometheus metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := client().Metrics(cmd.Context())
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), text)
			return err
		},
	}
	root.AddCommand(status, reload, metrics)
	root.AddCommand(newServerCmd(client, &asJSON), newNodeCmd(client, &asJSON)) // server.go
	root.AddCommand(newStickyCmd(client, &asJSON))                              // sticky.go
	root.AddCommand(newVIPCmd(client, &asJSON))                                 // vip.go
	return root
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(w io.Writer, st *api.StatusResponse) {
	fmt.Fprintf(w, "node %s  config %s (version %s, loaded %s)\n\n", st.Node, st.ConfigPath,
		st.ConfigVersion, st.LoadedAt.Format("2006-01-02 15:04:05Z"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FRONTEND\tMODE\tBIND\tBACKEND")
	for _, f := range st.Dataplane.Frontends {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, f.Mode, f.Bind, f.Backend)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tSERVER\tADDRESS\tSTATE\tUP\tWEIGHT\tEFF_WEIGHT\tACTIVE\tRESP_MS\tCHECK\tREASON")
	for _, b := range st.Dataplane.Backends {
		for _, s := range b.Servers {
			h := s.Health
			check := h.Check
			for _, part := range []string{h.Passive, h.Agent} {
				if part != "" {
					check = strings.TrimPrefix(check+"; "+part, "; ")
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%d\t%.2f\t%d\t%.2f\t%s\t%s\n", b.Name, s.Name, s.Address,
				s.State, s.Up, s.Weight, h.EffectiveWeight, s.Active, s.ResponseTimeMs, orDash(check), orDash(h.Reason))
		}
	}
	tw.Flush()
}

// orDash returns s, or "-" for an empty cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
