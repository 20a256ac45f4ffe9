package sre

import (
	"context"
	"fmt"
	"time"
)

// EvaluateEvery is how often Run checks whether an SLO began or stopped
// paging.
const EvaluateEvery = 30 * time.Second

// Run writes every change of a circuit's state and of an SLO's paging to
// the audit log and tells Notify of it, until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	tick := time.NewTicker(m.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// What is queued still goes to the log: the writer stops after
			// the monitor.
			for {
				select {
				case tr := <-m.events:
					m.breakerReport(context.WithoutCancel(ctx), tr)
				default:
					return nil
				}
			}
		case tr := <-m.events:
			m.breakerReport(ctx, tr)
		case <-tick.C:
			m.Evaluate(ctx)
		}
	}
}

// Evaluate checks every SLO's page alerts and reports those that began or
// stopped firing since the last evaluation.
func (m *Monitor) Evaluate(ctx context.Context) {
	now := m.clock()
	for _, s := range m.slos {
		st := s.status(now)
		paging := st.Paging()
		s.mu.Lock()
		was := s.paging
		s.paging = paging
		s.mu.Unlock()
		if paging == was {
			continue
		}
		ev := Event{Kind: "slo_burn", At: now, Subject: st.ID,
			Fields: map[string]any{"slo": st.ID, "burn_rates": st.BurnRates, "error_budget_remaining": st.ErrorBudgetRemaining}}
		if paging {
			ev.Message = fmt.Sprintf("SLO %s burns its error budget fast enough to page (1h %.1fx, 6h %.1fx; %.0f%% of the budget left)",
				st.ID, st.BurnRates["1h"], st.BurnRates["6h"], 100*st.ErrorBudgetRemaining)
		} else {
			ev.Kind = "slo_recovered"
			ev.Message = fmt.Sprintf("SLO %s no longer burns fast enough to page", st.ID)
		}
		m.report(ctx, ev)
		var related []Entry
		if paging {
			related = s.recentBad()
		}
		m.raise(ctx, "slo", st.ID, "SLO "+st.ID+" pages: its error budget burns fast", "critical", paging, ev, related...)
	}
}

func (m *Monitor) breakerEvent(tr transition) Event {
	ev := Event{Kind: "breaker_" + string(tr.to), At: tr.at, Subject: tr.c.rule.ID + " " + tr.c.key,
		Fields: map[string]any{"breaker": tr.c.rule.ID, "key": tr.c.key, "from": tr.from, "to": tr.to, "calls": tr.calls, "failures": tr.failures}}
	switch tr.to {
	case Open:
		if tr.from == HalfOpen {
			ev.Message = fmt.Sprintf("circuit breaker %s opened again for %s: a probe failed", tr.c.rule.ID, tr.c.key)
		} else {
			ev.Message = fmt.Sprintf("circuit breaker %s opened for %s: %d of %d calls failed within %v", tr.c.rule.ID, tr.c.key, tr.failures, tr.calls, tr.c.rule.Window)
		}
	case HalfOpen:
		ev.Message = fmt.Sprintf("circuit breaker %s is half-open for %s: probes may go through", tr.c.rule.ID, tr.c.key)
	case Closed:
		ev.Message = fmt.Sprintf("circuit breaker %s closed for %s: its probes succeeded", tr.c.rule.ID, tr.c.key)
	}
	return ev
}

// breakerReport reports a circuit's change of state, and opens or adds to
// its incident.
func (m *Monitor) breakerReport(ctx context.Context, tr transition) {
	ev := m.breakerEvent(tr)
	m.report(ctx, ev)
	m.raise(ctx, "breaker", ev.Subject, fmt.Sprintf("circuit breaker %s opened for %s", tr.c.rule.ID, tr.c.key), "high", tr.to == Open, ev, tr.recent...)
}

// raise tells the incidents, if any, of ev.
func (m *Monitor) raise(ctx context.Context, kind, subject, title, severity string, open bool, ev Event, related ...Entry) {
	if m.inc == nil {
		return
	}
	m.inc.Raise(ctx, kind, subject, title, severity, open, Entry{At: ev.At, Kind: ev.Kind, Message: ev.Message}, related...)
}

// report audits ev, then tells Notify.
func (m *Monitor) report(ctx context.Context, ev Event) {
	if m.audit != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err := m.audit.Append(actx, "reliability", ev)
		cancel()
		if err != nil {
			m.log.Error("reliability event not audited", "kind", ev.Kind, "subject", ev.Subject, "err", err)
		}
	}
	m.log.Warn(ev.Message, "kind", ev.Kind)
	if m.notify != nil {
		m.notify(ctx, ev)
	}
}
