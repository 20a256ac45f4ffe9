package govern_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/store/sqlite"
)

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

const basic = `
version: agentgov/v1
name: basic
default: deny
rules:
  - id: reads
    match: {tools: ["read_*"]}
    effect: allow
  - id: no-etc
    match: {tools: [read_file]}
    when: 'args.path.startsWith("/etc/")'
    effect: deny
  - id: login
    match: {tools: [login]}
    effect: allow
    obligations: [{type: redact, fields: [args.password]}]
`

func tool(name string, args map[string]any) action.Action {
	return action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: name}, Args: args}
}

func TestDecideAppliesPolicy(t *testing.T) {
	eng := govern.New(mustSet(t, basic))
	ctx := context.Background()
	d, err := eng.Decide(ctx, tool("read_file", map[string]any{"path": "/tmp/x"}))
	if err != nil || d.Effect != action.Allow || d.Rules[0] != "reads" || d.ID.IsZero() {
		t.Fatalf("decision %+v err %v", d, err)
	}
	d2, _ := eng.Decide(ctx, tool("read_file", map[string]any{"path": "/etc/shadow"}))
	if d2.Effect != action.Deny || d2.ID == d.ID {
		t.Fatalf("second decision %+v (ids %s %s)", d2, d.ID, d2.ID)
	}
	if d.AuditIndex != nil {
		t.Fatal("audit index without an audit log")
	}
}

func TestInvalidActionIsDeniedWithTheField(t *testing.T) {
	eng := govern.New(mustSet(t, basic))
	a := tool("read_file", nil)
	a.Point = "pre_tool"
	d, err := eng.Decide(context.Background(), a)
	if err == nil || d.Effect != action.Deny || !strings.Contains(d.Reasons[0], "point") {
		t.Fatalf("decision %+v err %v", d, err)
	}
}

func TestLoadSwapsAtomicallyAndKeepsTheOldSetOnError(t *testing.T) {
	eng := govern.New(mustSet(t, basic))
	ctx := context.Background()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "version: agentgov/v1\nname: x\nrules:\n  - id: r\n    when: 'args.x +'\n    effect: deny\n")
	set, err := policy.Load(bad)
	if err == nil {
		t.Fatal("bad policy loaded")
	}
	if err := eng.Load(ctx, set); err == nil {
		t.Fatal("engine accepted a nil set")
	}
	if d, _ := eng.Decide(ctx, tool("read_x", nil)); d.Effect != action.Allow {
		t.Fatalf("old set not in force: %+v", d)
	}
	if err := eng.Load(ctx, mustSet(t, "version: agentgov/v1\nname: deny-all\n")); err != nil {
		t.Fatal(err)
	}
	if d, _ := eng.Decide(ctx, tool("read_x", nil)); d.Effect != action.Deny {
		t.Fatalf("new set not in force: %+v", d)
	}
}

