// Package files is the files tracker: reads and writes per process and file,
// counted in the kernel and reported every interval as a top list (like
// filetop), and optionally file opens.
package files

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cilium/ebpf"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// Config is the files tracker's env.
type Config struct {
	tracker.Filter `yaml:",inline"`
	Interval       tracker.Duration `json:"interval" yaml:"interval" help:"report the per-file I/O top list every interval"`
	Rows           uint32           `json:"rows" yaml:"rows" help:"report at most this many (process, file) rows per interval, the largest first (0: all)"`
	Sort           string           `json:"sort" yaml:"sort" help:"order of the top list: bytes, read_bytes, write_bytes, ops, reads or writes"`
	RegularOnly    bool             `json:"regular_only" yaml:"regular_only" help:"count I/O on regular files only, not on sockets, pipes or devices"`
	Open           bool             `json:"open" yaml:"open" help:"also report every open of a file (files.open events)"`
}

// Defaults.
const (
	DefaultInterval = 5 * time.Second
	DefaultRows     = 20
	minInterval     = 10 * time.Millisecond
)

// Validate implements tracker.Config.
func (c *Config) Validate() error {
	if time.Duration(c.Interval) < minInterval {
		return fmt.Errorf("interval: %s is shorter than the minimum %s", c.Interval, minInterval)
	}
	if _, ok := sortKeys[c.Sort]; !ok {
		return fmt.Errorf("sort: %q is not one of bytes, read_bytes, write_bytes, ops, reads, writes", c.Sort)
	}
	return c.Filter.Validate()
}

// Kind registers the files tracker.
var Kind = tracker.Kind{
	Name:   "files",
	Help:   "reads and writes per process and file (periodic top list), file opens",
	Events: []event.Kind{event.KindFilesIO, event.KindFilesOpen},
	NewConfig: func() tracker.Config {
		return &Config{
			Interval:    tracker.Duration(DefaultInterval),
			Rows:        DefaultRows,
			Sort:        "bytes",
			RegularOnly: true,
		}
	},
	New: tracker.NewFunc(func(c *Config, env tracker.Env) (tracker.Tracker, error) {
		return &Tracker{cfg: *c, env: env, less: sortKeys[c.Sort]}, nil
	}),
}

// Tracker is one files tracker instance.
type Tracker struct {
	cfg  Config
	env  tracker.Env
	less lessFunc
	bpfrt.Base
	emit func(*event.Event)

	// Used by report only, which runs on one goroutine.
	stats   *ebpf.Map
	chunkK  []filesFileKey
	chunkV  []filesFileStats
	entries []entry
	warned  bool
}

// batchSize is how many map entries one read of the counters fetches.
const batchSize = 256

// Start implements tracker.Tracker.
func (t *Tracker) Start(emit func(*event.Event)) error {
	spec, err := loadFiles()
	if err != nil {
		return err
	}
	opts := bpfrt.LoadOptions{
		Filter: t.cfg.Filter,
		Env:    t.env,
		Consts: map[string]any{
			"cfg_regular_only": t.cfg.RegularOnly,
			"cfg_open":         t.cfg.Open,
		},
	}
	if !t.cfg.Open {
		opts.RingSize = 4096 // I/O is counted in a map: the ring stays unused
	}
	p, err := bpfrt.Load(spec, opts)
	if err != nil {
		return err
	}
	t.Probe = p
	t.emit = emit
	t.stats = p.Coll.Maps["io_stats"]
	t.chunkK = make([]filesFileKey, batchSize)
	t.chunkV = make([]filesFileStats, batchSize)
	if t.cfg.Open {
		if err := p.ReadRing(decodeOpen, emit, nil); err != nil {
			p.Close()
			return err
		}
	}
	p.Every(time.Duration(t.cfg.Interval), t.report)
	// Exit first: an entry recorded at sys_enter always finds its exit.
	for _, prog := range []string{"handle_sys_exit", "handle_sys_enter"} {
		if err := p.BTFTracepoint(prog); err != nil {
			p.Close()
			return err
		}
	}
	return nil
}

// report reads and clears the kernel's counters and emits the top list.
func (t *Tracker) report() {
	t.entries = t.entries[:0]
	var cursor ebpf.MapBatchCursor
	for {
		n, err := t.stats.BatchLookupAndDelete(&cursor, t.chunkK, t.chunkV, nil)
		for i := 0; i < n; i++ {
			t.entries = append(t.entries, entry{key: t.chunkK[i], stats: t.chunkV[i]})
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			if !t.warned {
				t.warned = true
				slog.Warn("files: reading the I/O counters failed", "tracker", t.env.Name, "err", err)
			}
			break
		}
	}
	now := time.Now()
	for _, ev := range topEvents(t.entries, t.less, int(t.cfg.Rows), now) {
		t.emit(ev)
	}
}
