// Package metrics is agentgov's Prometheus metrics: the decisions of every
// entry point (the HTTP API, the MCP gateway, the model proxy), the time
// each stage of the pipeline takes, tokens and cost by model and agent,
// budgets, upstream calls, the audit log and quarantined tools. It
// implements the observer interfaces of govern, audit, mcp and llmproxy,
// and serves /metrics.
//
// Label values that come from outside (agent ids and types, model names,
// rule ids, upstream names) are bounded: each label keeps at most a fixed
// number of distinct values, and a value seen after that, or one that is
// too long, not UTF-8, or holds something the detectors find, reads as
// "other". Nobody can grow /metrics without bound, nor publish a secret
// on it.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/detect"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/llmproxy"
	"github.com/agentgov/agentgov/mcp"
)

// The hooks Metrics serves.
var (
	_ govern.Observer   = (*Metrics)(nil)
	_ audit.Observer    = (*Metrics)(nil)
	_ mcp.Observer      = (*Metrics)(nil)
	_ llmproxy.Observer = (*Metrics)(nil)
)

// Caps on the distinct values of labels whose values come from outside.
const (
	MaxAgents     = 1000
	MaxAgentTypes = 100
	MaxModels     = 500
	MaxRules      = 2000
	MaxUpstreams  = 200
	// MaxModelAgents bounds the (model, agent) pairs of the token and
	// cost metrics: past it, a new pair counts under its model and agent
	// "other".
	MaxModelAgents = 2000
	// maxLabelBytes bounds one label value.
	maxLabelBytes = 128
	// Other is the value of a label past its cap.
	Other = "other"
)

// Metrics holds every metric. The zero value is not usable; call New.
type Metrics struct {
	reg *prometheus.Registry

	decisions  *prometheus.CounterVec
	rules      *prometheus.CounterVec
	decideTime *prometheus.HistogramVec
	stageTime  [govern.NumStages]prometheus.Observer
	outcomes   *prometheus.CounterVec

	tokens *prometheus.CounterVec
	cost   *prometheus.CounterVec

	upstreamTime   *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	refusals       *prometheus.CounterVec
	quarantined    *prometheus.GaugeVec

	auditAppend prometheus.Histogram
	auditBatch  prometheus.Histogram

	agents, agentTypes, models, rulesSeen, upstreams *bounded
	modelAgents                                      *bounded

	// Counters of the decision path, cached by their labels: a lookup in
	// a sync.Map costs less than the registry's hashing of four labels.
	decisionCounters sync.Map // decisionKey → prometheus.Counter
	ruleCounters     sync.Map // ruleKey → prometheus.Counter
	entryTimes       [len(entries)]prometheus.Observer
	// deliv: shadow and canary policy sets (delivery.go).
	deliv delivery
}

// entries are the entry points a decision comes from.
var entries = [...]string{"api", "mcp_gateway", "a2a_gateway", "model_proxy", "library", "other"}

type decisionKey struct{ entry, effect, point, agentType string }

type ruleKey struct{ rule, effect string }

func (m *Metrics) entryTime(entry string) prometheus.Observer {
	for i, e := range entries {
		if e == entry {
			return m.entryTimes[i]
		}
	}
	return m.entryTimes[len(entries)-1]
}

