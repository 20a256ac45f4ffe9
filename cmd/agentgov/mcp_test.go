package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/policies"
	"github.com/agentgov/agentgov/store/sqlite"
)

// fsServer is the real npm filesystem server, when its package is
// installed.
func fsServer(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	srv, _ := filepath.Abs("../../mcp/testdata/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
	if _, err := os.Stat(srv); err != nil {
		t.Skip("npm packages not installed; run: npm ci --prefix mcp/testdata/node")
	}
	return srv
}

// engageIn engages a kill switch in a data directory, as a server sharing
// it would.
func engageIn(t *testing.T, data string, sw killswitch.Switch) killswitch.Switch {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.OpenDir(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kill, err := killswitch.New(ctx, db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := kill.Engage(ctx, sw)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// mcpRunClient starts `agentgov mcp run` over the filesystem server, as a
// desktop client launches it, and connects the Go SDK client to it.
func mcpRunClient(t *testing.T, data, files string, flags ...string) (*sdk.ClientSession, error) {
	t.Helper()
	args := append(append([]string{"mcp", "run", "--data", data, "--name", "fs"}, flags...), "--", "node", fsServer(t), files)
	cmd := exec.Command(binPath, args...)
	stderr := &lockedWriter{b: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stderr = stderr
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "desktop", Version: "1"}, nil).Connect(context.Background(), &sdk.CommandTransport{Command: cmd}, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	t.Cleanup(func() {
		if t.Failed() {
			stderr.mu.Lock()
			t.Logf("mcp run said:\n%s", stderr.b)
			stderr.mu.Unlock()
		}
	})
	return cs, err
}

// `mcp run` keeps the kill switches of its data directory: a system switch
// engaged there before it starts refuses the session itself.
func TestMCPRunStopsForASystemSwitchInItsDataDirectory(t *testing.T) {
	data, files := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(files, "notes.txt"), []byte("hello"), 0o644)
	sw := engageIn(t, data, killswitch.Switch{Scope: killswitch.System, Reason: "incident 42", By: "ops"})
	cs, err := mcpRunClient(t, data, files)
	if err == nil {
		res, cerr := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(files, "notes.txt")}})
		t.Fatalf("a session under a system kill switch opened; a call through it = %+v %v", res, cerr)
	}
	if !strings.Contains(err.Error(), sw.ID) || !strings.Contains(err.Error(), "incident 42") {
		t.Fatalf("connect under a system kill switch: %v; want the switch named", err)
	}
}

// The variant: a switch engaged while it runs, here by a policy's isolate
// response to a high-severity deny, stops the agent's next calls, even
// ones the policy allows. (The data directory is this process's alone, so
// an operator engages switches through a server's API.)
func TestMCPRunStopsForASwitchEngagedWhileItRuns(t *testing.T) {
	data, files, pol := t.TempDir(), t.TempDir(), t.TempDir()
	notes, secret := filepath.Join(files, "notes.txt"), filepath.Join(files, "secret.txt")
	os.WriteFile(notes, []byte("hello"), 0o644)
	os.WriteFile(secret, []byte("key"), 0o644)
	os.WriteFile(filepath.Join(pol, "isolate.yaml"), []byte(`version: agentgov/v1
name: isolate-on-secrets
default: allow
rules:
  - id: no-secrets
    match: {tools: [read_text_file]}
    when: 'args.path.endsWith("secret.txt")'
    effect: deny
    severity: high
responses:
  high: [isolate]
`), 0o644)
	cs, err := mcpRunClient(t, data, files, "--policies", pol)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	ctx := context.Background()
	read := func(path string) *sdk.CallToolResult {
		t.Helper()
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": path}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := read(notes); res.IsError {
		t.Fatalf("a call before the switch: %+v", res)
	}
	if res := read(secret); !res.IsError || !strings.Contains(textOf(res), "no-secrets") {
		t.Fatalf("the denied call: %s", textOf(res))
	}
	res := read(notes)
	if !res.IsError || !strings.Contains(textOf(res), "kill switch") {
		t.Fatalf("an allowed call after the isolate response: %s; want the kill switch named", textOf(res))
	}
	if _, err := cs.ListTools(ctx, nil); err == nil || !strings.Contains(err.Error(), "kill switch") {
		t.Fatalf("tools/list under the switch: %v; want it refused", err)
	}
}

func textOf(res *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// failingRecorder is an audit log that cannot be written.
type failingRecorder struct{}

func (failingRecorder) Append(context.Context, string, any) (uint64, error) {
	return 0, errors.New("disk full")
}

type memoryRecorder struct {
	mu    sync.Mutex
	kinds []string
	recs  []any
}

func (m *memoryRecorder) Append(_ context.Context, kind string, rec any) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kinds = append(m.kinds, kind)
	m.recs = append(m.recs, rec)
	return uint64(len(m.kinds)), nil
}

// An approval given through elicitation on stdio is in the audit log
// before it takes effect, naming who gave it; if it cannot be written
// there, nothing is approved.
func TestElicitedApprovalIsAuditedBeforeItTakesEffect(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	approvals := approval.New(db, time.Now)
	ticket := func() string {
		a := &action.Action{Agent: action.Agent{ID: "mcp-stdio"}, Tool: action.Tool{Server: "fs", Name: "write_file"}}
		tk, err := approvals.Create(ctx, approval.Request{Action: a, Shown: a})
		if err != nil {
			t.Fatal(err)
		}
		return tk.ID
	}

	set, err := policies.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	engine := func(rec govern.Auditor) approvingEngine {
		return approvingEngine{govern.New(set, govern.WithAudit(rec), govern.WithApprovals(approvals))}
	}

	id := ticket()
	err = engine(failingRecorder{}).Approve(ctx, id, "os-user:alice", "via MCP elicitation on stdio")
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("approval with a broken audit log: %v; want it refused", err)
	}
	if tk, _ := approvals.Get(ctx, id); tk.Status != approval.Pending {
		t.Fatalf("the ticket is %s after an approval that could not be audited; want it pending", tk.Status)
	}

	id = ticket()
	rec := &memoryRecorder{}
	if err := engine(rec).Approve(ctx, id, "os-user:alice", "via MCP elicitation on stdio"); err != nil {
		t.Fatal(err)
	}
	if tk, _ := approvals.Get(ctx, id); tk.Status != approval.Approved || tk.DecidedBy != "os-user:alice" {
		t.Fatalf("the ticket after approval: %+v", tk)
	}
	if len(rec.kinds) != 1 || rec.kinds[0] != "approval" || !strings.Contains(stringOf(rec.recs[0]), `"os-user:alice"`) || !strings.Contains(stringOf(rec.recs[0]), "mcp_elicitation") {
		t.Fatalf("audit records = %v %v; want the approval, naming who gave it", rec.kinds, rec.recs)
	}
}

func stringOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
