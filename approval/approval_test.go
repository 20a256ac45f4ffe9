package approval_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/store/sqlite"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openDB(t testing.TB, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func setup(t testing.TB) (*approval.Approvals, *fakeClock) {
	clk := &fakeClock{now: t0}
	return approval.New(openDB(t, t.TempDir()), clk.Now), clk
}

const policyDigest = "sha256:policy-v1"

// payment is the action that needs approval.
func payment() *action.Action {
	return &action.Action{
		Agent:   action.Agent{ID: "payer-1"},
		Session: "s-1",
		Point:   action.PreToolCall,
		Tool:    action.Tool{Server: "payments", Name: "send"},
		Args:    map[string]any{"to": "acme", "amount": int64(5000), "memo": map[string]any{"ref": "inv-9"}},
	}
}

func request(a *action.Action) approval.Request {
	return approval.Request{
		Action:       a,
		Shown:        a,
		PolicyDigest: policyDigest,
		Rules:        []string{"big-payments"},
		Reasons:      []string{"rule big-payments: payments over 1000 need finance"},
		Approvers:    []string{"group:finance"},
		Timeout:      30 * time.Minute,
		DecisionID:   "dec_01",
	}
}

func create(t *testing.T, m *approval.Approvals, r approval.Request) approval.Ticket {
	t.Helper()
	tk, err := m.Create(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func approve(t *testing.T, m *approval.Approvals, id string) {
	t.Helper()
	if _, err := m.Decide(context.Background(), id, true, "fiona", "ok"); err != nil {
		t.Fatal(err)
	}
}

func wantRefused(t *testing.T, err error, reason string) {
	t.Helper()
	var re *approval.RedeemError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a refusal with reason %s", err, reason)
	}
	if re.Reason != reason {
		t.Fatalf("refused with %s (%v), want %s", re.Reason, err, reason)
	}
	if !errors.Is(err, approval.ErrRefused) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("error %q does not wrap ErrRefused or name %s", err, reason)
	}
}

func TestCreateBindsTheAction(t *testing.T) {
	m, _ := setup(t)
	tk := create(t, m, request(payment()))
	if !strings.HasPrefix(tk.ID, "apr_") || len(tk.ID) != 30 {
		t.Fatalf("id %q", tk.ID)
	}
	if tk.Status != approval.Pending || tk.AgentID != "payer-1" || tk.Session != "s-1" ||
		tk.Tool.Server != "payments" || tk.Tool.Name != "send" || tk.Point != action.PreToolCall ||
		tk.PolicyDigest != policyDigest || tk.OnTimeout != approval.TimeoutDeny {
		t.Fatalf("ticket %+v", tk)
	}
	if string(tk.Args) != `{"amount":5000,"memo":{"ref":"inv-9"},"to":"acme"}` {
		t.Fatalf("canonical args %s", tk.Args)
	}
	if len(tk.ArgsDigest) != len("sha256:")+64 {
		t.Fatalf("args digest %q", tk.ArgsDigest)
	}
	if !tk.CreatedAt.Equal(t0) || !tk.ExpiresAt.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("created %v expires %v", tk.CreatedAt, tk.ExpiresAt)
	}
	got, err := m.Get(context.Background(), tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ArgsDigest != tk.ArgsDigest || got.Approvers[0] != "group:finance" || got.Rules[0] != "big-payments" ||
		got.DecisionID != "dec_01" || !got.ExpiresAt.Equal(tk.ExpiresAt) || string(got.Args) != string(tk.Args) {
		t.Fatalf("stored ticket %+v differs from created %+v", got, tk)
	}
	ref := got.Ref(t0)
	if ref.ID != tk.ID || ref.Status != "pending" || ref.ExpiresAt != "2026-03-01T12:30:00Z" {
		t.Fatalf("ref %+v", ref)
	}
}

func TestDefaultTimeout(t *testing.T) {
	m, _ := setup(t)
	r := request(payment())
	r.Timeout = 0
	if tk := create(t, m, r); !tk.ExpiresAt.Equal(t0.Add(approval.DefaultTimeout)) {
		t.Fatalf("expires %v", tk.ExpiresAt)
	}
}

