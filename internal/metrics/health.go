package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// health reports the agent's own state, read from the tracker manager at
// scrape time: events delivered, events lost (in the kernel's ring buffer
// and in the user-space queue), chains that failed, trackers running.
// Stopped trackers leave the list, and their series end with them.
type health struct {
	src     Source
	version string
}

var (
	eventsDesc = prometheus.NewDesc("eunomia_events_total",
		"Events delivered to the handler chain, per tracker instance.", []string{"tracker"}, nil)
	lostDesc = prometheus.NewDesc("eunomia_events_lost_total",
		"Events lost, per tracker instance: where=\"kernel\" when the ring buffer was full, where=\"queue\" when the queue to the handlers was full.",
		[]string{"tracker", "where"}, nil)
	failedDesc = prometheus.NewDesc("eunomia_handler_failures_total",
		"Events for which a handler of the chain failed (a sink that could not write, for example), per tracker instance.",
		[]string{"tracker"}, nil)
	runningDesc = prometheus.NewDesc("eunomia_trackers_running",
		"Tracker instances running.", nil, nil)
	buildDesc = prometheus.NewDesc("eunomia_build_info",
		"Always 1; the labels give the agent's version and the Go version it was built with.", []string{"version", "goversion"}, nil)
)

func newHealth(src Source, version string) *health {
	if version == "" {
		version = "unknown"
	}
	return &health{src: src, version: version}
}

func (h *health) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{eventsDesc, lostDesc, failedDesc, runningDesc, buildDesc} {
		ch <- d
	}
}

func (h *health) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(buildDesc, prometheus.GaugeValue, 1, h.version, runtime.Version())
	if h.src == nil {
		return
	}
	infos := h.src.List()
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(len(infos)))
	for _, in := range infos {
		ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(in.Events), in.Name)
		ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.CounterValue, float64(in.LostKernel), in.Name, "kernel")
		ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.CounterValue, float64(in.LostQueue), in.Name, "queue")
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.CounterValue, float64(in.Failed), in.Name)
	}
}
