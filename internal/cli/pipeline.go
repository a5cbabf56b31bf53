package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/eunomia-agent/eunomia/internal/aggregate"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/metrics"
	"github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/sink"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// pipelineFlags are the flags of what happens to events after the
// trackers: outputs (printers on sinks), Prometheus, aggregation.
type pipelineFlags struct {
	fs *pflag.FlagSet

	format     string
	outputs    []string
	rotateSize string
	rotateKeep int

	prometheus   string
	allowRemote  bool
	metricLabels []string
	maxSeries    int

	aggregate string
	window    time.Duration
	top       int
	sum       string
}

func bindPipelineFlags(fs *pflag.FlagSet) *pipelineFlags {
	p := &pipelineFlags{fs: fs}
	fs.StringVar(&p.format, "fmt", "json", "output format: json, text or csv")
	fs.StringArrayVarP(&p.outputs, "output", "o", nil, "write events to `[FORMAT:]PATH` (- is stdout; repeat for several outputs, e.g. -o - -o csv:events.csv); default stdout")
	fs.StringVar(&p.rotateSize, "rotate-size", "0", "rotate output files when they would grow past this size (K, M, G are powers of 1024; 0: never)")
	fs.IntVar(&p.rotateKeep, "rotate-keep", 5, "rotated output files to keep (PATH.1 is the newest)")
	fs.StringVar(&p.prometheus, "prometheus", "", "serve Prometheus metrics at http://`ADDR`/metrics, e.g. 127.0.0.1:9527 (loopback only unless --prometheus-allow-remote)")
	fs.BoolVar(&p.allowRemote, "prometheus-allow-remote", false, "let --prometheus listen on a non-loopback address")
	fs.StringSliceVar(&p.metricLabels, "metric-labels", nil, "extra (high-cardinality) metric labels: "+strings.Join(metrics.OptionalLabels, ", "))
	fs.IntVar(&p.maxSeries, "metric-max-series", metrics.DefaultMaxSeries, "series per metric; past it new series fold into label value \"other\" (counted)")
	fs.StringVar(&p.aggregate, "aggregate", "", "print, instead of events, the top groups of events by `KEY` each window: "+strings.Join(aggregate.Keys, ", "))
	fs.DurationVar(&p.window, "window", 5*time.Second, "with --aggregate, the window length")
	fs.IntVar(&p.top, "top", 10, "with --aggregate, the groups printed per window")
	fs.StringVar(&p.sum, "aggregate-sum", "", "with --aggregate, sum this numeric event `FIELD` per group (e.g. write_bytes) and rank by it")
	return p
}

// output is one parsed --output value.
type output struct {
	format string // a name for handler.FormatByName: each printer gets its own Format (they keep scratch state)
	path   string // "-" is stdout
}

// check validates the flags without opening or starting anything.
func (p *pipelineFlags) check() error {
	_, _, err := p.parse()
	return err
}

func (p *pipelineFlags) parse() ([]output, int64, error) {
	if _, err := handler.FormatByName(p.format); err != nil {
		return nil, 0, fmt.Errorf("--fmt: %w", err)
	}
	values := p.outputs
	if len(values) == 0 {
		values = []string{"-"}
	}
	var outs []output
	seen := map[string]bool{}
	files := 0
	for _, v := range values {
		o := output{format: p.format, path: v}
		if name, rest, ok := strings.Cut(v, ":"); ok {
			if _, err := handler.FormatByName(name); err == nil {
				o.format, o.path = name, rest
			}
		}
		if o.path == "" {
			return nil, 0, fmt.Errorf("--output %q: no path (use - for stdout)", v)
		}
		if seen[o.path] {
			return nil, 0, fmt.Errorf("--output %q: %s is named twice", v, o.path)
		}
		seen[o.path] = true
		if o.path != "-" {
			files++
		}
		outs = append(outs, o)
	}
	size, err := pipeline.ParseSize(p.rotateSize)
	if err != nil {
		return nil, 0, fmt.Errorf("--rotate-size: %w", err)
	}
	if p.rotateKeep < 0 {
		return nil, 0, fmt.Errorf("--rotate-keep: %d is negative", p.rotateKeep)
	}
	if files == 0 {
		for _, f := range []string{"rotate-size", "rotate-keep"} {
			if p.fs.Changed(f) {
				return nil, 0, fmt.Errorf("--%s applies to output files, and no --output names one", f)
			}
		}
	}

	if p.prometheus != "" {
		if err := metrics.CheckAddr(p.prometheus, p.allowRemote); err != nil {
			return nil, 0, fmt.Errorf("--prometheus: %w", err)
		}
		if p.maxSeries < 1 {
			return nil, 0, fmt.Errorf("--metric-max-series: %d, want at least 1", p.maxSeries)
		}
		o := metrics.Options{Labels: p.metricLabels, MaxSeries: p.maxSeries}
		if err := o.Validate(); err != nil {
			return nil, 0, fmt.Errorf("--metric-labels/--metric-max-series: %w", err)
		}
	} else {
		for _, f := range []string{"prometheus-allow-remote", "metric-labels", "metric-max-series"} {
			if p.fs.Changed(f) {
				return nil, 0, fmt.Errorf("--%s applies to --prometheus, which is not set", f)
			}
		}
	}

	if p.aggregate != "" {
		cfg := aggregate.Config{Key: p.aggregate, Window: p.window, Top: p.top, Sum: p.sum}
		if err := cfg.Validate(); err != nil {
			return nil, 0, fmt.Errorf("--aggregate: %w", err)
		}
	} else {
		for _, f := range []string{"window", "top", "aggregate-sum"} {
			if p.fs.Changed(f) {
				return nil, 0, fmt.Errorf("--%s applies to --aggregate, which is not set", f)
			}
		}
	}
	return outs, size, nil
}

