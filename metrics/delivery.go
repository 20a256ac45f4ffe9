package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
)

var _ govern.DeliveryObserver = (*Metrics)(nil)

// delivery are the metrics of shadow and canary policy sets, registered
// with the others on first use.
type delivery struct {
	once      sync.Once
	shadow    *prometheus.CounterVec
	canary    *prometheus.CounterVec
	rollbacks prometheus.Counter
}

func (m *Metrics) delivery() *delivery {
	d := &m.deliv
	d.once.Do(func() {
		d.shadow = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_shadow_differences_total",
			Help: "Decisions the shadow policy set would have decided otherwise, by the live and the shadow effect.",
		}, []string{"live", "shadow"})
		d.canary = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_canary_decisions_total", Help: "Decisions the canary policy set made, by effect.",
		}, []string{"effect"})
		d.rollbacks = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentgov_canary_rollbacks_total", Help: "Canaries rolled back.",
		})
		m.reg.MustRegister(d.shadow, d.canary, d.rollbacks)
	})
	return d
}

// WatchDelivery registers the delivery metrics now, so that they are
// exported (at zero) before the first shadow difference or canary decision.
func (m *Metrics) WatchDelivery() { m.delivery() }

// ShadowDiff counts a difference of the shadow set.
func (m *Metrics) ShadowDiff(live, shadow action.Effect) {
	m.delivery().shadow.WithLabelValues(string(live), string(shadow)).Inc()
}

// CanaryDecided counts a decision of the canary set.
func (m *Metrics) CanaryDecided(effect action.Effect) {
	m.delivery().canary.WithLabelValues(string(effect)).Inc()
}

// CanaryRolledBack counts a rollback.
func (m *Metrics) CanaryRolledBack(string) { m.delivery().rollbacks.Inc() }
