package budget_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/store/sqlite"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)         { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func openDB(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type env struct {
	b    *budget.Budgets
	db   *sqlite.DB
	clk  *clock
	path string
}

func newEnv(t testing.TB, start time.Time) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	e := &env{db: openDB(t, path), clk: &clock{t: start}, path: path}
	var err error
	e.b, err = budget.New(e.db, budget.Options{Clock: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) put(t testing.TB, js string) {
	t.Helper()
	c, err := budget.DecodeConfig([]byte(js))
	if err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	if err := e.b.Put(context.Background(), c); err != nil {
		t.Fatalf("put %s: %v", js, err)
	}
}

var seq atomic.Int64

func decID() string { return fmt.Sprintf("dec_test%d", seq.Add(1)) }

func act(org, team, user, agent, session string, tokens int64, cost float64) *action.Action {
	return &action.Action{
		Agent:     action.Agent{ID: agent},
		Principal: action.Principal{Org: org, Team: team, User: user},
		Session:   session,
		Estimate:  action.Estimate{Tokens: tokens, CostUSD: cost},
	}
}

func (e *env) reserve(t *testing.T, a *action.Action) (string, budget.Verdict) {
	t.Helper()
	id := decID()
	v, err := e.b.Reserve(context.Background(), id, a)
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	return id, v
}

// reserveApproved reserves as the engine does for an action whose ticket
// it redeemed.
func (e *env) reserveApproved(t *testing.T, a *action.Action) (string, budget.Verdict) {
	t.Helper()
	id := decID()
	v, err := e.b.ReserveApproved(context.Background(), id, a)
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	return id, v
}

func (e *env) usage(t testing.TB, id string) budget.Usage {
	t.Helper()
	us, err := e.b.Usage(context.Background(), budget.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		if u.ID == id {
			return u
		}
	}
	t.Fatalf("no usage for %s in %+v", id, us)
	return budget.Usage{}
}

var t0 = time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)

// The acceptance test: 1,000 concurrent decisions against a budget
// that fits N of them allow exactly N, checked on a cost limit and a call
// limit with a real SQLite file.
func TestConcurrentReservesAllowExactlyN(t *testing.T) {
	for _, c := range []struct {
		name, config string
		cost         float64
		n            int
	}{
		{"cost", `{"id":"acme","scope":{"org":"acme"},"period":"monthly","limits":{"cost_usd":1}}`, 0.03, 33},
		{"calls", `{"id":"acme","scope":{"org":"acme"},"period":"daily","limits":{"calls":250}}`, 0, 250},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, t0)
			e.put(t, c.config)
			var allowed, denied atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 1000)
			for i := range 1000 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v, err := e.b.Reserve(context.Background(), fmt.Sprintf("dec_%s_%d", c.name, i), act("acme", "t", "u", "a", "", 10, c.cost))
					switch {
					case err != nil:
						errs <- err
					case v.Effect == action.Allow && v.Reserved:
						allowed.Add(1)
					case v.Effect == action.Deny && !v.Reserved:
						denied.Add(1)
					default:
						errs <- fmt.Errorf("unexpected verdict %+v", v)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if allowed.Load() != int64(c.n) || denied.Load() != int64(1000-c.n) {
				t.Fatalf("allowed %d, denied %d; want exactly %d allowed", allowed.Load(), denied.Load(), c.n)
			}
			u := e.usage(t, "acme")
			if u.Reserved.Calls != int64(c.n) {
				t.Errorf("reserved calls %d, want %d", u.Reserved.Calls, c.n)
			}
		})
	}
}

