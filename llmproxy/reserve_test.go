package llmproxy

import (
	"strings"
	"testing"

	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/models"
)

// reserved is what the decided action asked the budgets to hold for a call.
func (r *rig) reserved(t *testing.T) (tokens int64, microUSD int64) {
	t.Helper()
	acts := r.dec.decided()
	if len(acts) == 0 {
		t.Fatal("nothing was decided")
	}
	a := acts[len(acts)-1]
	return a.Estimate.Tokens, int64(a.Estimate.CostUSD*1e6 + 0.5)
}

// An agent leaves max_tokens out of a call to a reasoning model: the
// provider may write (and bill) up to the model's maximum output, 100,000
// tokens for o1, while the proxy used to reserve 4,096. It now reserves for
// the maximum and sends the cap it reserved for in the field the model
// takes, so the provider cannot bill more than was reserved.
func TestAnUncappedCallReservesTheModelsMaximumOutputAndCarriesIt(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"o1","messages":[{"role":"user","content":"think hard"}]}`
	r.dec.allowPremium = true
	if res := r.do("POST", "/llm/v1/chat/completions", body); res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	in := int64((len(body) + 3) / 4)
	tokens, cost := r.reserved(t)
	if tokens != in+100_000 || cost != r.cat.Cost("o1", in, 100_000) {
		t.Errorf("reserved %d tokens, %d µ$; want %d tokens, %d µ$ (the prompt and o1's 100,000 output tokens)", tokens, cost, in+100_000, r.cat.Cost("o1", in, 100_000))
	}
	sent := r.up.last().Body
	if sent["max_completion_tokens"] != float64(100_000) || sent["max_tokens"] != nil {
		t.Errorf("forwarded caps: max_completion_tokens %v, max_tokens %v; want the reserved 100000 in max_completion_tokens, the field reasoning models take", sent["max_completion_tokens"], sent["max_tokens"])
	}
	// A model that is not a reasoning model is capped with max_tokens.
	r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	if sent := r.up.last().Body; sent["max_tokens"] != float64(16_384) || sent["max_completion_tokens"] != nil {
		t.Errorf("gpt-4o-mini forwarded with max_tokens %v, max_completion_tokens %v; want max_tokens 16384", sent["max_tokens"], sent["max_completion_tokens"])
	}
}

// The variant: n answers are n times the output. With a cap the caller set,
// the reservation is n times that cap and the request goes on unchanged;
// without one, n times the maximum, streaming or not.
func TestNAnswersReserveNTimesTheOutput(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"gpt-4o-mini","n":3,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`
	r.do("POST", "/llm/v1/chat/completions", body)
	in := int64((len(body) + 3) / 4)
	if tokens, _ := r.reserved(t); tokens != in+300 {
		t.Errorf("n=3 × max_tokens 100 reserved %d tokens, want %d", tokens, in+300)
	}
	if sent := r.up.last().Body; sent["max_tokens"] != float64(100) || sent["n"] != float64(3) {
		t.Errorf("the caller's own cap was changed: %v", sent)
	}
	body = `{"model":"gpt-4o-mini","n":2,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	res := r.do("POST", "/llm/v1/chat/completions", body)
	in = int64((len(body) + 3) / 4)
	if tokens, cost := r.reserved(t); tokens != in+2*16_384 || cost != r.cat.Cost("gpt-4o-mini", in, 2*16_384) {
		t.Errorf("a stream with n=2 and no cap reserved %d tokens, %d µ$; want %d", tokens, cost, in+2*16_384)
	}
	if sent := r.up.last().Body; sent["max_tokens"] != float64(16_384) || sent["stream_options"] == nil {
		t.Errorf("the stream went out without the cap it was reserved for: %v", sent)
	}
	if o := r.dec.outcome(t, res.header.Get(HeaderDecision)); o.OutputTokens != chatCompletionTokens {
		t.Errorf("the stream settled %+v, want the upstream's usage", o)
	}
	for _, bad := range []string{`"n":0`, `"n":-2`, `"n":129`, `"n":"3"`, `"max_tokens":0`, `"max_completion_tokens":0`} {
		res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini",`+bad+`,"messages":[{"role":"user","content":"hi"}]}`)
		if res.status != 400 {
			t.Errorf("%s: %d %s, want 400", bad, res.status, res.body)
		}
	}
}

