package console

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentgov/agentgov/client"
)

// decisionRow is one decision of the audit log, as the feed lists it.
type decisionRow struct {
	Index   uint64
	Time    time.Time
	ID      string
	Agent   string
	Session string
	Point   string
	Tool    string
	Effect  string
	Rules   []string
	Reasons []string
	// Provenance says where the values of a decision a provenance rule
	// produced came from.
	Provenance []provView
}

type decisionRecord struct {
	Action struct {
		Agent struct {
			ID string `json:"id"`
		} `json:"agent"`
		Session string `json:"session"`
		Point   string `json:"point"`
		Tool    struct {
			Server string `json:"server"`
			Name   string `json:"name"`
		} `json:"tool"`
		Model string `json:"model"`
	} `json:"action"`
	Decision struct {
		ID         string              `json:"id"`
		Effect     string              `json:"effect"`
		Rules      []string            `json:"rules"`
		Reasons    []string            `json:"reasons"`
		Provenance map[string][]string `json:"provenance"`
	} `json:"decision"`
}

func rowOf(e client.AuditEntry) (decisionRow, bool) {
	if e.Kind != "decision" {
		return decisionRow{}, false
	}
	var d decisionRecord
	if json.Unmarshal(e.Record, &d) != nil {
		return decisionRow{}, false
	}
	tool := d.Action.Tool.Name
	if d.Action.Tool.Server != "" {
		tool = d.Action.Tool.Server + "/" + tool
	}
	if tool == "" {
		tool = d.Action.Model
	}
	return decisionRow{Index: e.Index, Time: e.Time, ID: d.Decision.ID, Agent: d.Action.Agent.ID, Session: d.Action.Session,
		Point: d.Action.Point, Tool: tool, Effect: d.Decision.Effect, Rules: d.Decision.Rules, Reasons: d.Decision.Reasons,
		Provenance: viewProvenance(d.Decision.Provenance)}, true
}

// filter is what the feed shows: empty fields match everything.
type filter struct{ Agent, Effect, Tool, Rule string }

func filterOf(r *http.Request) filter {
	q := r.URL.Query()
	return filter{Agent: strings.TrimSpace(q.Get("agent")), Effect: q.Get("effect"), Tool: strings.TrimSpace(q.Get("tool")), Rule: strings.TrimSpace(q.Get("rule"))}
}

func (f filter) match(d decisionRow) bool {
	return (f.Agent == "" || d.Agent == f.Agent) && (f.Effect == "" || d.Effect == f.Effect) &&
		(f.Tool == "" || strings.Contains(d.Tool, f.Tool)) && (f.Rule == "" || slices.Contains(d.Rules, f.Rule))
}

// scanBack is how far back the feed looks for matching decisions.
const scanBack = 5000

// recent returns up to n newest entries' decisions that match, newest
// first, and the log's size.
func recent(cx context.Context, api *client.Client, f filter, n int) ([]decisionRow, uint64, error) {
	head, err := api.AuditEntries(cx, -1, 1)
	if err != nil {
		return nil, 0, err
	}
	size := head.Size
	var rows []decisionRow
	for end := int64(size); end > 0 && len(rows) < n && int64(size)-end < scanBack; {
		start := max(end-1000, 0)
		page, err := api.AuditEntries(cx, start-1, int(end-start))
		if err != nil {
			return nil, 0, err
		}
		for i := len(page.Entries) - 1; i >= 0 && len(rows) < n; i-- {
			if d, ok := rowOf(page.Entries[i]); ok && f.match(d) {
				rows = append(rows, d)
			}
		}
		end = start
	}
	return rows, size, nil
}

func (c *Console) decisions(w http.ResponseWriter, r *http.Request, s *session) {
	cx, cancel := ctx(r)
	defer cancel()
	f := filterOf(r)
	rows, size, err := recent(cx, s.api, f, 100)
	// The live feed's address, each filter in its own parameter whatever
	// it holds ("&", "#", "=").
	live := url.Values{"after": {strconv.FormatInt(int64(size)-1, 10)}, "agent": {f.Agent}, "effect": {f.Effect}, "tool": {f.Tool}, "rule": {f.Rule}}
	data := map[string]any{"Title": "Decisions", "Rows": rows, "Filter": f, "Size": size, "Live": "/ui/events/decisions?" + live.Encode(),
		"Effects": []string{"allow", "deny", "require_approval"}}
	if err != nil {
		data["Error"] = apiError(err)
	}
	c.page(w, r, s, http.StatusOK, "decisions.html", data)
}

// decisionEvents streams the rows of decisions logged after ?after=N that
// match the page's filters, each as the HTML of a table row.
func (c *Console) decisionEvents(w http.ResponseWriter, r *http.Request, s *session) {
	f := filterOf(r)
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if err != nil || after < -1 {
		http.Error(w, "after: want the index of the last entry shown", http.StatusBadRequest)
		return
	}
	row := c.tmpl["decisions.html"].Lookup("row")
	c.stream(w, r, s, func() (string, string, bool) {
		cx, cancel := ctx(r)
		defer cancel()
		page, err := s.api.AuditEntries(cx, after, 1000)
		if err != nil || len(page.Entries) == 0 {
			return "", "", false
		}
		var rows []string
		for _, e := range page.Entries {
			after = int64(e.Index)
			if d, ok := rowOf(e); ok && f.match(d) {
				var one bytes.Buffer
				if row.Execute(&one, d) == nil {
					rows = append(rows, one.String())
				}
			}
		}
		if len(rows) == 0 {
			return "", "", false
		}
		// Newest first, as the table lists them.
		slices.Reverse(rows)
		return "rows", strings.Join(rows, ""), true
	})
}
