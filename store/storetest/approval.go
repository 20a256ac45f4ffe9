package storetest

import (
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
)

// Every field of a ticket comes back as it went in, including empty lists
// and times that were never set.
func testTicketRoundTrip(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	full := approval.Ticket{
		ID: "apr_full", Status: approval.Approved, ActionDigest: "sha256:act", AgentID: "a", Session: "s",
		Tool: action.Tool{Server: "payments", Name: "send"}, Point: action.PreToolCall,
		Destination: "api.example", Model: "m", Resource: action.Resource{Type: "t", ID: "i", Permission: "write"},
		ArgsDigest: "abc", ContentDigest: "sha256:c", Args: json.RawMessage(`{"x":"[REDACTED:email]"}`), PolicyDigest: "p",
		Action: action.Action{Agent: action.Agent{ID: "a", Labels: map[string]string{"env": "prod"}}, Session: "s",
			Tool: action.Tool{Server: "payments", Name: "send"}, Args: map[string]any{"x": "[REDACTED:email]"},
			Content: "memo", Estimate: action.Estimate{Tokens: 11, CostUSD: 0.5}},
		Rules: []string{"r1", "r2"}, Reasons: []string{"why"}, Approvers: []string{"group:finance"},
		Provenance: map[string][]string{"args.x": {"tool:read_file", "tool:mail/get_inbox"}},
		OnTimeout:  approval.TimeoutAllow, DecisionID: "dec_1",
		CreatedAt: at, ExpiresAt: at.Add(time.Hour), DecidedAt: at.Add(time.Minute), DecidedBy: "fiona",
		Note: "ok", RedeemBy: at.Add(2 * time.Hour), UsedAt: at.Add(3 * time.Minute), UsedBy: "dec_2",
	}
	bare := approval.Ticket{ID: "apr_bare", Status: approval.Pending, AgentID: "a", Point: action.PreToolCall,
		ArgsDigest: "d", Args: json.RawMessage(`{}`), OnTimeout: approval.TimeoutDeny, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	for _, want := range []approval.Ticket{full, bare} {
		if err := db.InsertTicket(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetTicket(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
	if err := db.InsertTicket(ctx, bare); err == nil {
		t.Fatal("a second ticket with the same id was stored")
	}
	again := bare
	again.ID, again.Provenance = full.ID, map[string][]string{"args.y": {"tool:other"}}
	if err := db.InsertTicket(ctx, again); err == nil {
		t.Fatal("a second ticket with the same id and a provenance was stored")
	}
	if got, _ := db.GetTicket(ctx, full.ID); !reflect.DeepEqual(got.Provenance, full.Provenance) {
		t.Fatalf("a refused insert changed the provenance: %v", got.Provenance)
	}
	if _, err := db.GetTicket(ctx, "apr_none"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("unknown ticket: %v", err)
	}
	list, err := db.ListTickets(ctx, approval.Pending, approval.Denied)
	if err != nil || len(list) != 1 || list[0].ID != "apr_bare" {
		t.Fatalf("ListTickets(pending, denied) = %+v, %v", list, err)
	}
	if list, _ := db.ListTickets(ctx); len(list) != 2 || list[0].ID != "apr_full" || !reflect.DeepEqual(list[0].Provenance, full.Provenance) {
		t.Fatalf("ListTickets() = %+v", list)
	}
	if due, err := db.DueTickets(ctx, at.Add(time.Hour)); err != nil || len(due) != 1 || due[0].ID != "apr_bare" {
		t.Fatalf("DueTickets = %+v, %v", due, err)
	}
	if changed, err := db.ExpireTicket(ctx, "apr_bare", at.Add(time.Hour)); err != nil || !changed {
		t.Fatalf("ExpireTicket = %v, %v", changed, err)
	}
	if changed, err := db.DeleteTicket(ctx, "apr_bare"); err != nil || changed {
		t.Fatalf("DeleteTicket of an expired ticket = %v, %v", changed, err)
	}
}

// Only an agent's own tickets that still wait count: decided, expired and
// other agents' tickets do not.
func testCountPendingTickets(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ticket := func(id, agent string, st approval.Status, expires time.Time) {
		t.Helper()
		tk := approval.Ticket{ID: id, Status: st, AgentID: agent, Args: json.RawMessage(`{}`),
			OnTimeout: approval.TimeoutDeny, CreatedAt: at, ExpiresAt: expires}
		if err := db.InsertTicket(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	ticket("apr_w1", "a", approval.Pending, at.Add(time.Hour))
	ticket("apr_w2", "a", approval.Pending, at.Add(2*time.Hour))
	ticket("apr_due", "a", approval.Pending, at)
	ticket("apr_ok", "a", approval.Approved, at.Add(time.Hour))
	ticket("apr_b", "b", approval.Pending, at.Add(time.Hour))
	for _, c := range []struct {
		agent string
		now   time.Time
		want  int
	}{{"a", at, 2}, {"a", at.Add(90 * time.Minute), 1}, {"b", at, 1}, {"c", at, 0}} {
		if n, err := db.CountPendingTickets(ctx, c.agent, c.now); err != nil || n != c.want {
			t.Errorf("CountPendingTickets(%s, %s) = %d, %v; want %d", c.agent, c.now.Format(time.Kitchen), n, err, c.want)
		}
	}
}

func testDecideTicketOnlyApprovesOrDenies(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tk := approval.Ticket{ID: "apr_1", Status: approval.Pending, AgentID: "a", Args: json.RawMessage(`{}`),
		OnTimeout: approval.TimeoutDeny, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	if err := db.InsertTicket(ctx, tk); err != nil {
		t.Fatal(err)
	}
	for _, to := range []approval.Status{approval.Used, approval.Pending, approval.Expired, "bogus"} {
		if _, err := db.DecideTicket(ctx, tk.ID, to, "x", "", at, time.Time{}); err == nil {
			t.Errorf("DecideTicket to %q accepted", to)
		}
	}
	// At or after expiry nothing can be decided.
	if changed, err := db.DecideTicket(ctx, tk.ID, approval.Approved, "x", "", at.Add(time.Hour), at.Add(2*time.Hour)); changed || err != nil {
		t.Fatalf("decided at expiry: %v %v", changed, err)
	}
	if got, _ := db.GetTicket(ctx, tk.ID); got.Status != approval.Pending {
		t.Fatalf("status %s", got.Status)
	}
	if changed, err := db.DecideTicket(ctx, tk.ID, approval.Denied, "x", "no", at, time.Time{}); !changed || err != nil {
		t.Fatalf("deny: %v %v", changed, err)
	}
	if changed, _ := db.DecideTicket(ctx, tk.ID, approval.Approved, "y", "", at, at.Add(time.Hour)); changed {
		t.Fatal("a denied ticket was approved")
	}
}

// An approved ticket is used by exactly one of many concurrent
// redemptions, through as many store handles (replicas, where the backend
// has them) as there are redeemers; given back, it can be used once more.
func testTicketRedeemedOnce(t *testing.T, b Backend) {
	opener := b.Fresh(t)
	const handles, tries = 3, 24
	var dbs []Store
	for i := range handles {
		name := []string{"r1", "r2", "r3"}[i]
		dbs = append(dbs, opener(t, name, NewKey(t, "agentgov-test/"+name).Text))
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tk := approval.Ticket{ID: "apr_once", Status: approval.Pending, AgentID: "a", Args: json.RawMessage(`{}`),
		OnTimeout: approval.TimeoutDeny, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	if err := dbs[0].InsertTicket(bg, tk); err != nil {
		t.Fatal(err)
	}
	if changed, err := dbs[1].DecideTicket(bg, tk.ID, approval.Approved, "fin", "", at, at.Add(time.Hour)); !changed || err != nil {
		t.Fatalf("approve: %v %v", changed, err)
	}
	var won atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			by := "dec_" + string(rune('A'+i))
			changed, err := dbs[i%handles].RedeemTicket(bg, tk.ID, at.Add(time.Minute), by)
			if err != nil {
				t.Error(err)
			}
			if changed {
				won.Add(1)
				winner.Store(by)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d redemptions succeeded, want exactly 1", won.Load())
	}
	by := winner.Load().(string)
	got, err := dbs[2].GetTicket(bg, tk.ID)
	if err != nil || got.Status != approval.Used || got.UsedBy != by {
		t.Fatalf("ticket after redemption: %+v, %v", got, err)
	}
	if changed, _ := dbs[0].UnredeemTicket(bg, tk.ID, "dec_other"); changed {
		t.Fatal("a ticket was given back by a decision that did not use it")
	}
	if changed, err := dbs[0].UnredeemTicket(bg, tk.ID, by); !changed || err != nil {
		t.Fatalf("give back: %v %v", changed, err)
	}
	if changed, err := dbs[1].RedeemTicket(bg, tk.ID, at.Add(2*time.Minute), "dec_again"); !changed || err != nil {
		t.Fatalf("redeem after give-back: %v %v", changed, err)
	}
}
