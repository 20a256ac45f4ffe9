package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// reviewFrequencies are the named review frequencies; a duration such as
// 90d or 2160h is accepted as well.
var reviewFrequencies = map[string]time.Duration{
	"weekly":       7 * 24 * time.Hour,
	"monthly":      31 * 24 * time.Hour,
	"quarterly":    92 * 24 * time.Hour,
	"semiannually": 183 * 24 * time.Hour,
	"annually":     366 * 24 * time.Hour,
	"yearly":       366 * 24 * time.Hour,
}

// ReviewEvery parses a review frequency: weekly, monthly, quarterly,
// semiannually, annually (or yearly), or a duration (90d, 2160h).
func ReviewEvery(f string) (time.Duration, error) {
	if d, ok := reviewFrequencies[strings.ToLower(f)]; ok {
		return d, nil
	}
	if days, ok := strings.CutSuffix(f, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	if d, err := time.ParseDuration(f); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("unknown review frequency %q (want weekly, monthly, quarterly, semiannually, annually, or a duration such as 90d)", f)
}

// ReviewDate is the layout of review.reviewed.
const ReviewDate = "2006-01-02"

// ReviewDue says when a document's next review is due; ok is false when it
// asks for none (no frequency). A document never reviewed is due from the
// start (the zero time).
func (r *Review) ReviewDue() (due time.Time, ok bool) {
	if r == nil || r.Frequency == "" {
		return time.Time{}, false
	}
	every, err := ReviewEvery(r.Frequency)
	if err != nil {
		return time.Time{}, false
	}
	last, err := time.Parse(ReviewDate, r.Reviewed)
	if err != nil {
		return time.Time{}, true
	}
	return last.Add(every), true
}

func (v *validator) review(r *Review) {
	if r == nil {
		return
	}
	if r.Frequency != "" {
		if _, err := ReviewEvery(r.Frequency); err != nil {
			v.errorf(keys("review", "frequency"), "%v", err)
		}
	}
	if r.Reviewed != "" {
		if _, err := time.Parse(ReviewDate, r.Reviewed); err != nil {
			v.errorf(keys("review", "reviewed"), "review.reviewed: want a date YYYY-MM-DD, got %q", r.Reviewed)
		}
	}
}
