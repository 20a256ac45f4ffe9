package evidence

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/policy"
)

// entries is a log held in memory, paged as the store pages it.
func entries(recs ...map[string]any) Entries {
	var es []audit.Entry
	for i, r := range recs {
		kind := "decision"
		if k, ok := r["kind"].(string); ok {
			kind = k
			delete(r, "kind")
		}
		raw, _ := json.Marshal(r)
		es = append(es, audit.Entry{Index: uint64(i), Kind: kind, Time: time.Unix(int64(1000+i), 0), Record: raw})
	}
	return func(_ context.Context, after int64, limit int) ([]audit.Entry, error) {
		start := int(after + 1)
		if start >= len(es) {
			return nil, nil
		}
		return es[start:min(len(es), start+1)], nil // one a page: paging is exercised
	}
}

func dec(session, agent, effect, severity string, rules ...string) map[string]any {
	return map[string]any{
		"decision":      map[string]any{"id": "dec_01JAAAAAAAAAAAAAAAAAAAAAAA", "effect": effect, "severity": severity, "rules": rules},
		"action":        map[string]any{"agent": map[string]any{"id": agent}, "session": session, "tool": map[string]any{"name": "t"}},
		"policy":        "sha256:x",
		"policy_effect": effect,
	}
}

func TestSessionRewardSumsConfiguredPenaltiesOfTheEpisodesDenials(t *testing.T) {
	src := entries(
		dec("ep", "a1", "deny", "critical", "r1"),
		dec("ep", "a1", "allow", ""),
		map[string]any{"kind": "outcome", "decision": "x"},
		dec("ep", "a2", "deny", "high", "r2"), // another agent's session of the same id
		dec("other", "a1", "deny", "low"),
		dec("ep", "a1", "deny", "", ""),
	)
	p := Penalties{Low: -2, Medium: -3, High: -7, Critical: -50}
	r, err := SessionReward(context.Background(), src, "a1", "ep", p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reward != -52 || r.Decisions != 3 || len(r.Violations) != 2 || r.Violations[0].Rule != "r1" || r.Violations[1].Penalty != -2 {
		t.Fatalf("%+v", r)
	}
}

func TestReplaySkipsWhatPolicyNeverDecided(t *testing.T) {
	d, err := policy.Parse("p.yaml", []byte("version: agentgov/v1\nname: p\ndefault: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile([]*policy.Document{d})
	if err != nil {
		t.Fatal(err)
	}
	killed := dec("s", "a1", "deny", "")
	delete(killed, "policy_effect")
	masked := dec("s", "a1", "deny", "high", "r")
	masked["action"].(map[string]any)["args"] = map[string]any{"key": "[REDACTED:aws_access_key]"}
	ds, err := Decisions(context.Background(), entries(dec("s", "a1", "allow", ""), killed, masked), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	res := Replay(ds, set, nil)
	if res.Total != 2 || res.Skipped != 1 || res.Changed != 1 || res.Masked != 1 {
		t.Fatalf("%+v", res)
	}
	if c := res.Decisions[0]; c.Old != action.Deny || c.New != action.Allow || !c.Masked || c.Index != 2 {
		t.Fatalf("%+v", c)
	}
}

// A decision that read anomaly.new_tool replays with the reading it
// recorded, not as an agent with no history.
func TestReplayUsesTheRecordedAnomaly(t *testing.T) {
	d, err := policy.Parse("p.yaml", []byte("version: agentgov/v1\nname: p\ndefault: allow\nrules:\n  - id: new\n    when: anomaly.new_tool\n    effect: require_approval\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile([]*policy.Document{d})
	if err != nil {
		t.Fatal(err)
	}
	asked := dec("s", "a1", "require_approval", "", "new")
	asked["anomaly"] = map[string]any{"new_tool": true, "warm": true, "rate_z": 0.5, "count": 3}
	ds, err := Decisions(context.Background(), entries(asked, dec("s", "a1", "allow", "")), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if res := Replay(ds, set, nil); res.Total != 2 || res.Changed != 0 {
		t.Fatalf("%+v", res)
	}
}
