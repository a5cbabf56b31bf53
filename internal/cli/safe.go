package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/rules"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

// ruleFlags are the flags that add the rules handler to a chain: shared by
// `run` (events and alerts) and `safe` (alerts only).
type ruleFlags struct {
	files   []string
	webhook string
	retries int
	queue   int
}

func (rf *ruleFlags) bind(f *pflag.FlagSet, what string) {
	f.StringArrayVar(&rf.files, "rules", nil, what+" (repeatable; \"builtin\" is the built-in pack)")
	f.StringVar(&rf.webhook, "webhook", "", "also POST every alert as JSON to this http(s) URL")
	f.IntVar(&rf.retries, "webhook-retries", 3, "retries of a failed webhook POST, with exponential backoff")
	f.IntVar(&rf.queue, "webhook-queue", 1024, "alerts waiting for the webhook; more are dropped and counted")
}

// ruleRun is a loaded rule set on its way into a chain.
type ruleRun struct {
	set *rules.Set
	rf  *ruleFlags
	h   *rules.Handler
}

// load compiles the rule files (nil when none were given and builtin is
// false) and checks the webhook flags, before anything needs root.
func (rf *ruleFlags) load(builtin bool) (*ruleRun, error) {
	files := rf.files
	if len(files) == 0 {
		if !builtin {
			if rf.webhook != "" {
				return nil, fmt.Errorf("--webhook needs --rules")
			}
			return nil, nil
		}
		files = []string{rules.BuiltinName}
	}
	set, err := rules.LoadFiles(files...)
	if err != nil {
		return nil, fmt.Errorf("--rules: %w", err)
	}
	if rf.queue < 1 {
		return nil, fmt.Errorf("--webhook-queue: %d, want at least 1", rf.queue)
	}
	if rf.retries < 0 {
		return nil, fmt.Errorf("--webhook-retries: %d is negative", rf.retries)
	}
	if rf.webhook != "" {
		if err := rules.CheckWebhookURL(rf.webhook); err != nil {
			return nil, fmt.Errorf("--webhook: %w", err)
		}
	}
	return &ruleRun{set: set, rf: rf}, nil
}

// handler makes the rules handler, sending alerts to alerts.
func (rr *ruleRun) handler(alerts handler.Handler) (*rules.Handler, error) {
	var opts []rules.Option
	if rr.rf.webhook != "" {
		retries := rr.rf.retries
		if retries == 0 {
			retries = -1 // WebhookOptions: 0 means the default
		}
		w, err := rules.NewWebhook(rules.WebhookOptions{URL: rr.rf.webhook, QueueSize: rr.rf.queue, Retries: retries})
		if err != nil {
			return nil, fmt.Errorf("--webhook: %w", err)
		}
		opts = append(opts, rules.WithWebhook(w))
	}
	rr.h = rules.NewHandler(rr.set, alerts, opts...)
	return rr.h, nil
}

// handlerCloser is a chain with sinks to close: the pipeline.
type handlerCloser interface {
	handler.Handler
	io.Closer
}

// wrap adds the rules handler after pl: the events go to pl, then to the
// rules, whose alerts go to pl too (printed after the event that raised
// them, counted by the exporter). A nil ruleRun returns pl as it is.
// Rules that none of the trackers of the run can feed are named in a
// warning.
func (rr *ruleRun) wrap(pl handlerCloser, reg *tracker.Registry, trackers []string) (handlerCloser, error) {
	if rr == nil {
		return pl, nil
	}
	fed := map[event.Kind]bool{}
	for _, name := range trackers {
		if k, err := reg.Lookup(name); err == nil {
			for _, ek := range k.Events {
				fed[ek] = true
			}
		}
	}
	var starved []string
	for _, r := range rr.set.Rules() {
		if r.Enabled && !slices.ContainsFunc(r.Kinds, func(k event.Kind) bool { return fed[k] }) {
			starved = append(starved, r.Name)
		}
	}
	if len(starved) > 0 {
		slog.Warn("no tracker of this run produces the events these rules need; eunomia safe starts the trackers the rules need", "rules", starved)
	}
	h, err := rr.handler(pl)
	if err != nil {
		pl.Close()
		return nil, err
	}
	return eventsAndRules{pl, h}, nil
}

// eventsAndRules hands each event to the pipeline, then to the rules, even
// when an output failed: a full disk must not blind the rules.
type eventsAndRules struct {
	pl    handlerCloser
	rules *rules.Handler
}

func (c eventsAndRules) Handle(ev *event.Event) error {
	err := c.pl.Handle(ev)
	if rerr := c.rules.Handle(ev); err == nil {
		err = rerr
	}
	return err
}

// Close flushes the webhook, then the pipeline.
func (c eventsAndRules) Close() error { return errors.Join(c.rules.Close(), c.pl.Close()) }

