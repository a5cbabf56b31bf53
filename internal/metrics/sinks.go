package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eunomia-agent/eunomia/internal/sink"
)

// SinkCollector reports the failures of output sinks.
type SinkCollector []sink.Sink

var (
	sinkFailedDesc = prometheus.NewDesc("eunomia_sink_write_failures_total",
		"Writes to an output sink that failed (a full disk, a closed pipe); their events were dropped.", []string{"sink"}, nil)
	sinkLostDesc = prometheus.NewDesc("eunomia_sink_lost_bytes_total",
		"Bytes of formatted events an output sink dropped because writing them failed.", []string{"sink"}, nil)
	sinkRotationsDesc = prometheus.NewDesc("eunomia_sink_rotations_total",
		"Rotations of an output file, by result.", []string{"sink", "result"}, nil)
)

// Describe implements prometheus.Collector.
func (c SinkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sinkFailedDesc
	ch <- sinkLostDesc
	ch <- sinkRotationsDesc
}

// Collect implements prometheus.Collector.
func (c SinkCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c {
		st := s.Stats()
		ch <- prometheus.MustNewConstMetric(sinkFailedDesc, prometheus.CounterValue, float64(st.FailedWrites), s.Name())
		ch <- prometheus.MustNewConstMetric(sinkLostDesc, prometheus.CounterValue, float64(st.LostBytes), s.Name())
		if r, ok := s.(interface{ Rotations() (uint64, uint64) }); ok {
			done, failed := r.Rotations()
			ch <- prometheus.MustNewConstMetric(sinkRotationsDesc, prometheus.CounterValue, float64(done), s.Name(), "ok")
			ch <- prometheus.MustNewConstMetric(sinkRotationsDesc, prometheus.CounterValue, float64(failed), s.Name(), "failed")
		}
	}
}
