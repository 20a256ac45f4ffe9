package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/agentgov/agentgov/store/sqlite"
)

// These tests play attackers against the real server: package server over
// the real engine, audit log and stores on a SQLite file. Where a test needs
// a failure, a fake wraps the real store or log and injects it.

const testPolicy = `
version: agentgov/v1
name: test
default: deny
rules:
  - id: reads
    match: {tools: ["read_*"]}
    effect: allow
  - id: open-model
    match: {points: [pre_model_call]}
    effect: allow
  - id: payments
    match: {tools: [pay]}
    when: 'args.amount > 1000'
    effect: require_approval
    approval: {approvers: ["group:finance"], timeout: 30m}
  - id: wire
    match: {tools: [wire]}
    effect: require_approval
`

// auditor wraps the engine's audit log: it fails appends while broken is
// set, and calls onAppend after each append that succeeded.
type auditor struct {
	*audit.Log
	broken   atomic.Bool
	mu       sync.Mutex
	onAppend func(kind string)
}

func (a *auditor) Append(ctx context.Context, kind string, rec any) (uint64, error) {
	if a.broken.Load() {
		return 0, errors.New("audit disk full")
	}
	idx, err := a.Log.Append(ctx, kind, rec)
	a.mu.Lock()
	f := a.onAppend
	a.mu.Unlock()
	if err == nil && f != nil {
		f(kind)
	}
	return idx, err
}

func (a *auditor) after(f func(kind string)) {
	a.mu.Lock()
	a.onAppend = f
	a.mu.Unlock()
}

// store is the real database with a hook called after each write of a
// kill switch or an approval decision succeeds.
type store struct {
	*sqlite.DB
	mu      sync.Mutex
	onWrite func()
}

