package report

import (
	"sort"
	"time"

	"github.com/agentgov/agentgov/policy"
)

// Review is a document whose review is due.
type Review struct {
	Document  string    `json:"document"`
	File      string    `json:"file,omitempty"`
	Frequency string    `json:"frequency"`
	Approvers []string  `json:"approvers"`
	Reviewed  string    `json:"reviewed,omitempty"`
	Due       time.Time `json:"due"`
}

// Overdue lists the documents of set whose review (review: {frequency,
// reviewed}) is due at now, the most overdue first; a document with a
// frequency that was never reviewed is due.
func Overdue(set *policy.Set, now time.Time) []Review {
	out := []Review{}
	for _, d := range set.Documents() {
		due, ok := d.Review.ReviewDue()
		if !ok || due.After(now) {
			continue
		}
		ap := d.Review.Approvers
		if ap == nil {
			ap = []string{}
		}
		out = append(out, Review{Document: d.Name, File: d.File, Frequency: d.Review.Frequency, Approvers: ap, Reviewed: d.Review.Reviewed, Due: due})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Due.Before(out[j].Due) })
	return out
}
