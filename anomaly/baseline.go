package anomaly

import (
	"math"
	"time"
)

// Baseline is what the detector remembers of an agent, as GET
// /v1/agents/{id}/anomaly shows it: enough to tell an operator why a call
// was, or was not, an anomaly.
type Baseline struct {
	Agent string `json:"agent"`
	// Warm says its history spans the warm-up; Intervals is how many
	// intervals it spans.
	Warm      bool  `json:"warm"`
	Intervals int64 `json:"intervals"`
	// Count is the calls counted in the current interval; Mean and Std
	// the rate baseline they are compared with (Std floored as for the
	// z-score), RateZ their z-score now (0 before the warm-up).
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	Std   float64 `json:"std"`
	RateZ float64 `json:"rate_z"`
	// Entropy is that of the latest window; Low and High the band, once
	// it has EntropySamples of at least 5 windows.
	Entropy        float64 `json:"entropy"`
	Low            float64 `json:"entropy_low"`
	High           float64 `json:"entropy_high"`
	EntropySamples int64   `json:"entropy_samples"`
	// ToolsAllowed are the tools remembered as allowed; ToolsRemembered
	// every tool remembered, allowed or not.
	ToolsAllowed    int `json:"tools_allowed"`
	ToolsRemembered int `json:"tools_remembered"`
}

// Baseline reports what is remembered of agent at now, changing nothing;
// false when the agent is not remembered.
func (d *Detector) Baseline(agent string, now time.Time) (Baseline, bool) {
	sh := d.shardOf(agent)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.agents[agent]
	if st == nil {
		return Baseline{}, false
	}
	// The intervals closed since the agent's last call, on a copy.
	rate, cur, count := st.rate, st.cur, st.count
	if iv := now.UnixNano() / d.interval; iv > cur {
		rate.add(float64(count), d.memory)
		rate.addZeros(iv-cur-1, d.memory)
		cur, count = iv, 0
	}
	b := Baseline{Agent: st.id, Intervals: cur - st.first, Count: count, Mean: rate.mean,
		Std: math.Sqrt(max(rate.vari, rate.mean, 1)), EntropySamples: st.ent.n, ToolsRemembered: len(st.tools)}
	b.Warm = b.Intervals >= int64(d.cfg.WarmupIntervals)
	if b.Warm {
		b.RateZ = (float64(count) - b.Mean) / b.Std
	}
	b.Entropy = d.entropy(st)
	if st.ent.n > 0 {
		b.Low, b.High = d.band(st)
	}
	for _, s := range st.slots {
		if s.learned {
			b.ToolsAllowed++
		}
	}
	return b, true
}
