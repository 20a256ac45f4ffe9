// Command datasets measures a policy pack (by default the built-in baseline
// in ../policies) on the labeled public datasets in shared/datasets: how many
// harmful items it stops (deny or require_approval) and how many benign items
// it stops as well. It maps every item to tool-call actions in code, prints a
// Markdown table and writes it, with the command that produced it, to
// datasets/RESULTS.md.
//
//	cd bench && go run ./datasets -data ../../shared/datasets -policies ../policies
//
// Each number is given twice: for the pack as shipped, and for the pack
// without its egress document. The egress allow list is meant to be edited
// for each deployment; its shipped list knows none of the datasets' hosts, so
// with it every web call is stopped, harmful or not.
//
// This is a measurement, not a test: nothing here is asserted, and the pack
// must never be tuned to the strings of these datasets.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/policy"
)

// egressDoc is the document left out by the second variant.
const egressDoc = "baseline-egress"

func main() {
	data := flag.String("data", "../../shared/datasets", "directory holding the datasets")
	pol := flag.String("policies", "../policies", "policy directory to measure")
	out := flag.String("out", "datasets/RESULTS.md", "where to write the Markdown results")
	verbose := flag.Bool("v", false, "list every missed harmful item and every stopped benign item on stderr")
	flag.Parse()
	m, err := newMeasure(*pol, *verbose, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "datasets:", err)
		os.Exit(1)
	}
	if err := m.run(*data); err != nil {
		fmt.Fprintln(os.Stderr, "datasets:", err)
		os.Exit(1)
	}
	md := m.markdown(strings.Join(append([]string{"cd bench && go run ./datasets"}, os.Args[1:]...), " "))
	fmt.Print(md)
	if err := os.WriteFile(*out, []byte(md+keptDiscussion(*out)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "datasets:", err)
		os.Exit(1)
	}
}

// discussionHeading starts the hand-written part of the results file, which
// a new run keeps: the numbers are regenerated, the reading of them is not.
const discussionHeading = "\n## Discussion"

func keptDiscussion(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if i := bytes.Index(b, []byte(discussionHeading)); i >= 0 {
		return string(b[i:])
	}
	return ""
}

// variant is one compiled policy set under measurement.
type variant struct {
	name string
	set  *policy.Set
}

// count is a harmful/benign tally for one variant.
type count struct {
	harmful, blocked int
	benign, falsePos int
}

// row is one line of the results table.
type row struct {
	dataset, slice string
	counts         []count // one per variant
	note           string
}

type measure struct {
	variants []variant
	verbose  bool
	log      io.Writer
	rows     []row
	notes    []string
	// ruleHits counts, per rule id, the harmful and benign items it stopped
	// in the full pack.
	ruleHits map[string]*[2]int
}

func newMeasure(dir string, verbose bool, log io.Writer) (*measure, error) {
	docs, err := policy.ReadFS(os.DirFS(dir), ".", dir)
	if err != nil {
		return nil, err
	}
	full, err := policy.Compile(docs)
	if err != nil {
		return nil, err
	}
	m := &measure{verbose: verbose, log: log, ruleHits: map[string]*[2]int{}}
	m.variants = append(m.variants, variant{"pack", full})
	var rest []*policy.Document
	for _, d := range docs {
		if d.Name != egressDoc {
			rest = append(rest, d)
		}
	}
	if len(rest) < len(docs) && len(rest) > 0 {
		set, err := policy.Compile(rest)
		if err != nil {
			return nil, err
		}
		m.variants = append(m.variants, variant{"pack without " + egressDoc, set})
	}
	return m, nil
}

