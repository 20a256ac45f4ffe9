package sqlite_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/store/sqlite"
)

func openTicketDB(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Every field of a ticket comes back as it went in, including empty lists
// and times that were never set.
func TestTicketRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTicketDB(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	full := approval.Ticket{
		ID: "apr_full", Status: approval.Approved, AgentID: "a", Session: "s",
		Tool: action.Tool{Server: "payments", Name: "send"}, Point: action.PreToolCall,
		Destination: "api.example", Model: "m", Resource: action.Resource{Type: "t", ID: "i", Permission: "write"},
		ArgsDigest: "abc", Args: json.RawMessage(`{"x":1}`), PolicyDigest: "p",
		Rules: []string{"r1", "r2"}, Reasons: []string{"why"}, Approvers: []string{"group:finance"},
		OnTimeout: approval.TimeoutAllow, DecisionID: "dec_1",
		CreatedAt: at, ExpiresAt: at.Add(time.Hour), DecidedAt: at.Add(time.Minute), DecidedBy: "fiona",
		Note: "ok", RedeemBy: at.Add(2 * time.Hour), UsedAt: at.Add(3 * time.Minute),
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
	list, err := db.ListTickets(ctx, approval.Pending, approval.Denied)
	if err != nil || len(list) != 1 || list[0].ID != "apr_bare" {
		t.Fatalf("ListTickets(pending, denied) = %+v, %v", list, err)
	}
	if list, _ := db.ListTickets(ctx); len(list) != 2 || list[0].ID != "apr_full" {
		t.Fatalf("ListTickets() = %+v", list)
	}
}

func TestDecideTicketOnlyApprovesOrDenies(t *testing.T) {
	ctx := context.Background()
	db := openTicketDB(t)
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
}
