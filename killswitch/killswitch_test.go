package killswitch_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/store/sqlite"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return t0 }

func openDB(t testing.TB, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newBoard(t testing.TB, st killswitch.Store) *killswitch.Switchboard {
	t.Helper()
	b, err := killswitch.New(context.Background(), st, clock)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// alice is researcher-1 acting for alice of team search in org acme.
func alice() *action.Action {
	return &action.Action{
		Agent:     action.Agent{ID: "researcher-1"},
		Principal: action.Principal{User: "alice", Team: "search", Org: "acme"},
		Session:   "s-42",
		Tool:      action.Tool{Name: "read_file"},
	}
}

// bob shares nothing with alice.
func bob() *action.Action {
	return &action.Action{
		Agent:     action.Agent{ID: "writer-2"},
		Principal: action.Principal{User: "bob", Team: "billing", Org: "globex"},
		Session:   "s-7",
	}
}

func TestEachScopeStopsItsTargetOnly(t *testing.T) {
	cases := []struct {
		scope         killswitch.Scope
		target, agent string
	}{
		{killswitch.Agent, "researcher-1", ""},
		{killswitch.Session, "s-42", "researcher-1"},
		{killswitch.Principal, "user:alice", ""},
		{killswitch.Principal, "team:search", ""},
		{killswitch.Principal, "org:acme", ""},
	}
	for _, c := range cases {
		t.Run(string(c.scope)+"_"+c.target, func(t *testing.T) {
			b := newBoard(t, openDB(t, t.TempDir()))
			if _, ok := b.Check(alice()); ok {
				t.Fatal("stopped before any switch was engaged")
			}
			sw, err := b.Engage(context.Background(), killswitch.Switch{Scope: c.scope, Target: c.target, Agent: c.agent, Reason: "runaway", By: "ops"})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(sw.ID, "kill_") || !sw.EngagedAt.Equal(t0) || !sw.Engaged() {
				t.Fatalf("engaged switch %+v", sw)
			}
			got, ok := b.Check(alice())
			if !ok || got.ID != sw.ID {
				t.Fatalf("the very next check was not stopped: %+v %v", got, ok)
			}
			want := "kill switch " + sw.ID + " (" + string(c.scope) + " " + c.target + "): runaway"
			if c.agent != "" {
				want = "kill switch " + sw.ID + " (session " + c.target + " of agent " + c.agent + "): runaway"
			}
			if got.DenyReason() != want {
				t.Fatalf("reason %q, want %q", got.DenyReason(), want)
			}
			if got, ok := b.Check(bob()); ok {
				t.Fatalf("an action outside the scope was stopped by %+v", got)
			}
		})
	}
}

func TestSystemScopeStopsEverything(t *testing.T) {
	b := newBoard(t, openDB(t, t.TempDir()))
	sw, err := b.Engage(context.Background(), killswitch.Switch{Scope: killswitch.System, Reason: "incident 12", By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*action.Action{alice(), bob(), {}} {
		if got, ok := b.Check(a); !ok || got.ID != sw.ID {
			t.Fatalf("%+v not stopped", a)
		}
	}
	if r := sw.DenyReason(); r != "kill switch "+sw.ID+" (system): incident 12" {
		t.Fatalf("reason %q", r)
	}
}

func TestReleaseLiftsTheSwitch(t *testing.T) {
	ctx := context.Background()
	b := newBoard(t, openDB(t, t.TempDir()))
	agent, _ := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "researcher-1", Reason: "r", By: "ops"})
	org, _ := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Principal, Target: "org:acme", Reason: "r", By: "ops"})
	if _, err := b.Release(ctx, agent.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	// The org switch still holds.
	if got, ok := b.Check(alice()); !ok || got.ID != org.ID {
		t.Fatalf("after releasing the agent switch: %+v %v", got, ok)
	}
	if _, err := b.Release(ctx, org.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	if got, ok := b.Check(alice()); ok {
		t.Fatalf("still stopped by %+v", got)
	}
	if _, err := b.Release(ctx, org.ID, "admin"); !errors.Is(err, killswitch.ErrConflict) {
		t.Fatalf("second release: err = %v, want ErrConflict", err)
	}
	if _, err := b.Release(ctx, "kill_nope", "admin"); !errors.Is(err, killswitch.ErrNotFound) {
		t.Fatalf("unknown id: err = %v, want ErrNotFound", err)
	}
	all, err := b.List(ctx, true)
	if err != nil || len(all) != 2 {
		t.Fatalf("List(true) = %v, %v", all, err)
	}
	for _, s := range all {
		if s.Engaged() || s.ReleasedBy != "admin" || !s.ReleasedAt.Equal(t0) {
			t.Fatalf("released switch recorded as %+v", s)
		}
	}
	if engaged, _ := b.List(ctx, false); len(engaged) != 0 {
		t.Fatalf("List(false) = %v", engaged)
	}
}

func TestSwitchesSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	b := newBoard(t, db)
	kept, _ := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Session, Target: "s-42", Agent: "researcher-1", Reason: "loop", By: "ops"})
	gone, _ := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "writer-2", Reason: "loop", By: "ops"})
	if _, err := b.Release(ctx, gone.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	b = newBoard(t, openDB(t, dir))
	if got, ok := b.Check(alice()); !ok || got != kept {
		t.Fatalf("after restart: %+v %v, want %+v", got, ok, kept)
	}
	if got, ok := b.Check(bob()); ok {
		t.Fatalf("released switch came back: %+v", got)
	}
}

