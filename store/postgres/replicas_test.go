package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store"
	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/storetest"
)

const allowAll = `
version: agentgov/v1
name: allow-all
default: deny
rules:
  - id: anything
    match: {tools: ["*"]}
    effect: allow
`

func mustSet(t testing.TB, src string) *policy.Set {
	t.Helper()
	d, err := policy.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, err := policy.Compile([]*policy.Document{d})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replica is one agentgov process's share of the wiring: a store, its own
// audit log, the in-memory state the watcher keeps current, an engine.
type replica struct {
	db        *postgres.DB
	key       storetest.Key
	log       *audit.Log
	kill      *killswitch.Switchboard
	sessions  *session.Sessions
	budgets   *budget.Budgets
	approvals *approval.Approvals
	eng       *govern.Engine
	runErr    chan error
}

// startReplica wires a replica on dsn as serve does, and runs its audit
// log and its watcher until the test ends.
func startReplica(t *testing.T, dsn, id string, opts postgres.Options) *replica {
	t.Helper()
	ctx := context.Background()
	r := &replica{key: storetest.NewKey(t, "agentgov-test/"+id), runErr: make(chan error, 1)}
	r.db = openReplica(t, dsn, id, r.key.Text, opts)
	var err error
	if r.log, err = audit.Open(ctx, r.db, r.key.Signer, r.key.Verifier, audit.Options{CheckpointInterval: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if r.kill, err = killswitch.New(ctx, r.db, time.Now); err != nil {
		t.Fatal(err)
	}
	r.sessions = session.New(r.db, time.Now)
	if r.budgets, err = budget.New(r.db, budget.Options{}); err != nil {
		t.Fatal(err)
	}
	r.approvals = approval.New(r.db, time.Now)
	r.eng = govern.New(mustSet(t, allowAll), govern.WithAudit(r.log), govern.WithKillSwitch(r.kill),
		govern.WithSessions(r.sessions), govern.WithBudgets(r.budgets), govern.WithApprovals(r.approvals),
		govern.WithOutcomes(r.db))
	r.db.Watch(store.Kill, r.kill.Reload)
	r.db.Watch(store.Sessions, r.sessions.Reload)
	r.db.Watch(store.Budgets, r.budgets.Reload)
	if err := r.sessions.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.log.Run(rctx) }()
	go func() { defer wg.Done(); r.runErr <- r.db.Run(rctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

// eventually waits, for at most a minute, for cond to hold. It is not a
// measure of speed: the tests that use it set things up so that only the
// mechanism under test can make cond hold.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not happen within a minute", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var a1 = action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "t"}, Session: "s-1"}

// A kill switch engaged through one replica stops the other by the
// notification alone: the other's poll interval is an hour.
func TestKillOnOneReplicaStopsTheOtherByNotification(t *testing.T) {
	dsn, _ := freshSchema(t)
	r1 := startReplica(t, dsn, "r1", postgres.Options{PollInterval: time.Hour})
	r2 := startReplica(t, dsn, "r2", postgres.Options{PollInterval: time.Hour})
	ctx := context.Background()
	if d, err := r2.eng.Decide(ctx, a1); err != nil || d.Effect != action.Allow {
		t.Fatalf("before the switch: %+v %v", d, err)
	}
	sw, err := r1.eng.EngageKill(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "a1", Reason: "runaway", By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "r2 stops a1", func() bool { _, on := r2.kill.Check(&a1); return on })
	d, err := r2.eng.Decide(ctx, a1)
	if err != nil || d.Effect != action.Deny || !strings.Contains(strings.Join(d.Reasons, " "), sw.ID) {
		t.Fatalf("r2 after the switch: %+v %v", d, err)
	}
	if _, err := r2.eng.ReleaseKill(ctx, sw.ID, "ops"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "r1 sees the release", func() bool { _, on := r1.kill.Check(&a1); return !on })
}

// The versions, not the notifications, are what a replica goes by: with
// no listener at all (as after a lost connection), reading them finds a
// change another replica made, and runs each handler once per change.
func TestChangesAreFoundWithoutNotification(t *testing.T) {
	dsn, _ := freshSchema(t)
	r1 := startReplica(t, dsn, "r1", postgres.Options{})
	ctx := context.Background()
	key := storetest.NewKey(t, "agentgov-test/r2")
	db2 := openReplica(t, dsn, "r2", key.Text, postgres.Options{}) // never Run
	kill2, err := killswitch.New(ctx, db2, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	db2.Watch(store.Kill, func(ctx context.Context) error { calls++; return kill2.Reload(ctx) })
	if _, err := r1.eng.EngageKill(ctx, killswitch.Switch{Scope: killswitch.System, Reason: "stop all", By: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, on := kill2.Check(&a1); on {
		t.Fatal("r2 stopped before reading the versions")
	}
	if err := db2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, on := kill2.Check(&a1); !on || calls != 1 {
		t.Fatalf("after reading the versions: stopped %v, %d reloads", on, calls)
	}
	if err := db2.Sync(ctx); err != nil || calls != 1 {
		t.Fatalf("reading unchanged versions reloaded again: %d, %v", calls, err)
	}
	// A failing handler runs again at the next read.
	if _, err := r1.eng.EngageKill(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "a9", Reason: "x", By: "ops"}); err != nil {
		t.Fatal(err)
	}
	fail := errors.New("boom")
	db2.Watch(store.Kill, func(context.Context) error { err := fail; fail = nil; return err })
	if err := db2.Sync(ctx); err == nil {
		t.Fatal("a failing handler went unreported")
	}
	if err := db2.Sync(ctx); err != nil || calls != 3 {
		t.Fatalf("retry after a failed handler: %d reloads, %v", calls, err)
	}
}

// A replica whose own connection is cut says so (not ready), makes it
// again, takes its id back, and goes on hearing of changes.
func TestReplicaConnectionLostIsRestored(t *testing.T) {
	dsn, admin := freshSchema(t)
	r1 := startReplica(t, dsn, "r1", postgres.Options{PollInterval: time.Hour})
	r2 := startReplica(t, dsn, "r2", postgres.Options{PollInterval: 50 * time.Millisecond})
	ctx := context.Background()
	listener := func() (pid int) {
		admin.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = 'agentgov r2' AND query LIKE 'LISTEN%'`).Scan(&pid)
		return pid
	}
	eventually(t, "r2 listens", func() bool { return listener() != 0 })
	before := listener()
	var cut bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, before).Scan(&cut); err != nil || !cut {
		t.Fatalf("cut r2's connection: %v %v", cut, err)
	}
	eventually(t, "r2 listens on a new connection", func() bool { p := listener(); return p != 0 && p != before })
	if err := r2.db.Ping(ctx); err != nil {
		t.Fatalf("r2 not ready with its connection back: %v", err)
	}
	if _, err := postgres.Open(ctx, dsn, postgres.Options{Replica: "r2", AuditKey: r2.key.Text}); !errors.Is(err, postgres.ErrReplicaInUse) {
		t.Fatalf("a second r2 while r2 runs: %v", err)
	}
	if _, err := r1.eng.EngageKill(ctx, killswitch.Switch{Scope: killswitch.System, Reason: "stop all", By: "ops"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "r2 stops everything", func() bool { _, on := r2.kill.Check(&a1); return on })
}

// A session paused through one replica stops it on the other, which had it
// cached as active; one created and paused elsewhere is read from the store.
func TestSessionPausedOnOneReplicaStopsTheOther(t *testing.T) {
	dsn, _ := freshSchema(t)
	r1 := startReplica(t, dsn, "r1", postgres.Options{})
	r2 := startReplica(t, dsn, "r2", postgres.Options{})
	ctx := context.Background()
	if d, err := r2.eng.Decide(ctx, a1); err != nil || d.Effect != action.Allow {
		t.Fatalf("r2 before the pause: %+v %v", d, err)
	}
	if _, err := r1.eng.MoveSession(ctx, "a1", "s-1", session.Paused, session.Actor{Name: "ops", Operator: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "r2 refuses the paused session", func() bool {
		ok, _, err := r2.sessions.Check(ctx, "s-1", "a1")
		return err == nil && !ok
	})
	if d, _ := r2.eng.Decide(ctx, a1); d.Effect != action.Deny {
		t.Fatalf("r2 after the pause: %+v", d)
	}
	if _, err := r2.eng.MoveSession(ctx, "a1", "s-1", session.Active, session.Actor{Name: "ops", Operator: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "r1 runs the resumed session", func() bool {
		ok, _, err := r1.sessions.Check(ctx, "s-1", "a1")
		return err == nil && ok
	})
}

// Budget configs put through one replica hold on the other, and the limit
// is one limit across both.
func TestBudgetPutOnOneReplicaHoldsOnTheOther(t *testing.T) {
	dsn, _ := freshSchema(t)
	r1 := startReplica(t, dsn, "r1", postgres.Options{})
	r2 := startReplica(t, dsn, "r2", postgres.Options{})
	ctx := context.Background()
	if err := r1.eng.PutBudget(ctx, budget.Config{ID: "two", Scope: budget.Scope{Agent: "a1"}, Period: "none",
		Limits: budget.Amounts{Calls: 2}}, "ops"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "r2 knows the budget", func() bool { _, err := r2.budgets.Get(ctx, "two"); return err == nil })
	var effects []action.Effect
	for _, r := range []*replica{r1, r2, r1, r2} {
		d, err := r.eng.Decide(ctx, a1)
		if err != nil {
			t.Fatal(err)
		}
		effects = append(effects, d.Effect)
	}
	want := []action.Effect{action.Allow, action.Allow, action.Deny, action.Deny}
	for i := range want {
		if effects[i] != want[i] {
			t.Fatalf("effects %v, want %v", effects, want)
		}
	}
	if err := r2.eng.DeleteBudget(ctx, "two", "ops"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "r1 forgets the budget", func() bool { _, err := r1.budgets.Get(ctx, "two"); return err != nil })
}

// Any replica answers for any replica's decision, and settles its outcome
// once.
func TestDecisionOfOneReplicaIsFoundAndSettledByAnother(t *testing.T) {
	dsn, _ := freshSchema(t)
	r1 := startReplica(t, dsn, "r1", postgres.Options{})
	r2 := startReplica(t, dsn, "r2", postgres.Options{})
	ctx := context.Background()
	// Arguments an agent chose, with what JSON and PostgreSQL treat
	// specially, and a decision id of their own.
	a := a1
	a.Args = map[string]any{"nul": "a\u0000b", "quote": `'); DROP TABLE audit_entries; --`,
		"decision": map[string]any{"id": "dec_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "emoji": "\U0001F600", "bad": "\xff"}
	d, err := r1.eng.Decide(ctx, a)
	if err != nil || d.Effect != action.Allow {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := r2.db.FindDecision(ctx, "dec_01ARZ3NDEKTSV4RRFFQ69G5FAV"); !errors.Is(err, store.ErrNoDecision) {
		t.Fatalf("an id in an agent's arguments names an entry: %v", err)
	}
	ref, err := r2.db.FindDecision(ctx, d.ID.String())
	if err != nil || ref.Log != "r1" || ref.Index != *d.AuditIndex {
		t.Fatalf("r2 finds %+v, %v; want r1's entry %d", ref, err, *d.AuditIndex)
	}
	if err := r2.eng.Outcome(ctx, d.ID, action.Outcome{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := r1.eng.Outcome(ctx, d.ID, action.Outcome{Status: "ok"}); !errors.Is(err, govern.ErrOutcomeRecorded) {
		t.Fatalf("second outcome through r1: %v", err)
	}
}

// A policy reload on one replica reloads the others, each from its own
// source; one whose source is unchanged loads nothing again.
func TestPolicyReloadOnOneReplicaReloadsTheOther(t *testing.T) {
	dsn, _ := freshSchema(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(allowAll), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func() (*policy.Set, error) { return policy.Load(file) }
	ctx := context.Background()
	var srvs []*server.Server
	var rs []*replica
	for _, id := range []string{"r1", "r2"} {
		r := startReplica(t, dsn, id, postgres.Options{PollInterval: time.Hour})
		set, err := load()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.eng.Load(ctx, set); err != nil {
			t.Fatal(err)
		}
		cfg := &config.Config{}
		cfg.Fill()
		srv, err := server.New(server.Options{Config: cfg, Engine: r.eng, Audit: r.log, Idempotency: r.db, Decisions: r.db,
			Store: r.db, Peers: r.db, LoadPolicy: load, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		r.db.Watch(store.Policy, srv.Refresh)
		srvs, rs = append(srvs, srv), append(rs, r)
	}
	const denyAll = "version: agentgov/v1\nname: deny-all\ndefault: deny\nrules: []\n"
	if err := os.WriteFile(file, []byte(denyAll), 0o600); err != nil {
		t.Fatal(err)
	}
	digest, err := srvs[0].Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "r2 reloads", func() bool { return rs[1].eng.Policy().Digest() == digest })
	if d, _ := rs[1].eng.Decide(ctx, a1); d.Effect != action.Deny {
		t.Fatalf("r2 after the reload: %+v", d)
	}
	// r1 was told of its own reload too, and loaded nothing twice.
	loads := func(l *audit.Log) (n int) {
		es, err := l.Entries(ctx, -1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Kind == "policy_load" {
				n++
			}
		}
		return n
	}
	if err := rs[0].db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n1, n2 := loads(rs[0].log), loads(rs[1].log); n1 != 2 || n2 != 2 {
		t.Fatalf("policy loads recorded: r1 %d, r2 %d; want 2 each", n1, n2)
	}
}
