package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// spendOf reads the spend part of GET /v1/usage.
type spendOf struct {
	Period  string
	From    string
	To      string
	GroupBy []string `json:"group_by"`
	Total   amounts
	Groups  []struct {
		Agent, User, Team, Org, Model, Day string
		Spent                              amounts
	}
}

type amounts struct {
	CostUSD      json.Number `json:"cost_usd"`
	Tokens       int64       `json:"tokens"`
	InputTokens  int64       `json:"input_tokens"`
	OutputTokens int64       `json:"output_tokens"`
	Calls        int64       `json:"calls"`
}

func (e *env) usage(query string) (int, spendOf, map[string]any) {
	e.t.Helper()
	status, m := e.call("GET", "/v1/usage"+query, "admin-tok", "")
	var sp spendOf
	if raw, ok := m["spend"]; ok {
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &sp); err != nil {
			e.t.Fatal(err)
		}
	}
	return status, sp, m
}

// spendCall decides a model call for token and records its outcome.
func (e *env) spendCall(token, model string, in, out int64, cost string) {
	e.t.Helper()
	status, d := e.call("POST", "/v1/decide", token, fmt.Sprintf(`{"point":"pre_model_call","model":%q}`, model))
	if status != 200 || d["effect"] != "allow" {
		e.t.Fatalf("decide: %d %v", status, d)
	}
	body := fmt.Sprintf(`{"status":"ok","input_tokens":%d,"output_tokens":%d,"cost_usd":%s}`, in, out, cost)
	if status, m := e.call("POST", "/v1/decisions/"+d["id"].(string)+"/outcome", token, body); status != 200 {
		e.t.Fatalf("outcome: %d %v", status, m)
	}
}

// With no budget configured, GET /v1/usage answers what each agent, user,
// team and model spent, by day, month or all time, exactly.
func TestUsageWithoutBudgets(t *testing.T) {
	e := start(t)
	e.spendCall("a1-tok", "gpt-4o-mini", 100, 20, "0.0015")
	e.spendCall("a1-tok", "gpt-4o-mini", 50, 10, "0.0005")
	e.spendCall("a1-tok", "claude-haiku-4-5", 10, 5, "0.01")
	e.spendCall("a2-tok", "gpt-4o-mini", 7, 3, "0.25")
	// A tool call counts as a call, of no model.
	_, d := e.call("POST", "/v1/decide", "a2-tok", `{"tool":{"name":"read_file"}}`)
	e.call("POST", "/v1/decisions/"+d["id"].(string)+"/outcome", "a2-tok", `{"status":"error"}`)

	status, sp, m := e.usage("")
	if status != 200 || sp.Period != "month" || len(m["usage"].([]any)) != 0 {
		t.Fatalf("%d %v", status, m)
	}
	today := time.Now().UTC()
	if sp.From != today.Format("2006-01")+"-01" {
		t.Errorf("month from %q", sp.From)
	}
	if sp.Total.CostUSD != "0.2620" && sp.Total.CostUSD != "0.262" || sp.Total.Calls != 5 || sp.Total.InputTokens != 167 || sp.Total.OutputTokens != 38 || sp.Total.Tokens != 205 {
		t.Errorf("total %+v", sp.Total)
	}

	_, sp, _ = e.usage("?group_by=agent,model&period=all")
	got := map[string]amounts{}
	for _, g := range sp.Groups {
		got[g.Agent+"/"+g.Model] = g.Spent
	}
	if len(got) != 4 || got["a1/gpt-4o-mini"].Calls != 2 || got["a1/gpt-4o-mini"].InputTokens != 150 || got["a1/gpt-4o-mini"].CostUSD != "0.002" ||
		got["a2/gpt-4o-mini"].CostUSD != "0.25" || got["a2/"].Calls != 1 || got["a1/claude-haiku-4-5"].OutputTokens != 5 {
		t.Errorf("groups %+v", sp.Groups)
	}
	// The largest spender comes first.
	if sp.Groups[0].Agent != "a2" || sp.Groups[0].Model != "gpt-4o-mini" {
		t.Errorf("first group %+v", sp.Groups[0])
	}

	for query, want := range map[string]int64{
		"?agent=a1":                      3,
		"?user=bob":                      2,
		"?team=search&model=gpt-4o-mini": 3,
		"?org=acme&period=day":           5,
		"?period=day&date=2001-01-01":    0,
		"?from=2000-01-01&to=2100-01-01": 5,
		"?period=all&agent=nobody":       0,
	} {
		status, sp, m := e.usage(query)
		if status != 200 || sp.Total.Calls != want {
			t.Errorf("%s: %d calls %+v, want %d", query, sp.Total.Calls, m, want)
		}
	}
	_, sp, _ = e.usage("?group_by=day,user")
	if len(sp.Groups) != 2 || sp.Groups[0].Day != today.Format(time.DateOnly) || sp.Groups[0].User == "" {
		t.Errorf("by day and user: %+v", sp.Groups)
	}
	// Asked for one session, only the budgets answer: spend is not kept
	// per session.
	if _, _, m := e.usage("?agent=a1&session=s-1"); m["spend"] != nil {
		t.Errorf("spend for a session: %v", m)
	}
}

