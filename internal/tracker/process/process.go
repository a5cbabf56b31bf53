// Package process is the process tracker: exec and exit of processes from
// the sched tracepoints, with pid (and descendants) and lifetime filters in
// the kernel.
package process

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// Config is the process tracker's env.
type Config struct {
	tracker.Filter `yaml:",inline"`
	// FollowChildren makes a pid filter cover the target's descendants:
	// those running when the tracker starts and those forked later.
	FollowChildren bool             `json:"follow_children" yaml:"follow_children" help:"with --pid, also trace the target's descendants (running ones and those forked later)"`
	MinDuration    tracker.Duration `json:"min_duration,omitempty" yaml:"min_duration,omitempty" help:"report only exits of processes that lived at least this long"`
}

// Validate implements tracker.Config.
func (c *Config) Validate() error {
	if c.MinDuration < 0 {
		return fmt.Errorf("min_duration: %s is negative", c.MinDuration)
	}
	return c.Filter.Validate()
}

// Kind registers the process tracker.
var Kind = tracker.Kind{
	Name:      "process",
	Help:      "exec and exit of processes",
	Events:    []event.Kind{event.KindProcessExec, event.KindProcessExit},
	NewConfig: func() tracker.Config { return &Config{FollowChildren: true} },
	New: tracker.NewFunc(func(c *Config, env tracker.Env) (tracker.Tracker, error) {
		return &Tracker{cfg: *c, env: env}, nil
	}),
}

// Tracker is one process tracker instance.
type Tracker struct {
	cfg Config
	env tracker.Env
	bpfrt.Base
}

// Start implements tracker.Tracker.
func (t *Tracker) Start(emit func(*event.Event)) error {
	spec, err := loadProcess()
	if err != nil {
		return err
	}
	follow := t.cfg.FollowChildren && t.cfg.Pid != 0
	p, err := bpfrt.Load(spec, bpfrt.LoadOptions{
		Filter: t.cfg.Filter,
		Env:    t.env,
		Consts: map[string]any{
			"cfg_follow_children": follow,
			"cfg_min_duration_ns": uint64(t.cfg.MinDuration),
		},
	})
	if err != nil {
		return err
	}
	t.Probe = p
	if follow {
		// Attach the fork hook first, then add the descendants already
		// running, so that no child forked in between is missed.
		if err := p.BTFTracepoint("handle_fork"); err != nil {
			p.Close()
			return err
		}
		if err := p.AddPids(descendants(t.cfg.Pid)); err != nil {
			p.Close()
			return err
		}
	}
	if err := p.ReadRing(new(decoder).decode, emit, nil); err != nil {
		p.Close()
		return err
	}
	for _, prog := range []string{"handle_exec", "handle_exit"} {
		if err := p.BTFTracepoint(prog); err != nil {
			p.Close()
			return err
		}
	}
	return nil
}

// descendants lists the running descendants of pid, read from /proc.
func descendants(pid uint32) []uint32 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[uint32][]uint32{}
	for _, e := range entries {
		n, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if pp, ok := parentOf(uint32(n)); ok {
			children[pp] = append(children[pp], uint32(n))
		}
	}
	var out []uint32
	queue := []uint32{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parentOf reads the parent pid from /proc/<pid>/stat.
func parentOf(pid uint32) (uint32, bool) {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		return 0, false
	}
	// The comm field may hold spaces and parentheses: skip past the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.ParseUint(f[1], 10, 32)
	return uint32(pp), err == nil
}
