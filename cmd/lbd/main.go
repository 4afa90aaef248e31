// Command lbd is the lbd daemon: the load balancer and, later, VIP manager and cluster
// agent of one node.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"lbd/node"
	"lbd/node/api"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const defaultConfig = "/etc/lbd/lbd.yaml"

func main() {
	if err := newRoot().Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "lbd:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a status code after the command printed its own output.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "lbd",
		Short:         "lbd: a clustered high-availability load balancer",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(newRun(), newValidate(), newReload(), newRelease())
	return root
}

func newRun() *cobra.Command {
	var cfgPath, logLevel, logFormat string
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node in the foreground (SIGHUP reloads the config, SIGTERM stops)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			// Process-wide parts (the tcp event loops) log through the default logger.
			slog.SetDefault(log)
			n, err := node.New(node.Options{ConfigPath: cfgPath, Logger: log, DrainTimeout: drain, Version: version})
			if err != nil {
				return err
			}
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
			for sig := range sigs {
				if sig == syscall.SIGHUP {
					n.Reload() // a refused config is logged by the node
					continue
				}
				log.Info("stopping", "signal", sig.String())
				break
			}
			signal.Stop(sigs)
			ctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			return n.Close(ctx)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", defaultConfig, "config file")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().DurationVar(&drain, "drain-timeout", 30*time.Second, "how long connections may take to finish on stop or when their listener is removed")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

func newValidate() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config file; exit 0 when it is valid, 1 with its errors when not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := node.LoadFile(cfgPath)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError(1)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (version %s, %d frontends, %d backends)\n",
				cfgPath, cfg.Hash(), len(cfg.Frontends), len(cfg.Backends))
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", defaultConfig, "config file")
	return cmd
}

func newReload() *cobra.Command {
	var cfgPath, socket string
	var allowEmpty bool
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Ask the running lbd to re-read its config file",
		Long: `Ask the running lbd to re-read its config file. An invalid file is refused and the old
config keeps serving; so is a file without frontends and without vrrp instances when the
running config has some (SIGHUP refuses it too): --allow-empty applies it anyway.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				socket = node.DefaultAdminSocket
				if cfg, err := node.LoadFile(cfgPath); err == nil {
					socket = cfg.Node.Admin.Socket
				}
			}
			resp, err := api.NewClient(socket).ReloadWith(cmd.Context(), api.ReloadRequest{AllowEmpty: allowEmpty})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reloaded: config version %s\n", resp.ConfigVersion)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", defaultConfig, "config file (to find the admin socket)")
	cmd.Flags().StringVar(&socket, "socket", "", "admin socket (default: from the config file)")
	cmd.Flags().BoolVar(&allowEmpty, "allow-empty", false, "apply a config that has no frontends and no vrrp instances (stops every frontend, releases every VIP)")
	return cmd
}