// alertsOnly hands events to the rules only; their alerts go to the
// pipeline (safe mode).
type alertsOnly struct {
	pl    handlerCloser
	rules *rules.Handler
}

func (c alertsOnly) Handle(ev *event.Event) error { return c.rules.Handle(ev) }
func (c alertsOnly) Close() error                 { return errors.Join(c.rules.Close(), c.pl.Close()) }

// report writes the alert counters and the webhook's to w.
func (rr *ruleRun) report(w io.Writer) {
	if rr == nil || rr.h == nil {
		return
	}
	for _, st := range rr.h.Stats() {
		if st.Alerts == 0 && st.Errors == 0 {
			continue
		}
		fmt.Fprintf(w, "eunomia: rule %s (%s): %d alerts, %d evaluation errors\n", st.Rule, st.Severity, st.Alerts, st.Errors)
	}
	if n := rr.h.AlertsFailed(); n > 0 {
		fmt.Fprintf(w, "eunomia: %d alerts failed in handlers\n", n)
	}
	if wh := rr.h.Webhook(); wh != nil {
		st := wh.Stats()
		fmt.Fprintf(w, "eunomia: webhook: %d sent, %d failed, %d dropped, %d retries\n", st.Sent, st.Failed, st.Dropped, st.Retries)
	}
}

type safeOptions struct {
	pipeline  *pipelineFlags
	duration  time.Duration
	queueSize int
	rules     ruleFlags
	trackers  *trackerFlags
	container *containerOptions
}

func newSafeCmd() *cobra.Command {
	reg := all.Registry()
	o := &safeOptions{}
	cmd := &cobra.Command{
		Use:   "safe",
		Short: "Security-only mode: run the trackers the rules need and print only alerts",
		Long: "Load security rules (the built-in pack unless --rules is given), start the\n" +
			"trackers that produce the event kinds the rules name, and print the alerts\n" +
			"they raise, nothing else. Filter flags apply to every tracker started.",
		Example: "  eunomia safe\n" +
			"  eunomia safe --rules builtin --rules my-rules.yaml --fmt text\n" +
			"  eunomia safe --webhook http://127.0.0.1:9000/alerts --duration 1h",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.run(ctx, reg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	o.pipeline = bindPipelineFlags(f)
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	f.IntVar(&o.queueSize, "queue-size", tracker.DefaultQueueSize, "events buffered per tracker between kernel and handlers; more are dropped and counted")
	o.rules.bind(f, "rule file to load instead of the built-in pack")
	o.trackers = bindTrackerFlags(f, reg)
	o.container = bindContainerFlags(f)
	return cmd
}

func (o *safeOptions) run(ctx context.Context, reg *tracker.Registry, stdout, stderr io.Writer) error {
	if o.duration < 0 {
		return fmt.Errorf("--duration: %s is negative", o.duration)
	}
	if o.queueSize < 1 {
		return fmt.Errorf("--queue-size: %d, want at least 1", o.queueSize)
	}
	if err := o.pipeline.check(); err != nil {
		return err
	}
	rr, err := o.rules.load(true)
	if err != nil {
		return err
	}
	plan, err := rules.PlanTrackers(reg, rr.set)
	if err != nil {
		return err
	}
	names := make([]string, len(plan))
	for i, p := range plan {
		names[i] = p.Tracker
	}
	cfgs, err := o.trackers.configs(reg, names)
	if err != nil {
		return err
	}
	for i, p := range plan {
		if err := p.Apply(cfgs[i]); err != nil {
			return err
		}
	}
	if err := requireRoot("eunomia safe"); err != nil {
		return err
	}
	cs, err := o.container.setup(ctx, stderr)
	if err != nil {
		return err
	}
	defer cs.Close()

	m := tracker.NewManager(reg, tracker.WithQueueSize(o.queueSize))
	pl, err := o.pipeline.build(m, stdout, stderr)
	if err != nil {
		return err
	}
	h, err := rr.handler(pl)
	if err != nil {
		pl.Close()
		return err
	}
	chain := alertsOnly{pl, h}
	for i, p := range plan {
		id, err := m.Start(p.Tracker, cfgs[i], cs.env(), cs.chain(chain))
		if err != nil {
			m.Close()
			closeWithin(chain, tracker.DefaultDrainTimeout)
			return err
		}
		slog.Info("tracker started", "tracker", fmt.Sprintf("%s#%d", p.Tracker, id), "for", p.Kinds)
	}
	slog.Info("watching", "rules", len(rr.set.Rules()), "kinds", rr.set.Kinds())

	err = waitAndStop(ctx, o.duration, m, chain, stderr)
	rr.report(stderr)
	return err
}
