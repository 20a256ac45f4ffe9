package config

import (
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/chaos"
)

func TestChaosConfiguration(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte(`
chaos:
  - id: slow-search
    match: {tools: ["search/*"]}
    fault: latency
    probability: 0.25
    latency_ms: 800
  - match: {models: ["gpt-4o*"]}
    fault: error
    probability: 1
    from: 2026-12-03T09:00:00Z
    until: "2026-12-03T10:00:00Z"
  - {match: {servers: [fs]}, fault: drop, probability: 0.5, enabled: false, error: null}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Chaos) != 3 {
		t.Fatalf("chaos %+v", c.Chaos)
	}
	e := c.Chaos[1]
	if e.ID != "chaos-2" || c.Chaos[2].ID != "chaos-3" {
		t.Errorf("ids %q %q, want the place of each experiment without one", e.ID, c.Chaos[2].ID)
	}
	if e.Error == nil || e.Error.Code != 500 || !strings.Contains(e.Error.Message, "chaos experiment chaos-2") {
		t.Errorf("error fault defaults %+v", e.Error)
	}
	if !e.From.Equal(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)) || !e.Until.Equal(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("window %v %v", e.From, e.Until)
	}
	if en := c.Chaos[2].Enabled; en == nil || *en {
		t.Errorf("enabled: false read as %v", en)
	}
	if c.Chaos[0].LatencyMS != 800 || c.Chaos[0].Probability != 0.25 {
		t.Errorf("first %+v", c.Chaos[0])
	}
}

// Every mistake is refused before the server starts, with the line of the
// key at fault.
func TestChaosConfigurationErrorsNameTheLineAndKey(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"chaos:\n  - {match: {tools: [x]}, fault: explode, probability: 1}", `agentgov.yaml:2: chaos[0].fault: want latency, error or drop, got "explode"`},
		{"chaos:\n  - {match: {tools: [x]}, probability: 1}", "agentgov.yaml:2: chaos[0].fault: missing"},
		{"chaos:\n  - match: {tools: [x]}\n    fault: error\n    probability: 1.5", "agentgov.yaml:4: chaos[0].probability: want a chance above 0 and at most 1"},
		{"chaos:\n  - {match: {tools: [x]}, fault: error, probability: 0}", "chaos[0].probability"},
		{"chaos:\n  - {match: {tools: [x]}, fault: error}", "chaos[0].probability"},
		{"chaos:\n  - {match: {tools: [x]}, fault: error, probability: -0.1}", "chaos[0].probability"},
		{"chaos:\n  - {match: {tools: [x]}, fault: latency, probability: 1}", "agentgov.yaml:2: chaos[0].latency_ms: a latency fault needs latency_ms above 0"},
		{"chaos:\n  - {match: {tools: [x]}, fault: latency, probability: 1, latency_ms: 9999999}", "chaos[0].latency_ms: want 0 to 600000"},
		{"chaos:\n  - {match: {tools: [x]}, fault: error, probability: 1}\n  - match: {}\n    fault: drop\n    probability: 1", "agentgov.yaml:3: chaos[1].match: name the tools, servers or models"},
		{"chaos:\n  - {fault: drop, probability: 1}", "chaos[0].match: name the tools"},
		{"chaos:\n  - {match: {tools: [x], models: [y]}, fault: drop, probability: 1}", "chaos[0].match: a call is a tool call or a model call"},
		{"chaos:\n  - {match: {tools: [\"\"]}, fault: drop, probability: 1}", "chaos[0].match.tools[0]: empty pattern"},
		{"chaos:\n  - {id: a, match: {tools: [x]}, fault: drop, probability: 1}\n  - {id: a, match: {tools: [y]}, fault: drop, probability: 1}", `agentgov.yaml:3: chaos[1].id: duplicate chaos experiment id "a"`},
		{"chaos:\n  - {id: chaos-2, match: {tools: [x]}, fault: drop, probability: 1}\n  - {match: {tools: [y]}, fault: drop, probability: 1}", `chaos[1].id: duplicate chaos experiment id "chaos-2"`},
		{"chaos:\n  - {id: 'bad id', match: {tools: [x]}, fault: drop, probability: 1}", "chaos[0].id: want 1 to 64"},
		{"chaos:\n  - match: {tools: [x]}\n    fault: drop\n    probability: 1\n    from: 2026-12-03T10:00:00Z\n    until: 2026-12-03T09:00:00Z", "agentgov.yaml:6: chaos[0].until: 2026-12-03T09:00:00Z is not after from"},
		{"chaos:\n  - {match: {tools: [x]}, fault: drop, probability: 1, from: tomorrow}", "line 2: want an RFC 3339 time"},
		{"chaos:\n  - {match: {tools: [x]}, fault: drop, probability: 1, error: boom}", "chaos[0].error: only an error fault"},
		{"chaos:\n  - {match: {tools: [x]}, fault: error, probability: 1, error: {code: 404}}", "chaos[0].error.code: want 429 or a status from 500 to 599"},
		{"chaos:\n  - {match: {tools: [x]}, fault: error, probability: 1, error: {mesage: x}}", "line 2: field mesage is not a known key"},
		{"chaos:\n  - {match: {tools: [x]}, fault: drop, probability: 1, probabilty: 1}", "agentgov.yaml:2: field probabilty is not a known key"},
		{"chaos:\n  - {match: {tool: [x]}, fault: drop, probability: 1}", "agentgov.yaml:2: field tool is not a known key"},
		{"chaos: {fault: drop}", "agentgov.yaml:1: cannot unmarshal"},
	} {
		_, err := Parse("agentgov.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n error %v\n want it to contain %s", tc.src, err, tc.want)
		}
	}
	if _, err := Parse("agentgov.yaml", []byte("chaos: []\n")); err != nil {
		t.Errorf("chaos: [] refused: %v", err)
	}
	var exps []chaos.Experiment
	for range chaos.MaxExperiments + 1 {
		exps = append(exps, chaos.Experiment{Match: chaos.Match{Tools: []string{"x"}}, Fault: chaos.Drop, Probability: 1})
	}
	chaos.Fill(exps)
	if err := chaos.Validate(exps); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Errorf("%d experiments: %v", len(exps), err)
	}
}
