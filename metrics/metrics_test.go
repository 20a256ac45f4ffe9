package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/metrics"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// series counts the lines of a metric (one per label set).
func series(out, name string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, name+"{") {
			n++
		}
	}
	return n
}

// A hostile caller controls agent ids, agent types, model names and
// upstream names in some deployments: however many distinct ones it sends,
// however long, malformed or secret-bearing, /metrics stays bounded, never
// shows a secret, and keeps counting (under "other").
func TestHostileLabelValuesCannotGrowMetrics(t *testing.T) {
	m := metrics.New()
	secret := "AKIAIOSFODNN7EXAMPLE"
	for i := range 5000 {
		model := fmt.Sprintf("model-%d", i)
		switch i % 4 {
		case 1:
			model = strings.Repeat("m", 10_000) + fmt.Sprint(i)
		case 2:
			model = "bad-\xff-" + fmt.Sprint(i)
		case 3:
			model = "key " + secret
		}
		m.ModelUsage(model, fmt.Sprintf("agent-%d", i), 10, 5, 0.01)
		m.Decided("api", &action.Action{Agent: action.Agent{ID: "a", Type: fmt.Sprintf("type-%d", i)}, Point: action.Point(fmt.Sprintf("point-%d", i))},
			&action.Decision{Effect: action.Deny, Rules: []string{fmt.Sprintf("rule-%d", i)}}, &govern.StageTimes{Total: time.Millisecond})
		m.UpstreamCall("mcp", fmt.Sprintf("server-%d", i), time.Millisecond, "error")
	}
	out := scrape(t, m)
	if strings.Contains(out, secret) || strings.Contains(out, "\xff") || strings.Contains(out, strings.Repeat("m", 200)) {
		t.Fatal("a secret, invalid UTF-8 or an unbounded value reached /metrics")
	}
	for name, most := range map[string]int{
		"agentgov_model_tokens_total":                      2 * (metrics.MaxModelAgents + metrics.MaxModels + 1),
		"agentgov_model_cost_usd_total":                    metrics.MaxModelAgents + metrics.MaxModels + 1,
		"agentgov_decisions_total":                         metrics.MaxAgentTypes + 1,
		"agentgov_rule_decisions_total":                    metrics.MaxRules + 1,
		"agentgov_upstream_errors_total":                   metrics.MaxUpstreams + 1,
		"agentgov_upstream_request_duration_seconds_count": metrics.MaxUpstreams + 1,
	} {
		if n := series(out, name); n == 0 || n > most {
			t.Errorf("%s: %d series, want 1 to %d", name, n, most)
		}
	}
	if !strings.Contains(out, `point="invalid"`) || !strings.Contains(out, `agent_type="other"`) || !strings.Contains(out, `model="other"`) {
		t.Error("values past the caps are not counted as other")
	}
	// Counting goes on past the caps: all 5000 calls are in the totals.
	if !strings.Contains(out, "agentgov_decision_duration_seconds_count{entry=\"api\"} 5000") {
		t.Errorf("decisions lost past the caps:\n%s", grep(out, "agentgov_decision_duration_seconds_count"))
	}
	if len(out) > 4<<20 {
		t.Errorf("/metrics is %d bytes", len(out))
	}
}

func grep(out, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// Only the stages a decision went through are timed.
func TestOnlyStagesThatRanAreObserved(t *testing.T) {
	m := metrics.New()
	st := &govern.StageTimes{Total: time.Millisecond}
	st.Stage[govern.StagePolicy], st.Ran[govern.StagePolicy] = time.Microsecond, true
	st.Stage[govern.StageAudit], st.Ran[govern.StageAudit] = 900*time.Microsecond, true
	m.Decided("mcp_gateway", &action.Action{Point: action.PreToolCall}, &action.Decision{Effect: action.Allow}, st)
	out := scrape(t, m)
	for stage, want := range map[string]string{"policy": "1", "audit": "1", "budget": "0", "kill_switch": "0"} {
		if !strings.Contains(out, fmt.Sprintf("agentgov_decision_stage_duration_seconds_count{stage=%q} %s\n", stage, want)) {
			t.Errorf("stage %s: want count %s in\n%s", stage, want, grep(out, "agentgov_decision_stage_duration_seconds_count"))
		}
	}
}

type oneBudget struct{}

func (oneBudget) UsageAt(ctx context.Context, f budget.Scope, t time.Time) ([]budget.Usage, error) {
	return []budget.Usage{{ID: "b", Fraction: 0.5}}, nil
}

// docs/operations.md names every metric this package exports.
func TestOperationsDocsNameEveryMetric(t *testing.T) {
	m := metrics.New()
	m.WatchAuditLog(func() uint64 { return 1 })
	m.WatchBudgets(oneBudget{}, time.Now)
	st := &govern.StageTimes{}
	st.Ran[govern.StagePolicy] = true
	m.Decided("api", &action.Action{}, &action.Decision{Effect: action.Allow, Rules: []string{"r"}}, st)
	m.OutcomeRecorded(&action.Outcome{Status: "ok"})
	m.ModelUsage("gpt-4o-mini", "a", 1, 1, 0.1)
	m.UpstreamCall("mcp", "fs", time.Millisecond, "error")
	m.Refused("mcp_gateway", "quarantined")
	m.Quarantined("fs", 1)
	m.Committed(1)
	m.Appended(time.Millisecond)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fams {
		if name := f.GetName(); strings.HasPrefix(name, "agentgov_") {
			n++
			if !strings.Contains(string(doc), "`"+name+"`") {
				t.Errorf("docs/operations.md does not name %s", name)
			}
		}
	}
	if n < 17 {
		t.Errorf("only %d agentgov metrics gathered", n)
	}
}
