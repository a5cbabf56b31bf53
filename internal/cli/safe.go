package cli

import (
	"context"
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

// wrap appends the rules handler to chain; its alerts go through the
// handlers already in the chain (printers, sinks, exporter), after the
// event that raised them. A nil ruleRun leaves the chain as it is.
func (rr *ruleRun) wrap(chain handler.Chain) (handler.Chain, error) {
	if rr == nil {
		return chain, nil
	}
	h, err := rr.handler(slices.Clone(chain))
	if err != nil {
		chain.Close()
		return nil, err
	}
	return append(chain, h), nil
}

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
	format    string
	output    string
	duration  time.Duration
	queueSize int
	rules     ruleFlags
	trackers  *trackerFlags
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
	f.StringVar(&o.format, "fmt", "json", "output format of alerts: json, text or csv")
	f.StringVarP(&o.output, "output", "o", "", "write alerts to this file instead of stdout")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	f.IntVar(&o.queueSize, "queue-size", tracker.DefaultQueueSize, "events buffered per tracker between kernel and handlers; more are dropped and counted")
	o.rules.bind(f, "rule file to load instead of the built-in pack")
	o.trackers = bindTrackerFlags(f, reg)
	return cmd
}

func (o *safeOptions) run(ctx context.Context, reg *tracker.Registry, stdout, stderr io.Writer) error {
	if o.duration < 0 {
		return fmt.Errorf("--duration: %s is negative", o.duration)
	}
	if o.queueSize < 1 {
		return fmt.Errorf("--queue-size: %d, want at least 1", o.queueSize)
	}
	format, err := handler.FormatByName(o.format)
	if err != nil {
		return fmt.Errorf("--fmt: %w", err)
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

	out := struct{ io.Writer }{stdout} // never close stdout
	var sink io.Writer = out
	if o.output != "" {
		f, err := os.OpenFile(o.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("--output: %w", err)
		}
		sink = f
	}
	printer := handler.NewPrinter(format, sink)
	h, err := rr.handler(printer)
	if err != nil {
		printer.Close()
		return err
	}
	// The printer comes last so that closing the chain flushes the
	// webhook's alerts first, then the printed ones.
	chain := handler.Chain{h, closeOnly{printer}}

	m := tracker.NewManager(reg, tracker.WithQueueSize(o.queueSize))
	for i, p := range plan {
		id, err := m.Start(p.Tracker, cfgs[i], tracker.Env{}, chain)
		if err != nil {
			m.Close()
			closeWithin(chain, tracker.DefaultDrainTimeout)
			return err
		}
		slog.Info("tracker started", "tracker", fmt.Sprintf("%s#%d", p.Tracker, id), "for", p.Kinds)
	}
	slog.Info("watching", "rules", len(rr.set.Rules()), "kinds", rr.set.Kinds())

	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	<-ctx.Done()

	infos, err := m.Close()
	cerr := closeWithin(chain, tracker.DefaultDrainTimeout)
	for _, in := range infos {
		fmt.Fprintf(stderr, "eunomia: %s: %d events, %d lost in kernel, %d lost in queue, %d failed in handlers\n",
			in.Name, in.Events, in.LostKernel, in.LostQueue, in.Failed)
	}
	rr.report(stderr)
	if err != nil {
		return err
	}
	return cerr
}

// closeOnly puts a handler in a chain for Close only: the rules handler
// already hands it the alerts, and the events themselves are not printed.
type closeOnly struct{ c io.Closer }

func (closeOnly) Handle(*event.Event) error { return nil }
func (c closeOnly) Close() error            { return c.c.Close() }
