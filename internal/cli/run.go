package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

type runOptions struct {
	pipeline  *pipelineFlags
	duration  time.Duration
	queueSize int
	trackers  *trackerFlags
	rules     ruleFlags
	container *containerOptions
}

func newRunCmd() *cobra.Command {
	reg := all.Registry()
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run TRACKER [TRACKER...]",
		Short: "Run trackers and print their events until Ctrl-C",
		Long: "Run one or more trackers in this process and print their events.\n\n" +
			"Trackers: " + fmt.Sprint(reg.Names()) + ".\n" +
			"Filter flags apply to every named tracker that has them; a flag that\n" +
			"applies to none of them is an error.",
		Example: "  eunomia run process\n" +
			"  eunomia run process --fmt text --pid 1234 --min-duration 10ms --duration 30s --output events.txt\n" +
			"  eunomia run process --container web",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.run(ctx, reg, args, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	o.pipeline = bindPipelineFlags(f)
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	f.IntVar(&o.queueSize, "queue-size", tracker.DefaultQueueSize, "events buffered per tracker between kernel and handlers; more are dropped and counted")
	o.trackers = bindTrackerFlags(f, reg)
	o.rules.bind(f, "also evaluate the rules of this file and print their alerts with the events")
	o.container = bindContainerFlags(f)
	return cmd
}

func (o *runOptions) run(ctx context.Context, reg *tracker.Registry, kinds []string, stderr io.Writer) error {
	if o.duration < 0 {
		return fmt.Errorf("--duration: %s is negative", o.duration)
	}
	if o.queueSize < 1 {
		return fmt.Errorf("--queue-size: %d, want at least 1", o.queueSize)
	}
	cfgs, err := o.trackers.configs(reg, kinds)
	if err != nil {
		return err
	}
	if err := o.pipeline.check(); err != nil {
		return err
	}
	rr, err := o.rules.load(false)
	if err != nil {
		return err
	}
	if err := requireRoot("eunomia run"); err != nil {
		return err
	}
	cs, err := o.container.setup(ctx, stderr)
	if err != nil {
		return err
	}
	defer cs.Close()

	m := tracker.NewManager(reg, tracker.WithQueueSize(o.queueSize))
	pl, err := o.pipeline.build(m, os.Stdout, stderr)
	if err != nil {
		return err
	}
	chain, err := rr.wrap(pl, reg, kinds)
	if err != nil {
		return err
	}
	for i, kind := range kinds {
		id, err := m.Start(kind, cfgs[i], cs.env(), cs.chain(chain))
		if err != nil {
			m.Close()
			closeWithin(chain, tracker.DefaultDrainTimeout)
			return err
		}
		slog.Info("tracker started", "tracker", fmt.Sprintf("%s#%d", kind, id))
	}

	err = waitAndStop(ctx, o.duration, m, chain, stderr)
	rr.report(stderr)
	return err
}

// waitAndStop runs until ctx ends or duration (if not 0) passes, then
// stops the trackers, closes the chain within the drain timeout and prints
// each tracker's summary: events delivered and lost, where.
func waitAndStop(ctx context.Context, duration time.Duration, m *tracker.Manager, chain io.Closer, stderr io.Writer) error {
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	<-ctx.Done()

	infos, err := m.Close()
	cerr := closeWithin(chain, tracker.DefaultDrainTimeout)
	for _, in := range infos {
		fmt.Fprintf(stderr, "eunomia: %s: %d events, %d lost in kernel, %d lost in queue, %d failed in handlers\n",
			in.Name, in.Events, in.LostKernel, in.LostQueue, in.Failed)
	}
	return errors.Join(err, cerr)
}

// closeWithin closes the chain (flushing sinks) but gives up after d: an
// output that blocks (a full pipe nobody reads) must not hang the agent.
func closeWithin(chain io.Closer, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- chain.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("output blocked: buffered events not written after %s", d)
	}
}
