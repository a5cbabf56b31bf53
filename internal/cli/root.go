// Package cli holds the eunomia command line: one file per command.
package cli

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// Version is set at build time (-ldflags "-X .../cli.Version=...").
var Version = "dev"

// Execute runs the eunomia command line and returns the process exit code.
func Execute() int {
	root := NewRoot()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "eunomia:", err)
		return 1
	}
	return 0
}

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "eunomia",
		Short:         "eBPF agent that watches processes, syscalls, TCP, file I/O and IPC",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", logLevel)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(newRunCmd())
	root.AddCommand(newSafeCmd())
	root.AddCommand(newSeccompCmd())
	root.AddCommand(newServerCmd())
	root.AddCommand(newStartCmd())
	root.AddCommand(newStopCmd())
	root.AddCommand(newListCmd())
	return root
}

// requireRoot explains early that tracing needs privileges.
func requireRoot(what string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s needs root (loading eBPF programs takes CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE); run it with sudo", what)
	}
	return nil
}