// New returns the metrics, registered with the Go runtime's and the
// process's own.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_decisions_total",
			Help: "Decisions, by entry point (api, mcp_gateway, a2a_gateway, model_proxy), effect, intervention point and agent type.",
		}, []string{"entry", "effect", "point", "agent_type"}),
		rules: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_rule_decisions_total",
			Help: "Decisions by each rule that produced their effect.",
		}, []string{"rule", "effect"}),
		decideTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agentgov_decision_duration_seconds",
			Help:    "Time to decide, from the first stage to the durable audit append, by entry point.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"entry"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_outcomes_total", Help: "Outcomes recorded, by status (ok, error).",
		}, []string{"status"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_model_tokens_total",
			Help: "Tokens of settled model calls, by model, agent and direction (input, output; unsplit for a total an agent reported).",
		}, []string{"model", "agent", "direction"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_model_cost_usd_total", Help: "Cost of settled model calls in US dollars, by model and agent.",
		}, []string{"model", "agent"}),
		upstreamTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agentgov_upstream_request_duration_seconds",
			Help:    "Time of calls forwarded upstream, by kind (mcp, model) and upstream (an MCP server, a model provider).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"kind", "upstream"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_upstream_errors_total",
			Help: "Calls forwarded upstream that failed, by kind, upstream and failure.",
		}, []string{"kind", "upstream", "failure"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentgov_refusals_total",
			Help: "Calls and sessions the MCP gateway or the model proxy refused before, or without, a decision, by entry point and reason.",
		}, []string{"entry", "reason"}),
		quarantined: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "agentgov_mcp_quarantined_tools", Help: "Tools of each MCP server that its latest listing quarantined.",
		}, []string{"server"}),
		auditAppend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentgov_audit_append_duration_seconds",
			Help:    "Time from an audit append to its acknowledgement: queueing, batching, the write and the sync.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		auditBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentgov_audit_batch_entries",
			Help:    "Entries per audit batch committed.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		agents:     newBounded(MaxAgents),
		agentTypes: newBounded(MaxAgentTypes),
		models:     newBounded(MaxModels),
		rulesSeen:  newBounded(MaxRules),
		upstreams:  newBounded(MaxUpstreams),
		// Pairs are judged on values already bounded: nothing of them
		// is new to the detectors.
		modelAgents: &bounded{max: MaxModelAgents, plain: true},
	}
	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "agentgov_decision_stage_duration_seconds",
		Help:    "Time of each stage of the decision pipeline that ran: kill_switch, session, budget_state, policy, budget, approval, audit.",
		Buckets: []float64{.000001, .0000025, .000005, .00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .1, 1},
	}, []string{"stage"})
	for s := range govern.NumStages {
		m.stageTime[s] = stages.WithLabelValues(s.String())
	}
	for i, e := range entries {
		m.entryTimes[i] = m.decideTime.WithLabelValues(e)
	}
	m.reg.MustRegister(m.decisions, m.rules, m.decideTime, stages, m.outcomes, m.tokens, m.cost,
		m.upstreamTime, m.upstreamErrors, m.refusals, m.quarantined, m.auditAppend, m.auditBatch,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are registered, for parts that add their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// WatchAuditLog exports the size of the log as agentgov_audit_entries.
func (m *Metrics) WatchAuditLog(size func() uint64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentgov_audit_entries", Help: "Entries in the audit log.",
	}, func() float64 { return float64(size()) }))
}

// Decided implements govern.Observer.
func (m *Metrics) Decided(entry string, a *action.Action, d *action.Decision, t *govern.StageTimes) {
	effect := string(d.Effect)
	point := string(a.Point)
	switch {
	case point == "":
		point = string(action.PreToolCall)
	case !a.Point.Valid():
		point = "invalid"
	}
	k := decisionKey{entry, effect, point, a.Agent.Type}
	c, ok := m.decisionCounters.Load(k)
	if !ok {
		// The key holds the agent type as given; the counter, its bounded
		// label. The cache is bounded as the label is, by the values
		// judged: past the cap new types all share "other"'s counter.
		agentType := m.agentTypes.value(a.Agent.Type)
		c = m.decisions.WithLabelValues(entry, effect, point, agentType)
		if agentType != Other {
			m.decisionCounters.Store(k, c)
		}
	}
	c.(prometheus.Counter).Inc()
	for _, r := range d.Rules {
		k := ruleKey{r, effect}
		c, ok := m.ruleCounters.Load(k)
		if !ok {
			rule := m.rulesSeen.value(r)
			c = m.rules.WithLabelValues(rule, effect)
			if rule != Other {
				m.ruleCounters.Store(k, c)
			}
		}
		c.(prometheus.Counter).Inc()
	}
	m.entryTime(entry).Observe(t.Total.Seconds())
	for s, ran := range t.Ran {
		if ran {
			m.stageTime[s].Observe(t.Stage[s].Seconds())
		}
	}
}

// OutcomeRecorded implements govern.Observer.
func (m *Metrics) OutcomeRecorded(o *action.Outcome) {
	status := o.Status
	if status != "ok" && status != "error" {
		status = Other
	}
	m.outcomes.WithLabelValues(status).Inc()
}

// Committed implements audit.Observer.
func (m *Metrics) Committed(entries int) { m.auditBatch.Observe(float64(entries)) }

// Appended implements audit.Observer.
func (m *Metrics) Appended(took time.Duration) { m.auditAppend.Observe(took.Seconds()) }

// UpstreamCall implements mcp.Observer and llmproxy.Observer.
func (m *Metrics) UpstreamCall(kind, upstream string, took time.Duration, failure string) {
	up := m.upstreams.value(upstream)
	m.upstreamTime.WithLabelValues(kind, up).Observe(took.Seconds())
	if failure != "" {
		m.upstreamErrors.WithLabelValues(kind, up, failure).Inc()
	}
}

// Refused implements mcp.Observer and llmproxy.Observer.
func (m *Metrics) Refused(entry, reason string) { m.refusals.WithLabelValues(entry, reason).Inc() }

// Quarantined implements mcp.Observer.
func (m *Metrics) Quarantined(server string, tools int) {
	m.quarantined.WithLabelValues(m.upstreams.value(server)).Set(float64(tools))
}