// Atomicity lives in the store, not in one process's memory: two
// independent handles (as two replicas would be) share one limit exactly.
func TestTwoStoreHandlesShareOneLimit(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"g","scope":{},"period":"none","limits":{"calls":37}}`)
	other, err := budget.New(openDB(t, e.path), budget.Options{Clock: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		b := e.b
		if i%2 == 1 {
			b = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := b.Reserve(context.Background(), fmt.Sprintf("dec_two_%d", i), act("o", "", "", "a", "", 0, 0))
			if err != nil {
				errs <- err
				return
			}
			if v.Reserved {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if allowed.Load() != 37 {
		t.Fatalf("allowed %d across two handles, want 37", allowed.Load())
	}
}

func TestSettleCountsActualAndReleasesTheRest(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{"org":"acme"},"period":"monthly","limits":{"cost_usd":10,"tokens":1000}}`)
	id, v := e.reserve(t, act("acme", "", "", "a", "", 500, 4))
	if !v.Reserved {
		t.Fatalf("not reserved: %+v", v)
	}
	u := e.usage(t, "b")
	if u.Reserved.CostMicros != 4_000_000 || u.Reserved.Tokens != 500 || u.Spent.Calls != 0 {
		t.Fatalf("after reserve: %+v", u)
	}
	if err := e.b.Settle(context.Background(), id, action.Outcome{Status: "ok", InputTokens: 100, OutputTokens: 20, CostUSD: 0.25}); err != nil {
		t.Fatal(err)
	}
	u = e.usage(t, "b")
	want := budget.Amounts{CostMicros: 250_000, Tokens: 120, InputTokens: 100, OutputTokens: 20, Calls: 1}
	if u.Spent != want || !u.Reserved.IsZero() {
		t.Fatalf("after settle: spent %+v reserved %+v; want spent %+v and nothing reserved", u.Spent, u.Reserved, want)
	}
	if u.Fraction != 0.12 {
		t.Errorf("fraction %v, want 0.12 (tokens 120/1000)", u.Fraction)
	}
	// Settling twice counts once.
	if err := e.b.Settle(context.Background(), id, action.Outcome{Status: "ok", CostUSD: 1}); err != nil {
		t.Fatal(err)
	}
	if got := e.usage(t, "b").Spent; got != want {
		t.Errorf("second settle changed spent to %+v", got)
	}
}

func TestActualOverEstimateIsCountedAndThenDenies(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{"user":"alice"},"period":"daily","limits":{"cost_usd":1}}`)
	id, _ := e.reserve(t, act("", "", "alice", "a", "", 0, 0.01))
	if err := e.b.Settle(context.Background(), id, action.Outcome{Status: "error", CostUSD: 1.5, Error: "timeout"}); err != nil {
		t.Fatal(err)
	}
	_, v := e.reserve(t, act("", "", "alice", "a", "", 0, 0))
	if v.Effect != action.Deny || v.Reserved {
		t.Fatalf("over-spent budget still allows: %+v", v)
	}
	if want := "budget b: cost 1.50/1.00 USD (hard limit)"; len(v.Reasons) != 1 || v.Reasons[0] != want {
		t.Errorf("reasons %q, want %q", v.Reasons, want)
	}
}

// A denial at the hard limit says how much of the total is this call's
// estimate and how much was spent or reserved before it, so the caller
// knows whether a smaller estimate would fit.
func TestHardLimitDenialSaysWhatThisCallWouldReserve(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{"user":"alice"},"period":"daily","limits":{"cost_usd":1}}`)
	if _, v := e.reserve(t, act("", "", "alice", "a", "", 0, 0.7)); v.Effect != action.Allow {
		t.Fatalf("first call: %+v", v)
	}
	_, v := e.reserve(t, act("", "", "alice", "a", "", 0, 0.5))
	want := "budget b: cost 1.20/1.00 USD (hard limit): 0.70 USD already spent or reserved, 0.50 USD for this call"
	if v.Effect != action.Deny || len(v.Reasons) != 1 || v.Reasons[0] != want {
		t.Fatalf("reasons %q, want %q", v.Reasons, want)
	}
	e.put(t, `{"id":"c","scope":{"user":"bob"},"period":"daily","limits":{"calls":1}}`)
	e.reserve(t, act("", "", "bob", "a", "", 0, 0))
	_, v = e.reserve(t, act("", "", "bob", "a", "", 0, 0))
	if want := "budget c: calls 2/1 (hard limit): 1 already spent or reserved, 1 for this call"; len(v.Reasons) != 1 || v.Reasons[0] != want {
		t.Fatalf("reasons %q, want %q", v.Reasons, want)
	}
}