func TestApprovedTicketAllowsTheActionOnce(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	tk := create(t, m, request(payment()))

	_, err := m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonPending)

	decided, err := m.Decide(ctx, tk.ID, true, "fiona", "checked the invoice")
	if err != nil {
		t.Fatal(err)
	}
	if decided.Status != approval.Approved || decided.DecidedBy != "fiona" || decided.Note != "checked the invoice" ||
		!decided.DecidedAt.Equal(t0) || !decided.RedeemBy.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("decided %+v", decided)
	}

	used, err := m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
	if err != nil {
		t.Fatal(err)
	}
	if used.Status != approval.Used || !used.UsedAt.Equal(t0) {
		t.Fatalf("redeemed %+v", used)
	}
	_, err = m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonAlreadyUsed)
	if got, _ := m.Get(ctx, tk.ID); got.Status != approval.Used {
		t.Fatalf("stored status %s", got.Status)
	}
}

func TestRedeemRefusesAnyOtherAction(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	tk := create(t, m, request(payment()))
	approve(t, m, tk.ID)

	cases := []struct {
		name   string
		change func(a *action.Action)
		policy string
		reason string
	}{
		{"another agent", func(a *action.Action) { a.Agent.ID = "payer-2" }, policyDigest, approval.ReasonWrongAgent},
		{"another session", func(a *action.Action) { a.Session = "s-2" }, policyDigest, approval.ReasonWrongSession},
		{"no session", func(a *action.Action) { a.Session = "" }, policyDigest, approval.ReasonWrongSession},
		{"another tool", func(a *action.Action) { a.Tool.Name = "refund" }, policyDigest, approval.ReasonWrongTool},
		{"another tool server", func(a *action.Action) { a.Tool.Server = "bank" }, policyDigest, approval.ReasonWrongTool},
		{"another point", func(a *action.Action) { a.Point = action.PostToolCall }, policyDigest, approval.ReasonWrongPoint},
		{"another destination", func(a *action.Action) { a.Destination = "evil.example" }, policyDigest, approval.ReasonActionChanged},
		{"another resource", func(a *action.Action) { a.Resource.ID = "c-9" }, policyDigest, approval.ReasonActionChanged},
		{"changed amount", func(a *action.Action) { a.Args["amount"] = int64(50000) }, policyDigest, approval.ReasonArgsChanged},
		{"nested change", func(a *action.Action) { a.Args["memo"] = map[string]any{"ref": "inv-10"} }, policyDigest, approval.ReasonArgsChanged},
		{"added argument", func(a *action.Action) { a.Args["cc"] = "x" }, policyDigest, approval.ReasonArgsChanged},
		{"removed argument", func(a *action.Action) { delete(a.Args, "memo") }, policyDigest, approval.ReasonArgsChanged},
		{"policy reloaded", func(a *action.Action) {}, "sha256:policy-v2", approval.ReasonPolicyChanged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := payment()
			c.change(a)
			_, err := m.Redeem(ctx, tk.ID, a, c.policy, "dec_use")
			wantRefused(t, err, c.reason)
		})
	}
	// None of the refusals consumed the ticket.
	if got, _ := m.Get(ctx, tk.ID); got.Status != approval.Approved {
		t.Fatalf("status after refusals: %s", got.Status)
	}
	// The same arguments in another order and numeric form are the same action.
	same := payment()
	same.Args = map[string]any{"memo": map[string]any{"ref": "inv-9"}, "amount": float64(5000), "to": "acme"}
	same.Point = "" // pre_tool_call by default
	if _, err := m.Redeem(ctx, tk.ID, same, policyDigest, "dec_use"); err != nil {
		t.Fatalf("the approved action was refused: %v", err)
	}
}

func TestRedeemUnknownTicket(t *testing.T) {
	m, _ := setup(t)
	_, err := m.Redeem(context.Background(), "apr_nope", payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonNotFound)
}

func TestDeniedTicketRefuses(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	tk := create(t, m, request(payment()))
	got, err := m.Decide(ctx, tk.ID, false, "fiona", "not this vendor")
	if err != nil || got.Status != approval.Denied || !got.RedeemBy.IsZero() {
		t.Fatalf("deny: %+v, %v", got, err)
	}
	_, err = m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonDenied)
}

