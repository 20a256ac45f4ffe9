// Package llmproxy measures what agentgov's model proxy adds to a model call:
// each iteration calls a local fake upstream once directly and once through
// the proxy, and the difference of the medians is the proxy's overhead.
package llmproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/llmproxy"
	"github.com/agentgov/agentgov/models"
)

const (
	upstreamKey = "sk-bench-upstream"
	agentToken  = "agt-bench"
)

// upstream answers like OpenAI's chat completions endpoint, at once.
func upstream(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+upstreamKey {
		http.Error(w, `{"error":{"message":"bad key","type":"invalid_request_error"}}`, 401)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if strings.Contains(string(body), `"stream":true`) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, d := range []string{`{"role":"assistant","content":""}`, `{"content":"Hello"}`, `{"content":" world"}`} {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":null}],\"usage\":null}\n\n", d)
			f.Flush()
		}
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":3,\"total_tokens\":23}}\n\ndata: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"id":"c1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello world"},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23}}`)
}

// allowAll decides instantly, so that what is measured is the proxy itself
// (parsing, routing, forwarding, usage accounting); the policy engine has its
// own benchmarks.
type allowAll struct{ n, settled atomic.Uint64 }

func (d *allowAll) Decide(ctx context.Context, a action.Action) (action.Decision, error) {
	return action.Decision{ID: action.NewID(0, 0, d.n.Add(1)), Effect: action.Allow}, nil
}

func (d *allowAll) Outcome(ctx context.Context, id action.ID, o action.Outcome) error {
	if o.InputTokens != 20 || o.OutputTokens != 3 {
		return fmt.Errorf("settled %d/%d tokens, want 20/3", o.InputTokens, o.OutputTokens)
	}
	d.settled.Add(1)
	return nil
}

type rig struct {
	direct, proxied string // chat completions URLs
	client          *http.Client
	dec             *allowAll
}

func newRig(b *testing.B) *rig {
	up := httptest.NewServer(http.HandlerFunc(upstream))
	b.Cleanup(up.Close)
	dec := &allowAll{}
	h, err := llmproxy.New(llmproxy.Config{
		OpenAI: llmproxy.Upstream{BaseURL: up.URL + "/v1"},
		Getenv: func(string) string { return upstreamKey },
	}, dec, models.Shipped(), func(r *http.Request) (action.Agent, action.Principal, error) {
		if r.Header.Get("Authorization") != "Bearer "+agentToken {
			return action.Agent{}, action.Principal{}, fmt.Errorf("unknown token")
		}
		return action.Agent{ID: "bench"}, action.Principal{}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/llm/", h)
	px := httptest.NewServer(mux)
	b.Cleanup(px.Close)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	return &rig{direct: up.URL + "/v1/chat/completions", proxied: px.URL + "/llm/v1/chat/completions", client: &http.Client{Transport: t}, dec: dec}
}

const (
	chatBody   = `{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the world in two words."}]}`
	streamBody = `{"model":"gpt-4o-mini","max_tokens":64,"stream":true,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the world in two words."}]}`
)

// call posts body and returns the time to the first body byte and to the end.
func (r *rig) call(b *testing.B, url, body string, wantPrefix string) (ttfb, total time.Duration) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	key := agentToken
	if url == r.direct {
		key = upstreamKey
	}
	req.Header.Set("Authorization", "Bearer "+key)
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadByte()
	ttfb = time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	total = time.Since(start)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(first)+string(rest), wantPrefix) {
		b.Fatalf("%s: %d %s%s %v", url, resp.StatusCode, string(first), rest, err)
	}
	return ttfb, total
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func p99(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)*99/100]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// BenchmarkOverhead alternates a direct and a proxied call in every
// iteration, so both see the same machine state, and reports the medians
// and their difference (added-p50-µs). For streams the measure is the time
// to the first byte of the body, the latency a streaming user feels.
func BenchmarkOverhead(b *testing.B) {
	for _, tc := range []struct {
		name, body, prefix string
		ttfb               bool
	}{
		{"chat", chatBody, `{"id":"c1"`, false},
		{"stream-ttfb", streamBody, "data: ", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := newRig(b)
			// Warm the connection pools of both paths.
			for range 20 {
				r.call(b, r.direct, tc.body, tc.prefix)
				r.call(b, r.proxied, tc.body, tc.prefix)
			}
			var direct, proxied []time.Duration
			for b.Loop() {
				dt, dtot := r.call(b, r.direct, tc.body, tc.prefix)
				pt, ptot := r.call(b, r.proxied, tc.body, tc.prefix)
				if tc.ttfb {
					direct, proxied = append(direct, dt), append(proxied, pt)
				} else {
					direct, proxied = append(direct, dtot), append(proxied, ptot)
				}
			}
			if r.dec.settled.Load() < uint64(len(proxied)) {
				b.Fatalf("%d of %d proxied calls settled", r.dec.settled.Load(), len(proxied))
			}
			dm, pm := median(direct), median(proxied)
			b.ReportMetric(micros(dm), "direct-p50-µs")
			b.ReportMetric(micros(pm), "proxy-p50-µs")
			b.ReportMetric(micros(pm-dm), "added-p50-µs")
			b.ReportMetric(micros(p99(proxied)-p99(direct)), "added-p99-µs")
		})
	}
}