func TestReleaseGivesTheReservationBack(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{"org":"acme"},"period":"none","limits":{"calls":1}}`)
	id, v := e.reserve(t, act("acme", "", "", "a", "", 0, 0))
	if !v.Reserved {
		t.Fatal(v)
	}
	if _, v := e.reserve(t, act("acme", "", "", "a", "", 0, 0)); v.Effect != action.Deny {
		t.Fatalf("second call allowed while the first is held: %+v", v)
	}
	if err := e.b.Release(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Release(context.Background(), "dec_unknown"); err != nil {
		t.Fatalf("releasing an unknown decision: %v", err)
	}
	if _, v := e.reserve(t, act("acme", "", "", "a", "", 0, 0)); !v.Reserved {
		t.Fatalf("released call still counted: %+v", v)
	}
	u := e.usage(t, "b")
	if u.Spent.Calls != 0 || u.Reserved.Calls != 1 {
		t.Errorf("usage %+v", u)
	}
}

func TestUnsettledReservationsExpire(t *testing.T) {
	e := newEnv(t, t0)
	b, err := budget.New(e.db, budget.Options{Clock: e.clk.Now, ReservationTTL: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	e.put(t, `{"id":"b","scope":{"org":"acme"},"period":"monthly","limits":{"cost_usd":1}}`)
	late, v := e.reserve(t, act("acme", "", "", "a", "", 0, 1))
	if !v.Reserved {
		t.Fatal(v)
	}
	e.clk.Advance(2*time.Minute - time.Second)
	if _, v := e.reserve(t, act("acme", "", "", "a", "", 0, 0.5)); v.Effect != action.Deny {
		t.Fatalf("allowed while the hold is live: %+v", v)
	}
	e.clk.Advance(time.Second)
	id, v := e.reserve(t, act("acme", "", "", "a", "", 0, 0.5))
	if !v.Reserved {
		t.Fatalf("expired hold still counted: %+v", v)
	}
	// The expired decision's outcome arrives late: what it really spent is
	// still counted, and its old hold is not given back twice.
	if err := e.b.Settle(context.Background(), late, action.Outcome{Status: "ok", CostUSD: 0.25}); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Settle(context.Background(), id, action.Outcome{Status: "ok", CostUSD: 0.5}); err != nil {
		t.Fatal(err)
	}
	u := e.usage(t, "b")
	if u.Spent.CostMicros != 750_000 || !u.Reserved.IsZero() || u.Spent.Calls != 2 {
		t.Errorf("usage %+v", u)
	}
}

func TestDailyPeriodRollsOverAtMidnightInItsTimeZone(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	e := newEnv(t, time.Date(2025, 6, 10, 23, 59, 0, 0, paris))
	e.put(t, `{"id":"d","scope":{"team":"search"},"period":"daily","timezone":"Europe/Paris","limits":{"calls":2}}`)
	a := act("acme", "search", "u", "a", "", 0, 0)
	for range 2 {
		if _, v := e.reserve(t, a); !v.Reserved {
			t.Fatal(v)
		}
	}
	if _, v := e.reserve(t, a); v.Effect != action.Deny {
		t.Fatalf("third call of the day allowed: %+v", v)
	}
	// 22:00 UTC is midnight in Paris in June: a new day there.
	e.clk.Set(time.Date(2025, 6, 10, 22, 0, 0, 0, time.UTC))
	if _, v := e.reserve(t, a); !v.Reserved {
		t.Fatalf("new day still denied: %+v", v)
	}
	u := e.usage(t, "d")
	if !u.PeriodStart.Equal(time.Date(2025, 6, 11, 0, 0, 0, 0, paris)) || u.Reserved.Calls != 1 {
		t.Errorf("usage %+v", u)
	}
	// Yesterday's counters are still there to report.
	prev, err := e.b.UsageAt(context.Background(), budget.Scope{Team: "search"}, time.Date(2025, 6, 10, 12, 0, 0, 0, paris))
	if err != nil || len(prev) != 1 || prev[0].Reserved.Calls != 2 {
		t.Errorf("previous day: %+v, %v", prev, err)
	}
}

func TestMonthlyAndWeeklyRollOver(t *testing.T) {
	e := newEnv(t, time.Date(2025, 1, 31, 23, 0, 0, 0, time.UTC))
	e.put(t, `{"id":"m","scope":{"org":"acme"},"period":"monthly","limits":{"calls":1}}`)
	e.put(t, `{"id":"w","scope":{"org":"beta"},"period":"weekly","limits":{"calls":1}}`)
	e.reserve(t, act("acme", "", "", "a", "", 0, 0))
	if _, v := e.reserve(t, act("acme", "", "", "a", "", 0, 0)); v.Effect != action.Deny {
		t.Fatal(v)
	}
	e.clk.Set(time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC))
	if _, v := e.reserve(t, act("acme", "", "", "a", "", 0, 0)); !v.Reserved {
		t.Fatalf("February still denied: %+v", v)
	}
	// Sunday 2 February, then Monday 3 February.
	e.clk.Set(time.Date(2025, 2, 2, 23, 59, 59, 0, time.UTC))
	e.reserve(t, act("beta", "", "", "a", "", 0, 0))
	if _, v := e.reserve(t, act("beta", "", "", "a", "", 0, 0)); v.Effect != action.Deny {
		t.Fatal(v)
	}
	e.clk.Set(time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC))
	if _, v := e.reserve(t, act("beta", "", "", "a", "", 0, 0)); !v.Reserved {
		t.Fatalf("new week still denied: %+v", v)
	}
}

func TestRollingWindowForgetsOldSpending(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"r","scope":{"agent":"a"},"period":"5h","limits":{"tokens":1000}}`)
	id, _ := e.reserve(t, act("", "", "", "a", "", 800, 0))
	if err := e.b.Settle(context.Background(), id, action.Outcome{Status: "ok", Tokens: 800}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(4*time.Hour + 59*time.Minute)
	if _, v := e.reserve(t, act("", "", "", "a", "", 300, 0)); v.Effect != action.Deny {
		t.Fatalf("spending inside the window forgotten: %+v", v)
	}
	// After the window and one bucket (5h/12), the old tokens are out.
	e.clk.Set(t0.Add(5*time.Hour + 25*time.Minute))
	if _, v := e.reserve(t, act("", "", "", "a", "", 300, 0)); !v.Reserved {
		t.Fatalf("spending older than the window still counted: %+v", v)
	}
}

