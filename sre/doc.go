// Package sre is agentgov's reliability engineering: service level
// indicators counted from decisions and outcomes, SLOs with error budgets
// and multiwindow burn-rate alerts as the Google SRE workbook defines them,
// and circuit breakers per tool, server and model that make every entry
// point fail fast while an upstream is failing. The engine tells a Monitor
// of every decision and outcome; the server shows its state at /v1/slos and
// /v1/breakers; its SLI counters are exported at /metrics, and Rules turns
// the SLOs into Prometheus recording and alerting rules over them.
package sre
