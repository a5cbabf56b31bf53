// Package tracker defines what a tracker is (a probe with its config), the
// registry of tracker kinds, and the manager that starts, stops and lists
// tracker instances while the agent runs.
package tracker

import (
	"fmt"
	"sort"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// Tracker is one running probe. Start attaches it; from then on it calls
// emit from its own goroutine(s) for every event, until Close returns.
type Tracker interface {
	// Start loads and attaches the BPF programs and starts delivering
	// events to emit. emit must not block for long: the manager's emit
	// queues the event and drops it (counted) when the queue is full.
	Start(emit func(*event.Event)) error
	// KernelLost is the number of events the kernel dropped because the
	// ring buffer was full.
	KernelLost() uint64
	// Close detaches the probes, stops delivering, and frees every kernel
	// object. No emit call happens after it returns. It is idempotent.
	Close() error
}

// Config is a tracker's typed configuration (the design's "env"). Configs
// are structs whose exported fields carry `json` tags (the key in config
// files, API requests and, with "-" for "_", CLI flags) and `help` tags.
type Config interface {
	// Validate reports the first bad value, naming its key.
	Validate() error
}

// Kind describes one kind of tracker.
type Kind struct {
	Name string
	Help string
	// Events lists the event kinds the tracker can produce.
	Events []event.Kind
	// NewConfig returns a config holding the defaults.
	NewConfig func() Config
	// New makes a tracker from a validated config. It loads nothing yet.
	New func(cfg Config, env Env) (Tracker, error)
}

// Env is what the agent gives every tracker besides its config.
type Env struct {
	// Name of the instance, e.g. "process#3": set on every event.
	Name string
	// SelfPid is the agent's own pid: never traced.
	SelfPid uint32
	// CgroupIDs, when not empty, restricts the tracker in the kernel to
	// these cgroup ids (how --container is enforced).
	CgroupIDs []uint64
}

// Registry is the set of tracker kinds the agent knows.
type Registry struct {
	kinds map[string]Kind
}

// NewRegistry makes a registry of the given kinds.
func NewRegistry(kinds ...Kind) *Registry {
	r := &Registry{kinds: map[string]Kind{}}
	for _, k := range kinds {
		if _, dup := r.kinds[k.Name]; dup {
			panic("tracker kind registered twice: " + k.Name)
		}
		r.kinds[k.Name] = k
	}
	return r
}

// Lookup returns the kind with that name.
func (r *Registry) Lookup(name string) (Kind, error) {
	k, ok := r.kinds[name]
	if !ok {
		return Kind{}, fmt.Errorf("unknown tracker %q (known: %v)", name, r.Names())
	}
	return k, nil
}

// Names lists the kinds, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Kinds lists the kinds, sorted by name.
func (r *Registry) Kinds() []Kind {
	out := make([]Kind, 0, len(r.kinds))
	for _, n := range r.Names() {
		out = append(out, r.kinds[n])
	}
	return out
}

// NewFunc adapts a constructor that takes the kind's own config type to
// Kind.New.
func NewFunc[C Config](fn func(cfg C, env Env) (Tracker, error)) func(Config, Env) (Tracker, error) {
	return func(cfg Config, env Env) (Tracker, error) {
		c, ok := cfg.(C)
		if !ok {
			var want C
			return nil, fmt.Errorf("config of type %T, want %T", cfg, want)
		}
		return fn(c, env)
	}
}
