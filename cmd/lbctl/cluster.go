package main

// lbctl cluster … and lbctl config …: forming the cluster and changing its
// cluster-wide config document. In development: the cluster agent is not yet usable.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"lbd/node/api"
)

// Exit codes besides 0 (done) and 1 (failed), so that scripts can branch.
const (
	exitDiffers   = 2 // config diff: the documents differ
	exitNoQuorum  = 3 // no majority of the voters is reachable
	exitNotLeader = 4 // the node is not the raft leader; run the command there
)

const exitCodesHelp = `Exit codes: 0 done; 1 failed (refused, invalid, lbd not running); 2 config diff
found differences; 3 no quorum (add a witness or run lbctl cluster recover --force);
4 not the raft leader (run the command on the leader the message names).`

// exitCode maps an error to lbctl's exit code.
func exitCode(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		switch ae.StatusCode {
		case 503:
			return exitNoQuorum
		case 421:
			return exitNotLeader
		}
	}
	var ec exitError
	if errors.As(err, &ec) {
		return int(ec)
	}
	return 1
}

// exitError ends lbctl with a code and no message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func nArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s needs %s (got %d argument(s)); usage: %s", cmd.Name(), what, len(args), cmd.UseLine())
		}
		return nil
	}
}

func newClusterCmd(cl *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Form the cluster and see its members (in development)",
		Example: `  lbctl cluster init                       # on the first node
  lbctl cluster join 10.0.0.5:7947 --token lbd1.…  # on each other node
  lbctl cluster status`,
		Long: `Form the cluster and see its members. In development: not yet usable.

` + exitCodesHelp,
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show raft's leader, term and commit index, and every member's health",
		Example: `  lbctl cluster status
  lbctl cluster status -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := cl.client().ClusterStatus(c.Context())
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			printClusterStatus(c.OutOrStdout(), st)
			return nil
		},
	}
	members := &cobra.Command{
		Use:     "members",
		Short:   "List the members gossip knows of, with state, role and health",
		Example: `  lbctl cluster members --json`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ms, err := cl.client().ClusterMembers(c.Context())
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), ms)
			}
			printMembers(c.OutOrStdout(), ms, 0)
			return nil
		},
	}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Make this node a one-node cluster, seeded from its config file",
		Long: `Make this node a one-node cluster. The cluster-wide part of its config file
(everything but node:) becomes the cluster's config version 1, a gossip key is
created, with the cluster CA, this node's certificate and a join token (valid 24h,
for several joins), and the command to join the others is printed.`,
		Example: `  lbctl cluster init`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			resp, err := cl.client().ClusterInit(c.Context())
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), resp)
			}
			fmt.Fprintf(c.OutOrStdout(), "cluster formed: config version %d seeded from this node's file\nOn each other node, run (the token expires %s):\n  %s\n",
				resp.ConfigVersion, resp.TokenExpires.UTC().Format("2006-01-02 15:04:05Z"), resp.JoinCommand)
			return nil
		},
	}
	var token string
	var seeds []string
	join := &cobra.Command{
		Use:   "join ADDR --token TOKEN [--seed GOSSIP_ADDR]",
		Short: "Join the cluster of the node whose raft address is ADDR",
		Long: `Join the cluster of the node whose raft address (host:port) is ADDR, with a join
token printed by lbctl cluster init. The token carries the fingerprint of the
cluster's CA: this node checks the cluster's certificate against it, then gets its
own certificate and the gossip key, and raft runs over mutual TLS. Gossip is found
at --seed, else node.cluster.seeds, else ADDR's host at port 7946. From then on
this node runs the cluster's config, not its file's cluster-wide part.`,
		Example: `  lbctl cluster join 10.0.0.5:7947 --token lbd1.…`,
		Args:    nArgs(1, "the raft address ADDR"),
		RunE: func(c *cobra.Command, args []string) error {
			if token == "" {
				return errors.New("join needs --token (printed by lbctl cluster init)")
			}
			st, err := cl.client().ClusterJoin(c.Context(), api.ClusterJoinRequest{Address: args[0], Token: token, Seeds: seeds})
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), st)
			}
			fmt.Fprintf(c.OutOrStdout(), "joined: %d members, leader %s\n", len(st.Members), orDash(st.Leader))
			return nil
		},
	}
	join.Flags().StringVar(&token, "token", "", "the join token printed by lbctl cluster init")
	join.Flags().StringSliceVar(&seeds, "seed", nil, "a member's gossip address (repeatable)")
	leave := &cobra.Command{
		Use:     "leave",
		Short:   "Take this node out of its cluster cleanly",
		Example: `  lbctl cluster leave`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := cl.client().ClusterLeave(c.Context()); err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), "left the cluster; the config in force stays until the next reload reads the file")
			return nil
		},
	}
	remove := &cobra.Command{
		Use:     "remove NODE",
		Short:   "Take a dead node out of the cluster (run on the leader)",
		Example: `  lbctl cluster remove lb-b`,
		Args:    nArgs(1, "the NODE to remove"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := cl.client().ClusterRemove(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "removed %s\n", args[0])
			return nil
		},
	}
	var force bool
	recover := &cobra.Command{
		Use:   "recover --force",
		Short: "Shrink a cluster that lost its majority for good to the reachable voters",
		Long: `Shrink a cluster that lost its majority for good (a pair that lost one node) to
