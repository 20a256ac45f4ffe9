// Package alert sends what operators must hear about (kill switches,
// budget thresholds, SLO burns, circuits that open, channels that fail) to
// the channels they watch: a generic JSON webhook, Slack incoming
// webhooks, PagerDuty Events API v2 and Microsoft Teams, each in the
// payload its service documents. Deliveries are retried with exponential
// backoff and jitter, sent once per dedupe key, held to a rate per
// channel, and a channel that cannot deliver is itself an alert on the
// others; /metrics shows how each channel fares.
package alert

import "os"

func lookupEnv(name string) string { return os.Getenv(name) }
