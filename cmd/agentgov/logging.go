package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/detect"
	"github.com/agentgov/agentgov/govern"
)

// logFlags are --log-format and --log-level, which serve and mcp run take.
// An empty value leaves the configuration's (or the default) in force.
type logFlags struct{ format, level *string }

func addLogFlags(fl *flag.FlagSet) logFlags {
	return logFlags{
		format: fl.String("log-format", "", "log lines as text (key=value) or json (default text, or log.format of the configuration)"),
		level:  fl.String("log-level", "", "least severe level logged: debug, info, warn or error (default info, or log.level of the configuration)"),
	}
}

// apply lays the flags given over the configuration's log section.
func (f logFlags) apply(c *config.Log) {
	if *f.format != "" {
		c.Format = *f.format
	}
	if *f.level != "" {
		c.Level = *f.level
	}
}

// newLogger returns the logger of serve and mcp run: lines on w in format
// (text or json, "" for text) at level and above (debug, info, warn or
// error, "" for info). Every string it writes (the message, each value, an
// error's text) is masked as the audit log masks its records: a log line
// quotes tool names, arguments and errors from outside, and a secret in one
// must not reach a log file that is kept, shipped and read more widely
// than the audit log.
func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "", "info":
		lv = slog.LevelInfo
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	return slog.New(maskingHandler{h}), nil
}

// maskingHandler masks what the detectors find in every string of a record
// before the handler below writes it.
type maskingHandler struct{ next slog.Handler }

func (h maskingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h maskingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(maskAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h maskingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(as))
	for i, a := range as {
		masked[i] = maskAttr(a)
	}
	return maskingHandler{h.next.WithAttrs(masked)}
}

func (h maskingHandler) WithGroup(name string) slog.Handler {
	return maskingHandler{h.next.WithGroup(name)}
}

func maskAttr(a slog.Attr) slog.Attr {
	a.Key = mask(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(mask(v.String()))
	case slog.KindGroup:
		as := v.Group()
		masked := make([]slog.Attr, len(as))
		for i, g := range as {
			masked[i] = maskAttr(g)
		}
		a.Value = slog.GroupValue(masked...)
	case slog.KindAny:
		// An error, a Stringer or any other value is written as its
		// text; when that text holds something to mask, the masked text
		// is written instead.
		var text string
		switch x := v.Any().(type) {
		case error:
			text = x.Error()
		case fmt.Stringer:
			text = x.String()
		default:
			text = fmt.Sprint(x)
		}
		if m := mask(text); m != text {
			a.Value = slog.StringValue(m)
		} else {
			a.Value = v
		}
	default:
		a.Value = v
	}
	return a
}

func mask(s string) string {
	if s == "" {
		return s
	}
	return detect.Mask(s)
}

// logNotice writes the notices the engine raises as log lines: a kill
// switch engaged or released, a policy set loaded, a budget threshold
// crossed, a policy's notify response, an approval that could not be
// given back.
func logNotice(log *slog.Logger) func(context.Context, govern.Notice) {
	return func(ctx context.Context, n govern.Notice) {
		level, msg := slog.LevelWarn, "notice"
		switch {
		case n.Kind == "kill":
			msg = "kill switch engaged"
		case n.Kind == "kill_release":
			level, msg = slog.LevelInfo, "kill switch released"
		case n.Kind == "kill_failed":
			level, msg = slog.LevelError, "kill switch not engaged"
		case n.Kind == "policy_load":
			level, msg = slog.LevelInfo, "policy loaded"
		case strings.HasPrefix(n.Kind, "budget_"):
			msg = "budget threshold crossed"
		case n.Kind == "deny":
			msg = "policy notify"
		case n.Kind == "approval":
			level, msg = slog.LevelError, "approval notice"
		case n.Kind == "store_failed":
			level, msg = slog.LevelError, "decision denied: store unavailable"
		case n.Kind == "trust_drop":
			msg = "trust tier dropped"
		}
		attrs := []slog.Attr{slog.String("kind", n.Kind)}
		if !n.Decision.IsZero() {
			attrs = append(attrs, slog.String("decision", n.Decision.String()))
		}
		if n.Agent != "" {
			attrs = append(attrs, slog.String("agent", n.Agent))
		}
		if n.Severity != "" {
			attrs = append(attrs, slog.String("severity", string(n.Severity)))
		}
		keys := make([]string, 0, len(n.Fields))
		for k := range n.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			attrs = append(attrs, slog.Any(k, n.Fields[k]))
		}
		attrs = append(attrs, slog.String("reason", n.Message))
		log.LogAttrs(ctx, level, msg, attrs...)
	}
}
