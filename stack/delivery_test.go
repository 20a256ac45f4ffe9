package stack

import (
	"context"
	"log/slog"
	"testing"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policy"
)

func set(t *testing.T, def string) *policy.Set {
	t.Helper()
	d, err := policy.Parse("p.yaml", []byte("version: agentgov/v1\nname: p\ndefault: "+def+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := policy.Compile([]*policy.Document{d})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The SLO the canary names begins to page: the canary is rolled back; a
// page of another SLO changes nothing.
func TestABurningSLORollsTheCanaryBack(t *testing.T) {
	cfg := &config.Config{Canary: &config.Canary{Policies: "c", Agents: []string{"*"}, Rollback: config.CanaryRollback{SLO: "decide-success"}}}
	s := &Stack{Config: cfg, log: slog.Default()}
	s.Engine = govern.New(set(t, "deny"), govern.WithCanary(govern.Canary{Set: set(t, "allow"), Agents: []string{"*"}}, nil))
	passed := 0
	notify := s.canaryNotices(func(context.Context, govern.Notice) { passed++ })
	ctx := context.Background()
	notify(ctx, govern.Notice{Kind: "slo_burn", Fields: map[string]any{"slo": "other"}})
	if s.Engine.CanaryInForce() == nil {
		t.Fatal("another SLO's page rolled the canary back")
	}
	notify(ctx, govern.Notice{Kind: "slo_burn", Message: "burning", Fields: map[string]any{"slo": "decide-success"}})
	if s.Engine.CanaryInForce() != nil || passed != 2 {
		t.Fatalf("canary in force after its SLO paged; %d notices passed on", passed)
	}
}
