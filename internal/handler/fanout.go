package handler

import (
	"errors"
	"io"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// Fanout gives every event to each of its handlers, even when one fails.
// It is how several sinks hang off one chain: in a Chain a failing sink
// (a full disk) would stop the chain before the next sink, in a Fanout the
// others still get the event. Put it last in a chain; its error (all the
// failures joined) then only counts the event as failed.
type Fanout []Handler

// Handle implements Handler. ErrSkip from a branch is not a failure.
func (f Fanout) Handle(ev *event.Event) error {
	var errs []error
	for _, h := range f {
		if err := h.Handle(ev); err != nil && !errors.Is(err, ErrSkip) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

// Close closes every branch that has a Close method, all of them even when
// one fails, and returns the failures joined.
func (f Fanout) Close() error {
	var errs []error
	for _, h := range f {
		if c, ok := h.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
