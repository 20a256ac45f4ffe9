package stack

import (
	"context"
	"testing"
	"time"

	"github.com/agentgov/agentgov/govern"
)

// A flood of one kind of notice passes the first of each window and
// counts the rest; another kind is passed all the same, and the count goes
// with the next window's notice of that kind.
func TestNoticesOfAFloodAreCountedNotLogged(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	var got []govern.Notice
	notify := LimitNotices(func(_ context.Context, n govern.Notice) { got = append(got, n) }, func() time.Time { return now })
	for range 500 {
		notify(context.Background(), govern.Notice{Kind: "store_failed", Agent: "a1", Message: "database is locked"})
	}
	notify(context.Background(), govern.Notice{Kind: "kill", Message: "runaway"})
	if len(got) != noticeLogPerKind+1 || got[len(got)-1].Kind != "kill" {
		t.Fatalf("%d notices passed of 500 store failures and a kill", len(got))
	}
	got = nil
	now = now.Add(noticeLogWindow)
	notify(context.Background(), govern.Notice{Kind: "store_failed", Agent: "a1", Message: "database is locked"})
	if len(got) != 1 || got[0].Fields["not_logged_before"] != 490 {
		t.Fatalf("the next window's notice: %+v", got)
	}
}
