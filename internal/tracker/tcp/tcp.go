// Package tcp is the TCP tracker: connects (with their result and latency),
// optionally accepts and closes, or per-flow connect counts, from the
// sock:inet_sock_set_state tracepoint, with destination-port and task
// filters in the kernel.
package tcp

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// MaxDports is how many destination ports the kernel filter holds
// (MAX_DPORTS in tcp.bpf.c).
const MaxDports = 64

// DefaultInterval is how often count mode reports its flows.
const DefaultInterval = 5 * time.Second

// Config is the TCP tracker's env.
type Config struct {
	tracker.Filter `yaml:",inline"`
	Dports         []uint16         `json:"dports,omitempty" yaml:"dports,omitempty" help:"report only connections to these destination ports (at most 64); for accepts, the listening port"`
	Accept         bool             `json:"accept,omitempty" yaml:"accept,omitempty" help:"also report accepted connections (tcp.accept), in the name of the task that called listen()"`
	Close          bool             `json:"close,omitempty" yaml:"close,omitempty" help:"also report the close of reported connections (tcp.close) with duration and bytes"`
	Count          bool             `json:"count,omitempty" yaml:"count,omitempty" help:"count connect attempts per flow (source, destination, port) in the kernel and report them every interval as tcp.flow instead of one event per connection"`
	Interval       tracker.Duration `json:"interval,omitempty" yaml:"interval,omitempty" help:"how often count mode reports its flows"`
}

// Validate implements tracker.Config.
func (c *Config) Validate() error {
	if len(c.Dports) > MaxDports {
		return fmt.Errorf("dports: %d ports, the kernel filter holds at most %d", len(c.Dports), MaxDports)
	}
	for _, p := range c.Dports {
		if p == 0 {
			return errors.New("dports: port 0 is not a destination port")
		}
	}
	if c.Count && (c.Accept || c.Close) {
		return errors.New("count: count mode reports only tcp.flow counts; it cannot be combined with accept or close")
	}
	if c.Interval < 0 {
		return fmt.Errorf("interval: %s is negative", c.Interval)
	}
	if c.Count && c.Interval == 0 {
		return errors.New("interval: count mode needs an interval above 0")
	}
	return c.Filter.Validate()
}

// Kind registers the TCP tracker.
var Kind = tracker.Kind{
	Name:      "tcp",
	Help:      "TCP connects (IPv4 and IPv6), optionally accepts and closes, or per-flow counts",
	Events:    []event.Kind{event.KindTCPConnect, event.KindTCPAccept, event.KindTCPClose, event.KindTCPFlow},
	NewConfig: func() tracker.Config { return &Config{Interval: tracker.Duration(DefaultInterval)} },
	New: tracker.NewFunc(func(c *Config, env tracker.Env) (tracker.Tracker, error) {
		return &Tracker{cfg: *c, env: env}, nil
	}),
}

// Tracker is one TCP tracker instance.
type Tracker struct {
	cfg Config
	env tracker.Env
	bpfrt.Base
}

// Start implements tracker.Tracker.
func (t *Tracker) Start(emit func(*event.Event)) error {
	spec, err := loadTcp()
	if err != nil {
		return err
	}
	var ring uint32 // the default
	if t.cfg.Count {
		ring = uint32(os.Getpagesize()) // unused: counts are read from a map
	}
	p, err := bpfrt.Load(spec, bpfrt.LoadOptions{
		Filter:   t.cfg.Filter,
		Env:      t.env,
		RingSize: ring,
		Consts: map[string]any{
			"cfg_filter_dport": len(t.cfg.Dports) > 0,
			"cfg_count":        t.cfg.Count,
			"cfg_accept":       t.cfg.Accept,
			"cfg_close":        t.cfg.Close,
		},
	})
	if err != nil {
		return err
	}
	t.Probe = p
	one := uint8(1)
	for _, port := range t.cfg.Dports {
		if err := p.Coll.Maps["dport_filter"].Put(port, one); err != nil {
			p.Close()
			return fmt.Errorf("dports filter: %w", err)
		}
	}
	if t.cfg.Count {
		f := newFlowReporter(p, emit)
		p.Every(time.Duration(t.cfg.Interval), f.report)
	} else if err := p.ReadRing(decode, emit, nil); err != nil {
		p.Close()
		return err
	}
	if err := p.BTFTracepoint("handle_set_state"); err != nil {
		p.Close()
		return err
	}
	return nil
}