func TestUsageRefusesBadQueriesNamingTheParameter(t *testing.T) {
	e := start(t)
	for query, want := range map[string]string{
		"?period=week":                   "period: want day, month or all",
		"?date=yesterday":                "date: want a date",
		"?from=2026-13-01":               "from: want a date",
		"?from=2026-02-01&to=2026-01-01": "to: must be after from",
		"?group_by=agent,colour":         `group_by: unknown field "colour"`,
		"?group_by=agent,agent":          `group_by: "agent" given twice`,
		"?limit=0":                       "limit: want a positive integer",
		"?limit=99999":                   "limit: want 1 to 10000 groups",
		"?colour=red":                    "colour: unknown parameter",
		"?agent=a&agent=b":               "agent: given more than once",
		"?period=day&from=2026-01-01":    "from and to: give them, or period and date, not both",
		"?period=all&date=2026-01-01":    "date: period all takes no date",
	} {
		status, m := e.call("GET", "/v1/usage"+query, "admin-tok", "")
		if status != 400 || !strings.Contains(errMsg(m), want) {
			t.Errorf("%s: %d %q, want 400 %q", query, status, errMsg(m), want)
		}
	}
	if status, _ := e.call("GET", "/v1/usage", "a1-tok", ""); status != 403 {
		t.Errorf("an agent asked for usage: %d", status)
	}
}

// Outcomes settled at once are all counted, exactly: spend is added in the
// store's transaction, not read and written back.
func TestUsageIsExactUnderConcurrency(t *testing.T) {
	e := start(t)
	const n = 60
	ids := make([]string, n)
	for i := range n {
		tok := "a1-tok"
		if i%2 == 1 {
			tok = "a2-tok"
		}
		_, d := e.call("POST", "/v1/decide", tok, `{"point":"pre_model_call","model":"gpt-4o-mini"}`)
		ids[i] = d["id"].(string)
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := "a1-tok"
			if i%2 == 1 {
				tok = "a2-tok"
			}
			req, _ := http.NewRequest("POST", e.url+"/v1/decisions/"+id+"/outcome", strings.NewReader(`{"status":"ok","input_tokens":3,"output_tokens":1,"cost_usd":0.000001}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("outcome %s: %d", id, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	_, sp, _ := e.usage("?group_by=agent")
	if sp.Total.Calls != n || sp.Total.InputTokens != 3*n || sp.Total.CostUSD != "0.00006" || len(sp.Groups) != 2 ||
		sp.Groups[0].Spent.Calls != n/2 || sp.Groups[1].Spent.Calls != n/2 {
		t.Errorf("after %d concurrent outcomes: %+v", n, sp)
	}
}
