// Package syscall is the syscall tracker: system calls per process, counted
// in the kernel from the sys_enter tracepoint. Report mode sends the first
// call of each syscall by a process, then every N calls or every T, and the
// last count when the process ends; summary mode sends, every interval, the
// most called syscalls of each process in that interval (like syscount).
package syscall

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// Bounds of the config values.
const (
	minSummary = 100 * time.Millisecond
	maxTop     = 2 * slotsPerABI
)

// Config is the syscall tracker's env.
type Config struct {
	tracker.Filter `yaml:",inline"`
	EveryCalls     uint64           `json:"every_calls" yaml:"every_calls" help:"report mode: report a syscall of a process again at every multiple of this count (0: no count-based reports)"`
	Every          tracker.Duration `json:"every" yaml:"every" help:"report mode: report a syscall of a process again at its first call in each period this long (0: no time-based reports)"`
	Summary        tracker.Duration `json:"summary,omitempty" yaml:"summary,omitempty" help:"summary mode: no per-call reports; every interval, the most called syscalls of each process in that interval"`
	SummaryTop     uint32           `json:"summary_top" yaml:"summary_top" help:"summary mode: at most this many syscalls per process per interval, the most called"`
}

// Validate implements tracker.Config.
func (c *Config) Validate() error {
	if c.Every < 0 {
		return fmt.Errorf("every: %s is negative", c.Every)
	}
	if c.Summary < 0 {
		return fmt.Errorf("summary: %s is negative", c.Summary)
	}
	if c.Summary > 0 && time.Duration(c.Summary) < minSummary {
		return fmt.Errorf("summary: %s is shorter than the minimum interval %s", c.Summary, minSummary)
	}
	if c.Summary > 0 && c.EveryCalls != 0 {
		return fmt.Errorf("every_calls: %d has no effect in summary mode (summary %s); use one or the other", c.EveryCalls, c.Summary)
	}
	if c.SummaryTop < 1 || c.SummaryTop > maxTop {
		return fmt.Errorf("summary_top: %d, want 1 to %d", c.SummaryTop, maxTop)
	}
	return c.Filter.Validate()
}

// DefaultConfig is the config of a syscall tracker unless told otherwise.
func DefaultConfig() *Config {
	return &Config{Every: tracker.Duration(5 * time.Second), SummaryTop: 10}
}

// Kind registers the syscall tracker.
var Kind = tracker.Kind{
	Name:      "syscall",
	Help:      "system calls per process, counted in the kernel",
	Events:    []event.Kind{event.KindSyscall},
	NewConfig: func() tracker.Config { return DefaultConfig() },
	New: tracker.NewFunc(func(c *Config, env tracker.Env) (tracker.Tracker, error) {
		if runtime.GOARCH != "amd64" {
			return nil, fmt.Errorf("the syscall name table is x86-64's; %s is not supported", runtime.GOARCH)
		}
		return &Tracker{cfg: *c, env: env}, nil
	}),
}

// Tracker is one syscall tracker instance.
type Tracker struct {
	cfg Config
	env tracker.Env
	bpfrt.Base
	emit    func(*event.Event)
	evicted atomic.Uint64

	// Used only by the probe's Every goroutines.
	sum   summaryState
	epoch uint64

	flushMu sync.Mutex // sweep and flushAtStop
	pending []uint32   // exited pids to report at the next sweep
	flushed bool       // flushAtStop ran: nothing is left
}

// The programs and the map of each mode; the other mode's are not loaded.
var (
	reportProgs  = []string{"handle_exec", "handle_exit", "count_enter"}
	summaryProgs = []string{"handle_exec", "summary_exit", "summary_enter"}
)

// unusedMapEntries sizes the map of the mode not running (it must exist
// for the programs that are not loaded to be left out).
const unusedMapEntries = 64

// Start implements tracker.Tracker.
func (t *Tracker) Start(emit func(*event.Event)) error {
	spec, err := loadSyscall()
	if err != nil {
		return err
	}
	summary := t.cfg.Summary > 0
	progs := reportProgs
	opts := bpfrt.LoadOptions{
		Filter: t.cfg.Filter,
		Env:    t.env,
		Consts: map[string]any{
			"cfg_every_calls": t.cfg.EveryCalls,
			"cfg_every_epoch": t.cfg.Every > 0,
		},
	}
	if summary {
		progs = summaryProgs
		spec.Maps["counts"].MaxEntries = unusedMapEntries
		opts.RingSize = uint32(os.Getpagesize()) // nothing is sent through it
		opts.Consts["cfg_every_calls"] = uint64(0)
		opts.Consts["cfg_every_epoch"] = false
	} else {
		spec.Maps["summary"].MaxEntries = unusedMapEntries
	}
	keep := map[string]bool{}
	for _, p := range progs {
		keep[p] = true
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}

	p, err := bpfrt.Load(spec, opts)
	if err != nil {
		return err
	}
	t.Probe = p
	t.emit = emit
	if summary {
		t.sum.init(p.Coll.Maps["summary"], p.Coll.Maps["procs"], int(t.cfg.SummaryTop))
		p.Every(time.Duration(t.cfg.Summary), t.summarize)
	} else {
		if err := p.ReadRing(decode, emit, nil); err != nil {
			p.Close()
			return err
		}
		// At Close only: the counts not reported yet.
		p.Every(0, t.flushAtStop)
		p.Every(sweepInterval, t.sweep)
		if t.cfg.Every > 0 {
			// A new epoch every period: each counter's next call reports.
			p.Every(time.Duration(t.cfg.Every), t.nextEpoch)
		}
	}
	// The exit and exec hooks first, so that every counted process is seen
	// ending.
	for _, prog := range progs {
		if err := p.BTFTracepoint(prog); err != nil {
			p.Close()
			return err
		}
	}
	return nil
}

