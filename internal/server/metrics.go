package server

import (
	"net/http"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eunomia-agent/eunomia/internal/metrics"
	"github.com/eunomia-agent/eunomia/internal/sink"
)

// serverMetrics are the server's own metrics, beside the exporter's (the
// health of every tracker, event counters): API requests, reloads, and
// the failures of the sinks its chains write to.
type serverMetrics struct {
	requests *prometheus.CounterVec
	reloads  *prometheus.CounterVec
	handler  http.Handler
}

func newServerMetrics(s *Server) (*serverMetrics, error) {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eunomia_api_requests_total",
			Help: "API requests served, by method, route and status code.",
		}, []string{"method", "route", "code"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eunomia_config_reloads_total",
			Help: "Config file reloads, by result (ok, error).",
		}, []string{"result"}),
		handler: s.exp.HTTPHandler(),
	}
	for _, c := range []prometheus.Collector{m.requests, m.reloads, s.sinks} {
		if err := s.exp.Registry().Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// sinkSet keeps the sinks open in chains, for metrics.SinkCollector. Sinks
// come and go with trackers; several may share a name (stdout, or a file
// two chains append to), so their counts are summed per name.
type sinkSet struct {
	mu   sync.Mutex
	live map[*sinkEntry]struct{}
}

type sinkEntry struct{ s sink.Sink }

// Add implements pipeline.SinkSet.
func (ss *sinkSet) Add(s sink.Sink) func() {
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
func (ss *sinkSet) Describe(ch chan<- *prometheus.Desc) { metrics.SinkCollector(nil).Describe(ch) }

// Collect implements prometheus.Collector.
func (ss *sinkSet) Collect(ch chan<- prometheus.Metric) {
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
	list := make(metrics.SinkCollector, 0, len(byName))
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
