package llmproxy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runSDK runs one node script of testdata/node against the proxy and decodes
// the JSON it prints. It skips, naming the install command, when node or the
// pinned SDKs are not installed.
func runSDK(t *testing.T, r *rig, script string, out any) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the SDK tests need Node 20 or later")
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "node"))
	for _, pkg := range []string{"openai", "@anthropic-ai/sdk"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Skip("the pinned SDKs are not installed: run `npm ci --prefix llmproxy/testdata/node`")
		}
	}
	// A bound so a hung SDK cannot hang the suite, not a speed assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PROXY_URL="+r.proxyURL, "AGENTGOV_TOKEN="+agentToken,
		"OPENAI_API_KEY=", "ANTHROPIC_API_KEY=", "OPENAI_BASE_URL=", "ANTHROPIC_BASE_URL=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("node %s printed %q: %v", script, stdout, err)
	}
}

type sdkError struct {
	Class   string `json:"class"`
	Status  int    `json:"status"`
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Error   string `json:"error"`
}

func (e sdkError) check(t *testing.T, name, class string, status int, msgHas string) {
	t.Helper()
	if e.Error != "" || e.Class != class || e.Status != status || !strings.Contains(e.Message, msgHas) {
		t.Errorf("%s: SDK raised %+v; want %s (%d) mentioning %q", name, e, class, status, msgHas)
	}
}

func TestOpenAISDKAgainstTheProxy(t *testing.T) {
	r := newRig(t, nil)
	var out struct {
		Chat struct {
			Content string
			Usage   struct{ Prompt_tokens, Completion_tokens int }
		}
		Stream struct {
			Text        string
			Chunks      int
			UsageChunks int
		}
		StreamWithUsage struct {
			Usage *struct{ Prompt_tokens, Completion_tokens int }
		}
		StreamHelper struct{ Content string }
		Embeddings   struct {
			Dims  int
			Usage struct{ Prompt_tokens int }
		}
		Models struct {
			Count   int
			HasMini bool
		}
		Denied, Budget, Approval, UnknownModel, BadRequest, UpstreamError, BadKey sdkError
		DeniedSystem, DeniedTool                                                  sdkError
		Approved, TwoAnswers                                                      string
	}
	runSDK(t, r, "openai.mjs", &out)

	if out.Chat.Content != "Hello from upstream" || out.Chat.Usage.Prompt_tokens != chatPromptTokens {
		t.Errorf("chat = %+v", out.Chat)
	}
	if out.Stream.Text != "Hello world" || out.Stream.UsageChunks != 0 || out.Stream.Chunks != 4 {
		t.Errorf("stream = %+v; want the text and no usage chunk the SDK did not ask for", out.Stream)
	}
	if u := out.StreamWithUsage.Usage; u == nil || u.Prompt_tokens != chatPromptTokens || u.Completion_tokens != chatCompletionTokens {
		t.Errorf("stream with include_usage: usage = %+v", u)
	}
	if out.StreamHelper.Content != "Hello world" {
		t.Errorf("stream helper = %+v", out.StreamHelper)
	}
	if out.Embeddings.Dims != 3 || out.Embeddings.Usage.Prompt_tokens != embedTokens {
		t.Errorf("embeddings = %+v", out.Embeddings)
	}
	if !out.Models.HasMini {
		t.Errorf("models = %+v", out.Models)
	}
	out.Denied.check(t, "policy deny", "PermissionDeniedError", 403, "rule no-forbidden")
	out.Budget.check(t, "budget", "RateLimitError", 429, "budget acme-monthly")
	out.Approval.check(t, "approval", "PermissionDeniedError", 403, "X-Agentgov-Approval: apr_1")
	out.UnknownModel.check(t, "unknown model", "PermissionDeniedError", 403, "llama-9000")
	out.BadRequest.check(t, "bad request", "BadRequestError", 400, "messages: required")
	out.UpstreamError.check(t, "upstream error", "BadRequestError", 400, "upstream says no")
	out.BadKey.check(t, "wrong key", "AuthenticationError", 401, "agentgov agent token")
	if out.Budget.Code != "budget_exceeded" || out.Budget.Type != "insufficient_quota" {
		t.Errorf("budget error code/type = %q/%q", out.Budget.Code, out.Budget.Type)
	}
	if out.Approved != "Hello from upstream" {
		t.Errorf("approved retry = %q", out.Approved)
	}
	out.DeniedSystem.check(t, "forbidden system prompt", "PermissionDeniedError", 403, "rule no-forbidden")
	out.DeniedTool.check(t, "forbidden tool definition", "PermissionDeniedError", 403, "rule no-forbidden")
	if out.TwoAnswers != "Hello from upstream" {
		t.Errorf("n=2 call = %q", out.TwoAnswers)
	}
	for _, s := range r.up.seen() {
		if lastUser(s.Body) == "two answers please" && (s.Body["max_tokens"] != float64(16_384) || s.Body["n"] != float64(2)) {
			t.Errorf("the n=2 call without a cap went upstream as %v; want the reserved cap of 16384 per answer", s.Body)
		}
	}

	// Every call was decided exactly once: the SDK did not retry refusals.
	// chat, stream, stream+usage, helper, embeddings, 3 refusals, approved,
	// upstream error, 2 content refusals, n=2 = 13 decisions; the unknown
	// model, bad request and bad key never reach a decision.
	if n := len(r.dec.decided()); n != 13 {
		t.Errorf("%d decisions, want 13 (SDK retried a refusal?)", n)
	}
	// Each of the 8 forwarded calls settled once, from upstream usage.
	if n := r.dec.outcomeCount(); n != 8 {
		t.Errorf("%d outcomes, want 8", n)
	}
	for _, a := range r.dec.decided() {
		if a.Agent.ID != "researcher-1" {
			t.Errorf("decided as %q", a.Agent.ID)
		}
	}
}

