package chaos

import "github.com/prometheus/client_golang/prometheus"

var (
	faultsDesc = prometheus.NewDesc("agentgov_chaos_faults_total",
		"Faults injected by chaos experiments, by experiment and fault (latency, error, drop).",
		[]string{"experiment", "fault"}, nil)
	enabledDesc = prometheus.NewDesc("agentgov_chaos_experiment_enabled",
		"1 while a chaos experiment is switched on (it injects only inside its window), else 0.",
		[]string{"experiment"}, nil)
)

// Describe implements prometheus.Collector.
func (in *Injector) Describe(ch chan<- *prometheus.Desc) {
	ch <- faultsDesc
	ch <- enabledDesc
}

// Collect implements prometheus.Collector.
func (in *Injector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range in.exps {
		ch <- prometheus.MustNewConstMetric(faultsDesc, prometheus.CounterValue, float64(e.injected.Load()), e.cfg.ID, e.cfg.Fault)
		on := 0.0
		if e.enabled.Load() {
			on = 1
		}
		ch <- prometheus.MustNewConstMetric(enabledDesc, prometheus.GaugeValue, on, e.cfg.ID)
	}
}
