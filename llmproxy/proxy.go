// Package llmproxy is agentgov's model proxy: an OpenAI-compatible endpoint
// (and the Anthropic Messages API) that any agent framework can point its SDK
// at, with its agentgov token as the API key. Every call is decided at
// pre_model_call before it leaves, forwarded with the proxy's own upstream key
// (a caller's key never reaches a provider), and settled from the provider's
// own usage report priced by the model catalogue. Agents cannot under-report
// what they spent, because they never report it.
//
// The handler serves full paths under /llm (mount it with
// mux.Handle("/llm/", h)):
//
//	POST /llm/v1/chat/completions       OpenAI chat, streaming and not
//	POST /llm/v1/embeddings             OpenAI embeddings
//	GET  /llm/v1/models[/{model}]       the catalogue's OpenAI-compatible models
//	POST /llm/anthropic/v1/messages     Anthropic Messages, streaming and not
//
// Refusals use the provider's own error shape so that SDKs raise their usual
// exceptions: 400 bad request, 401 no identity, 403 policy deny or approval
// required, 429 budget exhausted or rate limited, 502 upstream unreachable.
package llmproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/models"
)

// Decider decides an action and later records its outcome. *govern.Engine
// implements it.
type Decider interface {
	Decide(ctx context.Context, a action.Action) (action.Decision, error)
	Outcome(ctx context.Context, id action.ID, o action.Outcome) error
}

// Observer receives the proxy's metrics. Its methods must be cheap.
type Observer interface {
	// UpstreamCall is one call forwarded to a provider: kind "model",
	// upstream the provider, took from the decision to the end of the
	// answer, failure "" when it succeeded, else "unreachable",
	// "http_4xx", "http_5xx", "cut_short", "too_large", "stream_error",
	// "cancelled" (the caller went away) or "error".
	UpstreamCall(kind, upstream string, took time.Duration, failure string)
	// Refused is a call refused before a decision: reason
	// "model_not_allowed", "wrong_route" or "upstream_not_configured".
	Refused(entry, reason string)
	// ModelUsage is what one settled call used and cost.
	ModelUsage(model, agent string, inputTokens, outputTokens int64, costUSD float64)
}

// Recorder appends records to the audit log; *audit.Log is one.
type Recorder interface {
	Append(ctx context.Context, kind string, record any) (uint64, error)
}

// Identify authenticates a request (its bearer token or x-api-key) and says
// which agent makes it on whose behalf. The server supplies it; the proxy
// trusts nothing else in the request about identity.
type Identify func(r *http.Request) (action.Agent, action.Principal, error)

// Headers a caller may set, and the one the proxy sets on every answer.
const (
	// HeaderApproval carries the id of an approved ticket when retrying a call
	// that was answered "approval required".
	HeaderApproval = "X-Agentgov-Approval"
	// HeaderSession names the agent's session, for session-scoped policies.
	HeaderSession = "X-Agentgov-Session"
	// HeaderDecision is set on every answer that was decided.
	HeaderDecision = "X-Agentgov-Decision"
)

// Upstream is one provider the proxy forwards to (DESIGN §5, `llm:` key).
// The key comes from the environment variable APIKeyEnv or the file
// APIKeyFile, never from the caller.
type Upstream struct {
	BaseURL    string `yaml:"base_url" json:"base_url,omitempty"`
	APIKeyEnv  string `yaml:"api_key_env" json:"api_key_env,omitempty"`
	APIKeyFile string `yaml:"api_key_file" json:"api_key_file,omitempty"`
}

