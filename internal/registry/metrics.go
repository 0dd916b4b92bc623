package registry

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the registry and its gate.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	denials  *prometheus.CounterVec
}

// NewMetrics registers the registry's metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_registry_requests_total", Help: "Registry API requests by endpoint, method and status.",
		}, []string{"endpoint", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_registry_request_duration_seconds", Help: "Registry API request latency.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"endpoint", "method"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_gate_denials_total", Help: "Requests the gate refused, by endpoint.",
		}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.denials)
	}
	return m
}

func (m *Metrics) observe(endpoint, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(endpoint, method).Observe(d.Seconds())
}

func (m *Metrics) denied(endpoint string) { m.denials.WithLabelValues(endpoint).Inc() }
