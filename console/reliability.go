package console

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentgov/agentgov/client"
)

// The shapes of GET /v1/slos, /v1/breakers and /v1/incidents, as the page
// reads them (the console does not depend on the package that computes
// them).
type sloStatus struct {
	ID                   string             `json:"id"`
	SLI                  string             `json:"sli"`
	Target               float64            `json:"target"`
	Window               string             `json:"window"`
	Good                 uint64             `json:"good"`
	Total                uint64             `json:"total"`
	ErrorBudgetRemaining float64            `json:"error_budget_remaining"`
	BurnRates            map[string]float64 `json:"burn_rates"`
	Alerts               []alertStatus      `json:"alerts"`
}

type alertStatus struct {
	Severity    string  `json:"severity"`
	LongWindow  string  `json:"long_window"`
	ShortWindow string  `json:"short_window"`
	Factor      float64 `json:"factor"`
	Firing      bool    `json:"firing"`
}

type breakerStatus struct {
	ID       string     `json:"id"`
	Key      string     `json:"key"`
	State    string     `json:"state"`
	Calls    uint64     `json:"calls"`
	Failures uint64     `json:"failures"`
	OpenedAt *time.Time `json:"opened_at"`
	Trips    uint64     `json:"trips"`
}

type incident struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind"`
	Subject  string     `json:"subject"`
	Title    string     `json:"title"`
	Severity string     `json:"severity"`
	Status   string     `json:"status"`
	OpenedAt time.Time  `json:"opened_at"`
	ClosedAt *time.Time `json:"closed_at"`
	ClosedBy string     `json:"closed_by"`
	Note     string     `json:"note"`
	Timeline []struct {
		At       time.Time `json:"at"`
		Kind     string    `json:"kind"`
		Decision string    `json:"decision"`
		Message  string    `json:"message"`
	} `json:"timeline"`
	Dropped int `json:"dropped"`
}

// burnWindows are the windows GET /v1/slos reports, in the chart's order.
var burnWindows = []string{"5m", "30m", "1h", "6h", "3d"}

// Geometry of a burn chart (SVG user units).
const (
	chartW, chartH         = 380.0, 170.0
	plotX0, plotX1         = 44.0, 300.0 // threshold labels sit right of the plot
	plotY0, plotY1         = 12.0, 140.0
	chartFloor, chartCeil0 = 0.1, 100.0 // the log scale's ends, before the data widens it
)

// sloView is one SLO with its burn chart laid out.
type sloView struct {
	sloStatus
	Bars       []burnBar
	Thresholds []thresholdLine
	Ticks      []thresholdLine
	// Budget is the error budget remaining, clamped to 0..1 for the meter.
	Budget    float64
	Exhausted bool
	Firing    []alertStatus
	Caption   string
	W, H      float64
	Base      float64 // y of the chart's floor
	// X0 and X1 bound the plot; LabelX is where threshold labels start.
	X0, X1, LabelX float64
}

type burnBar struct {
	Window            string
	Rate              float64
	Label             string
	X, Y, Width, Tall float64
	LabelX, LabelY    float64
	// Over names the highest alert factor the rate passes ("" none), in
	// text beside the colour.
	Over string
}

type thresholdLine struct {
	Y     float64
	Label string
	Class string
}

// yOf places a burn rate on the chart's log scale.
func yOf(v, top float64) float64 {
	v = max(v, chartFloor)
	f := math.Log10(v/chartFloor) / math.Log10(top/chartFloor)
	return round1(plotY1 - f*(plotY1-plotY0))
}

// rate writes a burn rate as people read it: 0×, 0.25×, 14.4×, 50×.
func rate(v float64) string {
	prec := 2
	switch {
	case v == 0:
		return "0×"
	case v >= 100:
		prec = 0
	case v >= 10:
		prec = 1
	}
	s := fmt.Sprintf("%.*f", prec, v)
	if prec > 0 {
		s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	}
	return s + "×"
}

// round1 keeps one decimal of a coordinate: enough for a chart, and
// markup a person can read.
func round1(f float64) float64 { return math.Round(f*10) / 10 }

