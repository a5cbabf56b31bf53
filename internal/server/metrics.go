package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
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
