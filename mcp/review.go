package mcp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/mcp/pin"
)

// lastListing is what the upstream offered at the gateway's last listing
// of its tools, in any session: what a person reviews before re-pinning.
type lastListing struct {
	// repin runs one re-pin at a time, so that two people re-pinning the
	// same drift record one re-pin, and the second is told nothing drifted.
	repin sync.Mutex

	mu     sync.Mutex
	at     time.Time
	tools  []pin.ToolDef         // the last full listing, as sent
	states map[string]*toolState // as assessed then (pages since merged in)
}

func (l *lastListing) keep(at time.Time, tools []pin.ToolDef, states map[string]*toolState, full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if full || l.states == nil {
		l.at, l.tools, l.states = at, slices.Clone(tools), map[string]*toolState{}
		for name, st := range states {
			l.states[name] = st
		}
		return
	}
	for name, st := range states {
		l.states[name] = st
	}
}

func (l *lastListing) get() (time.Time, []pin.ToolDef, map[string]*toolState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]*toolState, len(l.states))
	for name, st := range l.states {
		out[name] = st
	}
	return l.at, slices.Clone(l.tools), out
}

// Tool states in a Review.
const (
	ToolPinned   = "pinned"   // offered as pinned
	ToolDrifted  = "drifted"  // offered, but not as pinned
	ToolNew      = "new"      // offered, not pinned
	ToolRemoved  = "removed"  // pinned, no longer offered
	ToolUnlisted = "unlisted" // pinned; the upstream was not listed yet
)

// ToolReview is one tool as a person reviews it: its pin, what the
// upstream offers now, and the difference between the two.
type ToolReview struct {
	Name          string `json:"name"`
	State         string `json:"state"`
	PinnedDigest  string `json:"pinned_digest,omitempty"`
	CurrentDigest string `json:"current_digest,omitempty"`
	// Quarantine says why calls to the tool are refused; "" when callable.
	Quarantine string         `json:"quarantine,omitempty"`
	Changes    []pin.Change   `json:"changes,omitempty"`
	Diff       []pin.DiffLine `json:"diff,omitempty"`
}

// Review is the state of one server's pins beside what it offers.
type Review struct {
	Server string `json:"server"`
	Lock   string `json:"lock,omitempty"`
	// Signed says the lock is signed: re-pins are made offline.
	Signed bool `json:"signed"`
	// ListedAt is when the gateway last listed the upstream's tools (zero:
	// not since it started; tools are listed when a session needs them).
	ListedAt    time.Time    `json:"listed_at,omitzero"`
	Drift       bool         `json:"drift"`
	Quarantined int          `json:"quarantined"`
	Tools       []ToolReview `json:"tools"`
}

// Review compares the pins with the last listing of the upstream.
func (g *Gateway) Review() Review {
	server := g.cfg.Server
	at, live, states := g.listing.get()
	pinned, _ := g.cfg.Pins.Server(server)
	rv := Review{Server: server, Lock: g.cfg.Pins.Path(), Signed: g.cfg.Pins.Signed(), ListedAt: at, Tools: []ToolReview{}}
	var changes []pin.Change
	if !at.IsZero() {
		changes = pin.Diff(server, pinned, live, g.cfg.Detector)
	}
	byTool := map[string][]pin.Change{}
	for _, c := range changes {
		byTool[c.Tool] = append(byTool[c.Tool], c)
	}
	names := map[string]bool{}
	for n := range pinned {
		names[n] = true
	}
	liveByName := map[string]pin.ToolDef{}
	for _, t := range live {
		names[t.Name] = true
		liveByName[t.Name] = t
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		tr := ToolReview{Name: name, Changes: byTool[name]}
		p, isPinned := pinned[name]
		l, isLive := liveByName[name]
		if isPinned {
			tr.PinnedDigest, _ = p.Fingerprint()
		}
		if isLive {
			tr.CurrentDigest, _ = l.Fingerprint()
		}
		if st := states[name]; st != nil {
			tr.Quarantine = st.quarantine
		}
		switch {
		case at.IsZero():
			tr.State = ToolUnlisted
		case isPinned && !isLive:
			tr.State = ToolRemoved
		case !isPinned:
			tr.State = ToolNew
		case tr.PinnedDigest != tr.CurrentDigest:
			tr.State = ToolDrifted
		default:
			tr.State = ToolPinned
		}
		if tr.State == ToolRemoved || tr.State == ToolNew || tr.State == ToolDrifted {
			rv.Drift = true
			var a, b *pin.ToolDef
			if isPinned {
				a = &p
			}
			if isLive {
				b = &l
			}
			tr.Diff = pin.LineDiff(a, b)
		}
		if tr.Quarantine != "" {
			rv.Quarantined++
		}
		rv.Tools = append(rv.Tools, tr)
	}
	return rv
}

