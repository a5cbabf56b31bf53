// Package metrics is the Prometheus exporter: a handler that counts events
// into counters per event kind, a collector of the agent's own health
// (events, losses, trackers) read from the tracker manager at scrape time,
// and the HTTP server of /metrics.
//
// Labels stay few by default (tracker, container, comm, and small enums
// such as a TCP result). High-cardinality labels (pid, file, address,
// port, syscall, signal) are on only when asked for, and every metric has
// a cap on its series: past it, new series are folded into one whose
// variable labels read "other", and the folded events are counted.
package metrics

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// DefaultMaxSeries is the default cap on the series of one metric.
const DefaultMaxSeries = 1000

// OtherValue is the label value series are folded into past the cap.
const OtherValue = "other"

// Source lists the running tracker instances; *tracker.Manager is one.
type Source interface {
	List() []tracker.Info
}

// Options configure an Exporter.
type Options struct {
	// Labels turns on optional labels (see OptionalLabels).
	Labels []string
	// MaxSeries caps the series of each metric; 0 means DefaultMaxSeries.
	MaxSeries int
	// Version is reported in eunomia_build_info.
	Version string
	// Source gives the agent's health metrics; nil leaves them out.
	Source Source
}

// Validate reports the first bad option.
func (o *Options) Validate() error {
	if o.MaxSeries < 0 {
		return fmt.Errorf("max series %d: want at least 1 (0 for the default, %d)", o.MaxSeries, DefaultMaxSeries)
	}
	for _, l := range o.Labels {
		if !slices.Contains(OptionalLabels, l) {
			return fmt.Errorf("unknown metric label %q (optional labels: %s)", l, strings.Join(OptionalLabels, ", "))
		}
	}
	return nil
}

// Exporter is a handler that counts events into Prometheus counters. It is
// safe for concurrent use and never fails an event.
type Exporter struct {
	reg      *prometheus.Registry
	byKind   map[event.Kind]*kindPlan
	families []*family
	pool     sync.Pool
}

// kindPlan is what one event kind feeds: the payload fields to read (once
// per event, in one pass) and the families they go to.
type kindPlan struct {
	fields   []string
	families []*family
}

// New makes an exporter with its own registry: the event counters, the
// health collector, and the Go runtime and process collectors.
func New(o Options) (*Exporter, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.MaxSeries == 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	on := map[string]bool{}
	for _, l := range o.Labels {
		on[l] = true
	}
	e := &Exporter{reg: prometheus.NewRegistry(), byKind: map[event.Kind]*kindPlan{}}
	e.pool.New = func() any { return new(grabber) }
	for i := range specs {
		s := &specs[i]
		plan := e.byKind[s.kind]
		if plan == nil {
			plan = &kindPlan{}
			e.byKind[s.kind] = plan
		}
		f := newFamily(s, on, o.MaxSeries, plan)
		if len(plan.fields) > maxFields {
			return nil, fmt.Errorf("metrics: event kind %s reads %d fields, at most %d", s.kind, len(plan.fields), maxFields)
		}
		if err := e.reg.Register(f.vec); err != nil {
			return nil, fmt.Errorf("register %s: %w", s.name, err)
		}
		plan.families = append(plan.families, f)
		e.families = append(e.families, f)
	}
	for _, c := range []prometheus.Collector{
		&seriesCollector{families: e.families},
		newHealth(o.Source, o.Version),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := e.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Registry is the exporter's registry, for more collectors (sinks).
func (e *Exporter) Registry() *prometheus.Registry { return e.reg }

// HTTPHandler serves the registry in the Prometheus exposition formats.
func (e *Exporter) HTTPHandler() http.Handler {
	return promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          e.reg, // counts its own failures
		EnableOpenMetrics: true,
	})
}

// Handle implements handler.Handler: it counts ev and never fails.
func (e *Exporter) Handle(ev *event.Event) error {
	plan := e.byKind[ev.Kind]
	if plan == nil {
		return nil
	}
	g := e.pool.Get().(*grabber)
	g.reset(plan.fields)
	if ev.Payload != nil {
		ev.Payload.WriteFields(g)
	}
	for _, f := range plan.families {
		f.observe(ev, g)
	}
	e.pool.Put(g)
	return nil
}

// maxLabels bounds the labels of one metric (3 common, 2 fixed, the rest
// optional), so that a series key is a comparable array.
const maxLabels = 8

type labelKey [maxLabels]string

// family is one counter and its series, capped.
type family struct {
	spec *spec
	vec  *prometheus.CounterVec
	n    int // labels in use

	valueSlot  int   // grabber slot of spec.value, -1 for a count
	runSlots   []int // grabber slots of spec.runKeys
	ivSlot     int   // grabber slot of spec.perInterval, -1 for none
	fixedSlots []int // grabber slots of spec.fixed
	opts       []int // grabber slot per enabled optional label, -1 for pid
	foldable   [maxLabels]bool

	mu     sync.Mutex
	series map[labelKey]prometheus.Counter
	max    int
	folded atomic.Uint64
	delta  *deltas
}