// The other variant: a reasoning model whose provider reports its hidden
// reasoning outside completion_tokens (as Gemini's OpenAI-compatible
// endpoint does) is charged for it: the output is the total less the
// prompt when that is larger.
func TestReasoningTokensReportedApartAreCharged(t *testing.T) {
	r := newRig(t, nil)
	res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"thinking"}]}`)
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	o := r.dec.outcome(t, res.header.Get(HeaderDecision))
	want := int64(chatCompletionTokens + thinkingTokens)
	if o.OutputTokens != want || o.CostUSD != float64(r.cat.Cost("gemini-2.5-flash", chatPromptTokens, want))/1e6 {
		t.Errorf("outcome = %+v; want %d output tokens (answer and reasoning) charged", o, want)
	}
}

// Anthropic requires max_tokens, and extended thinking with interleaved
// tool use may be given a budget above it: the reservation covers the
// larger of the two.
func TestAnthropicReservesForMaxTokensOrTheThinkingBudget(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"claude-sonnet-4-5","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":8000},"messages":[{"role":"user","content":"hi"}]}`
	if res := r.do("POST", "/llm/anthropic/v1/messages", body, "Authorization", "", "X-Api-Key", agentToken); res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if tokens, _ := r.reserved(t); tokens != int64((len(body)+3)/4)+8000 {
		t.Errorf("reserved %d tokens, want the prompt and the 8000-token thinking budget", tokens)
	}
}

// A model the catalogue does not know the maximum of (an allowed unknown
// model, or a custom one without max_output) is reserved and capped at
// llm.default_max_tokens; a custom model with max_output at that.
func TestModelsWithoutAKnownMaximumFallBackToTheDefault(t *testing.T) {
	cat, err := models.Shipped().Override("user.yaml", []byte("version: agentgov/v1\nunknown_models: {policy: allow, tier: economy, input: 1, output: 1}\nmodels:\n  house-llm: {provider: openai, tier: economy, input: 0.5, output: 1, max_output: 2048}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := newRigWith(t, cat, func(c *Config) { c.DefaultMaxTokens = 1500 })
	for model, want := range map[string]float64{"my-local-llama": 1500, "house-llm": 2048} {
		body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
		if res := r.do("POST", "/llm/v1/chat/completions", body); res.status != 200 {
			t.Fatalf("%s: %d %s", model, res.status, res.body)
		}
		if tokens, _ := r.reserved(t); tokens != int64((len(body)+3)/4)+int64(want) {
			t.Errorf("%s: reserved %d tokens", model, tokens)
		}
		if got := r.up.last().Body["max_tokens"]; got != want {
			t.Errorf("%s: forwarded max_tokens %v, want %v", model, got, want)
		}
	}
}

// With the real engine and budget: a call whose reservation does not fit
// is refused, and the refusal says what was reserved and how to reserve
// less.
func TestABudgetDenialSaysWhatWasReservedAndWhy(t *testing.T) {
	r := governedRig(t, budget.Amounts{CostMicros: 5_000})
	res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	msg := string(res.body)
	if res.status != 429 || !strings.Contains(msg, "budget acme-llm") || !strings.Contains(msg, "for 16384 output tokens") ||
		!strings.Contains(msg, "set max_tokens to reserve less") || !strings.Contains(msg, "reserved $0.0098") {
		t.Fatalf("uncapped call over budget: %d %s", res.status, msg)
	}
	// Capped, the same call fits.
	if res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}`); res.status != 200 {
		t.Fatalf("capped call: %d %s", res.status, res.body)
	}
	if n := len(r.up.seen()); n != 1 {
		t.Errorf("upstream saw %d calls, want 1", n)
	}
}