func TestAnthropicSDKAgainstTheProxy(t *testing.T) {
	r := newRig(t, nil)
	var out struct {
		Message struct {
			Text  string
			Usage struct{ Input_tokens, Output_tokens, Cache_read_input_tokens int }
		}
		Stream struct {
			Text, FinalText string
			Usage           struct{ Input_tokens, Output_tokens int }
		}
		RawStream                                                         struct{ Types []string }
		Denied, Budget, StreamDenied, Approval, UpstreamError, BadRequest sdkError
		DeniedSystem, DeniedToolResult                                    sdkError
	}
	runSDK(t, r, "anthropic.mjs", &out)

	if out.Message.Text != "Hello from upstream" || out.Message.Usage.Input_tokens != msgInputTokens || out.Message.Usage.Output_tokens != msgOutputTokens {
		t.Errorf("message = %+v", out.Message)
	}
	if out.Stream.Text != "Hello world" || out.Stream.FinalText != "Hello world" || out.Stream.Usage.Output_tokens != msgOutputTokens {
		t.Errorf("stream = %+v", out.Stream)
	}
	if got := strings.Join(out.RawStream.Types, ","); got != "message_start,content_block_start,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop" {
		t.Errorf("raw stream events = %s", got)
	}
	out.Denied.check(t, "policy deny", "PermissionDeniedError", 403, "rule no-forbidden")
	out.StreamDenied.check(t, "policy deny of a stream", "PermissionDeniedError", 403, "rule no-forbidden")
	out.Budget.check(t, "budget", "RateLimitError", 429, "budget acme-monthly")
	out.Approval.check(t, "approval", "PermissionDeniedError", 403, "X-Agentgov-Approval: apr_1")
	out.UpstreamError.check(t, "upstream error", "BadRequestError", 400, "upstream says no")
	out.BadRequest.check(t, "bad request", "BadRequestError", 400, "max_tokens: required")
	if out.Denied.Type != "permission_error" || out.Budget.Type != "rate_limit_error" {
		t.Errorf("error types = %q, %q", out.Denied.Type, out.Budget.Type)
	}
	out.DeniedSystem.check(t, "forbidden system prompt", "PermissionDeniedError", 403, "rule no-forbidden")
	out.DeniedToolResult.check(t, "forbidden tool result", "PermissionDeniedError", 403, "rule no-forbidden")
	// message, stream, raw stream, 4 refusals, upstream error, 2 content
	// refusals = 10 decisions, each once; 4 calls forwarded and settled.
	if n := len(r.dec.decided()); n != 10 {
		t.Errorf("%d decisions, want 10 (SDK retried a refusal?)", n)
	}
	if n := r.dec.outcomeCount(); n != 4 {
		t.Errorf("%d outcomes, want 4", n)
	}
}