func TestDecideOnlyOnce(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	tk := create(t, m, request(payment()))
	approve(t, m, tk.ID)
	for _, approveIt := range []bool{true, false} {
		_, err := m.Decide(ctx, tk.ID, approveIt, "gus", "")
		if !errors.Is(err, approval.ErrConflict) || !strings.Contains(err.Error(), "the ticket is approved") {
			t.Fatalf("second decide (approve=%v): %v", approveIt, err)
		}
	}
	if got, _ := m.Get(ctx, tk.ID); got.DecidedBy != "fiona" || got.Status != approval.Approved {
		t.Fatalf("second decide changed the ticket: %+v", got)
	}
	if _, err := m.Decide(ctx, "apr_nope", true, "fiona", ""); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("unknown ticket: %v", err)
	}
	other := create(t, m, request(payment()))
	if _, err := m.Decide(ctx, other.ID, true, "", ""); !errors.Is(err, approval.ErrInvalid) {
		t.Fatalf("no approver named: %v", err)
	}
	if _, err := m.Decide(ctx, other.ID, true, "fiona", strings.Repeat("n", approval.MaxNoteLen+1)); !errors.Is(err, approval.ErrInvalid) {
		t.Fatalf("over-long note: %v", err)
	}
}

func TestConcurrentDecisionsOneWins(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	tk := create(t, m, request(payment()))
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = m.Decide(ctx, tk.ID, i%2 == 0, "fiona", "")
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range results {
		if err == nil {
			wins++
		} else if !errors.Is(err, approval.ErrConflict) {
			t.Fatal(err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d decisions succeeded, want 1", wins)
	}
}

func TestExpiryOnTimeoutDeny(t *testing.T) {
	ctx := context.Background()
	m, clk := setup(t)
	tk := create(t, m, request(payment()))
	clk.Advance(30*time.Minute - time.Nanosecond)
	if got, _ := m.Get(ctx, tk.ID); got.Status != approval.Pending {
		t.Fatalf("just before expiry: %s", got.Status)
	}
	clk.Advance(time.Nanosecond)
	if got, _ := m.Get(ctx, tk.ID); got.Status != approval.Expired {
		t.Fatalf("at expiry: %s", got.Status)
	}
	if _, err := m.Decide(ctx, tk.ID, true, "fiona", "late"); !errors.Is(err, approval.ErrConflict) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("deciding an expired ticket: %v", err)
	}
	_, err := m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonExpired)
}

func TestExpiryOnTimeoutAllow(t *testing.T) {
	ctx := context.Background()
	m, clk := setup(t)
	r := request(payment())
	r.OnTimeout = approval.TimeoutAllow
	tk := create(t, m, r)
	_, err := m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonPending)

	clk.Advance(31 * time.Minute)
	// Still bound to the exact action.
	changed := payment()
	changed.Args["amount"] = int64(9999)
	_, err = m.Redeem(ctx, tk.ID, changed, policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonArgsChanged)

	used, err := m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
	if err != nil || used.Status != approval.Used || used.DecidedBy != approval.DecidedByTimeout || !used.DecidedAt.Equal(tk.ExpiresAt) {
		t.Fatalf("timed-out allow ticket: %+v, %v", used, err)
	}
	if stored, _ := m.Get(ctx, tk.ID); stored.DecidedBy != approval.DecidedByTimeout || !stored.DecidedAt.Equal(tk.ExpiresAt) || stored.Status != approval.Used {
		t.Fatalf("stored after timeout redemption: %+v", stored)
	}
	_, err = m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonAlreadyUsed)
}

func TestApprovalLapsesIfNotUsed(t *testing.T) {
	ctx := context.Background()
	m, clk := setup(t)
	tk := create(t, m, request(payment()))
	clk.Advance(20 * time.Minute)
	approve(t, m, tk.ID) // usable for 30 minutes from now
	clk.Advance(29 * time.Minute)
	if got, _ := m.Get(ctx, tk.ID); got.Status != approval.Approved {
		t.Fatalf("approved ticket shows %s", got.Status)
	}
	clk.Advance(time.Minute)
	_, err := m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonExpired)
}

