package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/pipeline"
)

// outputs are the shared handlers of the config file's "outputs" section.
// An output is built when the first chain refers to it and closed when the
// last such chain is closed, so that a reload that changes an output's
// options gives the restarted trackers a new one while the old one serves
// its remaining users until they stop.
type outputs struct {
	env pipeline.Env

	mu   sync.Mutex
	defs map[string]pipeline.HandlerSpec // of the config in force
	live map[string]*sharedOutput        // by name and definition
}

type sharedOutput struct {
	h    handler.Handler
	refs int
}

func newOutputs(env pipeline.Env) *outputs {
	return &outputs{env: env, defs: map[string]pipeline.HandlerSpec{}, live: map[string]*sharedOutput{}}
}

// resolver resolves references against defs.
func (o *outputs) resolver(defs map[string]pipeline.HandlerSpec) pipeline.OutputResolver {
	return outputResolver{o: o, defs: defs}
}

// current resolves references against the config in force.
func (o *outputs) current() pipeline.OutputResolver {
	o.mu.Lock()
	defer o.mu.Unlock()
	return outputResolver{o: o, defs: o.defs}
}

func (o *outputs) setCurrent(defs map[string]pipeline.HandlerSpec) {
	o.mu.Lock()
	o.defs = defs
	o.mu.Unlock()
}

type outputResolver struct {
	o    *outputs
	defs map[string]pipeline.HandlerSpec
}

func (r outputResolver) Acquire(name string) (handler.Handler, func(), error) {
	def, ok := r.defs[name]
	if !ok {
		names := make([]string, 0, len(r.defs))
		for n := range r.defs {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) == 0 {
			names = []string{"none"}
		}
		return nil, nil, fmt.Errorf("unknown output %q (defined in the config file: %s)", name, strings.Join(names, ", "))
	}
	b, err := json.Marshal(def)
	if err != nil {
		return nil, nil, fmt.Errorf("output %q: %w", name, err)
	}
	key := name + "\x00" + string(b)
	o := r.o
	o.mu.Lock()
	defer o.mu.Unlock()
	so := o.live[key]
	if so == nil {
		h, err := pipeline.BuildHandler(def, o.env)
		if err != nil {
			return nil, nil, fmt.Errorf("output %q: %w", name, err)
		}
		so = &sharedOutput{h: h}
		o.live[key] = so
	}
	so.refs++
	var once sync.Once
	release := func() {
		once.Do(func() {
			o.mu.Lock()
			so.refs--
			last := so.refs == 0
			if last {
				delete(o.live, key)
			}
			o.mu.Unlock()
			if last {
				if c, ok := so.h.(io.Closer); ok {
					c.Close()
				}
			}
		})
	}
	return so.h, release, nil
}

// close closes outputs still open (none, once every chain is closed).
func (o *outputs) close() error {
	o.mu.Lock()
	live := o.live
	o.live = map[string]*sharedOutput{}
	o.mu.Unlock()
	var errs []error
	for _, so := range live {
		if c, ok := so.h.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