func TestEngageSameTargetTwiceKeepsOneSwitch(t *testing.T) {
	ctx := context.Background()
	b := newBoard(t, openDB(t, t.TempDir()))
	first, _ := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "researcher-1", Reason: "first", By: "ops"})
	second, err := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "researcher-1", Reason: "second", By: "policy"})
	if err != nil || second != first {
		t.Fatalf("second engage = %+v, %v; want the first switch", second, err)
	}
	if list, _ := b.List(ctx, true); len(list) != 1 {
		t.Fatalf("%d switches stored, want 1", len(list))
	}
}

func TestInvalidSwitchesChangeNothing(t *testing.T) {
	ctx := context.Background()
	b := newBoard(t, openDB(t, t.TempDir()))
	cases := map[string]killswitch.Switch{
		"unknown scope":          {Scope: "planet", Target: "earth", Reason: "r", By: "ops"},
		"system with target":     {Scope: killswitch.System, Target: "x", Reason: "r", By: "ops"},
		"agent without target":   {Scope: killswitch.Agent, Reason: "r", By: "ops"},
		"session without target": {Scope: killswitch.Session, Agent: "a", Reason: "r", By: "ops"},
		"session without agent":  {Scope: killswitch.Session, Target: "s-42", Reason: "r", By: "ops"},
		"agent with an agent":    {Scope: killswitch.Agent, Target: "a", Agent: "a", Reason: "r", By: "ops"},
		"principal without kind": {Scope: killswitch.Principal, Target: "alice", Reason: "r", By: "ops"},
		"principal unknown kind": {Scope: killswitch.Principal, Target: "group:x", Reason: "r", By: "ops"},
		"principal empty name":   {Scope: killswitch.Principal, Target: "user:", Reason: "r", By: "ops"},
		"no reason":              {Scope: killswitch.Agent, Target: "a", Reason: "  ", By: "ops"},
		"no by":                  {Scope: killswitch.Agent, Target: "a", Reason: "r"},
		"target too long":        {Scope: killswitch.Agent, Target: strings.Repeat("a", killswitch.MaxTargetLen+1), Reason: "r", By: "ops"},
		"reason too long":        {Scope: killswitch.Agent, Target: "a", Reason: strings.Repeat("r", killswitch.MaxReasonLen+1), By: "ops"},
	}
	for name, sw := range cases {
		if _, err := b.Engage(ctx, sw); !errors.Is(err, killswitch.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if list, _ := b.List(ctx, true); len(list) != 0 {
		t.Fatalf("invalid switches were stored: %v", list)
	}
	if got, ok := b.Check(alice()); ok {
		t.Fatalf("stopped by %+v", got)
	}
}

// failingStore is the real store with writes that can be made to fail.
type failingStore struct {
	*sqlite.DB
	fail error
}

func (f *failingStore) InsertSwitch(ctx context.Context, s killswitch.Switch) error {
	if f.fail != nil {
		return f.fail
	}
	return f.DB.InsertSwitch(ctx, s)
}

func (f *failingStore) ReleaseSwitch(ctx context.Context, id, by string, at time.Time) (bool, error) {
	if f.fail != nil {
		return false, f.fail
	}
	return f.DB.ReleaseSwitch(ctx, id, by, at)
}

func TestStoreFailuresChangeNothing(t *testing.T) {
	ctx := context.Background()
	st := &failingStore{DB: openDB(t, t.TempDir())}
	b := newBoard(t, st)
	sw, err := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "researcher-1", Reason: "r", By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	st.fail = errors.New("disk full")
	if _, err := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "writer-2", Reason: "r", By: "ops"}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("engage with a failing store: %v", err)
	}
	if got, ok := b.Check(bob()); ok {
		t.Fatalf("a switch that was not stored is engaged: %+v", got)
	}
	// A release that was not stored leaves the switch engaged: fail closed.
	if _, err := b.Release(ctx, sw.ID, "admin"); err == nil {
		t.Fatal("release with a failing store succeeded")
	}
	if _, ok := b.Check(alice()); !ok {
		t.Fatal("a release that was not stored lifted the switch")
	}
}

