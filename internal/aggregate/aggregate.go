// Package aggregate is the aggregation handler: it counts events by a key
// (comm, container, dport, file, syscall) over a window and at the end of
// each window passes its top N groups on as aggregate events, to the same
// printers and sinks as any event.
package aggregate

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// Keys lists what events can be grouped by.
var Keys = []string{"comm", "container", "dport", "file", "syscall"}

// DefaultMaxGroups bounds the distinct groups of one window.
const DefaultMaxGroups = 100000

// OtherValue is the group events fall into once a window holds MaxGroups.
const OtherValue = "other"

// UnknownContainer is the container group of events nobody tagged with a
// container (no container manager in the chain).
const UnknownContainer = "unknown"

// Config configures an Aggregator.
type Config struct {
	Key    string        // one of Keys
	Window time.Duration // length of a window
	Top    int           // groups emitted per window
	// Sum, when set, names a numeric payload field (e.g. write_bytes)
	// summed per group; groups are then ranked by the sum.
	Sum string
	// MaxGroups bounds a window's groups; 0 means DefaultMaxGroups.
	MaxGroups int
	// Pass lists event kinds handed on at once instead of counted; nil
	// means alerts, which must not vanish into a count.
	Pass []event.Kind
}

// Validate reports the first bad value.
func (c *Config) Validate() error {
	if !slices.Contains(Keys, c.Key) {
		return fmt.Errorf("aggregate key %q: want one of %s", c.Key, strings.Join(Keys, ", "))
	}
	if c.Window <= 0 {
		return fmt.Errorf("window %s: want a positive duration", c.Window)
	}
	if c.Top < 1 {
		return fmt.Errorf("top %d: want at least 1", c.Top)
	}
	if c.MaxGroups < 0 {
		return fmt.Errorf("max groups %d is negative", c.MaxGroups)
	}
	return nil
}

type group struct {
	count, sum uint64
}

// Aggregator is the handler. It is safe for concurrent use.
type Aggregator struct {
	cfg Config
	out handler.Handler

	mu     sync.Mutex
	groups map[string]*group
	total  uint64
	folded uint64
	start  time.Time
	closed bool

	running bool // the window timer runs (not in tests that flush by hand)
	stop    chan struct{}
	done    chan struct{}
}

// New makes an aggregator that emits to out every cfg.Window, from its own
// goroutine, until Close.
func New(cfg Config, out handler.Handler) (*Aggregator, error) {
	a, err := newAggregator(cfg, out)
	if err != nil {
		return nil, err
	}
	a.running = true
	go a.loop()
	return a, nil
}

// newAggregator makes an aggregator without its timer (tests flush it).
func newAggregator(cfg Config, out handler.Handler) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxGroups == 0 {
		cfg.MaxGroups = DefaultMaxGroups
	}
	if cfg.Pass == nil {
		cfg.Pass = []event.Kind{event.KindAlert}
	}
	return &Aggregator{
		cfg:    cfg,
		out:    out,
		groups: map[string]*group{},
		start:  time.Now(),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}, nil
}

func (a *Aggregator) loop() {
	defer close(a.done)
	t := time.NewTicker(a.cfg.Window)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			a.flush(now)
		}
	}
}

