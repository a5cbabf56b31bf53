package pipeline

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/rules"
)

// RulesOptions are the options of the rules handler (see docs/rules.md).
type RulesOptions struct {
	Files    []string      `json:"files" help:"rule files to load, in order (absolute paths; \"builtin\" is the built-in pack)"`
	Webhook  string        `json:"webhook,omitempty" help:"also POST each alert as JSON to this http(s) URL"`
	Handlers []HandlerSpec `json:"handlers,omitempty" help:"where the alerts go (printers, prometheus for eunomia_alerts_total, shared outputs)"`
}

// Validate checks the options and compiles the rules, so that a rule that
// does not compile is an error of the request or config file.
func (o *RulesOptions) Validate() error {
	if len(o.Files) == 0 {
		return fmt.Errorf("files: give rule files, or %q for the built-in pack", rules.BuiltinName)
	}
	for _, f := range o.Files {
		if f != rules.BuiltinName && !filepath.IsAbs(f) {
			return fmt.Errorf("files: %q is relative; give an absolute path (the agent resolves it, not the client)", f)
		}
	}
	if _, err := rules.LoadFiles(o.Files...); err != nil {
		return fmt.Errorf("files: %w", err)
	}
	if o.Webhook != "" {
		if err := rules.CheckWebhookURL(o.Webhook); err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
	}
	if len(o.Handlers) == 0 && o.Webhook == "" {
		return errors.New("handlers: the alerts need handlers, a webhook, or both")
	}
	return nil
}

// rulesStage evaluates the rules on each event of the chain and hands the
// alerts to its own handlers; the event goes on down the chain.
type rulesStage struct {
	h     *rules.Handler
	inner *Chain
}

func rulesHandler(o *RulesOptions, env Env) (handler.Handler, error) {
	set, err := rules.LoadFiles(o.Files...)
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	inner, err := Build(o.Handlers, env)
	if err != nil {
		return nil, err
	}
	var opts []rules.Option
	if o.Webhook != "" {
		w, err := rules.NewWebhook(rules.WebhookOptions{URL: o.Webhook, Logger: env.Log})
		if err != nil {
			inner.Close()
			return nil, fmt.Errorf("webhook: %w", err)
		}
		opts = append(opts, rules.WithWebhook(w))
	}
	if env.Log != nil {
		opts = append(opts, rules.WithLogger(env.Log))
	}
	return &rulesStage{h: rules.NewHandler(set, inner, opts...), inner: inner}, nil
}

func (r *rulesStage) Handle(ev *event.Event) error { return r.h.Handle(ev) }

// Close flushes the webhook, then closes the alerts' handlers.
func (r *rulesStage) Close() error { return errors.Join(r.h.Close(), r.inner.Close()) }