func TestList(t *testing.T) {
	ctx := context.Background()
	m, clk := setup(t)
	short := request(payment())
	short.Timeout = time.Minute
	expiring := create(t, m, short)
	pending := create(t, m, request(payment()))
	approved := create(t, m, request(payment()))
	approve(t, m, approved.ID)
	denied := create(t, m, request(payment()))
	if _, err := m.Decide(ctx, denied.ID, false, "fiona", ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)

	ids := func(status approval.Status) []string {
		list, err := m.List(ctx, status)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tk := range list {
			if status != "" && tk.Status != status {
				t.Fatalf("List(%s) returned a %s ticket", status, tk.Status)
			}
			out = append(out, tk.ID)
		}
		return out
	}
	for status, want := range map[approval.Status][]string{
		approval.Pending:  {pending.ID},
		approval.Expired:  {expiring.ID},
		approval.Approved: {approved.ID},
		approval.Denied:   {denied.ID},
		approval.Used:     nil,
		"":                {expiring.ID, pending.ID, approved.ID, denied.ID},
	} {
		if got := ids(status); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("List(%q) = %v, want %v", status, got, want)
		}
	}
	if _, err := m.List(ctx, "waiting"); !errors.Is(err, approval.ErrInvalid) {
		t.Fatalf("unknown status: %v", err)
	}
}

func TestInvalidRequestsStoreNothing(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	noAgent := payment()
	noAgent.Agent.ID = ""
	cases := map[string]approval.Request{
		"no action":         {PolicyDigest: policyDigest},
		"nothing to show":   func() approval.Request { r := request(payment()); r.Shown = nil; return r }(),
		"no agent":          request(noAgent),
		"negative timeout":  func() approval.Request { r := request(payment()); r.Timeout = -time.Second; return r }(),
		"huge timeout":      func() approval.Request { r := request(payment()); r.Timeout = approval.MaxTimeout + 1; return r }(),
		"unknown onTimeout": func() approval.Request { r := request(payment()); r.OnTimeout = "maybe"; return r }(),
	}
	for name, r := range cases {
		if _, err := m.Create(ctx, r); !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if list, _ := m.List(ctx, ""); len(list) != 0 {
		t.Fatalf("invalid requests stored %d tickets", len(list))
	}
}

func TestTicketsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	m := approval.New(db, clk.Now)
	approved := create(t, m, request(payment()))
	approve(t, m, approved.ID)
	pending := create(t, m, request(payment()))
	db.Close()

	m = approval.New(openDB(t, dir), clk.Now)
	if list, _ := m.List(ctx, approval.Pending); len(list) != 1 || list[0].ID != pending.ID {
		t.Fatalf("pending after restart: %+v", list)
	}
	if _, err := m.Redeem(ctx, approved.ID, payment(), policyDigest, "dec_use"); err != nil {
		t.Fatalf("approved ticket after restart: %v", err)
	}
	_, err = m.Redeem(ctx, approved.ID, payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonAlreadyUsed)
}

// Of 100 concurrent redemptions of one approved ticket, through two
// handles on one database file, exactly one lets the action through.
func TestConcurrentRedeemAllowsExactlyOne(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	handles := []*approval.Approvals{approval.New(openDB(t, dir), clk.Now), approval.New(openDB(t, dir), clk.Now)}
	tk := create(t, handles[0], request(payment()))
	approve(t, handles[1], tk.ID)

	const n = 100
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			_, errs[i] = handles[i%2].Redeem(ctx, tk.ID, payment(), policyDigest, "dec_use")
		}()
	}
	start.Done()
	done.Wait()
	allowed := 0
	for _, err := range errs {
		if err == nil {
			allowed++
			continue
		}
		var re *approval.RedeemError
		if !errors.As(err, &re) || re.Reason != approval.ReasonAlreadyUsed {
			t.Fatalf("unexpected refusal: %v", err)
		}
	}
	if allowed != 1 {
		t.Fatalf("%d of %d concurrent redemptions were allowed, want exactly 1", allowed, n)
	}
}