// Handle implements handler.Handler: it counts ev in its group. Events
// without the key's field (a dport on a process event) are not counted.
func (a *Aggregator) Handle(ev *event.Event) error {
	if slices.Contains(a.cfg.Pass, ev.Kind) {
		return a.out.Handle(ev)
	}
	var (
		key    string
		num    []byte // a numeric key, formatted without allocating
		buf    [20]byte
		sumVal uint64
	)
	switch a.cfg.Key {
	case "comm":
		key = ev.Process.Comm
	case "container":
		key = containerValue(&ev.Container)
	}
	if want := a.cfg.Key == "dport" || a.cfg.Key == "file" || a.cfg.Key == "syscall"; want || a.cfg.Sum != "" {
		f := finderPool.Get().(*finder)
		*f = finder{sum: a.cfg.Sum}
		if want {
			f.want = a.cfg.Key
			if a.cfg.Key == "file" {
				f.alt = "path" // files.open names its file path
			}
		}
		if ev.Payload != nil {
			ev.Payload.WriteFields(f)
		}
		found, isNum, n, str := f.found, f.isNum, f.num, f.str
		sumVal = f.sumVal
		finderPool.Put(f)
		if want {
			if !found {
				return nil
			}
			if isNum {
				num = strconv.AppendUint(buf[:0], n, 10)
			} else {
				key = str
			}
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("aggregator closed")
	}
	var g *group
	if num != nil {
		g = a.groups[string(num)]
	} else {
		g = a.groups[key]
	}
	if g == nil {
		if len(a.groups) >= a.cfg.MaxGroups {
			a.folded++
			key, num = OtherValue, nil
			g = a.groups[key]
		}
		if g == nil {
			g = &group{}
			if num != nil {
				key = string(num)
			}
			a.groups[key] = g
		}
	}
	g.count++
	g.sum += sumVal
	a.total++
	return nil
}

var finderPool = sync.Pool{New: func() any { return new(finder) }}

func containerValue(c *event.Container) string {
	switch {
	case c.Name != "":
		return c.Name
	case len(c.ID) > 12:
		return c.ID[:12]
	case c.ID != "":
		return c.ID
	default:
		return UnknownContainer
	}
}

// flush ends the window at end and emits its top groups.
func (a *Aggregator) flush(end time.Time) {
	a.mu.Lock()
	groups, total, folded, start := a.groups, a.total, a.folded, a.start
	a.groups = make(map[string]*group, len(groups))
	a.total, a.folded, a.start = 0, 0, end
	a.mu.Unlock()
	a.emit(groups, total, folded, start, end)
}

type ranked struct {
	value string
	group
}

func (a *Aggregator) emit(groups map[string]*group, total, folded uint64, start, end time.Time) {
	if len(groups) == 0 {
		return
	}
	list := make([]ranked, 0, len(groups))
	for v, g := range groups {
		list = append(list, ranked{v, *g})
	}
	bySum := a.cfg.Sum != ""
	slices.SortFunc(list, func(x, y ranked) int {
		kx, ky := x.count, y.count
		if bySum {
			kx, ky = x.sum, y.sum
		}
		switch {
		case kx > ky:
			return -1
		case kx < ky:
			return 1
		}
		return strings.Compare(x.value, y.value)
	})
	if len(list) > a.cfg.Top {
		list = list[:a.cfg.Top]
	}
	window := end.Sub(start)
	if window < 0 {
		window = 0
	}
	for i, r := range list {
		ev := &event.Event{
			Time:    end,
			Kind:    event.KindAggregate,
			Tracker: "aggregate",
			Payload: &event.Aggregate{
				Key:      a.cfg.Key,
				Value:    r.value,
				Rank:     i + 1,
				Count:    r.count,
				SumField: a.cfg.Sum,
				Sum:      r.sum,
				WindowNs: uint64(window),
				Total:    total,
				Groups:   uint64(len(groups)),
				Folded:   folded,
			},
		}
		// Printers show the comm and container columns.
		switch a.cfg.Key {
		case "comm":
			ev.Process.Comm = r.value
		case "container":
			ev.Container.Name = r.value
		}
		// A failing sink reports and counts its own failures.
		_ = a.out.Handle(ev)
	}
}

// Close emits the last (partial) window, then closes out if it has a
// Close method. It is idempotent.
func (a *Aggregator) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	if a.running {
		<-a.done
	}
	a.mu.Lock()
	groups, total, folded, start := a.groups, a.total, a.folded, a.start
	a.groups = nil
	a.mu.Unlock()
	a.emit(groups, total, folded, start, time.Now())
	if c, ok := a.out.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// finder reads the key field and the sum field of a payload in one pass.
type finder struct {
	want, alt, sum string

	found  bool
	isNum  bool
	str    string
	num    uint64
	sumVal uint64
	sumSet bool
}

func (f *finder) key(k string) bool {
	return !f.found && (k == f.want || (f.alt != "" && k == f.alt))
}

func (f *finder) String(k, v string) {
	if f.key(k) {
		f.found, f.str = true, v
	}
}

func (f *finder) Int(k string, v int64) {
	if f.key(k) {
		f.found, f.isNum = true, false
		f.str = strconv.FormatInt(v, 10)
	}
	if k == f.sum && !f.sumSet && v > 0 {
		f.sumVal, f.sumSet = uint64(v), true
	}
}

func (f *finder) Uint(k string, v uint64) {
	if f.key(k) {
		f.found, f.isNum, f.num = true, true, v
	}
	if k == f.sum && !f.sumSet {
		f.sumVal, f.sumSet = v, true
	}
}

func (f *finder) Bool(k string, v bool) {
	if f.key(k) {
		f.found, f.str = true, strconv.FormatBool(v)
	}
}

func (f *finder) Strings(string, []string)   {}
func (f *finder) Event(string, *event.Event) {}