the voters this node can reach. Run it on each survivor. A node left out that comes
back is added again; what it committed alone is lost.`,
		Example: `  lbctl cluster recover --force`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if !force {
				return errors.New("recover overrides the lost majority: confirm with --force")
			}
			resp, err := cl.client().ClusterRecover(c.Context())
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), resp)
			}
			fmt.Fprintf(c.OutOrStdout(), "recovered: the voters are now %s\n", strings.Join(resp.Survivors, ", "))
			return nil
		},
	}
	recover.Flags().BoolVar(&force, "force", false, "confirm that the lost voters are gone for good")
	key := &cobra.Command{
		Use:     "key",
		Short:   "Manage the cluster's gossip key",
		Example: `  lbctl cluster key rotate`,
	}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the gossip key on every node (run on the leader)",
		Long: `Replace the key that encrypts gossip on every node: each node installs the new
key, then uses it, then drops the old one, a few seconds apart. A node that is down
follows when it comes back.`,
		Example: `  lbctl cluster key rotate`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			resp, err := cl.client().ClusterKeyRotate(c.Context())
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), resp)
			}
			fmt.Fprintf(c.OutOrStdout(), "gossip key rotated: every node now uses key %s\n", resp.Fingerprint)
			return nil
		},
	}
	key.AddCommand(rotate)
	cmd.AddCommand(status, members, initCmd, join, leave, remove, recover, key)
	return cmd
}

func newConfigCmd(cl *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Change and inspect the cluster's config document (in development)",
		Example: `  lbctl config diff -f /etc/lbd/lbd.yaml
  lbctl config apply -f /etc/lbd/lbd.yaml -m "add the api backend"
  lbctl config history`,
		Long: `Change and inspect the cluster-wide config document (everything but node:).
In development: not yet usable.

` + exitCodesHelp,
	}
	var file, msg string
	apply := &cobra.Command{
		Use:   "apply -f FILE [-m MSG]",
		Short: "Commit FILE's cluster-wide part as the cluster's new config (run on the leader)",
		Long: `Commit FILE's cluster-wide part (its node: section is left out) as the cluster's
new config. It is checked here first; every node then applies it as a reload.`,
		Example: `  lbctl config apply -f /etc/lbd/lbd.yaml -m "add the api backend"`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			doc, err := readFile(file)
			if err != nil {
				return err
			}
			resp, err := cl.client().ConfigApply(c.Context(), api.ConfigApplyRequest{Document: doc, Comment: msg})
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), resp)
			}
			fmt.Fprintf(c.OutOrStdout(), "committed: config version %d\n", resp.Version)
			return nil
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "the config file (required)")
	apply.Flags().StringVarP(&msg, "message", "m", "", "why, kept in the history")
	var version uint64
	get := &cobra.Command{
		Use:   "get [--version N]",
		Short: "Print the committed document (the latest, or version N)",
		Example: `  lbctl config get > cluster.yaml
  lbctl config get --version 3`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			v, err := cl.client().ConfigGet(c.Context(), version)
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), v)
			}
			_, err = io.WriteString(c.OutOrStdout(), v.Document)
			return err
		},
	}
	get.Flags().Uint64Var(&version, "version", 0, "the version to print (default: the latest)")
	var diffFile string
	diff := &cobra.Command{
		Use:   "diff [-f FILE]",
		Short: "Show how FILE (default: the node's own config file) differs from the committed document",
		Long: `Show how FILE's cluster-wide part (default: the node's own config file's) differs