func TestExpireRecordsEachExpiryOnce(t *testing.T) {
	ctx := context.Background()
	m, clk := setup(t)
	short := request(payment())
	short.Timeout = time.Minute
	deny := create(t, m, short)
	short.OnTimeout = approval.TimeoutAllow
	allow := create(t, m, short)
	later := create(t, m, request(payment()))
	decided := create(t, m, request(payment()))
	approve(t, m, decided.ID)

	if got, err := m.Due(ctx); err != nil || len(got) != 0 {
		t.Fatalf("before any timeout: %+v, %v", got, err)
	}
	if _, err := m.Expire(ctx, deny.ID); !errors.Is(err, approval.ErrConflict) {
		t.Fatalf("expiring a ticket before its timeout: %v", err)
	}
	clk.Advance(time.Minute)
	due, err := m.Due(ctx)
	if err != nil || len(due) != 2 || due[0].ID != deny.ID || due[1].ID != allow.ID {
		t.Fatalf("Due = %+v, %v; want %s and %s", due, err, deny.ID, allow.ID)
	}
	var changes []approval.Change
	rec := func(_ context.Context, c approval.Change) error { changes = append(changes, c); return nil }
	for _, d := range due {
		got, err := m.Expire(ctx, d.ID, rec)
		if err != nil || got.Status != approval.Expired {
			t.Fatalf("Expire(%s) = %+v, %v", d.ID, got, err)
		}
	}
	if len(changes) != 2 || changes[0].Event != "expire" || changes[0].Ticket != deny.ID || !changes[0].At.Equal(deny.ExpiresAt) {
		t.Fatalf("recorded %+v", changes)
	}
	if again, _ := m.Due(ctx); len(again) != 0 {
		t.Fatalf("Due after expiry returned %+v", again)
	}
	if _, err := m.Expire(ctx, deny.ID, rec); !errors.Is(err, approval.ErrConflict) || len(changes) != 2 {
		t.Fatalf("expiring twice: %v (%d records)", err, len(changes))
	}
	if list, _ := m.List(ctx, approval.Pending); len(list) != 1 || list[0].ID != later.ID {
		t.Fatalf("pending after expiry: %+v", list)
	}
	// A recorded expiry behaves as a computed one.
	_, err = m.Redeem(ctx, deny.ID, payment(), policyDigest, "dec_use")
	wantRefused(t, err, approval.ReasonExpired)
	if _, err := m.Decide(ctx, deny.ID, true, "fiona", ""); !errors.Is(err, approval.ErrConflict) {
		t.Fatalf("deciding a recorded expiry: %v", err)
	}
	if used, err := m.Redeem(ctx, allow.ID, payment(), policyDigest, "dec_use"); err != nil || used.DecidedBy != approval.DecidedByTimeout {
		t.Fatalf("on_timeout allow after a recorded expiry: %+v, %v", used, err)
	}
	if _, err := m.Redeem(ctx, decided.ID, payment(), policyDigest, "dec_use"); err != nil {
		t.Fatalf("approved ticket touched by Expire: %v", err)
	}
}

// An approver approved "wire $10 for lunch"; the agent then sends another
// wire, another text, another estimate or another identity under the same
// ticket. Every field a policy can read is bound, and the refusal says what
// changed.
func TestTicketBindsTheWholeAction(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	lunch := func() *action.Action {
		return &action.Action{
			Agent: action.Agent{ID: "payer-1", Type: "assistant", Labels: map[string]string{"env": "prod"}}, Principal: action.Principal{User: "alice", Org: "acme"},
			Point: action.PreModelCall, Model: "gpt-4o", Destination: "api.openai.com",
			Content:  "wire $10 to Bob for lunch",
			Estimate: action.Estimate{Tokens: 11, CostUSD: 0.0001},
		}
	}
	tk := create(t, m, request(lunch()))
	approve(t, m, tk.ID)
	for _, c := range []struct {
		name   string
		change func(a *action.Action)
		reason string
		detail string
	}{
		{"another content", func(a *action.Action) { a.Content = "wire $1,000,000 to MALLORY" }, approval.ReasonContentChanged, "content"},
		{"no content", func(a *action.Action) { a.Content = "" }, approval.ReasonContentChanged, "content"},
		{"a bigger estimate", func(a *action.Action) { a.Estimate.Tokens = 90000 }, approval.ReasonEstimateChanged, "90000 tokens"},
		{"a dearer estimate", func(a *action.Action) { a.Estimate.CostUSD = 12 }, approval.ReasonEstimateChanged, "12 USD"},
		{"another model", func(a *action.Action) { a.Model = "o3" }, approval.ReasonActionChanged, `model ("o3", approved "gpt-4o")`},
		{"another destination", func(a *action.Action) { a.Destination = "evil.example" }, approval.ReasonActionChanged, "destination"},
		{"another principal", func(a *action.Action) { a.Principal.User = "mallory" }, approval.ReasonWrongAgent, "principal"},
		{"other labels", func(a *action.Action) { a.Agent.Labels = map[string]string{"env": "dev"} }, approval.ReasonWrongAgent, "labels"},
		{"another agent type", func(a *action.Action) { a.Agent.Type = "processor" }, approval.ReasonWrongAgent, "type"},
		{"annotated tool", func(a *action.Action) { a.Tool.Annotations = map[string]any{"destructiveHint": true} }, approval.ReasonWrongTool, "annotations"},
		{"arguments added", func(a *action.Action) { a.Args = map[string]any{"to": "mallory"} }, approval.ReasonArgsChanged, "arguments"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := lunch()
			c.change(a)
			_, err := m.Redeem(ctx, tk.ID, a, policyDigest, "dec_use")
			wantRefused(t, err, c.reason)
			if !strings.Contains(err.Error(), c.detail) {
				t.Errorf("refusal %q does not say what differs (%s)", err, c.detail)
			}
		})
	}
	// The approval id names the ticket, not the action.
	same := lunch()
	same.ApprovalID = tk.ID
	same.Tool.Annotations = map[string]any{}
	if _, err := m.Redeem(ctx, tk.ID, same, policyDigest, "dec_use"); err != nil {
		t.Fatalf("the approved action was refused: %v", err)
	}
}

