package admission

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the webhook: decisions by webhook and result, and latency.
type Metrics struct {
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	reg       prometheus.Registerer
}

// NewMetrics registers the webhook's metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_admission_decisions_total",
			Help: "Admission reviews answered, by webhook (validate, mutate) and result (allowed, denied, warned, dry-run, exempt, mutated, unavailable, bad-request).",
		}, []string{"webhook", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_admission_request_duration_seconds", Help: "Admission review latency, from request to response written.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, []string{"webhook"}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.latency)
	}
	m.reg = reg
	return m
}

// watch exports the index's size and age: an index whose age climbs towards
// admission.maxStale is about to deny everything.
func (m *Metrics) watch(idx *Index) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "airlock_admission_index_digests", Help: "Approved digests (manifests and children of approved indexes) in the admission index.",
		}, func() float64 { return float64(idx.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "airlock_admission_index_age_seconds", Help: "Seconds since the admission index last read the store; past admission.maxStale every image is denied.",
		}, func() float64 { return idx.Age().Seconds() }),
	)
}

func (m *Metrics) observe(webhook, result string, d time.Duration) {
	m.decisions.WithLabelValues(webhook, result).Inc()
	m.latency.WithLabelValues(webhook).Observe(d.Seconds())
}