// RepinRequest asks to pin a tool as the upstream offers it now.
type RepinRequest struct {
	Tool string
	// By is who asks, Reason why; both go into the audit log.
	By, Reason string
	// Digest, when set, is the current definition's fingerprint that the
	// person reviewed: the re-pin is refused when the upstream has moved
	// on since, so that what is pinned is what was read.
	Digest string
}

// Repinned is what a re-pin changed.
type Repinned struct {
	Server    string `json:"server"`
	Tool      string `json:"tool"`
	OldDigest string `json:"old_digest,omitempty"`
	NewDigest string `json:"new_digest,omitempty"`
	Lock      string `json:"lock,omitempty"`
}

type repinRecord struct {
	Repinned
	By     string `json:"by"`
	Reason string `json:"reason"`
	Error  string `json:"error,omitempty"`
}

// Repin pins one drifted tool as the upstream offered it at the last
// listing (or drops the pin of a tool it no longer offers), after a
// person reviewed the difference. The re-pin is audited, with who asked
// and the old and new fingerprints, before the lock changes; sessions
// list the tools again before their next call, so it takes effect then.
// It is refused, with an *errcode.Error saying why, when the lock is
// signed, when the tool has not drifted, or when the upstream changed it
// again since the person's review.
func (g *Gateway) Repin(ctx context.Context, req RepinRequest) (Repinned, error) {
	server := g.cfg.Server
	if req.Tool == "" {
		return Repinned{}, errcode.New(errcode.BadRequest, "tool: required")
	}
	if strings.TrimSpace(req.Reason) == "" {
		return Repinned{}, errcode.New(errcode.BadRequest, "reason: say why the new definition is safe to pin; it is recorded in the audit log")
	}
	if g.cfg.Pins.Signed() {
		return Repinned{}, errcode.New(errcode.Conflict, fmt.Sprintf("the lock %s is signed (policy_trust): re-pin offline with `agentgov mcp pin`, sign the lock with `agentgov bundle sign`, and restart the server", lockName(g.cfg.Pins)))
	}
	g.listing.repin.Lock()
	defer g.listing.repin.Unlock()
	at, live, _ := g.listing.get()
	if at.IsZero() {
		return Repinned{}, errcode.New(errcode.Conflict, fmt.Sprintf("the tools of %q have not been listed since the server started: there is nothing to compare the pins with yet", server))
	}
	pinned, _ := g.cfg.Pins.Server(server)
	var cur *pin.ToolDef
	for i := range live {
		if live[i].Name == req.Tool {
			cur = &live[i]
		}
	}
	old, isPinned := pinned[req.Tool]
	out := Repinned{Server: server, Tool: req.Tool, Lock: g.cfg.Pins.Path()}
	if isPinned {
		out.OldDigest, _ = old.Fingerprint()
	}
	switch {
	case cur == nil && !isPinned:
		return Repinned{}, errcode.New(errcode.NotFound, fmt.Sprintf("server %q has no tool %q, pinned or offered", server, req.Tool))
	case cur != nil:
		fp, err := cur.Fingerprint()
		if err != nil {
			return Repinned{}, errcode.New(errcode.Conflict, fmt.Sprintf("tool %s/%s cannot be fingerprinted, so it cannot be pinned: %v", server, req.Tool, err))
		}
		out.NewDigest = fp
	}
	if out.OldDigest == out.NewDigest {
		return Repinned{}, errcode.New(errcode.Conflict, fmt.Sprintf("tool %s/%s has not drifted: it is offered as pinned (%s); nothing to re-pin", server, req.Tool, out.OldDigest))
	}
	if req.Digest != "" && req.Digest != out.NewDigest {
		return Repinned{}, errcode.New(errcode.Conflict, fmt.Sprintf("tool %s/%s changed again since it was reviewed (reviewed %s, offered now %s): review it again", server, req.Tool, req.Digest, cmpOr(out.NewDigest, "no longer offered")))
	}
	rec := repinRecord{Repinned: out, By: req.By, Reason: req.Reason}
	if err := g.record(ctx, "mcp.repin", rec); err != nil {
		return Repinned{}, errcode.Wrap(errcode.Unavailable, "the re-pin could not be written to the audit log, so the pin is unchanged", err)
	}
	if _, err := g.cfg.Pins.Repin(server, req.Tool, cur); err != nil {
		rec.Error = err.Error()
		g.record(ctx, "mcp.repin", rec)
		if errors.Is(err, pin.ErrSigned) {
			return Repinned{}, errcode.New(errcode.Conflict, "the lock is signed: re-pin offline")
		}
		return Repinned{}, errcode.Wrap(errcode.Unavailable, "the lock could not be written, so the pin is unchanged", err)
	}
	g.log.Info("tool re-pinned", "server", server, "tool", req.Tool, "by", req.By, "old", out.OldDigest, "new", out.NewDigest)
	// The review shows the tools as the new pins see them.
	g.assess(ctx, live, true)
	return out, nil
}

func cmpOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// Gateway is the gateway this endpoint serves, for its review and re-pins.
func (h *HTTPHandler) Gateway() *Gateway { return h.g }