// The ticket keeps the copy of the action it was given to show, and binds
// the action itself: the approver reads what the engine masked, the digest
// still tells the exact action.
func TestTicketShowsTheGivenCopyAndBindsTheAction(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	a := payment()
	a.Content = "card 4111 1111 1111 1111"
	shown := payment()
	shown.Content = "card [REDACTED:credit_card]"
	shown.Args["to"] = "[REDACTED:email]"
	r := request(a)
	r.Shown = shown
	tk := create(t, m, r)
	digest, _ := action.Digest(a)
	if tk.ActionDigest != digest || tk.Action.Content != shown.Content || !strings.Contains(string(tk.Args), "[REDACTED:email]") {
		t.Fatalf("ticket %+v", tk)
	}
	got, _ := m.Get(ctx, tk.ID)
	if got.Action.Content != shown.Content || got.ActionDigest != digest || !strings.Contains(string(got.Args), "[REDACTED:email]") {
		t.Fatalf("stored ticket %+v", got)
	}
	approve(t, m, tk.ID)
	if _, err := m.Redeem(ctx, tk.ID, shown, policyDigest, "dec_use"); err == nil {
		t.Fatal("the masked copy redeemed the ticket")
	}
	if _, err := m.Redeem(ctx, tk.ID, a, policyDigest, "dec_use"); err != nil {
		t.Fatalf("the action itself was refused: %v", err)
	}
}

// Check tells whether a ticket would let an action through without using
// it; a redemption given back is usable again, by the same action only.
func TestCheckUsesNothingAndUnredeemGivesBack(t *testing.T) {
	ctx := context.Background()
	m, clk := setup(t)
	tk := create(t, m, request(payment()))
	_, err := m.Check(ctx, tk.ID, payment(), policyDigest)
	wantRefused(t, err, approval.ReasonPending)
	approve(t, m, tk.ID)
	for range 2 {
		if _, err := m.Check(ctx, tk.ID, payment(), policyDigest); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_a"); err != nil {
		t.Fatal(err)
	}
	if err := m.Unredeem(ctx, tk.ID, "dec_b"); !errors.Is(err, approval.ErrConflict) {
		t.Fatalf("another decision gave the ticket back: %v", err)
	}
	if err := m.Unredeem(ctx, tk.ID, "dec_a"); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get(ctx, tk.ID); got.Status != approval.Approved || got.DecidedBy != "fiona" || got.UsedBy != "" {
		t.Fatalf("given back: %+v", got)
	}
	if used, err := m.Redeem(ctx, tk.ID, payment(), policyDigest, "dec_c"); err != nil || used.UsedBy != "dec_c" {
		t.Fatalf("redeem after give-back: %+v %v", used, err)
	}

	// One let through by its timeout goes back to undecided.
	r := request(payment())
	r.Timeout, r.OnTimeout = time.Minute, approval.TimeoutAllow
	lapse := create(t, m, r)
	clk.Advance(time.Minute)
	if _, err := m.Redeem(ctx, lapse.ID, payment(), policyDigest, "dec_d"); err != nil {
		t.Fatal(err)
	}
	if err := m.Unredeem(ctx, lapse.ID, "dec_d"); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get(ctx, lapse.ID); got.Status != approval.Expired || got.DecidedBy != "" {
		t.Fatalf("timed-out ticket given back: %+v", got)
	}
	if used, err := m.Redeem(ctx, lapse.ID, payment(), policyDigest, "dec_e"); err != nil || used.DecidedBy != approval.DecidedByTimeout {
		t.Fatalf("redeem after give-back: %+v %v", used, err)
	}
}

