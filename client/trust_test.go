package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
)

// An agent's deny moves its score, which it reads for itself and an admin
// for anyone; another agent's trust is not found; an elevation without
// rings configured is refused naming why.
func TestTrustAgainstTheLiveServer(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	a1 := l.as(t, "a1-tok")
	d, err := a1.Decide(ctx, action.Action{Tool: action.Tool{Name: "read_file"}, Args: map[string]any{"path": "/etc/shadow"}})
	if err != nil || d.Effect != action.Deny {
		t.Fatalf("decide %+v %v", d, err)
	}
	var tr any
	for i := 0; ; i++ {
		got, err := l.as(t, "admin-tok").Trust(ctx, "a1", 10)
		if err != nil {
			t.Fatal(err)
		}
		if got.Score == 450 {
			if got.Tier != "probationary" || len(got.Events) != 1 || got.Events[0].Decision != d.ID.String() || got.Rings != nil {
				t.Fatalf("trust %+v", got)
			}
			break
		}
		if i == 500 {
			t.Fatalf("score never moved: %+v", tr)
		}
		tr = got
		time.Sleep(10 * time.Millisecond)
	}
	if own, err := a1.Trust(ctx, "a1", 0); err != nil || own.Score != 450 {
		t.Fatalf("own trust %+v %v", own, err)
	}
	_, err = l.as(t, "a2-tok").Trust(ctx, "a1", 0)
	wantCode(t, "a2 reading a1", err, 404, "not_found")
	_, err = a1.Elevate(ctx, "a1", 1, time.Minute, "deploy")
	wantCode(t, "elevation without rings", err, 400, "bad_request")
}
