package alert

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Alert is one thing to tell people about.
type Alert struct {
	Kind     string         `json:"kind"`
	Severity string         `json:"severity"` // critical, high, medium, low, info
	Summary  string         `json:"summary"`
	Details  map[string]any `json:"details,omitempty"`
	// DedupeKey names what the alert is about: the same key again within
	// the dedupe window is not sent again (PagerDuty also groups by it).
	DedupeKey string    `json:"dedupe_key"`
	At        time.Time `json:"at"`
}

// body is the request a channel of type typ is sent for a, as each service
// documents it.
func body(typ string, t target, a Alert) ([]byte, error) {
	switch typ {
	case "slack":
		// Slack incoming webhooks: text (the notification's fallback) and
		// Block Kit blocks.
		return json.Marshal(map[string]any{
			"text": fmt.Sprintf("[%s] %s", a.Severity, a.Summary),
			"blocks": []any{
				map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": truncate(fmt.Sprintf("agentgov %s: %s", a.Severity, a.Kind), 150)}},
				map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": truncate(a.Summary, 3000)}},
				map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": truncate(detailsLine(a), 3000)}}},
			},
		})
	case "pagerduty":
		// PagerDuty Events API v2: a trigger event, grouped by dedup_key.
		return json.Marshal(map[string]any{
			"routing_key":  t.routingKey,
			"event_action": "trigger",
			"dedup_key":    truncate(a.DedupeKey, 255),
			"payload": map[string]any{
				"summary":        truncate(a.Summary, 1024),
				"source":         "agentgov",
				"severity":       pagerDutySeverity(a.Severity),
				"timestamp":      a.At.UTC().Format(time.RFC3339Nano),
				"component":      "agentgov",
				"class":          a.Kind,
				"custom_details": a.Details,
			},
		})
	case "teams":
		// Microsoft Teams incoming webhook (Workflows): a message with
		// one Adaptive Card.
		facts := []any{map[string]any{"title": "kind", "value": a.Kind}, map[string]any{"title": "severity", "value": a.Severity}}
		for _, k := range sortedKeys(a.Details) {
			facts = append(facts, map[string]any{"title": k, "value": fmt.Sprint(a.Details[k])})
		}
		return json.Marshal(map[string]any{
			"type": "message",
			"attachments": []any{map[string]any{
				"contentType": "application/vnd.microsoft.card.adaptive",
				"content": map[string]any{
					"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
					"type":    "AdaptiveCard",
					"version": "1.4",
					"body": []any{
						map[string]any{"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": "agentgov " + a.Severity + ": " + a.Kind},
						map[string]any{"type": "TextBlock", "wrap": true, "text": a.Summary},
						map[string]any{"type": "FactSet", "facts": facts},
					},
				},
			}},
		})
	}
	// The generic webhook: the alert itself.
	return json.Marshal(a)
}

// pagerDutySeverity maps agentgov's severities onto PagerDuty's four.
func pagerDutySeverity(s string) string {
	switch s {
	case "critical":
		return "critical"
	case "high":
		return "error"
	case "medium":
		return "warning"
	}
	return "info"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func detailsLine(a Alert) string {
	parts := []string{"kind " + a.Kind, "at " + a.At.UTC().Format(time.RFC3339)}
	for _, k := range sortedKeys(a.Details) {
		parts = append(parts, fmt.Sprintf("%s %v", k, a.Details[k]))
	}
	return strings.Join(parts, " · ")
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