// A ticket whose decision was not logged is cancelled: it never reaches an
// approver. Only a pending ticket can be.
func TestCancelRemovesOnlyPendingTickets(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	tk := create(t, m, request(payment()))
	if err := m.Cancel(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ctx, tk.ID); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("cancelled ticket: %v", err)
	}
	done := create(t, m, request(payment()))
	approve(t, m, done.ID)
	if err := m.Cancel(ctx, done.ID); !errors.Is(err, approval.ErrConflict) {
		t.Fatalf("cancelling an approved ticket: %v", err)
	}
}

// A decision whose record cannot be written is not stored.
func TestDecideRecordsBeforeStoring(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	tk := create(t, m, request(payment()))
	_, err := m.Decide(ctx, tk.ID, true, "fiona", "ok", func(context.Context, approval.Change) error { return errors.New("audit log down") })
	if err == nil || !strings.Contains(err.Error(), "audit log down") {
		t.Fatalf("decide with a failing record: %v", err)
	}
	if got, _ := m.Get(ctx, tk.ID); got.Status != approval.Pending {
		t.Fatalf("stored although not recorded: %+v", got)
	}
	var c approval.Change
	got, err := m.Decide(ctx, tk.ID, true, "fiona", "ok", func(_ context.Context, got approval.Change) error { c = got; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if c.Event != "approve" || c.Ticket != tk.ID || c.Status != approval.Approved || c.By != "fiona" || c.Note != "ok" ||
		!c.At.Equal(got.DecidedAt) || !c.RedeemBy.Equal(got.RedeemBy) || c.ActionDigest != tk.ActionDigest || c.Decision != "dec_01" {
		t.Fatalf("recorded %+v for %+v", c, got)
	}
}

// An agent that holds one of its approval tickets must not be able to work
// out the ids of the tickets made next to it (another agent's, waiting for
// an approver), as with decision ids: a ticket id is "apr_", the
// millisecond and 80 random bits, so with every ticket made in the same
// millisecond (the clock here never moves) no id is another plus a small
// number and the top random bits spread over many values. A counter or a
// per-process constant in place of the random bits fails this.
func TestTicketIDsCannotBeWorkedOutFromEarlierOnes(t *testing.T) {
	const n = 200
	clk := &fakeClock{now: t0}
	m := approval.New(openDB(t, t.TempDir()), clk.Now, approval.MaxPendingPerAgent(n))
	type part struct {
		hi uint16
		lo uint64
	}
	parts := make([]part, 0, n)
	his := map[uint16]bool{}
	for range n {
		tk := create(t, m, request(payment()))
		rest, ok := strings.CutPrefix(tk.ID, "apr_")
		if !ok {
			t.Fatalf("ticket id %q does not start apr_", tk.ID)
		}
		id, err := action.ParseID("dec_" + rest)
		if err != nil {
			t.Fatalf("ticket id %q: %v", tk.ID, err)
		}
		if id.Time() != t0.UnixMilli() {
			t.Fatalf("ticket id %s does not carry the millisecond it was made in", tk.ID)
		}
		p := part{binary.BigEndian.Uint16(id[6:8]), binary.BigEndian.Uint64(id[8:])}
		for _, q := range parts {
			if q.hi == p.hi && (p.lo-q.lo < 1<<32 || q.lo-p.lo < 1<<32) {
				t.Fatalf("ticket id %s is within a small step of an earlier one: it can be guessed", tk.ID)
			}
		}
		parts = append(parts, p)
		his[p.hi] = true
	}
	// 200 draws of 16 random bits give far more than 100 values; a
	// per-process constant gives one.
	if len(his) < 100 {
		t.Fatalf("the top 16 random bits took %d values over %d ticket ids", len(his), n)
	}
}
