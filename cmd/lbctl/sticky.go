package main

// lbctl sticky …: the entries of a backend's sticky table (persistence type table).

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lbd/node/api"
)

func newStickyCmd(cl *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sticky",
		Short: "List or delete the entries of a backend's sticky table",
		Long: `List or delete the entries of a backend's sticky table (persistence type
table): which client key sticks to which server, and until when. Deleting an
entry sends that client's next request to the balancer, which may pick another
server.`,
	}
	list := &cobra.Command{
		Use:   "list BACKEND",
		Short: "List the entries of BACKEND's sticky table, sorted by key",
		Args:  backendArg,
		RunE: func(c *cobra.Command, args []string) error {
			resp, err := cl.client().StickyList(c.Context(), args[0])
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), resp)
			}
			printSticky(c.OutOrStdout(), resp, cl.now())
			return nil
		},
	}
	var key, server string
	del := &cobra.Command{
		Use:   "delete BACKEND (--key KEY | --server SERVER)",
		Short: "Delete the entry of a key, or every entry of a server",
		Args:  backendArg,
		RunE: func(c *cobra.Command, args []string) error {
			if (key == "") == (server == "") {
				return fmt.Errorf("give either --key KEY or --server SERVER")
			}
			resp, err := cl.client().StickyDelete(c.Context(), args[0], key, server)
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), resp)
			}
			fmt.Fprintf(c.OutOrStdout(), "deleted %d entr%s\n", resp.Deleted, map[bool]string{true: "y", false: "ies"}[resp.Deleted == 1])
			return nil
		},
	}
	del.Flags().StringVar(&key, "key", "", "the client key whose entry to delete")
	del.Flags().StringVar(&server, "server", "", "delete every entry that sticks to this server")
	cmd.AddCommand(list, del)
	return cmd
}

// backendArg requires exactly BACKEND.
func backendArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s needs BACKEND (got %d argument(s)); usage: lbctl sticky %s", cmd.Name(), len(args), cmd.Use)
	}
	return nil
}

func printSticky(w io.Writer, resp *api.StickyListResponse, now time.Time) {
	if len(resp.Entries) == 0 {
		fmt.Fprintf(w, "backend %s: no sticky entries\n", resp.Backend)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSERVER\tEXPIRES\tIN")
	for _, e := range resp.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Key, e.Server, e.Expires.Format("2006-01-02 15:04:05Z"),
			e.Expires.Sub(now).Round(time.Second))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d entr%s\n", len(resp.Entries), map[bool]string{true: "y", false: "ies"}[len(resp.Entries) == 1])
}
