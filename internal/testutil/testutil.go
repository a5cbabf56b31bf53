// Package testutil helps tests that load real BPF programs: privilege
// checks that fail in CI instead of skipping, an event collector, and
// counters of the process's open BPF objects.
package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// RequirePrivileged skips a test that needs root, unless CI is set: CI runs
// as root on a kernel that loads our programs, so there it fails instead.
func RequirePrivileged(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("this test loads BPF programs and needs root; CI must run as root")
	}
	tb.Skip("needs root to load BPF programs (set CI to make this a failure)")
}

// Collector is a handler that keeps every event it is given.
type Collector struct {
	mu     sync.Mutex
	events []*event.Event
	signal chan struct{}
}

// NewCollector makes an empty collector.
func NewCollector() *Collector { return &Collector{signal: make(chan struct{}, 1)} }

// Handle implements handler.Handler.
func (c *Collector) Handle(ev *event.Event) error {
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
	return nil
}

// Events returns a copy of what was collected so far.
func (c *Collector) Events() []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*event.Event(nil), c.events...)
}

// Matching returns the collected events for which match is true.
func (c *Collector) Matching(match func(*event.Event) bool) []*event.Event {
	var out []*event.Event
	for _, ev := range c.Events() {
		if match(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// WaitFor waits until match is true for n collected events and returns
// them, or fails the test after timeout, listing how many it saw.
func (c *Collector) WaitFor(tb testing.TB, timeout time.Duration, n int, match func(*event.Event) bool) []*event.Event {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		got := c.Matching(match)
		if len(got) >= n {
			return got
		}
		select {
		case <-c.signal:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			tb.Fatalf("timed out after %s: %d of %d matching events (of %d collected)", timeout, len(got), n, len(c.Events()))
		}
	}
}

// StartTracker starts one tracker of kind with cfg (nil: defaults) in a new
// manager, feeding a new collector. Both are closed when the test ends.
func StartTracker(tb testing.TB, kind tracker.Kind, cfg tracker.Config) (*Collector, *tracker.Manager, uint64) {
	tb.Helper()
	RequirePrivileged(tb)
	m := tracker.NewManager(tracker.NewRegistry(kind))
	c := NewCollector()
	id, err := m.Start(kind.Name, cfg, tracker.Env{}, c)
	if err != nil {
		tb.Fatalf("start %s tracker: %v", kind.Name, err)
	}
	tb.Cleanup(func() { m.Close() })
	return c, m, id
}

// BPFObjects counts this process's open file descriptors by what they
// refer to: BPF programs, maps, links, and all descriptors.
type BPFObjects struct {
	Progs, Maps, Links, FDs int
}

// CountBPFObjects reads /proc/self/fd.
func CountBPFObjects(tb testing.TB) BPFObjects {
	tb.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatalf("read /proc/self/fd: %v", err)
	}
	var o BPFObjects
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the descriptor ReadDir itself used
		}
		o.FDs++
		switch {
		case strings.Contains(target, "bpf-prog"):
			o.Progs++
		case strings.Contains(target, "bpf-map"):
			o.Maps++
		case strings.Contains(target, "bpf_link") || strings.Contains(target, "bpf-link"):
			o.Links++
		}
	}
	return o
}
