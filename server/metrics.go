package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
)

type metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	byRule    *prometheus.CounterVec
	latency   prometheus.Histogram
	outcomes  *prometheus.CounterVec
}

func newMetrics(log *audit.Log) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_decisions_total", Help: "Decisions by effect.",
		}, []string{"effect"}),
		byRule: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_rule_decisions_total", Help: "Decisions by the rule that produced their effect.",
		}, []string{"rule", "effect"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentgov_decision_duration_seconds",
			Help:    "Time to decide, including the durable audit append.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_outcomes_total", Help: "Outcomes reported, by status.",
		}, []string{"status"}),
	}
	m.reg.MustRegister(m.decisions, m.byRule, m.latency, m.outcomes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentgov_audit_entries", Help: "Entries in the audit log."},
			func() float64 { return float64(log.Size()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(d *action.Decision, took time.Duration) {
	m.decisions.WithLabelValues(string(d.Effect)).Inc()
	for _, r := range d.Rules {
		m.byRule.WithLabelValues(r, string(d.Effect)).Inc()
	}
	m.latency.Observe(took.Seconds())
}

func (m *metrics) outcome(o action.Outcome) { m.outcomes.WithLabelValues(o.Status).Inc() }