func newFamily(s *spec, on map[string]bool, max int, plan *kindPlan) *family {
	f := &family{spec: s, max: max, series: map[labelKey]prometheus.Counter{}, valueSlot: -1, ivSlot: -1}
	var names []string
	if s.common {
		names = append(names, "tracker", "container", "comm")
		f.foldable[1], f.foldable[2] = true, true
	}
	for _, l := range s.fixed {
		names = append(names, l)
		f.fixedSlots = append(f.fixedSlots, plan.slot(l))
	}
	for _, o := range s.optional {
		if !on[o.label] {
			continue
		}
		f.foldable[len(names)] = true
		names = append(names, o.label)
		if o.field == "" {
			f.opts = append(f.opts, -1)
		} else {
			f.opts = append(f.opts, plan.slot(o.field))
		}
	}
	if len(names) > maxLabels {
		panic("metrics: too many labels on " + s.name)
	}
	f.n = len(names)
	if s.value != "" {
		f.valueSlot = plan.slot(s.value)
	}
	if s.running {
		for _, k := range s.runKeys {
			f.runSlots = append(f.runSlots, plan.slot(k))
		}
		if s.perInterval != "" {
			f.ivSlot = plan.slot(s.perInterval)
		}
		f.delta = newDeltas(deltaGeneration)
	}
	f.vec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: s.name, Help: s.help}, names)
	return f
}

// slot returns the grabber slot of a payload field, adding it.
func (p *kindPlan) slot(field string) int {
	if i := slices.Index(p.fields, field); i >= 0 {
		return i
	}
	p.fields = append(p.fields, field)
	return len(p.fields) - 1
}

func (f *family) observe(ev *event.Event, g *grabber) {
	v := uint64(1)
	if f.valueSlot >= 0 {
		fv := &g.vals[f.valueSlot]
		if !fv.set {
			return
		}
		v = fv.num()
		if f.delta != nil && (f.ivSlot < 0 || g.vals[f.ivSlot].num() == 0) {
			v = f.delta.increase(f.deltaKey(ev, g), v)
		}
		if v == 0 {
			return
		}
	}
	var key labelKey
	i := 0
	if f.spec.common {
		key[0] = ev.Tracker
		key[1] = ev.Container.Label()
		key[2] = ev.Process.Comm
		i = 3
	}
	for _, s := range f.fixedSlots {
		key[i] = g.vals[s].label()
		i++
	}
	for _, s := range f.opts {
		if s < 0 {
			key[i] = strconv.FormatUint(uint64(ev.Process.Pid), 10)
		} else {
			key[i] = g.vals[s].label()
		}
		i++
	}
	f.counter(&key).Add(float64(v))
}

// deltaKey identifies a running total: tracker, pid and the run keys
// (numbers and at most one string, e.g. a syscall's nr and abi).
func (f *family) deltaKey(ev *event.Event, g *grabber) deltaKey {
	k := deltaKey{tracker: ev.Tracker, pid: ev.Process.Pid}
	for _, s := range f.runSlots {
		v := &g.vals[s]
		if v.typ == typeString {
			k.s = v.s
		} else {
			k.n = k.n*1000003 + v.n
		}
	}
	return k
}

// counter returns the series for key, creating it under the cap or
// folding it into an "other" series past the cap.
func (f *family) counter(key *labelKey) prometheus.Counter {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.series[*key]; ok {
		return c
	}
	if len(f.series) >= f.max {
		f.folded.Add(1)
		for i := 0; i < f.n; i++ {
			if f.foldable[i] {
				key[i] = OtherValue
			}
		}
		if c, ok := f.series[*key]; ok {
			return c
		}
		// The folded series do not count against the cap: at most one
		// per tracker and combination of fixed labels.
	}
	c := f.vec.WithLabelValues(key[:f.n]...)
	f.series[*key] = c
	return c
}

// seriesCollector reports each metric's series and folded events.
type seriesCollector struct {
	families []*family
}

var (
	seriesDesc = prometheus.NewDesc("eunomia_metrics_series",
		"Series of each event metric (the cap excludes the folded \"other\" series).", []string{"metric"}, nil)
	foldedDesc = prometheus.NewDesc("eunomia_metrics_series_folded_total",
		"Events counted in a folded \"other\" series because their metric had reached its series cap.", []string{"metric"}, nil)
)

func (c *seriesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- seriesDesc
	ch <- foldedDesc
}

func (c *seriesCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.families {
		f.mu.Lock()
		n := len(f.series)
		f.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(seriesDesc, prometheus.GaugeValue, float64(n), f.spec.name)
		ch <- prometheus.MustNewConstMetric(foldedDesc, prometheus.CounterValue, float64(f.folded.Load()), f.spec.name)
	}
}