// Config configures the proxy. The zero value is usable: each provider's
// public endpoint with the key from its usual environment variable.
type Config struct {
	OpenAI    Upstream `yaml:"openai" json:"openai,omitzero"`
	Anthropic Upstream `yaml:"anthropic" json:"anthropic,omitzero"`
	// Google is Gemini's OpenAI-compatible endpoint; chat and embedding calls
	// for catalogue models of provider google go there.
	Google Upstream `yaml:"google" json:"google,omitzero"`
	// Catalog is the path of a user model catalogue laid over the shipped one
	// (see models.Load); the server loads it and passes the result to New.
	Catalog string `yaml:"catalog" json:"catalog,omitempty"`
	// DefaultMaxTokens caps the output of a call that sets no max_tokens to
	// a model whose catalogue entry gives no max_output (an allowed unknown
	// model, a custom one): the proxy reserves budget for it and sends it
	// upstream as the call's max_tokens. Models the catalogue knows are
	// capped at their max_output. Default 4096.
	DefaultMaxTokens int64 `yaml:"default_max_tokens" json:"default_max_tokens,omitempty"`
	// MaxRequestBytes bounds a request body. Default 16 MiB.
	MaxRequestBytes int64 `yaml:"max_request_bytes" json:"max_request_bytes,omitempty"`

	// Client sends upstream requests; default a pooled client without an
	// overall timeout (streams last as long as the model writes).
	Client *http.Client `yaml:"-" json:"-"`
	// Getenv reads upstream keys; default os.Getenv.
	Getenv func(string) string `yaml:"-" json:"-"`
	// Now is the clock for latency; default time.Now.
	Now func() time.Time `yaml:"-" json:"-"`
	// Logger receives failures the caller cannot be told about (an outcome
	// that could not be recorded after the answer was sent); default slog.Default().
	Logger *slog.Logger `yaml:"-" json:"-"`
	// Recorder receives the calls the proxy refuses before they can be
	// decided (a model the catalogue does not allow, a model called
	// through the wrong API, a provider without a key), as the MCP
	// gateway audits the calls it refuses itself. *audit.Log is one;
	// without it they are only answered.
	Recorder Recorder `yaml:"-" json:"-"`
	// Observer is told of every upstream call, every call refused before
	// a decision, and the tokens and cost of every settled call, for
	// metrics. Optional.
	Observer Observer `yaml:"-" json:"-"`
	// Tracer makes each call forwarded to a provider a span (chat {model},
	// with its token usage), the parent of its decision's span, and sends
	// the provider a traceparent of it. Optional: without one nothing is
	// traced.
	Tracer calltrace.Tracer `yaml:"-" json:"-"`
	// Chaos injects the faults of chaos experiments into allowed calls
	// (see chaos.go). Optional; leave it nil, not a nil pointer, when no
	// experiment is configured.
	Chaos FaultInjector `yaml:"-" json:"-"`
}

// The providers' public endpoints and the environment variables their SDKs read.
var defaults = map[string]Upstream{
	"openai":    {BaseURL: "https://api.openai.com/v1", APIKeyEnv: "OPENAI_API_KEY"},
	"anthropic": {BaseURL: "https://api.anthropic.com", APIKeyEnv: "ANTHROPIC_API_KEY"},
	"google":    {BaseURL: "https://generativelanguage.googleapis.com/v1beta/openai", APIKeyEnv: "GEMINI_API_KEY"},
}

// upstream is a provider ready to be called.
type upstream struct {
	name string
	base string // without trailing slash
	host string
	key  string
	// missing says why there is no key; calls to this provider fail with it.
	missing string
}

type proxy struct {
	d         Decider
	cat       *models.Catalog
	identify  Identify
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger
	rec       Recorder
	obs       Observer
	tracer    calltrace.Tracer
	maxBody   int64
	defOut    int64
	upstreams map[string]*upstream
	chaos     FaultInjector
	// maxAnswer and maxEvent bound what an upstream may send: a whole
	// answer, and one event of a stream.
	maxAnswer, maxEvent int
}

