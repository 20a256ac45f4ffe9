package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// value reads one series of the dispatcher's metrics as /metrics would
// show it; labels are name, value pairs.
func value(t *testing.T, d *Dispatcher, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(d)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// receiver is a real HTTP server standing in for a service: it fails the
// first failFirst requests with status, then accepts, keeping the bodies
// it accepted.
type receiver struct {
	*httptest.Server
	failFirst int32
	status    int
	attempts  atomic.Int32
	mu        sync.Mutex
	got       []map[string]any
}

func newReceiver(t *testing.T, failFirst int32, status int) *receiver {
	r := &receiver{failFirst: failFirst, status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.attempts.Add(1)
		if req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", req.Header.Get("Content-Type"))
		}
		if n <= r.failFirst {
			w.WriteHeader(r.status)
			return
		}
		b, _ := io.ReadAll(req.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		r.mu.Lock()
		r.got = append(r.got, m)
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) bodies() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...)
}

func dispatcher(t *testing.T, cfg Config, env map[string]string) (*Dispatcher, context.CancelFunc) {
	t.Helper()
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, Options{Getenv: func(k string) string { return env[k] }, RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d, cancel
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for range 400 {
		if f() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

// A webhook receiver that fails twice still gets the alert, once; the
// same dedupe key again is not sent again; the body is the documented
// {kind, severity, summary, details, dedupe_key, at}.
func TestWebhookThatFailsTwiceStillGetsOneAlert(t *testing.T) {
	r := newReceiver(t, 2, http.StatusServiceUnavailable)
	d, _ := dispatcher(t, Config{
		Channels: []Channel{{Name: "hook", Type: "webhook", URLEnv: "HOOK_URL"}},
		Routes:   []Route{{Kinds: []string{"breaker_open"}, Channels: []string{"hook"}}},
	}, map[string]string{"HOOK_URL": r.URL})
	a := Alert{Kind: "breaker_open", Severity: "high", Summary: "circuit up opened for server:github", Details: map[string]any{"breaker": "up"}, DedupeKey: "breaker_open:up server:github"}
	d.Send(a)
	waitFor(t, "the alert arrives", func() bool { return len(r.bodies()) == 1 })
	d.Send(a) // the same key
	d.Send(Alert{Kind: "kill", Summary: "not routed here"})
	time.Sleep(100 * time.Millisecond)
	got := r.bodies()
	if len(got) != 1 || r.attempts.Load() != 3 {
		t.Fatalf("%d deliveries in %d attempts; want 1 in 3", len(got), r.attempts.Load())
	}
	b := got[0]
	if b["kind"] != "breaker_open" || b["severity"] != "high" || b["summary"] != a.Summary || b["dedupe_key"] != a.DedupeKey || b["at"] == nil ||
		b["details"].(map[string]any)["breaker"] != "up" {
		t.Fatalf("body %v", b)
	}
	if n := value(t, d, "agentgov_alerts_delivered_total", "channel", "hook", "kind", "breaker_open"); n != 1 {
		t.Errorf("delivered %v", n)
	}
	if n := value(t, d, "agentgov_alert_retries_total", "channel", "hook"); n != 2 {
		t.Errorf("retries %v", n)
	}
	if n := value(t, d, "agentgov_alerts_dropped_total", "channel", "hook", "reason", "deduplicated"); n != 1 {
		t.Errorf("deduplicated %v", n)
	}
}

// Each service gets the payload it documents.
func TestPayloadsAreTheServicesOwn(t *testing.T) {
	slack, pd, teams := newReceiver(t, 0, 0), newReceiver(t, 0, 0), newReceiver(t, 0, 0)
	d, _ := dispatcher(t, Config{
		Channels: []Channel{
			{Name: "slack", Type: "slack", URLEnv: "SLACK"},
			{Name: "pd", Type: "pagerduty", URLEnv: "PD", RoutingKeyEnv: "PD_KEY"},
			{Name: "teams", Type: "teams", URLEnv: "TEAMS"},
		},
		Routes: []Route{{Kinds: []string{"kill"}, Channels: []string{"slack", "pd", "teams"}}},
	}, map[string]string{"SLACK": slack.URL, "PD": pd.URL, "PD_KEY": "R0UTINGKEY", "TEAMS": teams.URL})
	d.Send(Alert{Kind: "kill", Severity: "critical", Summary: "kill switch ks_1 engaged on agent a1", DedupeKey: "kill:ks_1", Details: map[string]any{"switch": "ks_1"}})
	waitFor(t, "all three", func() bool { return len(slack.bodies())+len(pd.bodies())+len(teams.bodies()) == 3 })

	s := slack.bodies()[0]
	if !strings.Contains(s["text"].(string), "kill switch ks_1") || len(s["blocks"].([]any)) != 3 {
		t.Errorf("slack %v", s)
	}
	p := pd.bodies()[0]
	payload := p["payload"].(map[string]any)
	if p["routing_key"] != "R0UTINGKEY" || p["event_action"] != "trigger" || p["dedup_key"] != "kill:ks_1" ||
		payload["severity"] != "critical" || payload["source"] != "agentgov" || payload["summary"] == "" || payload["timestamp"] == "" {
		t.Errorf("pagerduty %v", p)
	}
	m := teams.bodies()[0]
	att := m["attachments"].([]any)[0].(map[string]any)
	if m["type"] != "message" || att["contentType"] != "application/vnd.microsoft.card.adaptive" || att["content"].(map[string]any)["type"] != "AdaptiveCard" {
		t.Errorf("teams %v", m)
	}
}

// A channel that cannot deliver (its URL answers 404: retrying will not
// help) is reported down, and the other channels hear of it; /metrics
// says so.
func TestDeadChannelIsAnAlertOnTheOthers(t *testing.T) {
	dead := newReceiver(t, 1000, http.StatusNotFound)
	alive := newReceiver(t, 0, 0)
	d, _ := dispatcher(t, Config{
		Channels: []Channel{{Name: "dead", Type: "slack", URLEnv: "DEAD"}, {Name: "alive", Type: "webhook", URLEnv: "ALIVE"}},
		Routes:   []Route{{Kinds: []string{"budget_hard"}, Channels: []string{"dead"}}},
	}, map[string]string{"DEAD": dead.URL, "ALIVE": alive.URL})
	d.Send(Alert{Kind: "budget_hard", Severity: "high", Summary: "budget acme-monthly is spent"})
	waitFor(t, "channel_down reaches the other channel", func() bool { return len(alive.bodies()) == 1 })
	b := alive.bodies()[0]
	if b["kind"] != "channel_down" || !strings.Contains(b["summary"].(string), "dead") || !strings.Contains(b["summary"].(string), "budget acme-monthly") {
		t.Fatalf("body %v", b)
	}
	if dead.attempts.Load() != 1 {
		t.Errorf("a 404 was retried: %d attempts", dead.attempts.Load())
	}
	if value(t, d, "agentgov_alert_channel_up", "channel", "dead") != 0 || value(t, d, "agentgov_alert_channel_up", "channel", "alive") != 1 {
		t.Error("agentgov_alert_channel_up does not say which channel is down")
	}
	if n := value(t, d, "agentgov_alerts_failed_total", "channel", "dead", "kind", "budget_hard"); n != 1 {
		t.Errorf("failed %v", n)
	}
}

// A flood is held to the channel's rate; the rest are dropped and counted.
func TestRateLimit(t *testing.T) {
	r := newReceiver(t, 0, 0)
	d, _ := dispatcher(t, Config{
		Channels: []Channel{{Name: "hook", Type: "webhook", URLEnv: "U", RatePerMinute: 5}},
		Routes:   []Route{{Kinds: []string{"anomaly"}, Channels: []string{"hook"}}},
	}, map[string]string{"U": r.URL})
	for i := range 50 {
		d.Send(Alert{Kind: "anomaly", Summary: "spike", DedupeKey: "k" + string(rune('a'+i))})
	}
	waitFor(t, "five delivered", func() bool { return len(r.bodies()) == 5 })
	time.Sleep(50 * time.Millisecond)
	if n := value(t, d, "agentgov_alerts_dropped_total", "channel", "hook", "reason", "rate_limited"); len(r.bodies()) != 5 || n != 45 {
		t.Fatalf("%d delivered, %v rate limited", len(r.bodies()), n)
	}
}

// A heartbeat reaches the channel on its own schedule.
func TestHeartbeat(t *testing.T) {
	r := newReceiver(t, 0, 0)
	cfg := Config{Channels: []Channel{{Name: "hook", Type: "webhook", URLEnv: "U"}}}
	cfg.Fill()
	cfg.Channels[0].Heartbeat = 20 * time.Millisecond // below the configurable minimum, for the test
	d, err := New(cfg, Options{Getenv: func(string) string { return r.URL }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	waitFor(t, "two heartbeats", func() bool { return len(r.bodies()) >= 2 })
	if r.bodies()[0]["kind"] != "heartbeat" {
		t.Fatalf("%v", r.bodies()[0])
	}
}

// Configuration errors name the key; a channel whose URL is not in the
// environment is refused at start.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		key string
	}{
		{Config{Channels: []Channel{{Name: "x", Type: "email", URLEnv: "U"}}}, "alerts.channels[0].type"},
		{Config{Channels: []Channel{{Name: "x", Type: "slack"}}}, "alerts.channels[0].url_env"},
		{Config{Channels: []Channel{{Name: "x", Type: "pagerduty"}}}, "alerts.channels[0].routing_key_env"},
		{Config{Channels: []Channel{{Name: "x", Type: "webhook", URLEnv: "U"}}, Routes: []Route{{Kinds: []string{"kil"}, Channels: []string{"x"}}}}, "alerts.routes[0].kinds[0]"},
		{Config{Channels: []Channel{{Name: "x", Type: "webhook", URLEnv: "U"}}, Routes: []Route{{Kinds: []string{"kill"}, Channels: []string{"y"}}}}, "alerts.routes[0].channels[0]"},
		{Config{Channels: []Channel{{Name: "x", Type: "webhook", URLEnv: "U", Heartbeat: time.Millisecond}}}, "alerts.channels[0].heartbeat"},
	} {
		c.cfg.Fill()
		ke, ok := c.cfg.Validate().(*KeyError)
		if !ok || ke.Key != c.key {
			t.Errorf("%+v: %v, want %s", c.cfg, ke, c.key)
		}
	}
	cfg := Config{Channels: []Channel{{Name: "x", Type: "webhook", URLEnv: "NOT_SET"}}}
	cfg.Fill()
	if _, err := New(cfg, Options{Getenv: func(string) string { return "" }}); err == nil || !strings.Contains(err.Error(), "NOT_SET") {
		t.Fatalf("unset URL: %v", err)
	}
	if _, err := New(cfg, Options{Getenv: func(string) string { return "ftp://x" }}); err == nil {
		t.Fatal("an ftp URL was accepted")
	}
}
