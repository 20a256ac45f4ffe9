package client_test

import (
	"context"
	"testing"

	"github.com/agentgov/agentgov/action"
)

// An agent that acted has a baseline it may read, still warming up; one
// that never acted has none; another agent's is not found.
func TestAnomalyAgainstTheLiveServer(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	a1 := l.as(t, "a1-tok")
	if _, err := a1.Decide(ctx, action.Action{Tool: action.Tool{Name: "read_file"}, Args: map[string]any{"path": "/tmp/x"}}); err != nil {
		t.Fatal(err)
	}
	b, err := a1.Anomaly(ctx, "a1")
	if err != nil || b.Agent != "a1" || b.Warm || b.Count != 1 || b.ToolsRemembered != 1 {
		t.Fatalf("baseline %+v %v", b, err)
	}
	_, err = l.as(t, "admin-tok").Anomaly(ctx, "a2")
	wantCode(t, "an agent that never acted", err, 404, "not_found")
	_, err = l.as(t, "a2-tok").Anomaly(ctx, "a1")
	wantCode(t, "a2 reading a1", err, 404, "not_found")
}