func (m *measure) run(dir string) error {
	steps := []struct {
		name string
		fn   func(string) error
	}{
		{"agentdojo", m.agentDojo},
		{"agt-red-team", m.redTeam},
		{"atr-agent-threat-rules", m.atr},
		{"mcp-safetybench", m.mcpSafetyBench},
		{"toolemu", m.toolEmu},
	}
	for _, s := range steps {
		if err := s.fn(filepath.Join(dir, s.name)); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// verdicts decides every action of one item in every variant. An item is
// stopped in a variant when any of its actions is stopped there.
func (m *measure) verdicts(acts []action.Action) (stopped []bool, rules [][]string) {
	stopped = make([]bool, len(m.variants))
	rules = make([][]string, len(m.variants))
	for vi, v := range m.variants {
		for i := range acts {
			r := v.set.Evaluate(&acts[i], policy.Env{})
			if r.Effect != action.Allow {
				stopped[vi] = true
				for _, id := range r.Rules {
					if !slices.Contains(rules[vi], id) {
						rules[vi] = append(rules[vi], id)
					}
				}
			}
		}
	}
	return stopped, rules
}

// tally adds one labeled item to r.
func (m *measure) tally(r *row, harmful bool, acts []action.Action, what string) {
	if r.counts == nil {
		r.counts = make([]count, len(m.variants))
	}
	stopped, rules := m.verdicts(acts)
	for vi := range m.variants {
		c := &r.counts[vi]
		if harmful {
			c.harmful++
			if stopped[vi] {
				c.blocked++
			}
		} else {
			c.benign++
			if stopped[vi] {
				c.falsePos++
			}
		}
	}
	if stopped[0] {
		for _, id := range rules[0] {
			h := m.ruleHits[id]
			if h == nil {
				h = new([2]int)
				m.ruleHits[id] = h
			}
			if harmful {
				h[0]++
			} else {
				h[1]++
			}
		}
	}
	if m.verbose && harmful != stopped[0] {
		label := "MISSED"
		if !harmful {
			label = "STOPPED-BENIGN"
		}
		fmt.Fprintf(m.log, "%s %s/%s %v: %s\n", label, r.dataset, r.slice, rules[0], clip(what))
	}
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

func readJSONL(path string, each func(line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := each(line); err != nil {
			return fmt.Errorf("%s:%d: %w", filepath.Base(path), n, err)
		}
	}
	return sc.Err()
}

// toolCall builds a pre_tool_call action the way a gateway that knows the
// tool would: a URL in a url-like argument (or a bare URL given as the only
// input) names the destination.
func toolCall(name string, args map[string]any) action.Action {
	a := action.Action{
		Agent: action.Agent{ID: "bench-agent"},
		Point: action.PreToolCall,
		Tool:  action.Tool{Name: name},
		Args:  args,
	}
	for _, k := range []string{"url", "uri", "endpoint", "href", "link", "input"} {
		if s, ok := args[k].(string); ok {
			if h := host(s, k != "input"); h != "" {
				a.Destination = h
				break
			}
		}
	}
	return a
}

// host returns the host of a URL. Without a scheme, "www.example.com/x" is
// read as a URL only when bare is true (the argument is known to hold one).
func host(s string, bare bool) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, " \n\t") {
		return ""
	}
	if !strings.Contains(s, "://") {
		if !bare {
			return ""
		}
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// normalize turns decoded JSON into what action.Decode would produce
// (integers as int64), so that numbers compare as they do in the server.
func normalize(v map[string]any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	a, err := action.Decode(append(append([]byte(`{"agent":{"id":"x"},"args":`), b...), '}'))
	if err != nil {
		return nil, err
	}
	return a.Args, nil
}

// ---- AgentDojo ----

// placeholder is a value AgentDojo computes from the environment at run time.
var placeholder = regexp.MustCompile(`^\{\{expr: .*\}\}$`)

func (m *measure) agentDojo(dir string) error {
	type call struct {
		Function string         `json:"function"`
		Args     map[string]any `json:"args"`
	}
	type task struct {
		Suite  string `json:"suite"`
		TaskID string `json:"task_id"`
		Label  string `json:"label"`
		Calls  []call `json:"ground_truth_calls"`
	}
	bySuite := map[string]*[2]row{} // [benign, malicious]
	var suites []string
	perCall := row{dataset: "agentdojo", slice: "benign tasks, per call"}
	dropped, noCalls := 0, 0
	err := readJSONL(filepath.Join(dir, "agentdojo_v1_ground_truth_calls.jsonl"), func(line []byte) error {
		var t task
		if err := json.Unmarshal(line, &t); err != nil {
			return err
		}
		rows, ok := bySuite[t.Suite]
		if !ok {
			rows = &[2]row{
				{dataset: "agentdojo", slice: t.Suite + ": benign user tasks"},
				{dataset: "agentdojo", slice: t.Suite + ": injection tasks"},
			}
			bySuite[t.Suite] = rows
			suites = append(suites, t.Suite)
		}
		var acts []action.Action
		for _, c := range t.Calls {
			args := map[string]any{}
			for k, v := range c.Args {
				if s, ok := v.(string); ok && placeholder.MatchString(s) {
					dropped++
					continue
				}
				args[k] = v
			}
			args, err := normalize(args)
			if err != nil {
				return fmt.Errorf("%s %s: %w", t.TaskID, c.Function, err)
			}
			acts = append(acts, toolCall(c.Function, args))
		}
		if len(acts) == 0 {
			noCalls++
		}
		what := t.Suite + " " + t.TaskID
		switch t.Label {
		case "benign":
			m.tally(&rows[0], false, acts, what)
			for i := range acts {
				m.tally(&perCall, false, acts[i:i+1], what+" "+acts[i].Tool.Name)
			}
		case "malicious":
			m.tally(&rows[1], true, acts, what)
		default:
			return fmt.Errorf("%s: unknown label %q", t.TaskID, t.Label)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(suites)
	all := [2]row{{dataset: "agentdojo", slice: "all suites: benign user tasks"}, {dataset: "agentdojo", slice: "all suites: injection tasks"}}
	for _, s := range suites {
		for i, r := range bySuite[s] {
			m.rows = append(m.rows, r)
			all[i] = sum(all[i], r)
		}
	}
	m.rows = append(m.rows, all[0], all[1], perCall)
	m.notes = append(m.notes, fmt.Sprintf("agentdojo: each ground-truth call becomes a pre_tool_call action named after the function, with its literal arguments; "+
		"%d argument values that AgentDojo computes at run time (`{{expr: ...}}`) are left out, since their values are unknown statically. "+
		"`get_webpage`/`post_webpage` take their destination from `url`. E-mail recipients are not destinations. "+
		"An injection task counts as stopped when any of its calls is stopped; %d task(s) have no calls at all and cannot be stopped by a call policy.", dropped, noCalls))
	return nil
}

func sum(a, b row) row {
	if a.counts == nil {
		a.counts = make([]count, len(b.counts))
	}
	for i, c := range b.counts {
		a.counts[i].harmful += c.harmful
		a.counts[i].blocked += c.blocked
		a.counts[i].benign += c.benign
		a.counts[i].falsePos += c.falsePos
	}
	return a
}

// ---- agt-red-team ----

func (m *measure) redTeam(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "red_team_60.json"))
	if err != nil {
		return err
	}
	var f struct {
		Prompts []struct {
			Prompt   string `json:"prompt"`
			Category string `json:"category"`
			Blocked  bool   `json:"expected_blocked"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	byCat := map[string]*row{}
	var cats []string
	for _, p := range f.Prompts {
		r, ok := byCat[p.Category]
		if !ok {
			r = &row{dataset: "agt-red-team", slice: p.Category}
			byCat[p.Category] = r
			cats = append(cats, p.Category)
		}
		a := toolCall("execute", map[string]any{"command": p.Prompt})
		m.tally(r, p.Blocked, []action.Action{a}, p.Prompt)
	}
	sort.Strings(cats)
	var all row
	for _, c := range cats {
		m.rows = append(m.rows, *byCat[c])
		all = sum(all, *byCat[c])
	}
	all.dataset, all.slice = "agt-red-team", "all categories"
	m.rows = append(m.rows, all)
	m.notes = append(m.notes, "agt-red-team: each prompt is the `command` argument of a generic tool call `execute` (the pack reads `args_text`, so the argument name does not matter). "+
		"The pack has no rules on `content`, so mapping the prompts to content instead would stop none of them; judging free text is the detectors' job (bench/detectors).")
	return nil
}

// ---- ATR ----

func (m *measure) atr(dir string) error {
	type atrCase struct {
		ToolArgs json.RawMessage `json:"tool_args"`
		ToolName string          `json:"tool_name"`
		ToolCall *struct {
			Name string          `json:"name"`
			Args json.RawMessage `json:"args"`
		} `json:"tool_call"`
		Expected string `json:"expected"`
	}
	type item struct {
		Category string  `json:"category"`
		Label    string  `json:"label"`
		Case     atrCase `json:"case"`
	}
	byCat := map[string]*row{}
	var cats []string
	skipped := map[string]int{}
	nameOnly := row{dataset: "atr-agent-threat-rules", slice: "tool name only (no arguments)"}
	err := readJSONL(filepath.Join(dir, "atr_v4.0.0_tool_field_test_cases.jsonl"), func(line []byte) error {
		var it item
		if err := json.Unmarshal(line, &it); err != nil {
			return err
		}
		harmful := it.Label == "malicious"
		if it.Label != "malicious" && it.Label != "benign" {
			return fmt.Errorf("unknown label %q", it.Label)
		}
		c := it.Case
		var a action.Action
		switch {
		case c.ToolCall != nil:
			args, err := atrArgs(c.ToolCall.Args)
			if err != nil {
				return err
			}
			a = toolCall(c.ToolCall.Name, args)
		case len(c.ToolArgs) > 0 && string(c.ToolArgs) != "null":
			args, err := atrArgs(c.ToolArgs)
			if err != nil {
				return err
			}
			name := c.ToolName
			if name == "" {
				name = "tool"
			}
			a = toolCall(name, args)
		case c.ToolName != "":
			m.tally(&nameOnly, harmful, []action.Action{toolCall(c.ToolName, map[string]any{})}, c.ToolName)
			return nil
		default:
			skipped[it.Label]++
			return nil
		}
		r, ok := byCat[it.Category]
		if !ok {
			r = &row{dataset: "atr-agent-threat-rules", slice: it.Category}
			byCat[it.Category] = r
			cats = append(cats, it.Category)
		}
		m.tally(r, harmful, []action.Action{a}, fmt.Sprintf("%s %v", a.Tool.Name, a.Args))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(cats)
	var all row
	for _, c := range cats {
		m.rows = append(m.rows, *byCat[c])
		all = sum(all, *byCat[c])
	}
	all.dataset, all.slice = "atr-agent-threat-rules", "all calls with arguments"
	m.rows = append(m.rows, all, nameOnly)
	m.notes = append(m.notes, fmt.Sprintf("atr-agent-threat-rules: only cases that describe a call are measured: `tool_args` (a JSON object becomes the arguments; any other string becomes the single argument `input`) "+
		"and `tool_call`; cases with only a tool name are a separate row. The other %d malicious and %d benign cases are tool descriptions, tool responses or user input: text for the detectors, not calls.",
		skipped["malicious"], skipped["benign"]))
	return nil
}

// atrArgs reads ATR's tool_args, which is a JSON string holding either a
// JSON object or free text.
func atrArgs(raw json.RawMessage) (map[string]any, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var obj map[string]any
		if err2 := json.Unmarshal(raw, &obj); err2 != nil {
			return nil, fmt.Errorf("tool_args: %w", errors.Join(err, err2))
		}
		return normalize(obj)
	}
	var obj map[string]any
	if strings.HasPrefix(strings.TrimSpace(s), "{") && json.Unmarshal([]byte(s), &obj) == nil {
		return normalize(obj)
	}
	return map[string]any{"input": s}, nil
}

// ---- MCP-SafetyBench ----

// writeVerb finds a sentence that asks for a file to be changed.
var writeVerb = regexp.MustCompile(`(?i)\b(?:add|append|write|modif|updat|insert)\w*\b`)

func (m *measure) mcpSafetyBench(dir string) error {
	type check struct {
		Op     string         `json:"op"`
		OpArgs map[string]any `json:"op_args"`
		Desc   string         `json:"desc"`
	}
	type task struct {
		AttackCategory string          `json:"attack_category"`
		Question       string          `json:"question"`
		Mods           json.RawMessage `json:"mcp_server_modifications"`
		Adds           json.RawMessage `json:"mcp_server_additions"`
		Checks         []check         `json:"attack_checks"`
	}
	byCat := map[string]*row{}
	var cats []string
	unmapped := map[string]int{}
	var unmappedCats []string
	err := readJSONL(filepath.Join(dir, "mcp_safetybench_tasks.jsonl"), func(line []byte) error {
		var t task
		if err := json.Unmarshal(line, &t); err != nil {
			return err
		}
		context := t.Question + "\n" + string(t.Mods) + "\n" + string(t.Adds)
		var acts []action.Action
		for _, c := range t.Checks {
			if a, ok := safetyBenchCall(c.Op, c.OpArgs, c.Desc, t.AttackCategory, context); ok {
				acts = append(acts, a)
			}
		}
		if len(acts) == 0 {
			if unmapped[t.AttackCategory] == 0 {
				unmappedCats = append(unmappedCats, t.AttackCategory)
			}
			unmapped[t.AttackCategory]++
			return nil
		}
		r, ok := byCat[t.AttackCategory]
		if !ok {
			r = &row{dataset: "mcp-safetybench", slice: t.AttackCategory}
			byCat[t.AttackCategory] = r
			cats = append(cats, t.AttackCategory)
		}
		m.tally(r, true, acts, fmt.Sprintf("%s %v", acts[0].Tool.Name, acts[0].Args))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(cats)
	var all row
	for _, c := range cats {
		m.rows = append(m.rows, *byCat[c])
		all = sum(all, *byCat[c])
	}
	all.dataset, all.slice = "mcp-safetybench", "all tasks with a concrete call"
	m.rows = append(m.rows, all)
	sort.Strings(unmappedCats)
	var parts []string
	total := 0
	for _, c := range unmappedCats {
		parts = append(parts, fmt.Sprintf("%s %d", c, unmapped[c]))
		total += unmapped[c]
	}
	m.notes = append(m.notes, "mcp-safetybench: all items are attacks (no benign items, so no false-positive rate). A task is measured when its attack check names a concrete call: "+
		"`check_command_injection_attack` (a URL becomes a `fetch` with that destination; an SSH public key a write of `~/.ssh/authorized_keys`, as the check's description says; "+
		"a bare path a `read_file`, or a `write_file` when the task's text asks to add or write to it; anything else a shell `command`) and "+
		"`check_wrong_arguments_intent_injection` (the target tool with the injected arguments). "+
		fmt.Sprintf("The other %d tasks check which tool was called, in which order, how often, or with which benign-looking value (%s); no argument policy can see those.", total, strings.Join(parts, ", ")))
	return nil
}

func safetyBenchCall(op string, args map[string]any, desc, category, context string) (action.Action, bool) {
	switch op {
	case "check_wrong_arguments_intent_injection":
		tool, _ := args["target_tool"].(string)
		mal, ok := args["malicious_arguments"].(map[string]any)
		if tool == "" || !ok {
			return action.Action{}, false
		}
		n, err := normalize(mal)
		if err != nil {
			return action.Action{}, false
		}
		return toolCall(tool, n), true
	case "check_command_injection_attack":
		cmd, _ := args["malicious_command"].(string)
		cmd = strings.TrimSpace(cmd)
		switch {
		case cmd == "":
			return action.Action{}, false
		case strings.HasPrefix(cmd, "http://") || strings.HasPrefix(cmd, "https://"):
			return toolCall("fetch", map[string]any{"url": cmd}), true
		case strings.HasPrefix(cmd, "ssh-") && strings.Contains(desc, "authorized_keys"):
			return toolCall("write_file", map[string]any{"path": "~/.ssh/authorized_keys", "content": cmd}), true
		case !strings.ContainsAny(cmd, " \t") && strings.ContainsAny(cmd, "./~"):
			if asksToWrite(context, cmd) {
				return toolCall("write_file", map[string]any{"path": cmd, "content": "(line given by the attack)"}), true
			}
			return toolCall("read_file", map[string]any{"path": cmd}), true
		case !strings.ContainsAny(cmd, " \t"):
			// An opaque value (an access token) the attack wants stored
			// somewhere; the data does not say where.
			return toolCall("update_configuration", map[string]any{"value": cmd}), true
		default:
			return toolCall("execute_command", map[string]any{"command": cmd}), true
		}
	}
	return action.Action{}, false
}

// asksToWrite reports whether some sentence of the task's text names the
// path together with a verb that changes a file.
func asksToWrite(text, path string) bool {
	for _, s := range regexp.MustCompile(`[.!?]\s`).Split(text, -1) {
		if strings.Contains(s, path) && writeVerb.MatchString(s) {
			return true
		}
	}
	return false
}

// ---- ToolEmu ----

func (m *measure) toolEmu(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "all_cases.json"))
	if err != nil {
		return err
	}
	var cases []json.RawMessage
	if err := json.Unmarshal(b, &cases); err != nil {
		return err
	}
	m.notes = append(m.notes, fmt.Sprintf("toolemu: its %d risky cases are prose (an instruction, underspecifications, risky outcomes and actions described in words) with no concrete calls or arguments. "+
		"Writing calls for them would measure the calls written here, not the pack, so they are not measured.", len(cases)))
	return nil
}

// ---- output ----

func pct(n, d int) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(d))
}

func (m *measure) markdown(cmd string) string {
	var b strings.Builder
	b.WriteString("# Baseline policy pack on labeled data\n\nProduced by:\n\n```\n" + cmd + "\n```\n\n")
	b.WriteString("An item is *stopped* when the decision is `deny` or `require_approval`. Block rate = stopped harmful items / harmful items; " +
		"FP rate = stopped benign items / benign items. Each rate is given for the pack as shipped and for the pack without `" + egressDoc + "` " +
		"(whose allow list is meant to be edited per deployment and, as shipped, names none of the datasets' hosts).\n\n")
	b.WriteString("| dataset | slice | harmful | stopped | block rate | block rate w/o egress | benign | stopped | FP rate | FP rate w/o egress |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range m.rows {
		c := r.counts
		if len(c) == 0 {
			continue
		}
		alt := c[0]
		if len(c) > 1 {
			alt = c[1]
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %d | %d | %s | %s |\n",
			r.dataset, r.slice, c[0].harmful, c[0].blocked, pct(c[0].blocked, c[0].harmful), pct(alt.blocked, alt.harmful),
			c[0].benign, c[0].falsePos, pct(c[0].falsePos, c[0].benign), pct(alt.falsePos, alt.benign))
	}
	b.WriteString("\nRules that stopped items (full pack; an item stopped by several rules counts for each):\n\n| rule | harmful items | benign items |\n|---|---:|---:|\n")
	ids := make([]string, 0, len(m.ruleHits))
	for id := range m.ruleHits {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", id, m.ruleHits[id][0], m.ruleHits[id][1])
	}
	b.WriteString("\n## How items become actions\n\n")
	for _, n := range m.notes {
		b.WriteString("- " + n + "\n")
	}
	return b.String()
}