func (s *store) wrote() {
	s.mu.Lock()
	f := s.onWrite
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

func (s *store) after(f func()) {
	s.mu.Lock()
	s.onWrite = f
	s.mu.Unlock()
}

func (s *store) InsertSwitch(ctx context.Context, sw killswitch.Switch) error {
	err := s.DB.InsertSwitch(ctx, sw)
	if err == nil {
		s.wrote()
	}
	return err
}

func (s *store) ReleaseSwitch(ctx context.Context, id, by string, at time.Time) (bool, error) {
	ok, err := s.DB.ReleaseSwitch(ctx, id, by, at)
	if err == nil {
		s.wrote()
	}
	return ok, err
}

func (s *store) DecideTicket(ctx context.Context, id string, to approval.Status, by, note string, now, redeemBy time.Time) (bool, error) {
	ok, err := s.DB.DecideTicket(ctx, id, to, by, note, now, redeemBy)
	if err == nil {
		s.wrote()
	}
	return ok, err
}

type env struct {
	t         *testing.T
	url       string
	srv       *server.Server
	eng       *govern.Engine
	log       *audit.Log
	audit     *auditor
	db        *sqlite.DB
	store     *store
	kill      *killswitch.Switchboard
	sessions  *session.Sessions
	approvals *approval.Approvals
	budgets   *budget.Budgets
}

func hashOf(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// start serves the test policy over the real engine and stores; each of
// with may add to the server's options (a registry, a trust keeper).
func start(t *testing.T, with ...func(*server.Options, *sqlite.DB)) *env {
	t.Helper()
	set, err := policy.Compile(mustDocs(t, testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bg, stop := context.WithCancel(context.Background())
	db, err := sqlite.OpenDir(bg, dir)
	if err != nil {
		t.Fatal(err)
	}
	signer, verifier, err := audit.LoadOrCreateKey(dir, "server-test")
	if err != nil {
		t.Fatal(err)
	}
	alog, err := audit.Open(bg, db, signer, verifier, audit.Options{CheckpointInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st := &store{DB: db}
	kill, err := killswitch.New(bg, st, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	budgets, err := budget.New(db, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sessions := session.New(db, time.Now)
	approvals := approval.New(st, time.Now)
	au := &auditor{Log: alog}
	eng := govern.New(set, govern.WithAudit(au), govern.WithKillSwitch(kill), govern.WithSessions(sessions),
		govern.WithBudgets(budgets), govern.WithApprovals(approvals), govern.WithOutcomes(db))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); alog.Run(bg) }()

	cfg := &config.Config{Tokens: []config.Token{
		{Name: "ops", Role: config.Admin, SHA256: hashOf("admin-tok")},
		{Name: "fin", Role: config.Approver, Groups: []string{"finance"}, SHA256: hashOf("fin-tok")},
		{Name: "a1", Role: config.AgentRole, Agent: "a1", Principal: action.Principal{User: "alice", Team: "search", Org: "acme"}, SHA256: hashOf("a1-tok")},
		{Name: "a2", Role: config.AgentRole, Agent: "a2", Principal: action.Principal{User: "bob", Team: "search", Org: "acme"}, SHA256: hashOf("a2-tok")},
	}}
	cfg.Fill()
	opt := server.Options{Config: cfg, Engine: eng, Audit: alog, Idempotency: db, Decisions: db, Store: db, Sessions: sessions,
		Kill: kill, Approvals: approvals, Budgets: budgets, Logger: slog.New(slog.DiscardHandler)}
	for _, f := range with {
		f(&opt, db)
	}
	srv, err := server.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		stop()
		wg.Wait()
		db.Close()
	})
	return &env{t: t, url: hs.URL, srv: srv, eng: eng, log: alog, audit: au, db: db, store: st, kill: kill,
		sessions: sessions, approvals: approvals, budgets: budgets}
}

func mustDocs(t *testing.T, src string) []*policy.Document {
	t.Helper()
	d, err := policy.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return []*policy.Document{d}
}

// call sends a request and decodes the JSON answer into a map.
func (e *env) call(method, path, token, body string, headers ...string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	return decodeAnswer(e.t, method+" "+path, resp.StatusCode, resp.Body)
}

// hangUp serves a request whose client goes away in the middle: right
// after the first audit entry is written (atAudit), or right after the
// change is stored. Either is where a handler working on the request's
// context loses the entry or the change.
func (e *env) hangUp(atAudit bool, method, path, token, body string) (int, map[string]any) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if atAudit {
		e.audit.after(func(string) { cancel() })
		defer e.audit.after(nil)
	} else {
		e.store.after(cancel)
		defer e.store.after(nil)
	}
	req := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return decodeAnswer(e.t, method+" "+path, rec.Code, rec.Body)
}

func decodeAnswer(t *testing.T, what string, status int, body io.Reader) (int, map[string]any) {
	t.Helper()
	raw, _ := io.ReadAll(body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %d, not JSON: %s", what, status, raw)
		}
	}
	return status, m
}

// entries returns the audit log's entries of kind, oldest first, as their
// records.
func (e *env) entries(kind string) []map[string]any {
	e.t.Helper()
	es, err := e.log.Entries(context.Background(), -1, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []map[string]any
	for _, en := range es {
		if en.Kind != kind {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(en.Record, &m); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func errMsg(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// An action with nothing to decide on is refused with 400 naming the field,
// and nothing is decided or logged.
func TestDecideRefusesActionsWithNothingToDecideOn(t *testing.T) {
	e := start(t)
	before := e.log.Size()
	for _, c := range []struct{ body, field string }{
		{`{}`, "tool.name"},
		{`null`, "tool.name"},
		{`{"args":{"path":"/tmp/x"}}`, "tool.name"},
		{`{"point":"pre_model_call","content":"hello"}`, "model"},
		{`{"point":"output"}`, "content"},
	} {
		code, m := e.call("POST", "/v1/decide", "a1-tok", c.body)
		if code != 400 || !strings.HasPrefix(errMsg(m), c.field+":") {
			t.Errorf("%s: %d %v, want 400 naming %s", c.body, code, m, c.field)
		}
	}
	// An admin deciding on an agent's behalf gets the same answer.
	if code, m := e.call("POST", "/v1/decide", "admin-tok", `{"agent":{"id":"a1"}}`); code != 400 || !strings.HasPrefix(errMsg(m), "tool.name:") {
		t.Errorf("admin: %d %v", code, m)
	}
	if e.log.Size() != before {
		t.Errorf("refused requests were logged: %d entries -> %d", before, e.log.Size())
	}
}
