package sre

import (
	"sync"
	"time"

	"github.com/agentgov/agentgov/action"
)

// AlertWindow is one multiwindow burn-rate alert of the SRE workbook: it
// fires while the error budget burns faster than Factor times the
// sustainable rate over both the long window (the budget really is going)
// and the short one (it is still going now, so the alert ends soon after
// the trouble does).
type AlertWindow struct {
	Severity string
	Long     time.Duration
	Short    time.Duration
	Factor   float64
}

// Alerts are the workbook's recommended windows for a 30-day SLO: 2% of
// the budget spent in an hour or 5% in six hours pages; 10% in three days
// opens a ticket.
var Alerts = []AlertWindow{
	{"page", time.Hour, 5 * time.Minute, 14.4},
	{"page", 6 * time.Hour, 30 * time.Minute, 6},
	{"ticket", 72 * time.Hour, 6 * time.Hour, 1},
}

// BurnWindows are the windows GET /v1/slos reports burn rates over.
var BurnWindows = []struct {
	Name string
	D    time.Duration
}{
	{"5m", 5 * time.Minute}, {"30m", 30 * time.Minute}, {"1h", time.Hour}, {"6h", 6 * time.Hour}, {"3d", 72 * time.Hour},
}

// Bucket widths: fine for the windows up to six hours, an hour beyond.
const (
	fineWidth   = 10 * time.Second
	fineSpan    = 6 * time.Hour
	coarseWidth = time.Hour
)

// slo keeps the events of one SLO.
type slo struct {
	cfg   SLO
	match matcher

	mu     sync.Mutex
	fine   *ring // 10s buckets over 6h: the short windows
	coarse *ring // 1h buckets over the SLO's window (at least 3d)
	// good and bad since start, exported as counters at /metrics.
	good, bad uint64
	paging    bool // a page alert fired at the last evaluation
	// lastBad are the last bad events' decisions, for the timeline of the
	// incident a page opens.
	lastBad [recentFailures]Entry
	nBad    int
}

func newSLO(cfg SLO) *slo {
	span := max(time.Duration(cfg.Window), 72*time.Hour)
	return &slo{
		cfg:    cfg,
		match:  compile(cfg.Match),
		fine:   newRing(fineWidth, int(fineSpan/fineWidth)),
		coarse: newRing(coarseWidth, int(span/coarseWidth)+1),
	}
}

func (s *slo) record(now time.Time, id action.ID, good bool) {
	var g, b uint64
	if good {
		g = 1
	} else {
		b = 1
	}
	s.mu.Lock()
	if !good {
		s.lastBad[s.nBad%recentFailures] = Entry{At: now, Kind: "decision", Decision: id.String(), Message: "a bad event of the SLI"}
		s.nBad++
	}
	s.fine.add(now, g, b)
	s.coarse.add(now, g, b)
	s.good += g
	s.bad += b
	s.mu.Unlock()
}

// window sums the events of the last d.
func (s *slo) window(now time.Time, d time.Duration) counts {
	if d <= fineSpan {
		return s.fine.sum(now, d)
	}
	return s.coarse.sum(now, d)
}

// BurnRate is how fast c spends the error budget of target: its error
// ratio over the ratio the target allows. 1 spends exactly the budget over
// the SLO's window; no events burn nothing.
func BurnRate(c counts, target float64) float64 {
	if c.total() == 0 {
		return 0
	}
	return (float64(c.bad) / float64(c.total())) / (1 - target)
}

// BudgetRemaining is the fraction of the error budget left after c, as
// the SRE workbook defines it: 1 - (bad/total)/(1 - target). It goes
// below 0 once the budget is spent.
func BudgetRemaining(good, bad uint64, target float64) float64 {
	return 1 - BurnRate(counts{good, bad}, target)
}

// Status is one SLO as GET /v1/slos shows it.
type Status struct {
	ID                   string             `json:"id"`
	SLI                  string             `json:"sli"`
	Target               float64            `json:"target"`
	Window               string             `json:"window"`
	Good                 uint64             `json:"good"`
	Total                uint64             `json:"total"`
	ErrorBudgetRemaining float64            `json:"error_budget_remaining"`
	BurnRates            map[string]float64 `json:"burn_rates"`
	Alerts               []AlertStatus      `json:"alerts"`
}

// AlertStatus is one burn-rate alert of an SLO and whether it fires.
type AlertStatus struct {
	Severity    string  `json:"severity"`
	LongWindow  string  `json:"long_window"`
	ShortWindow string  `json:"short_window"`
	Factor      float64 `json:"factor"`
	Firing      bool    `json:"firing"`
}

func (s *slo) status(now time.Time) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.cfg.Target
	in := s.window(now, time.Duration(s.cfg.Window))
	st := Status{
		ID: s.cfg.ID, SLI: s.cfg.SLI, Target: t, Window: s.cfg.Window.String(),
		Good: in.good, Total: in.total(),
		ErrorBudgetRemaining: BudgetRemaining(in.good, in.bad, t),
		BurnRates:            make(map[string]float64, len(BurnWindows)),
	}
	for _, w := range BurnWindows {
		st.BurnRates[w.Name] = BurnRate(s.window(now, w.D), t)
	}
	for _, a := range Alerts {
		st.Alerts = append(st.Alerts, AlertStatus{
			Severity: a.Severity, LongWindow: Duration(a.Long).String(), ShortWindow: Duration(a.Short).String(), Factor: a.Factor,
			Firing: BurnRate(s.window(now, a.Long), t) > a.Factor && BurnRate(s.window(now, a.Short), t) > a.Factor,
		})
	}
	return st
}

// Paging reports whether a page alert of st fires.
func (st *Status) Paging() bool {
	for _, a := range st.Alerts {
		if a.Severity == "page" && a.Firing {
			return true
		}
	}
	return false
}

// recentBad is the last bad events, oldest first.
func (s *slo) recentBad() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, recentFailures)
	for i := s.nBad - recentFailures; i < s.nBad; i++ {
		if i >= 0 {
			out = append(out, s.lastBad[i%recentFailures])
		}
	}
	return out
}
