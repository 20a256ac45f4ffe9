package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// usageRow is one budget against its limits, as GET /v1/usage answers.
type usageRow struct {
	ID          string             `json:"id"`
	Period      string             `json:"period"`
	PeriodStart time.Time          `json:"period_start"`
	Scope       map[string]string  `json:"scope"`
	Spent       map[string]float64 `json:"spent"`
	Reserved    map[string]float64 `json:"reserved"`
	Limits      map[string]float64 `json:"limits"`
	Fraction    float64            `json:"fraction"`
}

// dayBar is one day of spend in the chart.
type dayBar struct {
	Day    string
	Cost   float64
	Height float64 // percent of the tallest day
	X      float64
}

func (c *Console) budgets(w http.ResponseWriter, r *http.Request, s *session) {
	cx, cancel := ctx(r)
	defer cancel()
	data := map[string]any{"Title": "Budgets"}
	var usage struct {
		Usage []usageRow `json:"usage"`
	}
	if err := s.api.GetJSON(cx, "/v1/usage", nil, &usage); err != nil {
		data["Error"] = apiError(err)
	}
	slices.SortFunc(usage.Usage, func(a, b usageRow) int {
		switch {
		case a.Fraction > b.Fraction:
			return -1
		case a.Fraction < b.Fraction:
			return 1
		}
		return 0
	})
	data["Usage"] = usage.Usage
	// Spend per day over the month so far, for the chart.
	var spend struct {
		Spend struct {
			Groups []struct {
				Day   string             `json:"day"`
				Spent map[string]float64 `json:"spent"`
			} `json:"groups"`
		} `json:"spend"`
	}
	if err := s.api.GetJSON(cx, "/v1/usage", url.Values{"group_by": {"day"}, "period": {"month"}}, &spend); err == nil {
		var bars []dayBar
		top := 0.0
		for _, d := range spend.Spend.Groups {
			bars = append(bars, dayBar{Day: d.Day, Cost: d.Spent["cost_usd"]})
			top = max(top, d.Spent["cost_usd"])
		}
		slices.SortFunc(bars, func(a, b dayBar) int {
			if a.Day < b.Day {
				return -1
			}
			return 1
		})
		for i := range bars {
			if top > 0 {
				bars[i].Height = bars[i].Cost / top * 100
			}
			bars[i].X = float64(i) * 12
		}
		data["Days"] = bars
		data["Top"] = fmt.Sprintf("$%.4f", top)
	}
	c.page(w, r, s, http.StatusOK, "budgets.html", data)
}
