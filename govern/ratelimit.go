package govern

import (
	"sync"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/policy"
)

// limiter counts actions per (rate limit, key) in memory. A sliding window
// weights the previous fixed window by how much of it still overlaps the
// last `per`, the usual two-counter approximation: it needs no per-event
// storage and never lets a burst straddle a window edge at twice the limit.
type limiter struct {
	mu      sync.Mutex
	windows map[limitKey]*window
	sweepAt time.Time
}

// limitKey names one counter: a limit's id is unique within its document
// only, so the document is part of the name, or two documents' limits of
// one id would count into one window (with either one's per). Session ids
// are per agent, so a limit keyed by session counts each agent's session
// apart: agent is set for it alone.
type limitKey struct {
	doc   string
	id    string
	key   string
	agent string
}

type window struct {
	start time.Time // start of the current fixed window
	per   time.Duration
	cur   int64
	prev  int64
}

func newLimiter() *limiter { return &limiter{windows: map[limitKey]*window{}} }

// keyOf extracts the value an action is counted under.
func keyOf(rl *policy.RateLimit, a *action.Action) string {
	switch rl.Key {
	case "session":
		return a.Session
	case "principal.user":
		return a.Principal.User
	case "principal.team":
		return a.Principal.Team
	case "principal.org":
		return a.Principal.Org
	case "tool":
		if a.Tool.Server != "" {
			return a.Tool.Server + "/" + a.Tool.Name
		}
		return a.Tool.Name
	}
	return a.Agent.ID
}

// admit checks every applicable limit and, only if all have room, counts the
// action against all of them. It returns the first limit that is full.
func (l *limiter) admit(limits []*policy.RateLimitRef, a *action.Action, now time.Time) *policy.RateLimitRef {
	type hit struct {
		w *window
	}
	var hits [8]hit
	hs := hits[:0]
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	for _, rl := range limits {
		if !rl.Applies(a) {
			continue
		}
		k := limitKey{doc: rl.Doc.Name, id: rl.ID, key: keyOf(rl.RateLimit, a)}
		if rl.Key == "session" {
			k.agent = a.Agent.ID
		}
		w := l.windows[k]
		if w == nil {
			w = &window{start: now, per: time.Duration(rl.Per)}
			l.windows[k] = w
		}
		per := time.Duration(rl.Per)
		w.roll(now, per)
		count := w.cur
		if rl.Window != "fixed" {
			overlap := 1 - float64(now.Sub(w.start))/float64(per)
			count += int64(float64(w.prev) * overlap)
		}
		if count >= rl.Limit {
			return rl
		}
		hs = append(hs, hit{w})
	}
	for _, h := range hs {
		h.w.cur++
	}
	return nil
}

// roll advances the window to the one containing now.
func (w *window) roll(now time.Time, per time.Duration) {
	elapsed := now.Sub(w.start)
	if elapsed < per {
		return
	}
	n := elapsed / per
	if n == 1 {
		w.prev = w.cur
	} else {
		w.prev = 0
	}
	w.cur = 0
	w.start = w.start.Add(n * per)
}

// sweep drops windows idle for two periods (they count nothing any more); it
// runs at most once a minute so that keys of finished sessions do not pile up.
func (l *limiter) sweep(now time.Time) {
	if now.Before(l.sweepAt) {
		return
	}
	l.sweepAt = now.Add(time.Minute)
	for k, w := range l.windows {
		if now.Sub(w.start) >= 2*w.per {
			delete(l.windows, k)
		}
	}
}
