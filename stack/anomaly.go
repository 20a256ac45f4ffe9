package stack

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/govern"
)

// openAnomaly builds the anomaly detector unless anomaly.disabled: its
// counters are served at /metrics. Its memory is the process's own: a
// restart forgets every baseline.
func (s *Stack) openAnomaly() []govern.Option {
	if s.Config.Anomaly.Disabled {
		return nil
	}
	s.Anomaly = anomaly.New(s.Config.Anomaly)
	s.Metrics.Registry().MustRegister(anomalyMetrics{s.Anomaly})
	return []govern.Option{govern.WithAnomaly(s.Anomaly)}
}

// anomalyMetrics exports the detector's counters; the detector itself
// stays free of Prometheus, for library users.
type anomalyMetrics struct{ d *anomaly.Detector }

var (
	anomaliesDesc = prometheus.NewDesc("agentgov_anomalies_total",
		"Anomaly episodes found, by kind (rate_z, new_tool, entropy): once per agent and interval for rate_z and entropy, once per agent and tool for new_tool.",
		[]string{"kind"}, nil)
	anomalyAgentsDesc = prometheus.NewDesc("agentgov_anomaly_agents",
		"Agents whose baselines the anomaly detector remembers (at most anomaly.max_agents).",
		nil, nil)
	anomalyEvictedDesc = prometheus.NewDesc("agentgov_anomaly_agents_evicted_total",
		"Agents the anomaly detector forgot, least recently seen first, to make room for others.",
		nil, nil)
)

// Describe implements prometheus.Collector.
func (m anomalyMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- anomaliesDesc
	ch <- anomalyAgentsDesc
	ch <- anomalyEvictedDesc
}

// Collect implements prometheus.Collector.
func (m anomalyMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, k := range anomaly.AllKinds {
		ch <- prometheus.MustNewConstMetric(anomaliesDesc, prometheus.CounterValue, float64(m.d.Fired(k)), k.String())
	}
	ch <- prometheus.MustNewConstMetric(anomalyAgentsDesc, prometheus.GaugeValue, float64(m.d.Agents()))
	ch <- prometheus.MustNewConstMetric(anomalyEvictedDesc, prometheus.CounterValue, float64(m.d.Evicted()))
}