// New builds the proxy handler. Configuration errors name the key at fault.
// A provider without a key is not an error (a server may proxy only one
// provider); calls to it answer 503 naming the variable to set.
func New(cfg Config, d Decider, cat *models.Catalog, id Identify) (http.Handler, error) {
	if d == nil || cat == nil || id == nil {
		return nil, errors.New("llmproxy: a decider, a model catalogue and an identify function are required")
	}
	p := &proxy{
		d: d, cat: cat, identify: id,
		client:    cfg.Client,
		now:       cfg.Now,
		log:       cfg.Logger,
		rec:       cfg.Recorder,
		obs:       cfg.Observer,
		tracer:    cfg.Tracer,
		maxBody:   cfg.MaxRequestBytes,
		defOut:    cfg.DefaultMaxTokens,
		upstreams: map[string]*upstream{},
		maxAnswer: maxAnswerBytes,
		maxEvent:  maxEventBytes,
		chaos:     cfg.Chaos,
	}
	if p.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		p.client = &http.Client{Transport: t}
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.maxBody == 0 {
		p.maxBody = 16 << 20
	}
	if p.maxBody < 0 {
		return nil, fmt.Errorf("llm.max_request_bytes: must not be negative")
	}
	if p.defOut == 0 {
		p.defOut = 4096
	}
	if p.defOut < 0 {
		return nil, fmt.Errorf("llm.default_max_tokens: must not be negative")
	}
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	for name, u := range map[string]Upstream{"openai": cfg.OpenAI, "anthropic": cfg.Anthropic, "google": cfg.Google} {
		up, err := resolveUpstream(name, u, getenv)
		if err != nil {
			return nil, err
		}
		p.upstreams[name] = up
	}
	for _, name := range []string{"openai", "anthropic", "google"} {
		up := p.upstreams[name]
		base := up.base
		if u, err := url.Parse(base); err == nil {
			base = u.Redacted() // a password in the URL stays out of the log
		}
		if up.missing != "" {
			p.log.Info("model provider not configured", "provider", name, "base_url", base, "why", up.missing)
		} else {
			p.log.Info("model provider", "provider", name, "base_url", base)
		}
	}
	return p, nil
}

func resolveUpstream(name string, u Upstream, getenv func(string) string) (*upstream, error) {
	def := defaults[name]
	if u.APIKeyEnv != "" && u.APIKeyFile != "" {
		return nil, fmt.Errorf("llm.%s: give api_key_env or api_key_file, not both", name)
	}
	if u.BaseURL == "" {
		u.BaseURL = def.BaseURL
	}
	base, err := url.Parse(u.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("llm.%s.base_url: %q is not an absolute http or https URL", name, u.BaseURL)
	}
	up := &upstream{name: name, base: strings.TrimRight(u.BaseURL, "/"), host: base.Hostname()}
	switch {
	case u.APIKeyFile != "":
		b, err := os.ReadFile(u.APIKeyFile)
		if err != nil {
			return nil, fmt.Errorf("llm.%s.api_key_file: %w", name, err)
		}
		if up.key = strings.TrimSpace(string(b)); up.key == "" {
			return nil, fmt.Errorf("llm.%s.api_key_file: %s is empty", name, u.APIKeyFile)
		}
	default:
		env := u.APIKeyEnv
		if env == "" {
			env = def.APIKeyEnv
		}
		if up.key = strings.TrimSpace(getenv(env)); up.key == "" {
			up.missing = fmt.Sprintf("the %s upstream has no API key: set %s in the server's environment (or llm.%s.api_key_file)", name, env, name)
		}
	}
	return up, nil
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dialect := openAI
	path := r.URL.Path
	if strings.HasPrefix(path, "/llm/anthropic/") {
		dialect = anthropic
	}
	switch path {
	case "/llm/v1/chat/completions":
		p.post(w, r, dialect, parseChat)
	case "/llm/v1/embeddings":
		p.post(w, r, dialect, parseEmbeddings)
	case "/llm/anthropic/v1/messages":
		p.post(w, r, dialect, parseMessages)
	case "/llm/v1/models":
		p.listModels(w, r)
	default:
		if m, ok := strings.CutPrefix(path, "/llm/v1/models/"); ok && m != "" {
			p.getModel(w, r, m)
			return
		}
		writeError(w, dialect, fail(errcode.NotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, path)))
	}
}
