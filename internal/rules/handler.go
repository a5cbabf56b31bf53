package rules

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// Handler evaluates a rule set on every event and raises an alert event for
// each rule that matches. Alerts go to a downstream handler (the printers,
// sinks and exporter of the chain) and, optionally, to a webhook. The
// triggering event itself is passed on unchanged: Handle returns nil unless
// the downstream handler failed on an alert. An event of a kind no rule
// names costs one map lookup. Safe for concurrent use.
type Handler struct {
	set    *Set
	alerts handler.Handler
	hook   *Webhook
	log    *slog.Logger
	pool   sync.Pool

	matches    []atomic.Uint64 // per rule index
	evalErrors []atomic.Uint64 // per rule index
	failed     atomic.Uint64   // alerts the downstream handler failed on
	warned     atomic.Bool
}

// Option configures a Handler.
type Option func(*Handler)

// WithWebhook posts every alert to w too. The handler closes w on Close.
func WithWebhook(w *Webhook) Option { return func(h *Handler) { h.hook = w } }

// WithLogger sets the logger (for the first evaluation error).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// NewHandler makes a handler for set. alerts receives the alert events; it
// may be nil when alerts are only counted and posted.
func NewHandler(set *Set, alerts handler.Handler, opts ...Option) *Handler {
	h := &Handler{
		set:        set,
		alerts:     alerts,
		log:        slog.Default(),
		matches:    make([]atomic.Uint64, len(set.rules)),
		evalErrors: make([]atomic.Uint64, len(set.rules)),
	}
	h.pool.New = func() any { return &activation{fields: make([]fieldVal, 0, 32)} }
	for _, o := range opts {
		o(h)
	}
	return h
}

// Set returns the handler's rules.
func (h *Handler) Set() *Set { return h.set }

// Handle implements handler.Handler.
func (h *Handler) Handle(ev *event.Event) error {
	rules := h.set.byKind[ev.Kind]
	if len(rules) == 0 {
		return nil
	}
	a := h.pool.Get().(*activation)
	a.reset(ev, schemas[ev.Kind])
	// One execution frame for every rule on this event (Eval would take
	// one from cel-go's pool per rule).
	frame, err := interpreter.NewExecutionFrame(a)
	if err != nil {
		return err
	}
	for _, r := range rules {
		a.rule = r
		out, _, evalErr := r.prg.Eval(frame)
		if evalErr != nil {
			h.evalError(r, evalErr)
			continue
		}
		if out != types.True {
			if out != types.False { // a dyn condition that is not a bool
				h.evalError(r, fmt.Errorf("condition gave %s, not a bool", out.Type().TypeName()))
			}
			continue
		}
		if aerr := h.raise(r, ev, frame); aerr != nil && err == nil {
			err = aerr
		}
	}
	frame.Close()
	a.reset(nil, nil)
	h.pool.Put(a)
	return err
}

func (h *Handler) evalError(r *Rule, err error) {
	h.evalErrors[r.index].Add(1)
	if h.warned.CompareAndSwap(false, true) {
		h.log.Warn("rule evaluation failed; further failures are counted, not logged", "rule", r.Name, "err", err)
	}
}

// raise builds the alert for r matching ev and hands it on.
func (h *Handler) raise(r *Rule, ev *event.Event, frame *interpreter.ExecutionFrame) error {
	h.matches[r.index].Add(1)
	al := &event.Alert{Rule: r.Name, Severity: r.Severity, Message: h.message(r, frame), Tags: r.Tags, Event: ev}
	aev := &event.Event{
		Time:      ev.Time,
		Kind:      event.KindAlert,
		Tracker:   ev.Tracker,
		Process:   ev.Process,
		Container: ev.Container,
		Payload:   al,
	}
	if h.hook != nil {
		h.hook.Send(aev)
	}
	if h.alerts == nil {
		return nil
	}
	if err := h.alerts.Handle(aev); err != nil {
		h.failed.Add(1)
		return fmt.Errorf("alert of rule %s: %w", r.Name, err)
	}
	return nil
}

// message fills in r's output template. An expression that fails to
// evaluate shows as <error> (and counts as an evaluation error).
func (h *Handler) message(r *Rule, frame *interpreter.ExecutionFrame) string {
	var buf [256]byte
	b := buf[:0]
	for _, p := range r.out {
		if p.prg == nil {
			b = append(b, p.text...)
			continue
		}
		v, _, err := p.prg.Eval(frame)
		if err != nil {
			h.evalError(r, err)
			b = append(b, "<error>"...)
			continue
		}
		b = appendValue(b, v)
	}
	return string(b)
}

// RuleStats are the counters of one rule.
type RuleStats struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Alerts   uint64 `json:"alerts"`
	Errors   uint64 `json:"errors"` // evaluations that failed
}

// Stats returns the counters of every rule, in the order of the set. This
// is what eunomia_alerts_total{rule,severity} exports.
func (h *Handler) Stats() []RuleStats {
	out := make([]RuleStats, len(h.set.rules))
	for i, r := range h.set.rules {
		out[i] = RuleStats{Rule: r.Name, Severity: r.Severity, Alerts: h.matches[i].Load(), Errors: h.evalErrors[i].Load()}
	}
	return out
}

// AlertsFailed is the number of alerts the downstream handler returned an
// error for.
func (h *Handler) AlertsFailed() uint64 { return h.failed.Load() }

// Webhook returns the webhook, or nil.
func (h *Handler) Webhook() *Webhook { return h.hook }

// Close flushes and closes the webhook, if any. The downstream handler is
// not closed: it belongs to the chain.
func (h *Handler) Close() error {
	if h.hook == nil {
		return nil
	}
	return h.hook.Close()
}
