package stack

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/agentgov/agentgov/govern"
)

// Notices are logged, but a store that is down, or an agent hammering a
// rule that notifies, produces one per decision: the log would grow at the
// rate agents call. Within each window the first notices of a kind are
// passed on and the rest counted; the count goes with the next notice of
// that kind that is passed (field not_logged_before). Only the log is
// bounded: alerts and incidents see every notice.
const (
	noticeLogWindow  = 10 * time.Second
	noticeLogPerKind = 10
)

// LimitNotices bounds the notices passed to log, per kind and window.
func LimitNotices(log func(context.Context, govern.Notice), clock func() time.Time) func(context.Context, govern.Notice) {
	if clock == nil {
		clock = time.Now
	}
	l := &noticeLimit{next: log, clock: clock, passed: map[string]int{}, skipped: map[string]int{}}
	return l.notify
}

type noticeLimit struct {
	next  func(context.Context, govern.Notice)
	clock func() time.Time

	mu      sync.Mutex
	start   time.Time
	passed  map[string]int
	skipped map[string]int
}

func (l *noticeLimit) notify(ctx context.Context, n govern.Notice) {
	now := l.clock()
	l.mu.Lock()
	if now.Sub(l.start) >= noticeLogWindow || now.Before(l.start) {
		l.start, l.passed = now, map[string]int{}
	}
	if l.passed[n.Kind] >= noticeLogPerKind {
		l.skipped[n.Kind]++
		l.mu.Unlock()
		return
	}
	l.passed[n.Kind]++
	skipped := l.skipped[n.Kind]
	delete(l.skipped, n.Kind)
	l.mu.Unlock()
	if skipped > 0 {
		n.Fields = maps.Clone(n.Fields)
		if n.Fields == nil {
			n.Fields = map[string]any{}
		}
		n.Fields["not_logged_before"] = skipped
	}
	l.next(ctx, n)
}