// ModelUsage implements llmproxy.Observer: what a settled model call
// used. The server calls it too for outcomes agents report themselves.
func (m *Metrics) ModelUsage(model, agent string, inputTokens, outputTokens int64, costUSD float64) {
	mo, ag := m.modelAgent(model, agent)
	if inputTokens > 0 {
		m.tokens.WithLabelValues(mo, ag, "input").Add(float64(inputTokens))
	}
	if outputTokens > 0 {
		m.tokens.WithLabelValues(mo, ag, "output").Add(float64(outputTokens))
	}
	if costUSD > 0 {
		m.cost.WithLabelValues(mo, ag).Add(costUSD)
	}
}

// ReportedUsage counts what an agent reported of a model call it made
// itself (an outcome on /v1): tokens without an input/output split count
// as direction "unsplit".
func (m *Metrics) ReportedUsage(model, agent string, o *action.Outcome) {
	m.ModelUsage(model, agent, o.InputTokens, o.OutputTokens, o.CostUSD)
	if rest := o.TotalTokens() - o.InputTokens - o.OutputTokens; rest > 0 {
		mo, ag := m.modelAgent(model, agent)
		m.tokens.WithLabelValues(mo, ag, "unsplit").Add(float64(rest))
	}
}

// modelAgent bounds the model and the agent each, and the pairs of them.
func (m *Metrics) modelAgent(model, agent string) (string, string) {
	mo, ag := m.models.value(model), m.agents.value(agent)
	if ag != Other && m.modelAgents.value(mo+"\x00"+ag) == Other {
		ag = Other
	}
	return mo, ag
}

// bounded keeps the values of one label to at most max distinct ones.
type bounded struct {
	max int
	// plain counts values without judging them (they are made of values
	// judged already).
	plain bool
	seen  sync.Map // value → bool: whether it is kept as itself
	mu    sync.Mutex
	n     int
}

func newBounded(max int) *bounded { return &bounded{max: max} }

// value is v when v may be a label value, else Other. A value is judged
// once: later calls cost one map read.
func (b *bounded) value(v string) string {
	if ok, seen := b.seen.Load(v); seen {
		if ok.(bool) {
			return v
		}
		return Other
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok, seen := b.seen.Load(v); seen {
		if ok.(bool) {
			return v
		}
		return Other
	}
	if b.n >= b.max {
		return Other // not remembered: memory stays bounded too
	}
	ok := b.plain || (len(v) <= maxLabelBytes && utf8.ValidString(v) && v != Other && detect.Mask(v) == v)
	b.seen.Store(v, ok)
	b.n++
	if !ok {
		return Other
	}
	return v
}

// BudgetSource reports budgets' use; *budget.Budgets is one.
type BudgetSource interface {
	UsageAt(ctx context.Context, filter budget.Scope, t time.Time) ([]budget.Usage, error)
}

// WatchBudgets exports each budget's spend and fullness at every scrape,
// read from the store (a per-session budget reports its fullest session).
func (m *Metrics) WatchBudgets(b BudgetSource, now func() time.Time) {
	m.reg.MustRegister(&budgetCollector{src: b, now: now})
}

var (
	budgetSpentUSD = prometheus.NewDesc("agentgov_budget_spent_usd",
		"What each budget has spent in its period in force, in US dollars (a per-session budget: its fullest session).", []string{"budget"}, nil)
	budgetSpentTokens = prometheus.NewDesc("agentgov_budget_spent_tokens",
		"Tokens each budget has spent in its period in force.", []string{"budget"}, nil)
	budgetSpentCalls = prometheus.NewDesc("agentgov_budget_spent_calls",
		"Calls each budget has counted in its period in force.", []string{"budget"}, nil)
	budgetFraction = prometheus.NewDesc("agentgov_budget_fraction",
		"Each budget's fullest limited dimension, spent plus reserved over its limit (0 when nothing is limited).", []string{"budget"}, nil)
)

type budgetCollector struct {
	src BudgetSource
	now func() time.Time
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- budgetSpentUSD
	ch <- budgetSpentTokens
	ch <- budgetSpentCalls
	ch <- budgetFraction
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	us, err := c.src.UsageAt(ctx, budget.Scope{}, c.now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(budgetFraction, err)
		return
	}
	fullest := map[string]budget.Usage{}
	var order []string
	for _, u := range us {
		prev, ok := fullest[u.ID]
		if !ok {
			order = append(order, u.ID)
		}
		if !ok || u.Fraction > prev.Fraction {
			fullest[u.ID] = u
		}
	}
	for _, id := range order {
		u := fullest[id]
		ch <- prometheus.MustNewConstMetric(budgetSpentUSD, prometheus.GaugeValue, float64(u.Spent.CostMicros)/1e6, id)
		ch <- prometheus.MustNewConstMetric(budgetSpentTokens, prometheus.GaugeValue, float64(u.Spent.Tokens), id)
		ch <- prometheus.MustNewConstMetric(budgetSpentCalls, prometheus.GaugeValue, float64(u.Spent.Calls), id)
		ch <- prometheus.MustNewConstMetric(budgetFraction, prometheus.GaugeValue, u.Fraction, id)
	}
}
