package alert

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The kinds of alert a route can name.
var Kinds = []string{"kill", "budget_soft", "budget_hard", "drift", "quarantine", "slo_burn", "breaker_open", "anomaly", "trust_drop", "channel_down"}

// The channel types.
var Types = []string{"webhook", "slack", "pagerduty", "teams"}

// Channel is one place alerts go, as configured under alerts.channels.
type Channel struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// URLEnv names the environment variable holding the channel's URL (a
	// Slack or Teams webhook URL is a secret: whoever has it can post).
	// For PagerDuty the URL defaults to the Events API v2.
	URLEnv string `yaml:"url_env"`
	// RoutingKeyEnv names the variable holding a PagerDuty integration's
	// routing key.
	RoutingKeyEnv string `yaml:"routing_key_env"`
	// RatePerMinute bounds the alerts delivered per minute (default 30);
	// past it they are dropped and counted.
	RatePerMinute int `yaml:"rate_per_minute"`
	// Heartbeat, when set, sends a heartbeat alert this often, so that a
	// receiver can tell agentgov (or the channel) has gone silent.
	Heartbeat time.Duration `yaml:"heartbeat"`
}

// Route sends alerts of some kinds to some channels.
type Route struct {
	Kinds    []string `yaml:"kinds"`
	Channels []string `yaml:"channels"`
}

// Config is the alerts: section.
type Config struct {
	Channels []Channel `yaml:"channels"`
	Routes   []Route   `yaml:"routes"`
	// DedupeWindow is how long an alert's dedupe key is remembered: the
	// same key again within it is not sent again (default 1h).
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// GiveUpAfter bounds the retries of one delivery (default 10m).
	GiveUpAfter time.Duration `yaml:"give_up_after"`
}

// PagerDutyURL is the Events API v2 endpoint.
const PagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// Defaults.
const (
	DefaultRatePerMinute = 30
	DefaultDedupeWindow  = time.Hour
	DefaultGiveUpAfter   = 10 * time.Minute
)

// KeyError names the configuration key at fault ("alerts.channels[0].type").
type KeyError struct{ Key, Msg string }

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Fill sets the defaults of keys left empty.
func (c *Config) Fill() {
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.GiveUpAfter == 0 {
		c.GiveUpAfter = DefaultGiveUpAfter
	}
	for i := range c.Channels {
		if c.Channels[i].RatePerMinute == 0 {
			c.Channels[i].RatePerMinute = DefaultRatePerMinute
		}
	}
}

// Validate checks every value (not the environment: see Resolve).
func (c *Config) Validate() error {
	bad := func(key, f string, a ...any) error { return &KeyError{Key: key, Msg: fmt.Sprintf(f, a...)} }
	names := map[string]bool{}
	for i, ch := range c.Channels {
		key := fmt.Sprintf("alerts.channels[%d]", i)
		if !nameRE.MatchString(ch.Name) {
			return bad(key+".name", "want 1 to 64 lowercase letters, digits, '_' or '-', got %q", ch.Name)
		}
		if names[ch.Name] {
			return bad(key+".name", "duplicate channel %q", ch.Name)
		}
		names[ch.Name] = true
		if !slices.Contains(Types, ch.Type) {
			return bad(key+".type", "want webhook, slack, pagerduty or teams, got %q", ch.Type)
		}
		if ch.URLEnv == "" && ch.Type != "pagerduty" {
			return bad(key+".url_env", "name the environment variable holding the %s URL", ch.Type)
		}
		if ch.Type == "pagerduty" && ch.RoutingKeyEnv == "" {
			return bad(key+".routing_key_env", "name the environment variable holding the PagerDuty routing key")
		}
		if ch.Type != "pagerduty" && ch.RoutingKeyEnv != "" {
			return bad(key+".routing_key_env", "only a pagerduty channel has a routing key")
		}
		if ch.RatePerMinute < 1 || ch.RatePerMinute > 6000 {
			return bad(key+".rate_per_minute", "want 1 to 6000, got %d", ch.RatePerMinute)
		}
		if ch.Heartbeat != 0 && (ch.Heartbeat < 10*time.Second || ch.Heartbeat > 24*time.Hour) {
			return bad(key+".heartbeat", "want a duration from 10s to 24h, got %v", ch.Heartbeat)
		}
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("alerts.routes[%d]", i)
		if len(r.Kinds) == 0 {
			return bad(key+".kinds", "name the kinds of alert routed (%s)", strings.Join(Kinds, ", "))
		}
		for j, k := range r.Kinds {
			if !slices.Contains(Kinds, k) {
				return bad(fmt.Sprintf("%s.kinds[%d]", key, j), "unknown kind %q (want one of %s)", k, strings.Join(Kinds, ", "))
			}
		}
		if len(r.Channels) == 0 {
			return bad(key+".channels", "name the channels the route sends to")
		}
		for j, ch := range r.Channels {
			if !names[ch] {
				return bad(fmt.Sprintf("%s.channels[%d]", key, j), "no channel named %q", ch)
			}
		}
	}
	if c.DedupeWindow < 0 || c.DedupeWindow > 7*24*time.Hour {
		return bad("alerts.dedupe_window", "want a duration up to 168h, got %v", c.DedupeWindow)
	}
	if c.GiveUpAfter < time.Second || c.GiveUpAfter > 24*time.Hour {
		return bad("alerts.give_up_after", "want a duration from 1s to 24h, got %v", c.GiveUpAfter)
	}
	return nil
}

// target is a channel's resolved destination.
type target struct {
	url        string
	routingKey string
}

// resolve reads a channel's URL and key from the environment, at start:
// a channel that cannot deliver is refused before anything runs.
func resolve(ch Channel, getenv func(string) string) (target, error) {
	var t target
	if ch.URLEnv != "" {
		t.url = strings.TrimSpace(getenv(ch.URLEnv))
		if t.url == "" {
			return t, fmt.Errorf("alerts channel %s: environment variable %s is empty or unset", ch.Name, ch.URLEnv)
		}
	} else {
		t.url = PagerDutyURL
	}
	if u, err := url.Parse(t.url); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return t, fmt.Errorf("alerts channel %s: %s does not hold an http(s) URL", ch.Name, ch.URLEnv)
	}
	if ch.RoutingKeyEnv != "" {
		if t.routingKey = strings.TrimSpace(getenv(ch.RoutingKeyEnv)); t.routingKey == "" {
			return t, fmt.Errorf("alerts channel %s: environment variable %s is empty or unset", ch.Name, ch.RoutingKeyEnv)
		}
	}
	return t, nil
}