from the committed document, as a unified diff of both in canonical form (defaults
spelled out). Exits 2 when they differ.`,
		Example: `  lbctl config diff
  lbctl config diff -f new.yaml`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var doc string
			if diffFile != "" {
				var err error
				if doc, err = readFile(diffFile); err != nil {
					return err
				}
			}
			resp, err := cl.client().ConfigDiff(c.Context(), doc)
			if err != nil {
				return err
			}
			if cl.asJSON {
				if err := printJSON(c.OutOrStdout(), resp); err != nil {
					return err
				}
			} else if resp.Diff == "" {
				fmt.Fprintf(c.OutOrStdout(), "no difference from committed version %d\n", resp.Version)
			} else {
				io.WriteString(c.OutOrStdout(), resp.Diff)
			}
			if resp.Diff != "" {
				return exitError(exitDiffers)
			}
			return nil
		},
	}
	diff.Flags().StringVarP(&diffFile, "file", "f", "", "the config file to compare")
	history := &cobra.Command{
		Use:     "history",
		Short:   "List the kept versions of the document, oldest first",
		Example: `  lbctl config history`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			hs, err := cl.client().ConfigHistory(c.Context())
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), hs)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tTIME\tAUTHOR\tCOMMENT")
			for _, h := range hs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", h.Version, h.Time.UTC().Format("2006-01-02 15:04:05Z"), orDash(h.Author), orDash(h.Comment))
			}
			return tw.Flush()
		},
	}
	var rbMsg string
	rollback := &cobra.Command{
		Use:     "rollback VERSION [-m MSG]",
		Short:   "Commit an earlier version's document again, as a new version (run on the leader)",
		Example: `  lbctl config rollback 3 -m "the api backend broke logins"`,
		Args:    nArgs(1, "the VERSION to go back to"),
		RunE: func(c *cobra.Command, args []string) error {
			v, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || v == 0 {
				return fmt.Errorf("VERSION must be a version number from lbctl config history, not %q", args[0])
			}
			resp, err := cl.client().ConfigRollback(c.Context(), api.ConfigRollbackRequest{Version: v, Comment: rbMsg})
			if err != nil {
				return err
			}
			if cl.asJSON {
				return printJSON(c.OutOrStdout(), resp)
			}
			fmt.Fprintf(c.OutOrStdout(), "committed: config version %d (the document of version %d)\n", resp.Version, v)
			return nil
		},
	}
	rollback.Flags().StringVarP(&rbMsg, "message", "m", "", "why, kept in the history")
	cmd.AddCommand(apply, get, diff, history, rollback)
	return cmd
}

func readFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("give the config file with -f FILE")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func printClusterStatus(w io.Writer, st *api.ClusterStatus) {
	fmt.Fprintf(w, "node %s (%s, %s)  leader %s  term %d  commit index %d  config version %d",
		st.Node, orDash(st.Role), st.State, orDash(st.Leader), st.Term, st.CommitIndex, st.ConfigVersion)
	if st.AppliedVersion != st.ConfigVersion {
		fmt.Fprintf(w, " (running %d)", st.AppliedVersion)
	}
	fmt.Fprintln(w)
	if st.ApplyError != "" {
		fmt.Fprintf(w, "could not apply the latest version: %s\n", st.ApplyError)
	}
	fmt.Fprintln(w)
	printMembers(w, st.Members, st.ConfigVersion)
}

func printMembers(w io.Writer, ms []api.ClusterMember, latest uint64) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tROLE\tVOTER\tLEADER\tLBD\tCONFIG\tDATAPLANE\tVRRP\tBACKENDS (healthy/total)")
	for _, m := range ms {
		cfg := strconv.FormatUint(m.ConfigVersion, 10)
		if latest != 0 && m.ConfigVersion != latest {
			cfg += " (behind)"
		}
		dp := "down"
		if m.DataplaneUp {
			dp = "up"
		}
		var vrrp, backends []string
		for _, v := range m.VRRP {
			vrrp = append(vrrp, v.Instance+"="+v.State)
		}
		for _, b := range m.Backends {
			backends = append(backends, fmt.Sprintf("%s %d/%d", b.Backend, b.Healthy, b.Total))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.State, m.Role, yesNo(m.Voter), yesNo(m.Leader),
			orDash(m.Version), cfg, dp, orDash(strings.Join(vrrp, ",")), orDash(strings.Join(backends, ", ")))
	}
	tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
