package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serverMetrics are the server's own metrics: the health of every running
// tracker (events, losses, handler failures), API requests and reloads.
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
		handler: promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}),
	}
	for _, c := range []prometheus.Collector{
		m.requests, m.reloads, &trackerCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := s.metrics.Register(c); err != nil {
			if _, dup := err.(prometheus.AlreadyRegisteredError); dup {
				continue // the Go and process collectors of a shared registry
			}
			return nil, err
		}
	}
	return m, nil
}

var (
	trackerLabels  = []string{"tracker", "kind"}
	descEvents     = prometheus.NewDesc("eunomia_tracker_events_total", "Events delivered to the tracker's handler chain.", trackerLabels, nil)
	descLostKernel = prometheus.NewDesc("eunomia_tracker_lost_kernel_total", "Events the kernel dropped because the tracker's ring buffer was full.", trackerLabels, nil)
	descLostQueue  = prometheus.NewDesc("eunomia_tracker_lost_queue_total", "Events dropped because the tracker's queue to its handlers was full.", trackerLabels, nil)
	descFailed     = prometheus.NewDesc("eunomia_tracker_handler_failures_total", "Events whose handler chain returned an error.", trackerLabels, nil)
	descRunning    = prometheus.NewDesc("eunomia_trackers_running", "Tracker instances running.", nil, nil)
)

// trackerCollector reads the running instances' counters at scrape time.
// The tracker label is the instance (kind#id): one series per running
// instance, gone when it stops.
type trackerCollector struct{ s *Server }

func (c *trackerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descLostKernel, descLostQueue, descFailed, descRunning} {
		ch <- d
	}
}

func (c *trackerCollector) Collect(ch chan<- prometheus.Metric) {
	list := c.s.List()
	for _, t := range list {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(t.Events), t.Tracker, t.Kind)
		ch <- prometheus.MustNewConstMetric(descLostKernel, prometheus.CounterValue, float64(t.LostKernel), t.Tracker, t.Kind)
		ch <- prometheus.MustNewConstMetric(descLostQueue, prometheus.CounterValue, float64(t.LostQueue), t.Tracker, t.Kind)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(t.Failed), t.Tracker, t.Kind)
	}
	ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(len(list)))
}
