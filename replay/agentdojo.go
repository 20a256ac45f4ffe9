// Package replay measures a policy set on recorded agent runs: each run is
// played call by call through the decision pipeline (the user's request at
// point input, each tool call at pre_tool_call, each result at
// post_tool_call, all in one session) and stops at the first decision that
// is not an allow, as an enforcement point would stop the agent there. The
// report says, per suite, how many successful attacks were stopped and how
// many benign runs were interrupted or denied.
package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/agentgov/agentgov/action"
)

// Decider decides one action; *govern.Engine is one.
type Decider interface {
	Decide(ctx context.Context, a action.Action) (action.Decision, error)
}

// Run is one recorded agent run, as AgentDojo writes it.
type Run struct {
	Suite           string          `json:"suite"`
	UserTaskID      string          `json:"user_task_id"`
	InjectionTaskID *string         `json:"injection_task_id"`
	AttackType      *string         `json:"attack_type"`
	Utility         bool            `json:"utility"`
	Security        bool            `json:"security"` // under attack: true when the attack succeeded
	Messages        []RunMessage    `json:"messages"`
	Injections      json.RawMessage `json:"injections"`
}

// RunMessage is one message of a run.
type RunMessage struct {
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	ToolCalls []struct {
		Function string         `json:"function"`
		Args     map[string]any `json:"args"`
	} `json:"tool_calls"`
	Function string `json:"function"` // on tool messages: the tool that produced it
}

// Kind classifies a run.
type Kind int

const (
	// Benign is a run with no attack and no injection task.
	Benign Kind = iota
	// Attack is a run under attack.
	Attack
	// Other is a run the report leaves out: the injection goal given as
	// a user task (no attack, but not a benign request either), which
	// AgentDojo records with an injection task id in either field.
	Other
)

// Kind says what the run is.
func (r *Run) Kind() Kind {
	attack := r.AttackType != nil && *r.AttackType != "" && *r.AttackType != "none"
	switch {
	case attack:
		return Attack
	case r.InjectionTaskID == nil && !strings.HasPrefix(r.UserTaskID, "injection_task"):
		return Benign
	}
	return Other
}

// Stop is where a run was stopped.
type Stop struct {
	Step   int           // the decision's position in the run, from 1
	Point  action.Point  // where
	Tool   string        // the tool, at a tool point
	Effect action.Effect // deny or require_approval
	Rules  []string
	// Provenance is the decision's: where its untrusted values came from.
	Provenance map[string][]string
}

// Result is one run's replay.
type Result struct {
	Run       *Run
	Decisions int
	Stop      *Stop // nil when every decision allowed
}

// Play replays one run in session through d.
func Play(ctx context.Context, d Decider, agent, session string, r *Run) (Result, error) {
	res := Result{Run: r}
	decide := func(a action.Action) (bool, error) {
		a.Agent = action.Agent{ID: agent}
		a.Session = session
		res.Decisions++
		dec, err := d.Decide(ctx, a)
		if err != nil {
			return false, fmt.Errorf("%s/%s step %d: %w", r.Suite, r.UserTaskID, res.Decisions, err)
		}
		if dec.Effect == action.Allow {
			return true, nil
		}
		res.Stop = &Stop{Step: res.Decisions, Point: a.PointOrDefault(), Tool: a.Tool.Name, Effect: dec.Effect, Rules: dec.Rules, Provenance: dec.Provenance}
		return false, nil
	}
	for _, m := range r.Messages {
		var ok bool
		var err error
		switch m.Role {
		case "user":
			ok, err = decide(action.Action{Point: action.Input, Content: text(m.Content)})
		case "assistant":
			ok = true
			for _, tc := range m.ToolCalls {
				args := tc.Args
				if args == nil {
					args = map[string]any{}
				}
				if ok, err = decide(action.Action{Point: action.PreToolCall, Tool: action.Tool{Name: tc.Function}, Args: args}); !ok {
					break
				}
			}
		case "tool":
			if m.Function == "" {
				continue
			}
			ok, err = decide(action.Action{Point: action.PostToolCall, Tool: action.Tool{Name: m.Function}, Content: text(m.Content)})
		default:
			continue
		}
		if err != nil || !ok {
			return res, err
		}
	}
	return res, nil
}

// text is a message's content: a string, or the text of its parts.
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text    string `json:"text"`
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		var out []string
		for _, p := range parts {
			out = append(out, p.Text+p.Content)
		}
		return strings.Join(out, "\n")
	}
	return ""
}

// Counts are one suite's figures.
type Counts struct {
	Attacks, AttacksSucceeded, AttacksStopped, SucceededStopped int
	Benign, BenignSucceeded, BenignInterrupted, BenignDenied    int
	SucceededInterrupted                                        int
}

func (c *Counts) add(o Counts) {
	c.Attacks += o.Attacks
	c.AttacksSucceeded += o.AttacksSucceeded
	c.AttacksStopped += o.AttacksStopped
	c.SucceededStopped += o.SucceededStopped
	c.Benign += o.Benign
	c.BenignSucceeded += o.BenignSucceeded
	c.BenignInterrupted += o.BenignInterrupted
	c.BenignDenied += o.BenignDenied
	c.SucceededInterrupted += o.SucceededInterrupted
}

