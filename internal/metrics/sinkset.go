package metrics

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eunomia-agent/eunomia/internal/sink"
)

// SinkSet keeps the sinks open in chains and reports their failures (a
// prometheus.Collector, like SinkCollector). Sinks
// come and go with trackers; several may share a name (stdout, or a file
// two chains append to), so their counts are summed per name.
type SinkSet struct {
	mu   sync.Mutex
	live map[*sinkEntry]struct{}
}

// NewSinkSet makes an empty set.
func NewSinkSet() *SinkSet { return &SinkSet{live: map[*sinkEntry]struct{}{}} }

type sinkEntry struct{ s sink.Sink }

// Add implements pipeline.SinkSet.
func (ss *SinkSet) Add(s sink.Sink) func() {
	e := &sinkEntry{s: s}
	ss.mu.Lock()
	ss.live[e] = struct{}{}
	ss.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			ss.mu.Lock()
			delete(ss.live, e)
			ss.mu.Unlock()
		})
	}
}

// Describe implements prometheus.Collector.
func (ss *SinkSet) Describe(ch chan<- *prometheus.Desc) { SinkCollector(nil).Describe(ch) }

// Collect implements prometheus.Collector.
func (ss *SinkSet) Collect(ch chan<- prometheus.Metric) {
	byName := map[string]*summedSink{}
	ss.mu.Lock()
	for e := range ss.live {
		sum := byName[e.s.Name()]
		if sum == nil {
			sum = &summedSink{name: e.s.Name()}
			byName[e.s.Name()] = sum
		}
		st := e.s.Stats()
		sum.st.Writes += st.Writes
		sum.st.FailedWrites += st.FailedWrites
		sum.st.LostBytes += st.LostBytes
		if r, ok := e.s.(interface{ Rotations() (uint64, uint64) }); ok {
			sum.rotating = true
			d, f := r.Rotations()
			sum.done += d
			sum.failed += f
		}
	}
	ss.mu.Unlock()
	list := make(SinkCollector, 0, len(byName))
	for _, s := range byName {
		if s.rotating {
			list = append(list, rotatingSum{s})
		} else {
			list = append(list, s)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name() < list[j].Name() })
	list.Collect(ch)
}

// summedSink carries the summed counts of the sinks of one name.
type summedSink struct {
	name         string
	st           sink.Stats
	rotating     bool // some of them are rotating files
	done, failed uint64
}

// rotatingSum is a summedSink with rotations.
type rotatingSum struct{ *summedSink }

func (s rotatingSum) Rotations() (done, failed uint64) { return s.done, s.failed }

func (s *summedSink) Write(p []byte) (int, error) { return len(p), nil }
func (s *summedSink) Close() error                { return nil }
func (s *summedSink) Name() string                { return s.name }
func (s *summedSink) Stats() sink.Stats           { return s.st }