func TestCountersSurviveARestart(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{"org":"acme"},"period":"monthly","limits":{"cost_usd":2}}`)
	id, _ := e.reserve(t, act("acme", "", "", "a", "", 0, 0.5))
	if err := e.b.Settle(context.Background(), id, action.Outcome{Status: "ok", CostUSD: 1.2}); err != nil {
		t.Fatal(err)
	}
	held, _ := e.reserve(t, act("acme", "", "", "a", "", 0, 0.5))
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}

	e.clk.Advance(time.Minute) // later in the same period
	db := openDB(t, e.path)
	b, err := budget.New(db, budget.Options{Clock: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	us, err := b.Usage(context.Background(), budget.Scope{Org: "acme"})
	if err != nil || len(us) != 1 {
		t.Fatalf("usage after restart: %+v, %v", us, err)
	}
	if us[0].Spent.CostMicros != 1_200_000 || us[0].Reserved.CostMicros != 500_000 {
		t.Fatalf("counters after restart: %+v", us[0])
	}
	if v, _ := b.Reserve(context.Background(), decID(), act("acme", "", "", "a", "", 0, 0.4)); v.Effect != action.Deny {
		t.Fatalf("restart forgot the spending: %+v", v)
	}
	// The reservation made before the restart can still be settled.
	if err := b.Settle(context.Background(), held, action.Outcome{Status: "ok", CostUSD: 0.1}); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.Reserve(context.Background(), decID(), act("acme", "", "", "a", "", 0, 0.7)); !v.Reserved {
		t.Fatalf("settled amount not released after restart: %+v", v)
	}
}

func TestScopesAndAllApplicableBudgetsTogether(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"org","scope":{"org":"acme"},"period":"monthly","limits":{"calls":100}}`)
	e.put(t, `{"id":"team","scope":{"org":"acme","team":"search"},"period":"monthly","limits":{"calls":2}}`)
	e.put(t, `{"id":"other","scope":{"org":"beta"},"period":"monthly","limits":{"calls":1}}`)

	for range 2 {
		if _, v := e.reserve(t, act("acme", "search", "alice", "a1", "", 0, 0)); !v.Reserved {
			t.Fatal(v)
		}
	}
	// The team budget is spent: the org budget, which would allow, must not
	// be charged for the denied action.
	_, v := e.reserve(t, act("acme", "search", "bob", "a2", "", 0, 0))
	if v.Effect != action.Deny || !strings.HasPrefix(v.Reasons[0], "budget team: calls 3/2") {
		t.Fatalf("verdict %+v", v)
	}
	if u := e.usage(t, "org"); u.Reserved.Calls != 2 {
		t.Fatalf("org budget charged for a denied action: %+v", u)
	}
	// Another team of acme is only under the org budget.
	if _, v := e.reserve(t, act("acme", "ads", "carol", "a3", "", 0, 0)); !v.Reserved {
		t.Fatal(v)
	}
	if u := e.usage(t, "org"); u.Reserved.Calls != 3 {
		t.Fatalf("org usage %+v", u)
	}
	// An action with no org is under no budget here.
	if _, v := e.reserve(t, act("", "search", "alice", "a1", "", 0, 0)); v.Effect != action.Allow || v.Reserved {
		t.Fatal(v)
	}
	us, err := e.b.Usage(context.Background(), budget.Scope{Org: "acme"})
	if err != nil || len(us) != 1 || us[0].ID != "org" {
		t.Fatalf("usage for org acme: %+v, %v", us, err)
	}
	us, err = e.b.Usage(context.Background(), budget.Scope{Org: "acme", Team: "search"})
	if err != nil || len(us) != 2 {
		t.Fatalf("usage for acme/search: %+v, %v", us, err)
	}
}

