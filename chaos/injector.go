package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentgov/agentgov/policy"
)

// Recorder appends records to the audit log; *audit.Log is one.
type Recorder interface {
	Append(ctx context.Context, kind string, record any) (uint64, error)
}

// Options are what an Injector takes besides its experiments.
type Options struct {
	// Audit receives a chaos.fault record per fault and a chaos.switch
	// record per switch. Without one nothing is injected or switched:
	// an experiment never acts unrecorded.
	Audit Recorder
	// Clock is the time experiments' windows are read against; time.Now
	// when nil.
	Clock func() time.Time
	// Rand returns a number in [0, 1); a call gets an experiment's fault
	// when it is below the probability. It is called from concurrent
	// calls. math/rand/v2 when nil.
	Rand   func() float64
	Logger *slog.Logger
}

// Call is a call an entry point is about to forward: a tool call (Server
// and Tool) or a model call (Model), with what identifies it in the audit
// log.
type Call struct {
	Server, Tool, Model string
	Agent, Session      string
	// Decision is the id of the decision that allowed the call.
	Decision string
}

// Fault is what an entry point acts out on one call.
type Fault struct {
	// Experiment is the id of the experiment that injected it.
	Experiment string
	// Kind is Latency, Error or Drop.
	Kind string
	// Wait comes before the call is forwarded (Latency) or fails (Error,
	// Drop).
	Wait time.Duration
	// Message and Code are an Error fault's.
	Message string
	Code    int
}

// ErrUnknown is the error of a switch of an experiment that is not
// configured.
var ErrUnknown = errors.New("no such chaos experiment")

// Injector decides which calls get a fault. It is safe for concurrent use;
// a nil *Injector injects nothing.
type Injector struct {
	exps  []*experiment
	byID  map[string]*experiment
	audit Recorder
	clock func() time.Time
	rand  func() float64
	log   *slog.Logger
	// switching orders the switches, so that the audit log's order of
	// them is the order they took effect in.
	switching sync.Mutex
}

// experiment is an Experiment compiled once, with its running state.
type experiment struct {
	cfg      Experiment
	tools    []toolGlob
	servers  []string
	models   []string
	from, to time.Time // zero when open
	enabled  atomic.Bool
	injected atomic.Int64
}

type toolGlob struct {
	server, name string
	hasServer    bool
}

// New builds the Injector of filled and validated experiments; nil when
// there are none.
func New(exps []Experiment, opt Options) *Injector {
	if len(exps) == 0 {
		return nil
	}
	in := &Injector{byID: map[string]*experiment{}, audit: opt.Audit, clock: opt.Clock, rand: opt.Rand, log: opt.Logger}
	if in.clock == nil {
		in.clock = time.Now
	}
	if in.rand == nil {
		in.rand = rand.Float64
	}
	if in.log == nil {
		in.log = slog.Default()
	}
	for _, c := range exps {
		e := &experiment{cfg: c, servers: c.Match.Servers, models: c.Match.Models}
		for _, t := range c.Match.Tools {
			srv, name, ok := strings.Cut(t, "/")
			if !ok {
				name = t
			}
			e.tools = append(e.tools, toolGlob{server: srv, name: name, hasServer: ok})
		}
		if c.From != nil {
			e.from = c.From.Time
		}
		if c.Until != nil {
			e.to = c.Until.Time
		}
		e.enabled.Store(c.Enabled == nil || *c.Enabled)
		in.exps = append(in.exps, e)
		in.byID[c.ID] = e
	}
	return in
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == "*" || policy.Glob(p, s) {
			return true
		}
	}
	return false
}

// matches reports whether every field the experiment lists matches c.
func (e *experiment) matches(c *Call) bool {
	if c.Model != "" {
		return len(e.models) > 0 && anyGlob(e.models, c.Model)
	}
	if c.Tool == "" || len(e.models) > 0 {
		return false
	}
	if len(e.servers) > 0 && !anyGlob(e.servers, c.Server) {
		return false
	}
	if len(e.tools) == 0 {
		return true
	}
	for _, t := range e.tools {
		if t.hasServer && t.server != "*" && !policy.Glob(t.server, c.Server) {
			continue
		}
		if t.name == "*" || policy.Glob(t.name, c.Tool) {
			return true
		}
	}
	return false
}

// active reports whether the experiment's window holds now.
func (e *experiment) active(now time.Time) bool {
	return (e.from.IsZero() || !now.Before(e.from)) && (e.to.IsZero() || now.Before(e.to))
}