func TestConcurrentDecideAndLoad(t *testing.T) {
	allow := mustSet(t, "version: agentgov/v1\nname: a\ndefault: allow\n")
	denyAll := mustSet(t, "version: agentgov/v1\nname: d\ndefault: deny\n")
	eng := govern.New(allow)
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := sync.Map{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				d, _ := eng.Decide(ctx, tool("x", nil))
				if d.Effect != action.Allow && d.Effect != action.Deny {
					t.Errorf("effect %s", d.Effect)
				}
				if _, dup := ids.LoadOrStore(d.ID, true); dup {
					t.Errorf("duplicate id %s", d.ID)
				}
			}
		}()
	}
	for i := 0; i < 100; i++ {
		s := allow
		if i%2 == 0 {
			s = denyAll
		}
		if err := eng.Load(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestRateLimits(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	set := mustSet(t, `
version: agentgov/v1
name: rl
default: allow
rate_limits:
  - {id: fixed, match: {tools: [f]}, limit: 3, per: 1m, key: agent, window: fixed}
  - {id: sliding, match: {tools: [s]}, limit: 4, per: 1m, key: session}
`)
	eng := govern.New(set, govern.WithClock(clock))
	ctx := context.Background()
	decide := func(name, agent, session string) action.Effect {
		a := tool(name, nil)
		a.Agent.ID, a.Session = agent, session
		d, _ := eng.Decide(ctx, a)
		return d.Effect
	}
	for i := 0; i < 3; i++ {
		if e := decide("f", "a1", ""); e != action.Allow {
			t.Fatalf("call %d: %s", i, e)
		}
	}
	if e := decide("f", "a1", ""); e != action.Deny {
		t.Fatal("4th call in the window allowed")
	}
	if e := decide("f", "a2", ""); e != action.Allow {
		t.Fatal("another agent shares the counter")
	}
	now = now.Add(time.Minute)
	if e := decide("f", "a1", ""); e != action.Allow {
		t.Fatal("new fixed window still full")
	}

	// Sliding: 4 calls at the end of one window; half-way into the next, half
	// of them still count, so only 2 more fit.
	now = time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
	for i := 0; i < 4; i++ {
		if e := decide("s", "a1", "s1"); e != action.Allow {
			t.Fatalf("sliding call %d: %s", i, e)
		}
	}
	now = now.Add(90 * time.Second)
	got := 0
	for i := 0; i < 4; i++ {
		if decide("s", "a1", "s1") == action.Allow {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("sliding window admitted %d, want 2", got)
	}
}

func openAudit(t *testing.T) (*audit.Log, *sqlite.DB) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	signer, verifier, err := audit.LoadOrCreateKey(dir, "agentgov-test")
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(ctx, db, signer, verifier, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { log.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; db.Close() })
	return log, db
}

// allowedEntry checks that d allowed and was audited, and returns its audit
// entry as JSON.
func allowedEntry(t *testing.T, log *audit.Log, d action.Decision) string {
	t.Helper()
	if d.Effect != action.Allow || d.AuditIndex == nil {
		t.Fatalf("decision %+v", d)
	}
	entries, err := log.Entries(context.Background(), int64(*d.AuditIndex)-1, 1)
	if err != nil || len(entries) != 1 {
		t.Fatalf("entries %v err %v", entries, err)
	}
	raw, _ := json.Marshal(entries[0])
	return string(raw)
}

func TestDecisionsAreAuditedWithRedaction(t *testing.T) {
	log, _ := openAudit(t)
	eng := govern.New(mustSet(t, basic), govern.WithAudit(log))
	ctx := govern.WithTrace(context.Background(), govern.Trace{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", CorrelationID: "req-7"})
	d, _ := eng.Decide(ctx, tool("login", map[string]any{"user": "bob", "password": "hunter2"}))
	s := allowedEntry(t, log, d)
	for _, want := range []string{`[REDACTED]`, `"user":"bob"`, d.ID.String(), "req-7", "4bf92f3577b34da6a3ce929d0e0e4736"} {
		if !strings.Contains(s, want) {
			t.Errorf("audit entry lacks %s: %s", want, s)
		}
	}
	if strings.Contains(s, "hunter2") {
		t.Fatalf("password reached the audit log: %s", s)
	}
	// The digest is of the arguments sent, as an approval ticket's is.
	if sent, _, _ := action.ArgsDigest(map[string]any{"user": "bob", "password": "hunter2"}); !strings.Contains(s, `"args_digest":"`+sent+`"`) {
		t.Errorf("audit entry lacks the digest of the arguments sent (%s): %s", sent, s)
	}
}

// The audit log is append-only: a credential or personal data in what an
// action carries never reaches it, even when no policy asks for redaction.
// The digest still names the exact arguments.
func TestAuditRecordsMaskSecretsAndPersonalData(t *testing.T) {
	log, _ := openAudit(t)
	eng := govern.New(mustSet(t, "version: agentgov/v1\nname: open\ndefault: allow\nrules: []\n"), govern.WithAudit(log))
	ctx := context.Background()
	args := map[string]any{
		"path":  "/srv/app.env",
		"lines": []any{"region = eu-west-1", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"},
		"owner": map[string]any{"email": "jane.doe@example.com", "team": "payments"},
	}
	a := tool("write_file", args)
	a.Point = action.PostToolCall
	a.Content = "card 4111 1111 1111 1111 charged"
	d, _ := eng.Decide(ctx, a)
	s := allowedEntry(t, log, d)
	for _, leaked := range []string{"AKIAIOSFODNN7EXAMPLE", "jane.doe@example.com", "4111 1111 1111 1111"} {
		if strings.Contains(s, leaked) {
			t.Errorf("%s reached the audit log: %s", leaked, s)
		}
	}
	for _, want := range []string{"[REDACTED:aws_access_key]", "region = eu-west-1", `"team":"payments"`, "/srv/app.env", "charged"} {
		if !strings.Contains(s, want) {
			t.Errorf("audit entry lacks %s: %s", want, s)
		}
	}
	digest, _, _ := action.ArgsDigest(args)
	if !strings.Contains(s, digest) {
		t.Errorf("audit entry lacks the digest of the unmasked arguments %s: %s", digest, s)
	}
	// The caller's arguments are not touched.
	if args["lines"].([]any)[1] != "aws_access_key_id = AKIAIOSFODNN7EXAMPLE" || args["owner"].(map[string]any)["email"] != "jane.doe@example.com" {
		t.Errorf("masking changed the caller's arguments: %v", args)
	}
}

// failingAuditor wraps the real log and fails while broken is set.
type failingAuditor struct {
	*audit.Log
	broken atomic.Bool
}

func (f *failingAuditor) Append(ctx context.Context, kind string, rec any) (uint64, error) {
	if f.broken.Load() {
		return 0, errors.New("disk full")
	}
	return f.Log.Append(ctx, kind, rec)
}

func TestAuditFailureDenies(t *testing.T) {
	log, _ := openAudit(t)
	fa := &failingAuditor{Log: log}
	eng := govern.New(mustSet(t, basic), govern.WithAudit(fa))
	ctx := context.Background()
	fa.broken.Store(true)
	d, _ := eng.Decide(ctx, tool("read_file", map[string]any{"path": "/tmp/x"}))
	if d.Effect != action.Deny || !strings.Contains(d.Reasons[0], "audit log unavailable") {
		t.Fatalf("decision with a broken log: %+v", d)
	}
	fa.broken.Store(false)
	d, _ = eng.Decide(ctx, tool("read_file", map[string]any{"path": "/tmp/x"}))
	if d.Effect != action.Allow || d.AuditIndex == nil {
		t.Fatalf("decision after recovery: %+v", d)
	}
}

func TestOutcomeIsValidatedAndAudited(t *testing.T) {
	log, _ := openAudit(t)
	eng := govern.New(mustSet(t, basic), govern.WithAudit(log))
	ctx := context.Background()
	d, _ := eng.Decide(ctx, tool("read_file", nil))
	if err := eng.Outcome(ctx, d.ID, action.Outcome{Status: "maybe"}); err == nil {
		t.Fatal("bad outcome accepted")
	}
	before := log.Size()
	if err := eng.Outcome(ctx, d.ID, action.Outcome{Status: "ok", LatencyMS: 12}); err != nil {
		t.Fatal(err)
	}
	if log.Size() != before+1 {
		t.Fatalf("outcome not audited: size %d -> %d", before, log.Size())
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Under a policy that allows by default, an action with nothing to decide on
// (no agent, a tool point without a tool, a model point without a model)
// is still denied, with the field named, and the error says so too.
func TestActionsWithNothingToDecideOnAreDenied(t *testing.T) {
	open := mustSet(t, "version: agentgov/v1\nname: open\ndefault: allow\n")
	log, _ := openAudit(t)
	for name, eng := range map[string]*govern.Engine{"library": govern.New(open), "audited": govern.New(open, govern.WithAudit(log))} {
		for _, c := range []struct {
			a     action.Action
			field string
		}{
			{action.Action{}, "agent.id"},
			{action.Action{Agent: action.Agent{ID: "a1"}}, "tool.name"},
			{action.Action{Agent: action.Agent{ID: "a1"}, Point: action.PostToolCall, Content: "result"}, "tool.name"},
			{action.Action{Agent: action.Agent{ID: "a1"}, Point: action.PreModelCall, Content: "hi"}, "model"},
			{action.Action{Agent: action.Agent{ID: "a1"}, Point: action.Output}, "content"},
		} {
			d, err := eng.Decide(context.Background(), c.a)
			var fe *action.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("%s: %+v: error %v, want one naming %s", name, c.a, err, c.field)
			}
			if d.Effect != action.Deny || len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0], c.field) {
				t.Errorf("%s: %+v: decision %+v, want a deny naming %s", name, c.a, d, c.field)
			}
		}
	}
}

// A rate limit keyed by session counts each agent's session apart: another
// agent using the same session id cannot use up this one's allowance.
func TestSessionRateLimitsAreCountedPerAgent(t *testing.T) {
	eng := govern.New(mustSet(t, `
version: agentgov/v1
name: rl
default: allow
rate_limits:
  - {id: per-session, match: {tools: [x]}, limit: 2, per: 1m, key: session}
`))
	ctx := context.Background()
	decide := func(agent string) action.Effect {
		a := tool("x", nil)
		a.Agent.ID, a.Session = agent, "s-1"
		d, _ := eng.Decide(ctx, a)
		return d.Effect
	}
	for range 2 {
		if decide("a2") != action.Allow {
			t.Fatal("a2 within its limit")
		}
	}
	if decide("a2") != action.Deny {
		t.Fatal("a2 over its limit")
	}
	if decide("a1") != action.Allow {
		t.Fatal("a2's calls in its s-1 used up a1's s-1")
	}
}