func TestPerSessionBudget(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"s","scope":{"agent":"a"},"period":"session","limits":{"calls":1}}`)
	if _, v := e.reserve(t, act("", "", "", "a", "s1", 0, 0)); !v.Reserved {
		t.Fatal(v)
	}
	if _, v := e.reserve(t, act("", "", "", "a", "s1", 0, 0)); v.Effect != action.Deny {
		t.Fatal(v)
	}
	if _, v := e.reserve(t, act("", "", "", "a", "s2", 0, 0)); !v.Reserved {
		t.Fatal(v)
	}
	us, err := e.b.Usage(context.Background(), budget.Scope{})
	if err != nil || len(us) != 2 || us[0].Session == "" || us[1].Session == "" {
		t.Fatalf("per-session usage %+v, %v", us, err)
	}
	st, err := e.b.State(context.Background(), act("", "", "", "a", "s2", 0, 0))
	if err != nil || len(st) != 1 || st[0].Session != "s2" || st[0].Fraction != 1 {
		t.Fatalf("state %+v, %v", st, err)
	}
}

func TestThresholds(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"t","scope":{"org":"acme"},"period":"monthly","limits":{"calls":10},
		"thresholds":{"soft":0.5,"throttle":0.8,"hard":1,"kill":1}}`)
	a := act("acme", "", "", "a", "", 0, 0)
	var alerts []budget.Alert
	for i := 1; i <= 7; i++ {
		_, v := e.reserve(t, a)
		if v.Effect != action.Allow || !v.Reserved || len(v.Kill) != 0 {
			t.Fatalf("call %d: %+v", i, v)
		}
		alerts = append(alerts, v.Alerts...)
	}
	if len(alerts) != 1 || alerts[0].Budget != "t" || alerts[0].Fraction != 0.5 {
		t.Fatalf("soft alerts %+v, want exactly one at 5/10", alerts)
	}
	// The 8th call reaches 80%: it needs approval and holds nothing.
	_, v := e.reserve(t, a)
	if v.Effect != action.RequireApproval || v.Reserved || v.Reasons[0] != "budget t: calls 8/10 (throttle at 80%: needs approval)" {
		t.Fatalf("throttle: %+v", v)
	}
	// An approval id the action carries proves nothing: it is throttled
	// all the same.
	claimed := *a
	claimed.ApprovalID = "apr_1"
	if _, v := e.reserve(t, &claimed); v.Effect != action.RequireApproval || v.Reserved {
		t.Fatalf("a claimed approval lifted the throttle: %+v", v)
	}
	// Approved (the engine redeemed its ticket), it goes through.
	for i := 8; i <= 9; i++ {
		if _, v := e.reserveApproved(t, a); !v.Reserved {
			t.Fatalf("approved call %d: %+v", i, v)
		}
	}
	// The 10th reaches the kill threshold: allowed, with the kill switch asked for.
	_, v = e.reserveApproved(t, a)
	if !v.Reserved || len(v.Kill) != 1 || v.Kill[0] != (budget.Scope{Org: "acme"}) {
		t.Fatalf("kill: %+v", v)
	}
	_, v = e.reserveApproved(t, a)
	if v.Effect != action.Deny || len(v.Kill) != 1 {
		t.Fatalf("over the hard limit: %+v", v)
	}
	// A new month: the soft alert fires again.
	e.clk.Set(time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC))
	for range 5 {
		_, v = e.reserve(t, a)
	}
	if len(v.Alerts) != 1 {
		t.Fatalf("no soft alert in the new period: %+v", v)
	}
}

func TestRateThrottle(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"r","scope":{"org":"acme"},"period":"monthly","limits":{"calls":100},
		"thresholds":{"throttle":0.01,"hard":1},"throttle":"rate:2/1m"}`)
	a := act("acme", "", "", "a", "", 0, 0)
	for i := range 2 {
		if _, v := e.reserve(t, a); !v.Reserved {
			t.Fatalf("call %d: %+v", i, v)
		}
	}
	_, v := e.reserve(t, a)
	if v.Effect != action.Deny || !strings.Contains(v.Reasons[0], "throttled to 2 calls per 1m0s") {
		t.Fatalf("third call in the minute: %+v", v)
	}
	e.clk.Advance(time.Minute)
	if _, v := e.reserve(t, a); !v.Reserved {
		t.Fatalf("next minute: %+v", v)
	}
}

func TestTokenSplitLimits(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"out","scope":{"agent":"a"},"period":"none","limits":{"output_tokens":100}}`)
	id, _ := e.reserve(t, act("", "", "", "a", "", 0, 0))
	if err := e.b.Settle(context.Background(), id, action.Outcome{Status: "ok", InputTokens: 5000, OutputTokens: 60}); err != nil {
		t.Fatal(err)
	}
	if _, v := e.reserve(t, act("", "", "", "a", "", 40, 0)); !v.Reserved {
		t.Fatalf("input tokens counted as output: %+v", v)
	}
	if _, v := e.reserve(t, act("", "", "", "a", "", 1, 0)); v.Effect != action.Deny {
		t.Fatalf("output limit not enforced: %+v", v)
	}
}

