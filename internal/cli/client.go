package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/server"
	"github.com/eunomia-agent/eunomia/internal/strict"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

// clientFlags say how the start, stop and list commands reach the server.
type clientFlags struct {
	o server.ClientOptions
}

func bindClientFlags(fs *pflag.FlagSet) *clientFlags {
	c := &clientFlags{}
	fs.StringVar(&c.o.Socket, "socket", server.DefaultSocket, "the server's unix socket")
	fs.StringVar(&c.o.Server, "server", "", "the server's TCP listener as a URL (http(s)://host:port) instead of the socket")
	fs.StringVar(&c.o.TokenFile, "token-file", "", "file holding the server's bearer token (for --server)")
	fs.StringVar(&c.o.CACert, "ca-cert", "", "PEM certificate that signed the https server's certificate")
	fs.DurationVar(&c.o.Timeout, "timeout", 30*time.Second, "time limit of the request")
	return c
}

func (c *clientFlags) client() (*server.Client, error) { return server.NewClient(c.o) }

type startOptions struct {
	name     string
	format   string
	output   string
	to       []string
	handlers []string
	trackers *trackerFlags
	client   *clientFlags
}

func newStartCmd() *cobra.Command {
	reg := all.Registry()
	o := &startOptions{}
	cmd := &cobra.Command{
		Use:   "start TRACKER [flags]",
		Short: "Start a tracker in a running server; prints its id",
		Long: "Ask a running `eunomia server` to start a tracker with a handler chain.\n" +
			"Tracker flags are those of `eunomia run`. The chain is, in order: the\n" +
			"--handler specs, the --to outputs, then a printer (--fmt, --output) if either\n" +
			"is set or nothing else is given. Paths are resolved by the server.\n\n" +
			"Trackers: " + strings.Join(reg.Names(), ", ") + ". Handler types: " + strings.Join(pipeline.TypeNames(), ", ") + ".",
		Example: "  eunomia start process --min-duration 10ms --output /var/log/eunomia/exits.json\n" +
			"  eunomia start process --uid 1000 --to events\n" +
			"  eunomia start process --handler '{\"type\":\"csv\",\"path\":\"/tmp/p.csv\",\"truncate\":true}'",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := o.spec(cmd, args[0])
			if err != nil {
				return err
			}
			c, err := o.client.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.client.o.Timeout)
			defer cancel()
			info, err := c.Start(ctx, spec)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "eunomia: started %s\n", info.Tracker)
			fmt.Fprintln(cmd.OutOrStdout(), info.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "a name for the instance, shown by list")
	f.StringVar(&o.format, "fmt", "json", "printer format: json, text or csv")
	f.StringVarP(&o.output, "output", "o", "", "printer output file (absolute, or relative to this directory); default: the server's standard output")
	f.StringArrayVar(&o.to, "to", nil, "send events to this shared output of the server's config file (repeatable)")
	f.StringArrayVar(&o.handlers, "handler", nil, `a handler as JSON, e.g. '{"type":"json","path":"/tmp/e.json"}' (repeatable)`)
	o.client = bindClientFlags(f)
	o.trackers = bindTrackerFlags(f, reg)
	return cmd
}

// spec builds the tracker spec the flags describe.
func (o *startOptions) spec(cmd *cobra.Command, kind string) (pipeline.Spec, error) {
	reg := all.Registry()
	cfgs, err := o.trackers.configs(reg, []string{kind})
	if err != nil {
		return pipeline.Spec{}, err
	}
	spec := pipeline.Spec{Name: o.name, Kind: kind, Config: cfgs[0]}
	for i, raw := range o.handlers {
		n, err := strict.ParseJSON([]byte(raw))
		if err != nil {
			return spec, fmt.Errorf("--handler #%d: %w", i+1, err)
		}
		var d strict.Decoder
		h, err := pipeline.DecodeHandler(&d, n, "", true)
		if err != nil {
			return spec, fmt.Errorf("--handler #%d: %w", i+1, err)
		}
		spec.Handlers = append(spec.Handlers, h)
	}
	for _, name := range o.to {
		spec.Handlers = append(spec.Handlers, pipeline.HandlerSpec{Output: name})
	}
	flags := cmd.Flags()
	if flags.Changed("fmt") || flags.Changed("output") || len(spec.Handlers) == 0 {
		h, err := pipeline.NewHandlerSpec(o.format)
		if err != nil {
			return spec, fmt.Errorf("--fmt: %w", err)
		}
		if o.output != "" {
			path, err := filepath.Abs(o.output)
			if err != nil {
				return spec, fmt.Errorf("--output: %w", err)
			}
			h.Options.(*pipeline.PrinterOptions).Path = path
		}
		spec.Handlers = append(spec.Handlers, h)
	}
	return spec, nil
}

func newStopCmd() *cobra.Command {
	var cf *clientFlags
	cmd := &cobra.Command{
		Use:   "stop ID [ID...]",
		Short: "Stop trackers of a running server by id",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids := make([]uint64, len(args))
			for i, a := range args {
				id, err := strconv.ParseUint(a, 10, 64)
				if err != nil || id == 0 {
					return fmt.Errorf("%q is not a tracker id (a positive whole number, as start and list print)", a)
				}
				ids[i] = id
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			for _, id := range ids {
				ctx, cancel := context.WithTimeout(cmd.Context(), cf.o.Timeout)
				in, err := c.Stop(ctx, id)
				cancel()
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "stopped %s: %d events, %d lost in kernel, %d lost in queue, %d failed in handlers\n",
					in.Tracker, in.Events, in.LostKernel, in.LostQueue, in.Failed)
			}
			return nil
		},
	}
	cf = bindClientFlags(cmd.Flags())
	return cmd
}

func newListCmd() *cobra.Command {
	var cf *clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the trackers of a running server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.o.Timeout)
			defer cancel()
			list, err := c.List(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(server.TrackerList{Trackers: list})
			}
			return printList(cmd.OutOrStdout(), list)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	cf = bindClientFlags(cmd.Flags())
	return cmd
}

func printList(w io.Writer, list []server.TrackerInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTRACKER\tNAME\tORIGIN\tSTATE\tEVENTS\tLOST_KERNEL\tLOST_QUEUE\tFAILED\tUPTIME\tCONFIG\tHANDLERS")
	for _, t := range list {
		hs, _ := json.Marshal(t.Handlers)
		name := t.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n",
			t.ID, t.Tracker, name, t.Origin, t.State, t.Events, t.LostKernel, t.LostQueue, t.Failed,
			time.Since(t.Started).Round(time.Second), t.Config, hs)
	}
	return tw.Flush()
}
