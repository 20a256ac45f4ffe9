package govern_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store/sqlite"
)

// storeDetail is what a failing store says about itself: where the
// database is and who connects to it. An agent must not learn it.
const storeDetail = "failed to connect to `user=agentgov database=prod`: db-7.internal:5432: connection refused"

// brokenSessions is the real SQLite session store, failing every call.
type brokenSessions struct{ *sqlite.DB }

func (brokenSessions) InsertSession(context.Context, session.Session) (session.Session, bool, error) {
	return session.Session{}, false, errors.New(storeDetail)
}
func (brokenSessions) GetSession(context.Context, string, string) (session.Session, error) {
	return session.Session{}, errors.New(storeDetail)
}
func (brokenSessions) FindSessions(context.Context, string) ([]session.Session, error) {
	return nil, errors.New(storeDetail)
}
func (brokenSessions) UpdateSession(context.Context, session.Session, session.Session) (bool, error) {
	return false, errors.New(storeDetail)
}

// A decision denied because a store failed says which stage failed, not
// the store's own error; that goes to the operator, in a store_failed
// notice with the decision's id.
func TestStoreFailureDetailGoesToTheOperatorNotTheAgent(t *testing.T) {
	log, db := openAudit(t)
	fa := &failingAuditor{Log: log}
	var mu sync.Mutex
	var notices []govern.Notice
	notify := func(_ context.Context, n govern.Notice) {
		mu.Lock()
		notices = append(notices, n)
		mu.Unlock()
	}
	sessions := session.New(brokenSessions{db}, time.Now)
	eng := govern.New(mustSet(t, basic), govern.WithAudit(fa), govern.WithSessions(sessions), govern.WithNotify(notify))
	ctx := context.Background()

	for _, c := range []struct {
		name    string
		session string
		audit   bool // the audit log fails
		reason  string
		detail  string
	}{
		{"session store", "s-1", false, "session state unavailable", storeDetail},
		{"audit log", "", true, "audit log unavailable, failing closed", "disk full"},
	} {
		fa.broken.Store(c.audit)
		mu.Lock()
		notices = nil
		mu.Unlock()
		a := tool("read_file", map[string]any{"path": "/tmp/x"})
		a.Session = c.session
		d, err := eng.Decide(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		why := strings.Join(d.Reasons, "; ")
		if d.Effect != action.Deny || !strings.Contains(why, c.reason) || strings.Contains(why, c.detail) {
			t.Errorf("%s failing: %s %q; want a deny naming %q without the store's error", c.name, d.Effect, why, c.reason)
		}
		mu.Lock()
		var told bool
		for _, n := range notices {
			if n.Kind == "store_failed" && n.Decision == d.ID && n.Agent == "a1" && strings.Contains(n.Message, c.detail) {
				told = true
			}
		}
		mu.Unlock()
		if !told {
			t.Errorf("%s failing: no store_failed notice with the store's error for decision %s: %+v", c.name, d.ID, notices)
		}
	}
}