func TestDuplicateDecisionIDIsRefused(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{},"period":"none","limits":{"calls":10}}`)
	if v, err := e.b.Reserve(context.Background(), "dec_same", act("", "", "", "a", "", 0, 0)); err != nil || !v.Reserved {
		t.Fatal(v, err)
	}
	v, err := e.b.Reserve(context.Background(), "dec_same", act("", "", "", "a", "", 0, 0))
	if !errors.Is(err, budget.ErrDuplicate) || v.Effect != action.Deny {
		t.Fatalf("duplicate: %+v, %v", v, err)
	}
	if u := e.usage(t, "b"); u.Reserved.Calls != 1 {
		t.Errorf("duplicate changed counters: %+v", u)
	}
}

// countingStore wraps the real store and counts the transactions it runs.
type countingStore struct {
	budget.Store
	n atomic.Int64
}

func (s *countingStore) UpdateBudgets(ctx context.Context, fn func(budget.Tx) error) error {
	s.n.Add(1)
	return s.Store.UpdateBudgets(ctx, fn)
}

func (s *countingStore) ViewBudgets(ctx context.Context, fn func(budget.Tx) error) error {
	s.n.Add(1)
	return s.Store.ViewBudgets(ctx, fn)
}

func TestNoApplicableBudgetNeverTouchesTheStore(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{"org":"acme"},"period":"none","limits":{"calls":1}}`)
	cs := &countingStore{Store: e.db}
	b, err := budget.New(cs, budget.Options{Clock: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.Reserve(context.Background(), decID(), act("beta", "", "", "a", "", 10, 1))
	if err != nil || v.Effect != action.Allow || v.Reserved {
		t.Fatal(v, err)
	}
	if st, err := b.State(context.Background(), act("beta", "", "", "a", "", 0, 0)); err != nil || st != nil {
		t.Fatal(st, err)
	}
	if n := cs.n.Load(); n != 0 {
		t.Fatalf("%d store transactions for an action no budget applies to", n)
	}
	if _, err := b.Reserve(context.Background(), decID(), act("acme", "", "", "a", "", 0, 0)); err != nil || cs.n.Load() != 1 {
		t.Fatalf("applicable budget: %v, %d transactions", err, cs.n.Load())
	}
}

// failingStore is the real store whose transactions fail.
type failingStore struct{ budget.Store }

func (failingStore) UpdateBudgets(context.Context, func(budget.Tx) error) error {
	return errors.New("disk full")
}

func TestStoreFailureDenies(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{},"period":"none","limits":{"calls":1}}`)
	b, err := budget.New(failingStore{e.db}, budget.Options{Clock: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.Reserve(context.Background(), decID(), act("", "", "", "a", "", 0, 0))
	if err == nil || v.Effect != action.Deny || v.Reserved || !strings.Contains(v.Reasons[0], "disk full") {
		t.Fatalf("%+v, %v", v, err)
	}
}

func TestBadConfigsAreRefusedNamingTheField(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"keep","scope":{"org":"acme"},"period":"monthly","limits":{"calls":5}}`)
	for _, c := range []struct{ config, field string }{
		{`{"id":"x","period":"monthly","limits":{"cost_usd":-1}}`, "limits.cost_usd"},
		{`{"id":"x","period":"monthly","limits":{"tokens":-5}}`, "limits.tokens"},
		{`{"id":"x","period":"monthly","limits":{"calls":1.5}}`, "limits.calls"},
		{`{"id":"x","period":"monthly","limits":{"cost_usd":0.0000001}}`, "limits.cost_usd"},
		{`{"id":"x","period":"monthly","limits":{"cost_usd":"5"}}`, "limits.cost_usd"},
		{`{"id":"x","period":"monthly","limits":{"dollars":5}}`, "limits.dollars"},
		{`{"id":"x","period":"fortnightly"}`, "period"},
		{`{"id":"x","period":"10s"}`, "period"},
		{`{"id":"x"}`, "period"},
		{`{"id":"x","period":"daily","timezone":"Mars/Olympus"}`, "timezone"},
		{`{"id":"x","period":"daily","scope":{"project":"p"}}`, "scope.project"},
		{`{"id":"x","period":"daily","scope":{"org":5}}`, "scope.org"},
		{`{"id":"x","period":"daily","thresholds":{"soft":0.9,"throttle":0.8}}`, "thresholds.throttle"},
		{`{"id":"x","period":"daily","thresholds":{"hard":0.9,"kill":0.5}}`, "thresholds.kill"},
		{`{"id":"x","period":"daily","thresholds":{"hard":1.5}}`, "thresholds.hard"},
		{`{"id":"x","period":"daily","thresholds":{"soft":-0.1}}`, "thresholds.soft"},
		{`{"id":"x","period":"daily","thresholds":{"panic":1}}`, "thresholds.panic"},
		{`{"id":"x","period":"daily","throttle":"slow_down"}`, "throttle"},
		{`{"id":"x","period":"daily","throttle":"rate:0/1m"}`, "throttle"},
		{`{"id":"x","period":"daily","throttle":"rate:5/1ms"}`, "throttle"},
		{`{"id":"a b","period":"daily"}`, "id"},
		{`{"id":"x","period":"daily","colour":"red"}`, "colour"},
		{`{"id":"x","period":"daily","limits":5}`, "limits"},
		{`{"id":"x","period":"daily","scope":"acme"}`, "scope"},
		{`{"id":"x","period":"daily","thresholds":[1]}`, "thresholds"},
	} {
		_, err := budget.DecodeConfig([]byte(c.config))
		var ce *budget.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field || !errors.Is(err, budget.ErrInvalid) {
			t.Errorf("%s: error %v, want one naming %s", c.config, err, c.field)
		}
	}
	// Put validates too, and a refused config changes nothing.
	err := e.b.Put(context.Background(), budget.Config{ID: "keep", Period: "monthly", Limits: budget.Amounts{Calls: -1}})
	if !errors.Is(err, budget.ErrInvalid) {
		t.Fatalf("put of a negative limit: %v", err)
	}
	got, err := e.b.Get(context.Background(), "keep")
	if err != nil || got.Limits.Calls != 5 {
		t.Fatalf("refused put changed the budget: %+v, %v", got, err)
	}
	if err := e.b.Put(context.Background(), budget.Config{Period: "daily"}); !errors.Is(err, budget.ErrInvalid) {
		t.Errorf("put without an id: %v", err)
	}
	if _, err := budget.DecodeConfig([]byte(`{"id":"x","period":"daily"} {}`)); err == nil {
		t.Error("trailing data accepted")
	}
}

