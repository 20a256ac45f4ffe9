package budget

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

type periodKind int

const (
	periodNone periodKind = iota
	periodSession
	periodDaily
	periodWeekly
	periodMonthly
	periodRolling
)

// rollingBuckets is how many fixed buckets a rolling window is cut into.
// A window of D keeps counters per bucket of D/rollingBuckets, aligned to
// the Unix epoch, and counts the current bucket and the rollingBuckets before
// it. It therefore looks back between D and D + D/rollingBuckets: it may
// remember spending a little longer than D, never shorter, so it can only err
// towards refusing.
const rollingBuckets = 12

type period struct {
	kind   periodKind
	loc    *time.Location
	window time.Duration // rolling only
	width  time.Duration // rolling only: one bucket
}

// parsePeriod reads a period name or a rolling duration ("5h", "7d").
func parsePeriod(s, tz string) (period, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return period{}, &ConfigError{Field: "timezone", Problem: fmt.Sprintf("unknown time zone %q (want an IANA name such as UTC or Europe/Paris)", tz)}
	}
	p := period{loc: loc}
	switch s {
	case "none":
		p.kind = periodNone
	case "session":
		p.kind = periodSession
	case "daily":
		p.kind = periodDaily
	case "weekly":
		p.kind = periodWeekly
	case "monthly":
		p.kind = periodMonthly
	case "":
		return period{}, &ConfigError{Field: "period", Problem: "required (session, daily, weekly, monthly, none, or a rolling duration such as 5h)"}
	default:
		d, err := parseWindow(s)
		if err != nil {
			return period{}, &ConfigError{Field: "period", Problem: fmt.Sprintf("unknown period %q (want session, daily, weekly, monthly, none, or a rolling duration such as 5h or 7d)", s)}
		}
		if d < time.Minute || d > 366*24*time.Hour {
			return period{}, &ConfigError{Field: "period", Problem: fmt.Sprintf("rolling window %s must be between 1m and 366d", s)}
		}
		p.kind, p.window = periodRolling, d
		p.width = (d / rollingBuckets).Truncate(time.Second)
	}
	return p, nil
}

func parseWindow(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days <= 0 || days > 366 {
			return 0, fmt.Errorf("bad day count")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// span is where an action's usage is counted under one budget at one moment.
type span struct {
	// key is the counter that new usage is recorded under.
	key string
	// keys are all the counters whose sum is the period's usage (key and, for
	// a rolling window, the buckets before it).
	keys []string
	// start and end bound the period; zero for session and none.
	start, end time.Time
}

// at returns the span in force at now for an action of agent in session.
func (p period) at(now time.Time, agent, session string) span {
	var start, end time.Time
	switch p.kind {
	case periodNone:
		return span{key: "all", keys: []string{"all"}}
	case periodSession:
		k := sessionKey(agent, session)
		return span{key: k, keys: []string{k}}
	case periodDaily:
		t := now.In(p.loc)
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, p.loc)
		end = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, p.loc)
	case periodWeekly:
		t := now.In(p.loc)
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(t.Year(), t.Month(), t.Day()-back, 0, 0, 0, 0, p.loc)
		end = time.Date(t.Year(), t.Month(), t.Day()-back+7, 0, 0, 0, 0, p.loc)
	case periodMonthly:
		t := now.In(p.loc)
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, p.loc)
		end = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, p.loc)
	case periodRolling:
		w := int64(p.width / time.Second)
		cur := floorDiv(now.Unix(), w) * w
		keys := make([]string, rollingBuckets+1)
		for i := range keys {
			keys[i] = "r:" + strconv.FormatInt(cur-int64(i)*w, 10)
		}
		return span{key: keys[0], keys: keys,
			start: time.Unix(cur-rollingBuckets*w, 0).In(p.loc), end: time.Unix(cur+w, 0).In(p.loc)}
	}
	k := "t:" + strconv.FormatInt(start.Unix(), 10)
	return span{key: k, keys: []string{k}, start: start, end: end}
}

// rateKey names the counter of throttled calls in the rate bucket holding now.
func rateKey(now time.Time, width time.Duration) string {
	w := int64(width / time.Second)
	return "q:" + strconv.FormatInt(floorDiv(now.Unix(), w)*w, 10)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// sessionKey names the counter of one session: session ids are per agent,
// so the key holds both, the agent's length first so that no pair of ids
// can spell another pair's key. (Counters from before sessions were per
// agent, "s:" and the session alone, are not counted again.)
func sessionKey(agent, session string) string {
	return "s:" + strconv.Itoa(len(agent)) + ":" + agent + session
}

// parseSessionKey is the inverse of sessionKey; ok is false for a key of
// another form.
func parseSessionKey(k string) (agent, session string, ok bool) {
	rest, ok := strings.CutPrefix(k, "s:")
	if !ok {
		return "", "", false
	}
	n, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return "", "", false
	}
	l, err := strconv.Atoi(n)
	if err != nil || l < 0 || l > len(rest) {
		return "", "", false
	}
	return rest[:l], rest[l:], true
}