// Report is the replay of a file of runs.
type Report struct {
	Suites map[string]*Counts
	// Rules counts, per rule, the runs it stopped: attacks and benign.
	Rules map[string]*[2]int
	// Runs is every replayed run, in file order.
	Runs []Result
}

// ReadAgentDojo reads AgentDojo runs, one JSON object a line.
func ReadAgentDojo(r io.Reader) ([]*Run, error) {
	var runs []*Run
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var run Run
		if err := json.Unmarshal(b, &run); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if run.Suite == "" || len(run.Messages) == 0 {
			return nil, fmt.Errorf("line %d: not an AgentDojo run (no suite or no messages)", line)
		}
		runs = append(runs, &run)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if len(runs) == 0 {
		return nil, errors.New("no runs")
	}
	return runs, nil
}

// Replay plays every run, each in a session of its own, and counts. Runs
// that are neither attacks nor benign requests (an injection goal given as
// the user's task) are left out.
func Replay(ctx context.Context, d Decider, runs []*Run) (*Report, error) {
	rep := &Report{Suites: map[string]*Counts{}, Rules: map[string]*[2]int{}}
	for i, r := range runs {
		kind := r.Kind()
		if kind == Other {
			continue
		}
		res, err := Play(ctx, d, "replay", fmt.Sprintf("run-%d", i+1), r)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, res)
		c := rep.Suites[r.Suite]
		if c == nil {
			c = &Counts{}
			rep.Suites[r.Suite] = c
		}
		stopped := res.Stop != nil
		if stopped {
			for _, id := range res.Stop.Rules {
				if rep.Rules[id] == nil {
					rep.Rules[id] = &[2]int{}
				}
				rep.Rules[id][min(int(kind), 1)]++
			}
		}
		switch kind {
		case Attack:
			c.Attacks++
			if stopped {
				c.AttacksStopped++
			}
			if r.Security {
				c.AttacksSucceeded++
				if stopped {
					c.SucceededStopped++
				}
			}
		case Benign:
			c.Benign++
			if stopped {
				c.BenignInterrupted++
				if res.Stop.Effect == action.Deny {
					c.BenignDenied++
				}
			}
			if r.Utility {
				c.BenignSucceeded++
				if stopped {
					c.SucceededInterrupted++
				}
			}
		}
	}
	return rep, nil
}

// Total is every suite's counts together.
func (rep *Report) Total() Counts {
	var t Counts
	for _, c := range rep.Suites {
		t.add(*c)
	}
	return t
}

func pct(n, d int) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(d))
}

// Write prints the report as a Markdown table, then the rules that stopped
// runs.
func (rep *Report) Write(w io.Writer) error {
	suites := make([]string, 0, len(rep.Suites))
	for s := range rep.Suites {
		suites = append(suites, s)
	}
	sort.Strings(suites)
	var b strings.Builder
	b.WriteString("| suite | successful attacks stopped | all attacks stopped | successful benign runs interrupted | benign runs interrupted | benign runs denied |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	row := func(name string, c Counts) {
		fmt.Fprintf(&b, "| %s | %d/%d (%s) | %d/%d (%s) | %d/%d (%s) | %d/%d (%s) | %d/%d (%s) |\n", name,
			c.SucceededStopped, c.AttacksSucceeded, pct(c.SucceededStopped, c.AttacksSucceeded),
			c.AttacksStopped, c.Attacks, pct(c.AttacksStopped, c.Attacks),
			c.SucceededInterrupted, c.BenignSucceeded, pct(c.SucceededInterrupted, c.BenignSucceeded),
			c.BenignInterrupted, c.Benign, pct(c.BenignInterrupted, c.Benign),
			c.BenignDenied, c.Benign, pct(c.BenignDenied, c.Benign))
	}
	for _, s := range suites {
		row(s, *rep.Suites[s])
	}
	row("**overall**", rep.Total())
	ids := make([]string, 0, len(rep.Rules))
	for id := range rep.Rules {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(ids) > 0 {
		b.WriteString("\n| rule | attack runs stopped | benign runs stopped |\n|---|---|---|\n")
		for _, id := range ids {
			fmt.Fprintf(&b, "| %s | %d | %d |\n", id, rep.Rules[id][1], rep.Rules[id][0])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteRuns prints one line per replayed run that was stopped, or, with
// all, per replayed run: suite, tasks, whether the attack or the task
// succeeded, and where the run stopped and why.
func (rep *Report) WriteRuns(w io.Writer, all bool) error {
	var b strings.Builder
	for _, res := range rep.Runs {
		if res.Stop == nil && !all {
			continue
		}
		r := res.Run
		kind, ok := "benign", r.Utility
		inj := ""
		if r.Kind() == Attack {
			kind, ok = "attack", r.Security
			if r.InjectionTaskID != nil {
				inj = " " + *r.InjectionTaskID
			}
		}
		fmt.Fprintf(&b, "%s %s%s %s succeeded=%v: ", r.Suite, r.UserTaskID, inj, kind, ok)
		if res.Stop == nil {
			fmt.Fprintf(&b, "allowed (%d decisions)\n", res.Decisions)
			continue
		}
		st := res.Stop
		prov, _ := json.Marshal(st.Provenance)
		fmt.Fprintf(&b, "%s at step %d (%s %s) by %s, provenance %s\n", st.Effect, st.Step, st.Point, st.Tool, strings.Join(st.Rules, ","), prov)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
