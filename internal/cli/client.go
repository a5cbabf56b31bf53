package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	specs "github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/server"
	"github.com/eunomia-agent/eunomia/internal/strict"
	"github.com/eunomia-agent/eunomia/internal/tracker"
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
	name       string
	container  string
	format     string
	outputs    []string
	rotateSize string
	rotateKeep int
	metrics    bool
	to         []string
	handlers   []string
	trackers   *trackerFlags
	client     *clientFlags
}

func newStartCmd() *cobra.Command {
	reg := all.Registry()
	o := &startOptions{}
	cmd := &cobra.Command{
		Use:   "start TRACKER [flags]",
		Short: "Start a tracker in a running server; prints its id",
		Long: "Ask a running `eunomia server` to start a tracker with a handler chain.\n" +
			"Tracker flags are those of `eunomia run`. The chain is, in order: the\n" +
			"Prometheus counters (--metrics), the --handler specs, the --to outputs, then\n" +
			"the printers of --output (default: the server's standard output, unless\n" +
			"--handler or --to is given). Paths are opened by the server; relative ones\n" +
			"are made absolute here first.\n\n" +
			"Trackers: " + strings.Join(reg.Names(), ", ") + ". Handler types: " + strings.Join(specs.TypeNames(), ", ") + ".",
		Example: "  eunomia start process --min-duration 10ms -o /var/log/eunomia/exits.json\n" +
			"  eunomia start process --uid 1000 --to events --metrics\n" +
			"  eunomia start process -o csv:/tmp/p.csv --rotate-size 100M --rotate-keep 3\n" +
			"  eunomia start process --handler '{\"type\":\"aggregate\",\"key\":\"comm\",\"window\":\"10s\",\"handlers\":[{\"type\":\"json\"}]}'",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := o.spec(cmd, reg, args[0])
			if err != nil {
				return err
			}
			c, err := o.client.client()
			if err != nil {
				return err
			}
			defer c.Close()
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
	f.StringVar(&o.container, "container", "", "trace only this container (name or id), filtered in the kernel by its cgroups")
	f.StringVar(&o.format, "fmt", "json", "output format: json, text or csv")
	f.StringArrayVarP(&o.outputs, "output", "o", nil, "write events to `[FORMAT:]PATH` on the server (- is the server's standard output; repeatable)")
	f.StringVar(&o.rotateSize, "rotate-size", "", "rotate output files before they grow past this size (e.g. 100M)")
	f.IntVar(&o.rotateKeep, "rotate-keep", 0, "rotated output files to keep (PATH.1 is the newest)")
	f.BoolVar(&o.metrics, "metrics", false, "count the events in the server's Prometheus counters (/metrics)")
	f.StringArrayVar(&o.to, "to", nil, "send events to this shared output of the server's config file (repeatable)")
	f.StringArrayVar(&o.handlers, "handler", nil, `a handler as JSON, e.g. '{"type":"json","path":"/tmp/e.json"}' (repeatable)`)
	o.client = bindClientFlags(f)
	o.trackers = bindTrackerFlags(f, reg)
	return cmd
}

// spec builds the tracker spec the flags describe.
func (o *startOptions) spec(cmd *cobra.Command, reg *tracker.Registry, kind string) (specs.Spec, error) {
	cfgs, err := o.trackers.configs(reg, []string{kind})
	if err != nil {
		return specs.Spec{}, err
	}
	spec := specs.Spec{Name: o.name, Kind: kind, Container: o.container, Config: cfgs[0]}
	if o.metrics {
		spec.Handlers = append(spec.Handlers, specs.HandlerSpec{Type: "prometheus", Options: &specs.PrometheusOptions{}})
	}
	for i, raw := range o.handlers {
		n, err := strict.ParseJSON([]byte(raw))
		if err != nil {
			return spec, fmt.Errorf("--handler #%d: %w", i+1, err)
		}
		var d strict.Decoder
		h, err := specs.DecodeHandler(&d, n, "", true)
		if err != nil {
			return spec, fmt.Errorf("--handler #%d: %w", i+1, err)
		}
		spec.Handlers = append(spec.Handlers, h)
	}
	for _, name := range o.to {
		spec.Handlers = append(spec.Handlers, specs.HandlerSpec{Output: name})
	}
	printers, err := o.printers(cmd, len(o.handlers)+len(o.to) == 0)
	if err != nil {
		return spec, err
	}
	switch len(printers) {
	case 0:
	case 1:
		spec.Handlers = append(spec.Handlers, printers[0])
	default: // a failing file must not keep events from the others
		spec.Handlers = append(spec.Handlers, specs.HandlerSpec{Type: "fanout", Options: &specs.FanoutOptions{Handlers: printers}})
	}
	return spec, nil
}

// printers are the printer specs of --output; with none given, one on the
// server's standard output when byDefault.
func (o *startOptions) printers(cmd *cobra.Command, byDefault bool) ([]specs.HandlerSpec, error) {
	flags := cmd.Flags()
	if !slices.Contains([]string{"json", "text", "csv"}, o.format) {
		return nil, fmt.Errorf("--fmt: %q is not json, text or csv", o.format)
	}
	values := o.outputs
	if len(values) == 0 && (byDefault || flags.Changed("fmt")) {
		values = []string{"-"}
	}
	var size specs.Size
	if o.rotateSize != "" {
		if err := size.UnmarshalText([]byte(o.rotateSize)); err != nil {
			return nil, fmt.Errorf("--rotate-size: %w", err)
		}
	}
	var out []specs.HandlerSpec
	for _, v := range values {
		format, path := o.format, v
		if name, rest, ok := strings.Cut(v, ":"); ok && slices.Contains([]string{"json", "text", "csv"}, name) {
			format, path = name, rest
		}
		if path == "" {
			return nil, fmt.Errorf("--output %q: no path (use - for the server's standard output)", v)
		}
		h, _ := specs.NewHandlerSpec(format)
		po := h.Options.(*specs.PrinterOptions)
		if path != "-" {
			abs, err := filepath.Abs(path)
			if err != nil {
				return nil, fmt.Errorf("--output: %w", err)
			}
			po.Path, po.RotateSize, po.RotateKeep = abs, size, o.rotateKeep
		}
		if err := po.Validate(); err != nil {
			return nil, fmt.Errorf("--output %q: %w", v, err)
		}
		out = append(out, h)
	}
	if len(out) == 0 && (o.rotateSize != "" || flags.Changed("rotate-keep")) {
		return nil, fmt.Errorf("--rotate-size and --rotate-keep apply to --output files, and none is given")
	}
	return out, nil
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
