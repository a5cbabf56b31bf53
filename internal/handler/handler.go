// Package handler holds the event handlers and the chains that run them.
//
// A chain runs its handlers in order for each event and stops at the first
// one that returns an error, as the design says. Handlers may be shared by
// several trackers (whose events then arrive from several goroutines), so
// every handler must be safe for concurrent use.
package handler

import (
	"errors"
	"io"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// Handler handles one event. An error stops the chain for that event.
type Handler interface {
	Handle(ev *event.Event) error
}

// Func adapts a function to a Handler.
type Func func(ev *event.Event) error

// Handle implements Handler.
func (f Func) Handle(ev *event.Event) error { return f(ev) }

// ErrSkip stops a chain for an event without counting it as a failure
// (a filter that drops the event, for example).
var ErrSkip = errors.New("event skipped")

// Chain runs handlers in order.
type Chain []Handler

// Handle runs every handler on ev until one returns an error.
func (c Chain) Handle(ev *event.Event) error {
	for _, h := range c {
		if err := h.Handle(ev); err != nil {
			return err
		}
	}
	return nil
}

// Close closes, in reverse order, every handler that has a Close method
// (sinks flush there) and returns the first error.
func (c Chain) Close() error {
	var first error
	for i := len(c) - 1; i >= 0; i-- {
		if cl, ok := c[i].(io.Closer); ok {
			if err := cl.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}
