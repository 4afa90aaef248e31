// Command lbctl drives a running lbd node through its admin API.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lbd/node/api"
)

var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, time.Now))
}

// run runs lbctl with args and returns its exit code: 0, or after printing the error
// ("lbctl: " and the API's message) to stderr 1, or one of the codes of cluster.go
// (3 no quorum, 4 not the leader); config diff exits 2 when the documents differ.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	root := newRoot(now)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		var quiet exitError
		if !errors.As(err, &quiet) {
			fmt.Fprintln(stderr, "lbctl:", err)
		}
		return exitCode(err) // cluster.go
	}
	return 0
}

// cli is what every command shares: the root's flags and the clock.
type cli struct {
	target    string // --socket
	asJSON    bool   // --json
	tokenFile string // --token-file
	token     string // read from tokenFile before a command runs
	now       func() time.Time
}

func (c *cli) client() *api.Client { return api.NewClient(c.target).WithToken(c.token) }

func newRoot(now func() time.Time) *cobra.Command {
	c := &cli{now: now}
	root := &cobra.Command{
		Use:           "lbctl",
		Short:         "Drive a running lbd node",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().StringVar(&c.target, "socket", api.DefaultSocket, "admin API: unix socket path, or http://host:port for read-only commands")
	root.PersistentFlags().BoolVar(&c.asJSON, "json", false, "print the API's JSON answer")
	root.PersistentFlags().StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token of the node's TCP listener (node.admin.token_file)")
	var output string
	root.PersistentFlags().StringVarP(&output, "output", "o", "table", "output format: table or json (json is --json)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		switch output {
		case "table":
		case "json":
			c.asJSON = true
		default:
			return fmt.Errorf("-o %q: the output format is table or json", output)
		}
		if c.tokenFile == "" {
			return nil
		}
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
		return nil
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the node, its config version, frontends, backends and servers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := c.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if c.asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	var allowEmpty bool
	reload := &cobra.Command{
		Use:   "reload",
		Short: "Re-read the node's config file; an invalid file is refused and the old config keeps serving",
		Long: `Re-read the node's config file; an invalid file is refused and the old config keeps
serving. So is a file without frontends and without vrrp instances when the running
config has some (an emptied or truncated file would stop every frontend and release
every VIP): --allow-empty applies it anyway.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := c.client().ReloadWith(cmd.Context(), api.ReloadRequest{AllowEmpty: allowEmpty})
			if err != nil {
				return err
			}
			if c.asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reloaded: config version %s\n", resp.ConfigVersion)
			return nil
		},
	}
	reload.Flags().BoolVar(&allowEmpty, "allow-empty", false, "apply a config that has no frontends and no vrrp instances (stops every frontend, releases every VIP)")
	metrics := &cobra.Command{
		Use:   "metrics",
		Short: "Print the node's Prometheus metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := c.client().Metrics(cmd.Context())
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), text)
			return err
		},
	}
	root.AddCommand(status, reload, metrics)
	root.AddCommand(newServerCmd(c), newNodeCmd(c))    // server.go
	root.AddCommand(newStickyCmd(c))                   // sticky.go
	root.AddCommand(newVIPCmd(c))                      // vip.go
	root.AddCommand(newClusterCmd(c), newConfigCmd(c)) // cluster.go
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