// pipelineChain is the handler chain after the trackers, built by package
// pipeline from the specs the flags describe:
//
//	[prometheus] -> [aggregate ->] fanout of printers (json, text, csv) on sinks
//
// The exporter sees every event and never fails; each printer writes to
// its own sink, and a failing sink (full disk) does not keep the event
// from the others.
type pipelineChain struct {
	chain  *pipeline.Chain
	sinks  *sinkList
	server *metrics.Server
	stderr io.Writer
	closed bool
}

// specs turns the flags into handler specs.
func (p *pipelineFlags) specs() ([]pipeline.HandlerSpec, error) {
	outs, size, err := p.parse()
	if err != nil {
		return nil, err
	}
	var printers []pipeline.HandlerSpec
	for _, o := range outs {
		spec, err := pipeline.NewHandlerSpec(o.format)
		if err != nil {
			return nil, err
		}
		if o.path != "-" {
			path, err := filepath.Abs(o.path)
			if err != nil {
				return nil, fmt.Errorf("--output %s: %w", o.path, err)
			}
			opts := spec.Options.(*pipeline.PrinterOptions)
			opts.Path = path
			if size > 0 {
				opts.RotateSize, opts.RotateKeep = pipeline.Size(size), p.rotateKeep
			} else {
				opts.Truncate = true
			}
		}
		printers = append(printers, spec)
	}
	out := pipeline.HandlerSpec{Type: "fanout", Options: &pipeline.FanoutOptions{Handlers: printers}}
	if p.aggregate != "" {
		out = pipeline.HandlerSpec{Type: "aggregate", Options: &pipeline.AggregateOptions{
			Key: p.aggregate, Window: tracker.Duration(p.window), Top: p.top, Sum: p.sum,
			Handlers: []pipeline.HandlerSpec{out},
		}}
	}
	specs := []pipeline.HandlerSpec{out}
	if p.prometheus != "" {
		specs = append([]pipeline.HandlerSpec{{Type: "prometheus", Options: &pipeline.PrometheusOptions{}}}, specs...)
	}
	return specs, nil
}

// build opens the outputs and starts the metrics server. src gives the
// trackers' health metrics; stdout is where "-" writes.
func (p *pipelineFlags) build(src metrics.Source, stdout, stderr io.Writer) (pl *pipelineChain, err error) {
	specs, err := p.specs()
	if err != nil {
		return nil, err
	}
	pl = &pipelineChain{stderr: stderr, sinks: &sinkList{set: metrics.NewSinkSet()}}
	env := pipeline.Env{Stdout: stdout, Sinks: pl.sinks}
	if p.prometheus != "" {
		exp, err := metrics.New(metrics.Options{Labels: p.metricLabels, MaxSeries: p.maxSeries, Version: Version, Source: src})
		if err != nil {
			return nil, err
		}
		if err := exp.Registry().Register(pl.sinks.set); err != nil {
			return nil, err
		}
		srv, err := metrics.Serve(p.prometheus, p.allowRemote, exp.HTTPHandler())
		if err != nil {
			return nil, fmt.Errorf("--prometheus: %w", err)
		}
		pl.server, env.Exporter = srv, exp
	}
	pl.chain, err = pipeline.Build(specs, env)
	if err != nil {
		if pl.server != nil {
			pl.server.Close()
		}
		return nil, fmt.Errorf("--output: %w", err)
	}
	return pl, nil
}

// Handle implements handler.Handler.
func (pl *pipelineChain) Handle(ev *event.Event) error { return pl.chain.Handle(ev) }

// Close stops the metrics server, flushes the aggregator and the
// printers, closes the sinks and reports sinks that lost events. Call it
// after the trackers stopped. It is idempotent.
func (pl *pipelineChain) Close() error {
	if pl.closed {
		return nil
	}
	pl.closed = true
	var err error
	if pl.server != nil { // first: it does not wait for a blocked sink
		err = pl.server.Close()
	}
	err = errors.Join(err, pl.chain.Close())
	for _, s := range pl.sinks.all {
		if st := s.Stats(); st.FailedWrites > 0 {
			fmt.Fprintf(pl.stderr, "eunomia: output %s: %d writes failed, %d bytes of events lost\n", s.Name(), st.FailedWrites, st.LostBytes)
		}
	}
	return err
}

// sinkList remembers every sink the chain opened (to report their losses
// after they are closed) and keeps the open ones in a metrics set.
type sinkList struct {
	set *metrics.SinkSet
	all []sink.Sink
}

// Add implements pipeline.SinkSet. Sinks are added while the chain is
// built, on one goroutine.
func (l *sinkList) Add(s sink.Sink) func() {
	l.all = append(l.all, s)
	return l.set.Add(s)
}
