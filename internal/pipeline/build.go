package pipeline

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// Chain is a built handler chain. Close it after the trackers feeding it
// have stopped: it closes the handlers it made (flushing files) and
// releases the shared outputs it uses.
type Chain struct {
	chain     handler.Chain
	closers   []func() error // in the order to run them
	closeOnce sync.Once
	closeErr  error
}

// Handle implements handler.Handler.
func (c *Chain) Handle(ev *event.Event) error { return c.chain.Handle(ev) }

// Len is the number of handlers.
func (c *Chain) Len() int { return len(c.chain) }

// Close closes the chain's own handlers in reverse order and releases its
// shared outputs. It is idempotent.
func (c *Chain) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		for i := len(c.closers) - 1; i >= 0; i-- {
			errs = append(errs, c.closers[i]())
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// Build makes the chain that specs describe. On error, whatever was built
// is closed again.
func Build(specs []HandlerSpec, env Env) (*Chain, error) {
	c := &Chain{}
	for i, s := range specs {
		if s.Type == "" {
			if env.Outputs == nil {
				c.Close()
				return nil, fmt.Errorf("handlers[%d]: output %q: no shared outputs are defined here", i, s.Output)
			}
			h, release, err := env.Outputs.Acquire(s.Output)
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("handlers[%d]: %w", i, err)
			}
			c.chain = append(c.chain, h)
			c.closers = append(c.closers, func() error { release(); return nil })
			continue
		}
		h, err := BuildHandler(s, env)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("handlers[%d] (%s): %w", i, s.Type, err)
		}
		c.chain = append(c.chain, h)
		if cl, ok := h.(io.Closer); ok {
			c.closers = append(c.closers, cl.Close)
		}
	}
	return c, nil
}

// BuildHandler makes one handler of a type (not a reference to an output).
// The caller closes it if it is an io.Closer.
func BuildHandler(s HandlerSpec, env Env) (handler.Handler, error) {
	t, ok := lookupType(s.Type)
	if !ok {
		return nil, fmt.Errorf("unknown handler type %q (known: %v)", s.Type, TypeNames())
	}
	opts := s.Options
	if opts == nil {
		opts = t.newOptions()
	}
	return t.build(opts, env)
}