// A change is recorded, whole, before it is made; one that cannot be
// recorded is not made.
func TestChangesAreRecordedBeforeTheyAreMade(t *testing.T) {
	ctx := context.Background()
	b := newBoard(t, openDB(t, t.TempDir()))
	down := func(context.Context, killswitch.Change) error { return errors.New("audit log down") }
	if _, err := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "researcher-1", Reason: "r", By: "ops"}, down); err == nil {
		t.Fatal("engaged without a record")
	}
	if _, ok := b.Check(alice()); ok {
		t.Fatal("a switch that was not recorded is engaged")
	}
	if l, _ := b.List(ctx, true); len(l) != 0 {
		t.Fatalf("stored although not recorded: %+v", l)
	}
	var got []killswitch.Change
	rec := func(_ context.Context, c killswitch.Change) error { got = append(got, c); return nil }
	sw, err := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "researcher-1", Reason: "r", By: "ops"}, rec)
	if err != nil || len(got) != 1 || got[0].Event != "engage" || got[0].Switch != sw || sw.ID == "" || sw.EngagedAt.IsZero() {
		t.Fatalf("engage recorded %+v for %+v (%v)", got, sw, err)
	}
	if _, err := b.Release(ctx, sw.ID, "admin", down); err == nil {
		t.Fatal("released without a record")
	}
	if _, ok := b.Check(alice()); !ok {
		t.Fatal("a release that was not recorded lifted the switch")
	}
	rel, err := b.Release(ctx, sw.ID, "admin", rec)
	if err != nil || len(got) != 2 || got[1].Event != "release" || got[1].Switch != rel || rel.ReleasedBy != "admin" || rel.ReleasedAt.IsZero() {
		t.Fatalf("release recorded %+v for %+v (%v)", got, rel, err)
	}
}

// Session ids are per agent: a switch on one agent's session leaves another
// agent's session of the same id alone. A session switch stored before
// they were, with no agent, stops that id for every agent.
func TestSessionSwitchStopsOneAgentsSessionOnly(t *testing.T) {
	ctx := context.Background()
	b := newBoard(t, openDB(t, t.TempDir()))
	if _, err := b.Engage(ctx, killswitch.Switch{Scope: killswitch.Session, Target: "s-42", Agent: "writer-2", Reason: "loop", By: "ops"}); err != nil {
		t.Fatal(err)
	}
	if got, ok := b.Check(alice()); ok {
		t.Fatalf("researcher-1's s-42 was stopped by writer-2's switch: %+v", got)
	}
	w := bob()
	w.Session = "s-42"
	if _, ok := b.Check(w); !ok {
		t.Fatal("writer-2's s-42 runs")
	}

	st := openDB(t, t.TempDir())
	if err := st.InsertSwitch(ctx, killswitch.Switch{ID: "kill_old", Scope: killswitch.Session, Target: "s-42", Reason: "old", By: "ops", EngagedAt: t0}); err != nil {
		t.Fatal(err)
	}
	legacy := newBoard(t, st)
	for _, a := range []*action.Action{alice(), w} {
		if got, ok := legacy.Check(a); !ok || got.ID != "kill_old" {
			t.Fatalf("a switch without an agent did not stop %s: %+v", a.Agent.ID, got)
		}
	}
}

func TestReloadSeesOtherReplicas(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := newBoard(t, openDB(t, dir))
	b := newBoard(t, openDB(t, dir))
	sw, _ := a.Engage(ctx, killswitch.Switch{Scope: killswitch.Principal, Target: "team:search", Reason: "r", By: "ops"})
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok := b.Check(alice()); !ok || got.ID != sw.ID {
		t.Fatalf("replica b did not pick up the switch: %+v %v", got, ok)
	}
	if _, err := b.Release(ctx, sw.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Check(alice()); ok {
		t.Fatal("replica a still stopped after the release and a reload")
	}
}

func TestCheckDoesNotAllocateWhenNothingEngaged(t *testing.T) {
	b := newBoard(t, openDB(t, t.TempDir()))
	a := alice()
	if n := testing.AllocsPerRun(100, func() { b.Check(a) }); n != 0 {
		t.Fatalf("Check allocates %v times per call", n)
	}
}

func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	b.Run("none", func(b *testing.B) {
		sb := newBoard(b, openDB(b, b.TempDir()))
		a := alice()
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := sb.Check(a); ok {
				b.Fatal("stopped")
			}
		}
	})
	few := func(b *testing.B) *killswitch.Switchboard {
		sb := newBoard(b, openDB(b, b.TempDir()))
		for _, sw := range []killswitch.Switch{
			{Scope: killswitch.Agent, Target: "writer-2"},
			{Scope: killswitch.Agent, Target: "writer-3"},
			{Scope: killswitch.Session, Target: "s-7", Agent: "writer-2"},
			{Scope: killswitch.Principal, Target: "org:globex"},
			{Scope: killswitch.Principal, Target: "user:bob"},
		} {
			sw.Reason, sw.By = "r", "ops"
			if _, err := sb.Engage(ctx, sw); err != nil {
				b.Fatal(err)
			}
		}
		return sb
	}
	b.Run("few_miss", func(b *testing.B) {
		sb := few(b)
		a := alice()
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := sb.Check(a); ok {
				b.Fatal("stopped")
			}
		}
	})
	b.Run("few_hit", func(b *testing.B) {
		sb := few(b)
		a := bob()
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := sb.Check(a); !ok {
				b.Fatal("not stopped")
			}
		}
	})
}
