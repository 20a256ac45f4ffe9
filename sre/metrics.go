package sre

import "github.com/prometheus/client_golang/prometheus"

// The metrics the monitor exports. The SLI counters are what the rules of
// Rules compute error ratios over.
var (
	sloEventsDesc = prometheus.NewDesc("agentgov_slo_events_total",
		"SLI events of each configured SLO, good or bad (success and latency SLIs count outcomes, policy_violation decisions).",
		[]string{"slo", "result"}, nil)
	breakerStateDesc = prometheus.NewDesc("agentgov_breaker_state",
		"1 for the state each circuit is in (closed, open, half_open), by breaker and key.",
		[]string{"breaker", "key", "state"}, nil)
	breakerTripsDesc = prometheus.NewDesc("agentgov_breaker_trips_total",
		"Times each circuit opened.",
		[]string{"breaker", "key"}, nil)
	droppedDesc = prometheus.NewDesc("agentgov_reliability_events_dropped_total",
		"Circuit state changes not written to the audit log because its queue was full.",
		nil, nil)
)

var _ prometheus.Collector = (*Monitor)(nil)

// Describe implements prometheus.Collector.
func (m *Monitor) Describe(ch chan<- *prometheus.Desc) {
	ch <- sloEventsDesc
	ch <- breakerStateDesc
	ch <- breakerTripsDesc
	ch <- droppedDesc
}

// Collect implements prometheus.Collector.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	for _, s := range m.slos {
		s.mu.Lock()
		g, b := s.good, s.bad
		s.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(sloEventsDesc, prometheus.CounterValue, float64(g), s.cfg.ID, "good")
		ch <- prometheus.MustNewConstMetric(sloEventsDesc, prometheus.CounterValue, float64(b), s.cfg.ID, "bad")
	}
	for _, st := range m.Breakers() {
		for _, name := range stateNames {
			v := 0.0
			if st.State == name {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(breakerStateDesc, prometheus.GaugeValue, v, st.ID, st.Key, string(name))
		}
		ch <- prometheus.MustNewConstMetric(breakerTripsDesc, prometheus.CounterValue, float64(st.Trips), st.ID, st.Key)
	}
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(m.lost.Load()))
}