// Evicted is how many counters the kernel map dropped to make room (least
// recently used first) and started again from 1 when their process called
// that syscall again. Read at every summary and at Close.
func (t *Tracker) Evicted() uint64 { return t.evicted.Load() }

// Close implements tracker.Tracker.
func (t *Tracker) Close() error {
	err := t.Base.Close()
	if n := t.evicted.Load(); n > 0 {
		slog.Warn("syscall tracker: counters evicted from the full kernel map; their counts restarted", "tracker", t.env.Name, "evicted", n)
	}
	return err
}

// nextEpoch advances the kernel's epoch.
func (t *Tracker) nextEpoch() {
	t.epoch++
	if err := t.Probe.Coll.Variables["epoch"].Set(t.epoch); err != nil {
		slog.Warn("syscall tracker: advance epoch", "tracker", t.env.Name, "err", err)
	}
}

// readEvicted updates the eviction count from the kernel.
func (t *Tracker) readEvicted() {
	var perCPU []uint64
	if err := t.Probe.Coll.Maps["evicted"].Lookup(uint32(0), &perCPU); err != nil {
		return
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	t.evicted.Store(n)
}

// flushAtStop runs once the programs are detached: it reports every count
// that moved since its last report, for processes still running ("stop")
// and for ended ones whose final report the kernel could not send ("exit").
func (t *Tracker) flushAtStop() {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.flushed = true
	t.readEvicted()
	procs, _, err := readProcs(t.Probe.Coll.Maps["procs"])
	if err != nil {
		slog.Warn("syscall tracker: read processes at stop", "tracker", t.env.Name, "err", err)
	}
	now := time.Now()
	err = batchRead(t.Probe.Coll.Maps["counts"], 1, func(k syscallScKey, v []syscallScCount) {
		if v[0].Count == v[0].Reported {
			return
		}
		reason := reasonStop
		if p, ok := procs[k.Pid]; ok && p.Exited != 0 {
			reason = reasons[reasonExit]
		}
		r := newRecord(k.Slot, v[0].Count, reason)
		r.ev.Time = now
		procs.header(k.Pid, &r.ev.Process)
		t.emit(&r.ev)
	})
	if err != nil {
		slog.Warn("syscall tracker: read counts at stop", "tracker", t.env.Name, "err", err)
	}
}

// sweepInterval is how often user space looks for final counts the kernel
// could not send (the ring buffer was full when their process ended).
const sweepInterval = time.Second

// sweep reports the final counts of the processes the kernel queued in
// unflushed, one sweep after it took them from the queue: by then the
// reader has read the reports the kernel did send for them, which had
// lower counts.
func (t *Tracker) sweep() {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	if t.flushed {
		return
	}
	for _, pid := range t.pending {
		t.flushExited(pid)
	}
	t.pending = t.pending[:0]
	q := t.Probe.Coll.Maps["unflushed"]
	for {
		var pid uint32
		if err := q.LookupAndDelete(nil, &pid); err != nil {
			break // empty
		}
		t.pending = append(t.pending, pid)
	}
}

// flushExited reports what is left of an ended process and frees it.
func (t *Tracker) flushExited(pid uint32) {
	procs, counts := t.Probe.Coll.Maps["procs"], t.Probe.Coll.Maps["counts"]
	var p syscallScProc
	if err := procs.Lookup(pid, &p); err != nil {
		return // evicted: its counters went with it
	}
	now := time.Now()
	for slot := range uint32(2 * slotsPerABI) {
		if p.Seen[slot/64]&(1<<(slot%64)) == 0 {
			continue
		}
		k := syscallScKey{Pid: pid, Slot: slot}
		var c syscallScCount
		if counts.Lookup(k, &c) != nil {
			continue
		}
		if c.Count != c.Reported {
			r := newRecord(slot, c.Count, reasons[reasonExit])
			r.ev.Time = now
			procTable{pid: &p}.header(pid, &r.ev.Process)
			t.emit(&r.ev)
		}
		counts.Delete(k)
	}
	procs.Delete(pid)
}

// batchSize is how many map entries one batch lookup reads.
const batchSize = 1024

// batchRead calls fn for every entry of m; perEntry is the number of
// values per key (the possible CPUs for a per-CPU map, else 1).
func batchRead[K, V any](m *ebpf.Map, perEntry int, fn func(K, []V)) error {
	keys := make([]K, batchSize)
	vals := make([]V, batchSize*perEntry)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], vals[i*perEntry:(i+1)*perEntry])
		}
		if err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) { // the end
				return nil
			}
			return err
		}
	}
}