func viewSLO(st sloStatus) sloView {
	v := sloView{sloStatus: st, W: chartW, H: chartH, Base: plotY1, X0: plotX0 - 4, X1: plotX1, LabelX: plotX1 + 4}
	top := chartCeil0
	for _, w := range burnWindows {
		top = max(top, st.BurnRates[w]*1.5)
	}
	factors := map[float64]string{}
	for _, a := range st.Alerts {
		if prev, ok := factors[a.Factor]; !ok || prev != "page" {
			factors[a.Factor] = a.Severity
		}
		if a.Firing {
			v.Firing = append(v.Firing, a)
		}
	}
	if len(factors) == 0 {
		factors = map[float64]string{14.4: "page", 6: "page", 1: "ticket"}
	}
	fs := make([]float64, 0, len(factors))
	for f := range factors {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	for _, f := range fs {
		v.Thresholds = append(v.Thresholds, thresholdLine{Y: yOf(f, top), Label: rate(f) + " " + factors[f], Class: "threshold-" + factors[f]})
	}
	for _, t := range []float64{0.1, 10, 100, 1000, 10000} {
		if t <= top {
			v.Ticks = append(v.Ticks, thresholdLine{Y: yOf(t, top), Label: rate(t)})
		}
	}
	slot := (plotX1 - plotX0) / float64(len(burnWindows))
	for i, w := range burnWindows {
		r := st.BurnRates[w]
		b := burnBar{Window: w, Rate: r, Label: rate(r), Width: round1(slot * 0.6)}
		b.X = round1(plotX0 + float64(i)*slot + slot*0.2)
		b.Y = yOf(r, top)
		b.Tall = round1(max(plotY1-b.Y, 1))
		b.Y = round1(plotY1 - b.Tall)
		b.LabelX, b.LabelY = round1(b.X+b.Width/2), round1(b.Y-3)
		for _, f := range fs {
			if r >= f {
				b.Over = rate(f)
			}
		}
		v.Bars = append(v.Bars, b)
	}
	v.Budget = min(max(st.ErrorBudgetRemaining, 0), 1)
	v.Exhausted = st.ErrorBudgetRemaining <= 0 && st.Total > 0
	parts := make([]string, len(v.Bars))
	for i, b := range v.Bars {
		parts[i] = b.Window + " " + b.Label
	}
	v.Caption = "Burn rate per window: " + strings.Join(parts, ", ")
	return v
}

func (c *Console) reliability(w http.ResponseWriter, r *http.Request, s *session) {
	cx, cancel := ctx(r)
	defer cancel()
	data := map[string]any{"Title": "Reliability", "Flash": r.URL.Query().Get("done")}
	var slos struct {
		SLOs []sloStatus `json:"slos"`
	}
	switch err := s.api.GetJSON(cx, "/v1/slos", nil, &slos); {
	case client.IsCode(err, "not_found"):
		data["SLOsOff"] = true
	case err != nil:
		data["SLOError"] = apiError(err)
	}
	views := make([]sloView, len(slos.SLOs))
	for i, st := range slos.SLOs {
		views[i] = viewSLO(st)
	}
	data["SLOs"] = views
	var breakers struct {
		Breakers []breakerStatus `json:"breakers"`
	}
	switch err := s.api.GetJSON(cx, "/v1/breakers", nil, &breakers); {
	case client.IsCode(err, "not_found"):
		data["BreakersOff"] = true
	case err != nil:
		data["BreakerError"] = apiError(err)
	}
	data["Breakers"] = breakers.Breakers
	var incidents struct {
		Incidents []incident `json:"incidents"`
	}
	switch err := s.api.GetJSON(cx, "/v1/incidents", url.Values{"status": {"all"}}, &incidents); {
	case client.IsCode(err, "not_found"):
		data["IncidentsOff"] = true
	case err != nil:
		data["IncidentError"] = apiError(err)
	}
	data["Incidents"] = incidents.Incidents
	if s.role == "admin" {
		chaosData(r, s, data)
	}
	c.page(w, r, s, http.StatusOK, "reliability.html", data)
}

// closeIncident closes an incident through the API, with the person's note.
func (c *Console) closeIncident(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	note := strings.TrimSpace(r.PostFormValue("note"))
	cx, cancel := ctx(r)
	defer cancel()
	var out incident
	if err := s.api.PostJSON(cx, "/v1/incidents/"+url.PathEscape(id)+"/close", map[string]string{"note": note}, &out); err != nil {
		c.page(w, r, s, http.StatusConflict, "error.html", map[string]any{"Title": "Incident", "Message": "Incident " + id + " not closed: " + apiError(err)})
		return
	}
	http.Redirect(w, r, "/ui/reliability?done="+urlQuery("incident "+id+" closed"), http.StatusSeeOther)
}