func TestConfigJSONIsExactAndRoundTrips(t *testing.T) {
	c, err := budget.DecodeConfig([]byte(`{"id":"acme-monthly","scope":{"org":"acme"},"period":"monthly","timezone":"UTC",
		"limits":{"cost_usd":5000.1,"tokens":0,"input_tokens":0,"output_tokens":0,"calls":0},
		"thresholds":{"soft":0.8,"throttle":0.85,"hard":1.0,"kill":0},"throttle":"require_approval"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.CostMicros != 5_000_100_000 {
		t.Fatalf("cost_usd 5000.1 read as %d micros", c.Limits.CostMicros)
	}
	e := newEnv(t, t0)
	if err := e.b.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	// A second Budgets reads what the first stored.
	b2, err := budget.New(e.db, budget.Options{Clock: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b2.Get(context.Background(), "acme-monthly")
	if err != nil || got != c {
		t.Fatalf("stored %+v, read back %+v, %v", c, got, err)
	}
	// Defaults: UTC, and a hard limit at 100% when no threshold is given.
	d, err := budget.DecodeConfig([]byte(`{"id":"d","period":"daily","limits":{"calls":1}}`))
	if err != nil || d.Timezone != "UTC" || d.Thresholds.Hard != 1 {
		t.Fatalf("defaults: %+v, %v", d, err)
	}
}

func TestDeleteRemovesBudgetAndCounters(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{},"period":"none","limits":{"calls":1}}`)
	id, _ := e.reserve(t, act("", "", "", "a", "", 0, 0))
	if err := e.b.Delete(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Delete(context.Background(), "b"); !errors.Is(err, budget.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := e.b.Get(context.Background(), "b"); !errors.Is(err, budget.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	// Settling a reservation of a deleted budget is harmless.
	if err := e.b.Settle(context.Background(), id, action.Outcome{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	e.put(t, `{"id":"b","scope":{},"period":"none","limits":{"calls":1}}`)
	if u := e.usage(t, "b"); u.Spent.Calls != 0 || u.Reserved.Calls != 0 {
		t.Fatalf("re-created budget inherited counters: %+v", u)
	}
}

// Many decisions committed together: one that reuses an id fails alone, and
// the others in its batch are unaffected.
func TestDuplicateInABatchFailsAlone(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{},"period":"none","limits":{"calls":1000}}`)
	var wg sync.WaitGroup
	var ok, dup atomic.Int64
	errs := make(chan error, 200)
	for i := range 200 {
		id := fmt.Sprintf("dec_batch%d", i)
		if i%2 == 0 {
			id = "dec_shared"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := e.b.Reserve(context.Background(), id, act("", "", "", "a", "", 0, 0))
			switch {
			case errors.Is(err, budget.ErrDuplicate):
				dup.Add(1)
			case err != nil:
				errs <- err
			case v.Reserved:
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ok.Load() != 101 || dup.Load() != 99 {
		t.Fatalf("%d reserved, %d duplicates; want 101 and 99", ok.Load(), dup.Load())
	}
	if u := e.usage(t, "b"); u.Reserved.Calls != 101 {
		t.Fatalf("reserved calls %d", u.Reserved.Calls)
	}
}

// A throttle on one budget never weakens a deny from another, whatever
// their order.
func TestDenyFromOneBudgetOutranksThrottleFromAnother(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"a-hard","scope":{"org":"acme"},"period":"none","limits":{"calls":1}}`)
	e.put(t, `{"id":"b-throttle","scope":{"org":"acme"},"period":"none","limits":{"calls":100},"thresholds":{"throttle":0.01,"hard":1}}`)
	e.put(t, `{"id":"c-hard","scope":{"team":"t"},"period":"none","limits":{"calls":1}}`)
	approved := act("acme", "t", "", "a", "", 0, 0)
	if _, v := e.reserveApproved(t, approved); !v.Reserved {
		t.Fatal(v)
	}
	_, v := e.reserve(t, act("acme", "t", "", "a", "", 0, 0))
	if v.Effect != action.Deny || v.Reserved || len(v.Reasons) != 3 {
		t.Fatalf("verdict %+v, want a deny with three reasons", v)
	}
}

// A change to the budgets is recorded, whole, before it is made; one that
// cannot be recorded is not made.
func TestChangesAreRecordedBeforeTheyAreMade(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t0)
	c, err := budget.DecodeConfig([]byte(`{"id":"cap","scope":{"org":"acme"},"period":"none","limits":{"calls":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	down := func(context.Context, budget.Change) error { return errors.New("audit log down") }
	if err := e.b.Put(ctx, c, down); err == nil {
		t.Fatal("created without a record")
	}
	if l, _ := e.b.List(ctx); len(l) != 0 {
		t.Fatalf("created although not recorded: %+v", l)
	}
	var got []budget.Change
	rec := func(_ context.Context, ch budget.Change) error { got = append(got, ch); return nil }
	if err := e.b.Put(ctx, c, rec); err != nil {
		t.Fatal(err)
	}
	c.Limits.Calls = 5
	if err := e.b.Put(ctx, c, rec); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Delete(ctx, "cap", down); err == nil {
		t.Fatal("deleted without a record")
	}
	if _, err := e.b.Get(ctx, "cap"); err != nil {
		t.Fatalf("deleted although not recorded: %v", err)
	}
	if err := e.b.Delete(ctx, "cap", rec); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Delete(ctx, "cap", rec); !errors.Is(err, budget.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if len(got) != 3 || got[0].Event != "create" || got[1].Event != "replace" || got[1].Budget.Limits.Calls != 5 ||
		got[2].Event != "delete" || got[2].Budget.ID != "cap" || got[0].Budget.Timezone != "UTC" {
		t.Fatalf("recorded %+v", got)
	}
}

// Session ids are per agent: an agent that uses another agent's session id
// neither spends from that session's budget nor is held by it.
func TestPerSessionBudgetsAreCountedPerAgent(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"conv","scope":{"team":"t"},"period":"session","limits":{"calls":2}}`)
	a1 := act("acme", "t", "", "a1", "s-1", 0, 0)
	a2 := act("acme", "t", "", "a2", "s-1", 0, 0)
	for range 2 {
		if _, v := e.reserve(t, a2); !v.Reserved {
			t.Fatalf("a2 in its s-1: %+v", v)
		}
	}
	if _, v := e.reserve(t, a2); v.Effect != action.Deny {
		t.Fatalf("a2 over its session's limit: %+v", v)
	}
	if _, v := e.reserve(t, a1); !v.Reserved {
		t.Fatalf("a2's spending in its s-1 held a1's s-1: %+v", v)
	}
	us, err := e.b.Usage(context.Background(), budget.Scope{Team: "t", Agent: "a1"})
	if err != nil || len(us) != 1 || us[0].Agent != "a1" || us[0].Session != "s-1" || us[0].Reserved.Calls != 1 {
		t.Fatalf("a1's usage: %+v %v", us, err)
	}
	if us, _ := e.b.Usage(context.Background(), budget.Scope{Team: "t", Session: "s-1"}); len(us) != 2 {
		t.Fatalf("usage of every agent's s-1: %+v", us)
	}
	// A budget on one session names the agent whose session it is.
	_, err = budget.DecodeConfig([]byte(`{"id":"one","scope":{"session":"s-1"},"period":"none","limits":{"calls":1}}`))
	var ce *budget.ConfigError
	if !errors.As(err, &ce) || ce.Field != "scope.agent" {
		t.Fatalf("a session budget without its agent: %v", err)
	}
}
