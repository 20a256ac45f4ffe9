package stack

import (
	"context"
	"fmt"
	"maps"
	"runtime/debug"
	"strings"

	"github.com/agentgov/agentgov/alert"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/sre"
	"github.com/agentgov/agentgov/telemetry"
)

// openReliability builds the monitor of the SLOs and breakers the
// configuration declares, if it declares any: its SLI counters are served
// at /metrics, its changes of state audited by a loop of its own and told
// as notices. It returns the engine's option for it.
func (s *Stack) openReliability(notify func(context.Context, govern.Notice)) []govern.Option {
	rc := s.Config.Reliability()
	if !rc.Enabled() {
		return nil
	}
	s.Reliability = sre.New(rc, sre.Options{
		Clock: s.clock, Audit: s.Audit, Logger: s.log, Incidents: s.Incidents, EvaluateEvery: s.sloEvery,
		Notify: func(ctx context.Context, ev sre.Event) {
			notify(ctx, govern.Notice{Kind: ev.Kind, Message: ev.Message, Fields: ev.Fields})
		},
	})
	s.Metrics.Registry().MustRegister(s.Reliability)
	s.loops = append(s.loops, loop{"reliability", s.Reliability.Run})
	return []govern.Option{govern.WithReliability(s.Reliability)}
}

// incidentNotices opens an incident for every kill switch engaged and adds
// its release to the timeline, then passes every notice on.
func (s *Stack) incidentNotices(next func(context.Context, govern.Notice)) func(context.Context, govern.Notice) {
	s.Incidents = sre.NewIncidents(s.clock, s.Audit, s.log)
	return func(ctx context.Context, n govern.Notice) {
		if n.Kind == "kill" || n.Kind == "kill_release" {
			id, _ := n.Fields["switch"].(string)
			title := fmt.Sprintf("kill switch %s engaged on %v %v", id, n.Fields["scope"], n.Fields["target"])
			msg := fmt.Sprintf("%s by %v: %s", strings.ReplaceAll(n.Kind, "_", " "), n.Fields["by"], n.Message)
			var related []sre.Entry
			if !n.Decision.IsZero() {
				related = append(related, sre.Entry{At: s.clock(), Kind: "decision", Decision: n.Decision.String(), Message: "the decision that engaged it"})
			}
			s.Incidents.Raise(ctx, "kill", id, title, "critical", n.Kind == "kill", sre.Entry{At: s.clock(), Kind: n.Kind, Message: msg}, related...)
		}
		next(ctx, n)
	}
}

// openAlerts builds the alert channels the configuration declares, if
// any (a channel whose URL is not in the environment stops the start), and
// returns notify passing every notice also to them.
func (s *Stack) openAlerts(next func(context.Context, govern.Notice)) (func(context.Context, govern.Notice), error) {
	if len(s.Config.Alerts.Channels) == 0 {
		return next, nil
	}
	d, err := alert.New(s.Config.Alerts, alert.Options{Clock: s.clock, Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.Metrics.Registry().MustRegister(d)
	s.loops = append(s.loops, loop{"alerts", d.Run})
	return func(ctx context.Context, n govern.Notice) {
		if a, ok := alertOf(n); ok {
			d.Send(a)
		}
		next(ctx, n)
	}, nil
}

// alertOf is the alert a notice raises, if it raises one.
func alertOf(n govern.Notice) (alert.Alert, bool) {
	f := func(k string) string { return fmt.Sprint(n.Fields[k]) }
	a := alert.Alert{Summary: n.Message, Details: n.Fields}
	switch n.Kind {
	case "kill":
		a.Kind, a.Severity, a.DedupeKey = "kill", "critical", "kill:"+f("switch")
		a.Summary = fmt.Sprintf("kill switch %s engaged on %s %s by %s: %s", f("switch"), f("scope"), f("target"), f("by"), n.Message)
	case "budget_soft", "budget_throttle":
		a.Kind, a.Severity, a.DedupeKey = "budget_soft", "medium", n.Kind+":"+f("budget")
	case "budget_hard", "budget_kill":
		a.Kind, a.Severity, a.DedupeKey = "budget_hard", "high", n.Kind+":"+f("budget")
	case "breaker_open":
		a.Kind, a.Severity, a.DedupeKey = "breaker_open", "high", "breaker_open:"+f("breaker")+" "+f("key")
	case "slo_burn":
		a.Kind, a.Severity, a.DedupeKey = "slo_burn", "critical", "slo_burn:"+f("slo")
	case "trust_drop":
		a.Kind, a.Severity, a.DedupeKey = "trust_drop", "high", "trust_drop:"+n.Agent+" "+f("to_tier")
	case "drift":
		a.Kind, a.Severity, a.DedupeKey = "drift", "medium", "drift:"+f("server")+" "+f("tool")+" "+f("fingerprint")
	case "quarantine":
		a.Kind, a.Severity, a.DedupeKey = "quarantine", "high", "quarantine:"+f("server")+" "+f("tool")+" "+f("fingerprint")
	case "anomaly":
		a.Kind, a.Severity, a.DedupeKey = "anomaly", "medium", "anomaly:"+f("anomaly")+" "+n.Agent
		if tool, ok := n.Fields["tool"]; ok {
			a.DedupeKey += " " + fmt.Sprint(n.Fields["server"]) + "/" + fmt.Sprint(tool)
		}
	default:
		return alert.Alert{}, false
	}
	if n.Agent != "" {
		a.Details = maps.Clone(a.Details)
		if a.Details == nil {
			a.Details = map[string]any{}
		}
		a.Details["agent"] = n.Agent
	}
	return a, true
}

// openTelemetry builds the OTLP trace exporter the configuration names, if
// any, and returns the engine's option for it.
func (s *Stack) openTelemetry(ctx context.Context) ([]govern.Option, error) {
	o := s.Config.Telemetry.OTLP
	if o.Endpoint == "" {
		return nil, nil
	}
	t, err := telemetry.New(ctx, telemetry.Config{OTLP: telemetry.OTLP{Endpoint: o.Endpoint, Protocol: o.Protocol}}, "agentgov", buildVersion())
	if err != nil {
		return nil, err
	}
	s.loops = append(s.loops, loop{"telemetry", t.Run})
	s.tracer = t
	if o.Metrics {
		m, err := telemetry.NewMetrics(ctx, telemetry.Config{OTLP: telemetry.OTLP{Endpoint: o.Endpoint, Protocol: o.Protocol}},
			o.MetricsInterval, s.Metrics.Registry(), "agentgov", buildVersion())
		if err != nil {
			return nil, err
		}
		s.loops = append(s.loops, loop{"telemetry metrics", m.Run})
	}
	return []govern.Option{govern.WithTracer(t)}, nil
}

// CallTracer traces the calls a gateway forwards upstream; nil without
// telemetry.otlp.
func (s *Stack) CallTracer() calltrace.Tracer { return s.tracer }

// buildVersion is the module's version, as traces name it.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return ""
}

// MCPAlert is what an MCP gateway calls on a drifted or quarantined tool:
// it raises the alert of that kind where channels are configured.
func (s *Stack) MCPAlert(ctx context.Context, kind, summary string, fields map[string]any) {
	if s.notify != nil {
		s.notify(ctx, govern.Notice{Kind: kind, Message: summary, Fields: fields})
	}
}
