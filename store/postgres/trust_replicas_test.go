package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/store"
	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/storetest"
	"github.com/agentgov/agentgov/trust"
)

const denyEtc = `
version: agentgov/v1
name: etc
default: allow
rules:
  - id: no-etc
    match: {tools: [read_file]}
    when: 'args.path.startsWith("/etc/")'
    effect: deny
    severity: high
`

// trustReplica is a replica with trust scores and rings, wired as serve
// wires it.
type trustReplica struct {
	db     *postgres.DB
	kill   *killswitch.Switchboard
	keeper *trust.Keeper
	eng    *govern.Engine
}

func startTrustReplica(t *testing.T, dsn, id string) *trustReplica {
	t.Helper()
	ctx := context.Background()
	key := storetest.NewKey(t, "agentgov-test/"+id)
	r := &trustReplica{db: openReplica(t, dsn, id, key.Text, postgres.Options{PollInterval: time.Hour})}
	log, err := audit.Open(ctx, r.db, key.Signer, key.Verifier, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.kill, err = killswitch.New(ctx, r.db, time.Now); err != nil {
		t.Fatal(err)
	}
	cfg := trust.Config{KillBelow: 260, FlushEvery: 10 * time.Millisecond}
	cfg.Fill()
	rings := trust.Rings{Default: new(int), Profiles: map[int]trust.Profile{
		0: {MinTier: trust.Standard}, 1: {MinTier: trust.Standard}, 2: {MinTier: trust.Standard},
		3: {Description: "read-only", Tools: []string{"read_*"}},
	}}
	rings.Fill()
	if r.keeper, err = trust.New(ctx, trust.Options{Store: r.db, Config: cfg, Rings: rings}); err != nil {
		t.Fatal(err)
	}
	r.eng = govern.New(mustSet(t, denyEtc), govern.WithAudit(log), govern.WithKillSwitch(r.kill), govern.WithTrust(r.keeper))
	r.keeper.Bind(r.eng.Change, func(ctx context.Context, agent, reason string) error {
		_, err := r.eng.EngageKill(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: agent, Reason: reason, By: "trust"})
		return err
	})
	r.db.Watch(store.Kill, r.kill.Reload)
	r.db.Watch(store.Trust, r.keeper.Reload)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); log.Run(rctx) }()
	go func() { defer wg.Done(); r.db.Run(rctx) }()
	go func() { defer wg.Done(); r.keeper.Run(rctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

func etcRead(agent string) action.Action {
	return action.Action{Agent: action.Agent{ID: agent}, Tool: action.Tool{Name: "read_file"}, Args: map[string]any{"path": "/etc/shadow"}}
}

// Scores are the same on every replica: denies observed on both replicas
// at once all count, each replica sees the other's changes by
// notification (polling is an hour), and a trust drop on one demotes the
// agent's ring and then stops it on the other.
func TestTrustIsTheSameOnEveryReplica(t *testing.T) {
	dsn, _ := freshSchema(t)
	r1, r2 := startTrustReplica(t, dsn, "r1"), startTrustReplica(t, dsn, "r2")
	ctx := context.Background()
	write := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "write_file"}}
	if d, err := r2.eng.Decide(ctx, write); err != nil || d.Effect != action.Allow {
		t.Fatalf("a standard agent writing: %+v %v", d, err)
	}
	// Five high denies, 50 points each, on both replicas at once.
	var wg sync.WaitGroup
	for i := range 5 {
		r := r1
		if i%2 == 1 {
			r = r2
		}
		wg.Add(1)
		go func() { defer wg.Done(); r.eng.Decide(ctx, etcRead("a1")) }()
	}
	wg.Wait()
	for _, r := range []*trustReplica{r1, r2} {
		eventually(t, "the score on each replica", func() bool { return r.keeper.View("a1").Score() == 250 })
	}
	// Probationary: demoted to ring 3 on both; and below the floor (260):
	// the replica that applied the drop engaged the switch, and the other
	// stops the agent too.
	for _, r := range []*trustReplica{r1, r2} {
		reason, ok := r.keeper.Admit(trust.TargetOf(&write), time.Now())
		if ok || !strings.Contains(reason, "ring 3 (read-only) does not allow tool write_file") {
			t.Fatalf("a probationary agent writing: %v %s", ok, reason)
		}
	}
	eventually(t, "r2 stops a1", func() bool { _, on := r2.kill.Check(&write); return on })
	eventually(t, "r1 stops a1", func() bool { _, on := r1.kill.Check(&write); return on })
	sw, _ := r1.kill.Check(&write)
	if sw.By != "trust" || !strings.Contains(sw.Reason, "below trust.kill_below 260") {
		t.Fatalf("switch %+v", sw)
	}
}
