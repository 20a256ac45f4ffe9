package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentgov/agentgov/provenance"
)

// WatchProvenance exports the provenance ledger's size and what it evicted
// to stay in its bounds, read at every scrape.
func (m *Metrics) WatchProvenance(stats func() provenance.Stats) {
	m.reg.MustRegister(&provenanceCollector{stats: stats})
}

var (
	provSessions = prometheus.NewDesc("agentgov_provenance_sessions",
		"Sessions the provenance ledger tracks.", nil, nil)
	provEntries = prometheus.NewDesc("agentgov_provenance_entries",
		"Pieces of content (user input, tool results) the provenance ledger holds.", nil, nil)
	provBytes = prometheus.NewDesc("agentgov_provenance_bytes",
		"Memory the provenance ledger's content and index take, in bytes.", nil, nil)
	provAdded = prometheus.NewDesc("agentgov_provenance_added_total",
		"Pieces of content recorded in the provenance ledger.", nil, nil)
	provDuplicates = prometheus.NewDesc("agentgov_provenance_duplicates_total",
		"Pieces of content seen again in a session and not recorded twice (a model proxy sees the whole conversation every turn).", nil, nil)
	provEvicted = prometheus.NewDesc("agentgov_provenance_evicted_total",
		"Pieces of content dropped, oldest first, to keep the provenance ledger within its bounds.", nil, nil)
)

type provenanceCollector struct{ stats func() provenance.Stats }

func (c *provenanceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{provSessions, provEntries, provBytes, provAdded, provDuplicates, provEvicted} {
		ch <- d
	}
}

func (c *provenanceCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(provSessions, prometheus.GaugeValue, float64(st.Sessions))
	ch <- prometheus.MustNewConstMetric(provEntries, prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(provBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(provAdded, prometheus.CounterValue, float64(st.Added))
	ch <- prometheus.MustNewConstMetric(provDuplicates, prometheus.CounterValue, float64(st.Duplicates))
	ch <- prometheus.MustNewConstMetric(provEvicted, prometheus.CounterValue, float64(st.Evicted))
}