// Inject says whether c gets a fault, and which: the first experiment that
// is enabled, in its window, matches c and whose chance comes up. The fault
// is in the audit log when Inject returns it; when it cannot be written
// there, the call gets no fault.
func (in *Injector) Inject(ctx context.Context, c Call) (Fault, bool) {
	if in == nil {
		return Fault{}, false
	}
	var now time.Time // read once, and only for an experiment with a window
	for _, e := range in.exps {
		if !e.enabled.Load() || !e.matches(&c) {
			continue
		}
		if !e.from.IsZero() || !e.to.IsZero() {
			if now.IsZero() {
				now = in.clock()
			}
			if !e.active(now) {
				continue
			}
		}
		if in.rand() >= e.cfg.Probability {
			continue
		}
		f := Fault{Experiment: e.cfg.ID, Kind: e.cfg.Fault, Wait: time.Duration(e.cfg.LatencyMS) * time.Millisecond}
		if e.cfg.Error != nil {
			f.Message, f.Code = e.cfg.Error.Message, e.cfg.Error.Code
		}
		if err := in.record(ctx, "chaos.fault", faultRecord{
			Experiment: f.Experiment, Fault: f.Kind, Server: c.Server, Tool: c.Tool, Model: c.Model,
			Agent: c.Agent, Session: c.Session, Decision: c.Decision, LatencyMS: e.cfg.LatencyMS,
			Error: f.Message, Code: f.Code,
		}); err != nil {
			in.log.Error("chaos fault not injected: it could not be written to the audit log", "experiment", f.Experiment, "err", err)
			return Fault{}, false
		}
		e.injected.Add(1)
		return f, true
	}
	return Fault{}, false
}

// faultRecord is the audit record of one injected fault.
type faultRecord struct {
	Experiment string `json:"experiment"`
	Fault      string `json:"fault"`
	Server     string `json:"server,omitempty"`
	Tool       string `json:"tool,omitempty"`
	Model      string `json:"model,omitempty"`
	Agent      string `json:"agent,omitempty"`
	Session    string `json:"session,omitempty"`
	Decision   string `json:"decision,omitempty"`
	LatencyMS  int64  `json:"latency_ms,omitempty"`
	Error      string `json:"error,omitempty"`
	Code       int    `json:"code,omitempty"`
}

// switchRecord is the audit record of an experiment switched on or off.
type switchRecord struct {
	Experiment string `json:"experiment"`
	Enabled    bool   `json:"enabled"`
	Was        bool   `json:"was"`
	By         string `json:"by"`
	Reason     string `json:"reason,omitempty"`
}

func (in *Injector) record(ctx context.Context, kind string, rec any) error {
	if in.audit == nil {
		return errors.New("no audit log")
	}
	// The record must survive the caller hanging up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := in.audit.Append(ctx, kind, rec)
	return err
}

// Status is an experiment as GET /v1/chaos shows it.
type Status struct {
	Experiment
	Enabled bool `json:"enabled"`
	// Active says the experiment injects now: enabled and in its window.
	Active bool `json:"active"`
	// Injected counts the faults it injected since the server started.
	Injected int64 `json:"injected"`
}

func (in *Injector) status(e *experiment, now time.Time) Status {
	on := e.enabled.Load()
	return Status{Experiment: e.cfg, Enabled: on, Active: on && e.active(now), Injected: e.injected.Load()}
}

// List is every experiment's status, in the configuration's order.
func (in *Injector) List() []Status {
	out := []Status{}
	if in == nil {
		return out
	}
	now := in.clock()
	for _, e := range in.exps {
		out = append(out, in.status(e, now))
	}
	return out
}

// Switch turns experiment id on or off, on this process, once the change
// is in the audit log with who made it and why. An unknown id is
// ErrUnknown.
func (in *Injector) Switch(ctx context.Context, id string, on bool, by, reason string) (Status, error) {
	if in == nil {
		return Status{}, fmt.Errorf("%w %q: none is configured", ErrUnknown, id)
	}
	e := in.byID[id]
	if e == nil {
		return Status{}, fmt.Errorf("%w %q", ErrUnknown, id)
	}
	in.switching.Lock()
	defer in.switching.Unlock()
	was := e.enabled.Load()
	if err := in.record(ctx, "chaos.switch", switchRecord{Experiment: id, Enabled: on, Was: was, By: by, Reason: reason}); err != nil {
		return Status{}, fmt.Errorf("chaos experiment %s not switched: the audit log could not record it: %w", id, err)
	}
	e.enabled.Store(on)
	return in.status(e, in.clock()), nil
}
