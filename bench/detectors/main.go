// Command detectors measures the content detectors of package detect on the
// labeled public datasets in shared/datasets: how many harmful items each
// detector flags (detection rate) and how many benign items it flags (false
// positive rate). It prints a Markdown table and writes it, with the command
// that produced it, to detectors/RESULTS.md.
//
//	cd bench && go run ./detectors -data ../../shared/datasets
//
// An item counts as flagged when a detector returns at least one finding of
// severity medium or above (-min-severity changes that). PII findings are
// reported apart: an e-mail address or an IBAN in a benign banking task is
// correct detection of personal data, not a false alarm about a threat.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/detect"
)

func main() {
	data := flag.String("data", "../../shared/datasets", "directory holding the datasets")
	out := flag.String("out", "detectors/RESULTS.md", "where to write the Markdown results")
	minSev := flag.String("min-severity", "medium", "lowest severity that counts as flagged")
	verbose := flag.Bool("v", false, "list every missed harmful item and every flagged benign item on stderr")
	flag.Parse()
	sev := action.Severity(*minSev)
	if sev.Rank() < 1 {
		fmt.Fprintf(os.Stderr, "detectors: unknown -min-severity %q (want low, medium, high or critical)\n", *minSev)
		os.Exit(2)
	}
	m := &measure{min: sev.Rank(), verbose: *verbose, log: os.Stderr}
	if err := m.run(*data); err != nil {
		fmt.Fprintln(os.Stderr, "detectors:", err)
		os.Exit(1)
	}
	md := m.markdown(strings.Join(append([]string{"go run ./detectors"}, os.Args[1:]...), " "))
	fmt.Print(md)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "detectors:", err)
		os.Exit(1)
	}
}

// row is one line of the results table.
type row struct {
	dataset, slice, detector string
	harmful, detected        int
	benign, falsePos         int
	note                     string
}

type measure struct {
	min     int
	verbose bool
	log     io.Writer
	rows    []row
	notes   []string
}

func (m *measure) run(dir string) error {
	steps := []struct {
		name string
		fn   func(string) error
	}{
		{"atr-agent-threat-rules", m.atr},
		{"mcp-safetybench", m.mcpSafetyBench},
		{"asb", m.asb},
		{"agt-red-team", m.redTeam},
		{"agentdojo", m.agentDojo},
	}
	for _, s := range steps {
		if err := s.fn(filepath.Join(dir, s.name)); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// flagged reports whether any finding outside the excluded kinds reaches the
// minimum severity, and names the rules that did.
func (m *measure) flagged(fs []detect.Finding, exclude ...detect.Kind) (bool, []string) {
	var rules []string
	for _, f := range fs {
		if f.Severity.Rank() >= m.min && !slices.Contains(exclude, f.Kind) {
			rules = append(rules, f.Rule)
		}
	}
	slices.Sort(rules)
	return len(rules) > 0, slices.Compact(rules)
}

// tally adds one item to a row, logging misses and false positives.
func (m *measure) tally(r *row, harmful, hit bool, rules []string, what string) {
	if harmful {
		r.harmful++
		if hit {
			r.detected++
		} else if m.verbose {
			fmt.Fprintf(m.log, "MISS %s/%s: %s\n", r.dataset, r.slice, clip(what))
		}
		return
	}
	r.benign++
	if hit {
		r.falsePos++
		if m.verbose {
			fmt.Fprintf(m.log, "FP   %s/%s %v: %s\n", r.dataset, r.slice, rules, clip(what))
		}
	}
}

func clip(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 240 {
		return s[:240] + "..."
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
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		if err := each(sc.Bytes()); err != nil {
			return fmt.Errorf("%s:%d: %w", filepath.Base(path), n, err)
		}
	}
	return sc.Err()
}

// atr: each case has one or more tool fields. Text fields go through All
// (secrets, PII, injection; PII excluded from "flagged"), the tool description
// also through ToolPoisoning. Rows per ATR category, since many categories
// (SQL injection, SSRF, payment tools) are outside what content detectors are
// for; the table says which.
func (m *measure) atr(dir string) error {
	type atrCase struct {
		Category string `json:"category"`
		Label    string `json:"label"`
		Case     struct {
			Input           string          `json:"input"`
			ToolArgs        json.RawMessage `json:"tool_args"`
			ToolResponse    string          `json:"tool_response"`
			ToolName        string          `json:"tool_name"`
			ToolDescription string          `json:"tool_description"`
			ToolCall        json.RawMessage `json:"tool_call"`
		} `json:"case"`
	}
	byCat := map[string]*row{}
	total := &row{dataset: "atr-agent-threat-rules", slice: "all categories", detector: "All + ToolPoisoning"}
	err := readJSONL(filepath.Join(dir, "atr_v4.0.0_tool_field_test_cases.jsonl"), func(line []byte) error {
		var c atrCase
		if err := json.Unmarshal(line, &c); err != nil {
			return err
		}
		if c.Label != "malicious" && c.Label != "benign" {
			return fmt.Errorf("unknown label %q", c.Label)
		}
		var texts []string
		for _, t := range []string{c.Case.Input, rawText(c.Case.ToolArgs), c.Case.ToolResponse, rawText(c.Case.ToolCall)} {
			if t != "" {
				texts = append(texts, t)
			}
		}
		var fs []detect.Finding
		for _, t := range texts {
			fs = append(fs, detect.All(t)...)
		}
		if c.Case.ToolDescription != "" {
			fs = append(fs, detect.ToolPoisoning(c.Case.ToolName, c.Case.ToolDescription, nil)...)
			texts = append(texts, "desc: "+c.Case.ToolDescription)
		} else if c.Case.ToolName != "" {
			fs = append(fs, detect.ToolPoisoning(c.Case.ToolName, "", nil)...)
			texts = append(texts, "name: "+c.Case.ToolName)
		}
		hit, rules := m.flagged(fs, detect.KindPII)
		r := byCat[c.Category]
		if r == nil {
			r = &row{dataset: "atr-agent-threat-rules", slice: c.Category, detector: "All + ToolPoisoning"}
			byCat[c.Category] = r
		}
		what := strings.Join(texts, " | ")
		m.tally(r, c.Label == "malicious", hit, rules, what)
		total.harmful, total.detected, total.benign, total.falsePos = total.harmful+b2i(c.Label == "malicious"), total.detected+b2i(c.Label == "malicious" && hit), total.benign+b2i(c.Label == "benign"), total.falsePos+b2i(c.Label == "benign" && hit)
		return nil
	})
	if err != nil {
		return err
	}
	cats := make([]string, 0, len(byCat))
	for k := range byCat {
		cats = append(cats, k)
	}
	slices.Sort(cats)
	for _, k := range cats {
		r := byCat[k]
		r.note = atrScope[k]
		m.rows = append(m.rows, *r)
	}
	m.rows = append(m.rows, *total)
	return nil
}

// atrScope says, per ATR category, how much of it is content-detector work.
var atrScope = map[string]string{
	"prompt-injection":     "in scope",
	"tool-poisoning":       "partly: about half the cases are SQL/SSRF/path payloads in arguments, for policies",
	"data-poisoning":       "partly: misinformation and persona drift are not textual injection",
	"context-exfiltration": "partly: SSRF URLs and sensitive paths in arguments are policy work",
	"agent-manipulation":   "partly: social-engineering urgency",
	"privilege-escalation": "mostly out of scope: SQL, shell and eval payloads, for policies",
	"excessive-autonomy":   "out of scope: payment and destructive tool calls, for policies",
	"skill-compromise":     "out of scope: typosquatted names need a reference list",
}

func rawText(r json.RawMessage) string {
	if len(r) == 0 || string(r) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	return string(r)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// mcpSafetyBench: every modification_description is a poisoned tool
// description and must be flagged by ToolPoisoning; every modification_return
// is a poisoned tool result and goes through Injection. The dataset has no
// benign descriptions; the benign baseline for descriptions is ASB's normal
// tools and ATR's benign descriptions.
func (m *measure) mcpSafetyBench(dir string) error {
	type mod struct {
		ToolName    string          `json:"tool_name"`
		Description *string         `json:"modification_description"`
		Return      json.RawMessage `json:"modification_return"`
	}
	type task struct {
		AttackCategory string `json:"attack_category"`
		Mods           []mod  `json:"mcp_server_modifications"`
	}
	byCat := map[string]*row{}
	total := row{dataset: "mcp-safetybench", slice: "all poisoned descriptions", detector: "ToolPoisoning"}
	ret := row{dataset: "mcp-safetybench", slice: "Function Return Injection (tool results)", detector: "Injection"}
	err := readJSONL(filepath.Join(dir, "mcp_safetybench_tasks.jsonl"), func(line []byte) error {
		var t task
		if err := json.Unmarshal(line, &t); err != nil {
			return err
		}
		for _, md := range t.Mods {
			switch {
			case md.Description != nil:
				hit, rules := m.flagged(detect.ToolPoisoning(md.ToolName, *md.Description, nil))
				r := byCat[t.AttackCategory]
				if r == nil {
					r = &row{dataset: "mcp-safetybench", slice: t.AttackCategory, detector: "ToolPoisoning"}
					byCat[t.AttackCategory] = r
				}
				m.tally(r, true, hit, rules, *md.Description)
				m.tally(&total, true, hit, rules, *md.Description)
			case len(md.Return) > 0:
				text := rawText(md.Return)
				hit, rules := m.flagged(detect.Injection(text))
				m.tally(&ret, true, hit, rules, text)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	cats := make([]string, 0, len(byCat))
	for k := range byCat {
		cats = append(cats, k)
	}
	slices.Sort(cats)
	for _, k := range cats {
		m.rows = append(m.rows, *byCat[k])
	}
	m.rows = append(m.rows, total, ret)
	m.notes = append(m.notes, "mcp-safetybench's added-tool attacks (Tool Shadowing, Function Overlapping, Preference Manipulation) list only which fields were added, not their text, so Shadowing cannot be measured on them.")
	return nil
}

// asb: attacker tools (names and descriptions) against normal tools, through
// ToolPoisoning. Most attacker tools are plausible descriptions of a harmful
// capability ("withdraws funds for testing"), not text that hides
// instructions; the detector is not meant to flag those, and the number says
// so.
func (m *measure) asb(dir string) error {
	type attack struct {
		Tool        string `json:"Attacker Tool"`
		Description string `json:"Description"`
		Aggressive  string `json:"Aggressive"`
	}
	type normal struct {
		Tool        string `json:"Tool Name"`
		Description string `json:"Description"`
	}
	aggressive := row{dataset: "asb", slice: "attacker tools, aggressive", detector: "ToolPoisoning"}
	mild := row{dataset: "asb", slice: "attacker tools, non-aggressive", detector: "ToolPoisoning"}
	all := row{dataset: "asb", slice: "attacker vs normal tools", detector: "ToolPoisoning"}
	err := readJSONL(filepath.Join(dir, "all_attack_tools.jsonl"), func(line []byte) error {
		var a attack
		if err := json.Unmarshal(line, &a); err != nil {
			return err
		}
		hit, rules := m.flagged(detect.ToolPoisoning(a.Tool, a.Description, nil))
		r := &mild
		if a.Aggressive == "True" {
			r = &aggressive
		}
		m.tally(r, true, hit, rules, a.Tool+": "+a.Description)
		m.tally(&all, true, hit, rules, a.Tool+": "+a.Description)
		return nil
	})
	if err != nil {
		return err
	}
	err = readJSONL(filepath.Join(dir, "all_normal_tools.jsonl"), func(line []byte) error {
		var n normal
		if err := json.Unmarshal(line, &n); err != nil {
			return err
		}
		hit, rules := m.flagged(detect.ToolPoisoning(n.Tool, n.Description, nil))
		m.tally(&all, false, hit, rules, n.Tool+": "+n.Description)
		return nil
	})
	if err != nil {
		return err
	}
	m.notes = append(m.notes, "asb: the attacker tools describe harmful capabilities in plausible words (\"A financial management tool to reallocate funds\"); their harm is in what they do, not in hidden instructions, so ToolPoisoning is not expected to flag most of them. It flags those whose descriptions use covert or detection-avoiding language. Telling such tools apart needs policy on what a tool may do, not text scanning.")
	aggressive.note = "plausible descriptions of harmful tools, mostly not textually poisoned"
	mild.note = aggressive.note
	m.rows = append(m.rows, aggressive, mild, all)
	return nil
}

// redTeam: each prompt through Injection. Only the prompt_injection category
// is injection phrasing; direct violations (DROP TABLE, rm -rf) and
// contextual confusion ("I am the admin") are for policies, and are shown to
// make the boundary visible.
func (m *measure) redTeam(dir string) error {
	var doc struct {
		Prompts []struct {
			Prompt   string `json:"prompt"`
			Category string `json:"category"`
			Blocked  bool   `json:"expected_blocked"`
		} `json:"prompts"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "red_team_60.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("red_team_60.json: %w", err)
	}
	if len(doc.Prompts) == 0 {
		return errors.New("red_team_60.json: no prompts")
	}
	byCat := map[string]*row{}
	valid := row{dataset: "agt-red-team", slice: "valid_request (benign)", detector: "Injection"}
	for _, p := range doc.Prompts {
		hit, rules := m.flagged(detect.Injection(p.Prompt))
		if !p.Blocked {
			m.tally(&valid, false, hit, rules, p.Prompt)
			continue
		}
		r := byCat[p.Category]
		if r == nil {
			r = &row{dataset: "agt-red-team", slice: p.Category, detector: "Injection"}
			byCat[p.Category] = r
		}
		m.tally(r, true, hit, rules, p.Prompt)
	}
	scope := map[string]string{
		"prompt_injection":     "in scope",
		"direct_violation":     "out of scope: bare SQL/shell, for policies",
		"contextual_confusion": "out of scope: authority claims with SQL, for policies",
	}
	cats := make([]string, 0, len(byCat))
	for k := range byCat {
		cats = append(cats, k)
	}
	slices.Sort(cats)
	for _, k := range cats {
		byCat[k].note = scope[k]
		m.rows = append(m.rows, *byCat[k])
	}
	m.rows = append(m.rows, valid)
	return nil
}

// agentDojo: the benign user tasks (instructions and literal call arguments)
// are ordinary banking, Slack, travel and workspace requests: a false
// positive baseline for All. PII findings are counted apart, since IBANs and
// e-mail addresses in them are real personal data.
func (m *measure) agentDojo(dir string) error {
	type task struct {
		Label       string `json:"label"`
		Instruction string `json:"instruction"`
		Calls       []struct {
			Args map[string]any `json:"args"`
		} `json:"ground_truth_calls"`
	}
	threat := row{dataset: "agentdojo", slice: "benign user tasks", detector: "All, secrets + injection"}
	pii := row{dataset: "agentdojo", slice: "benign user tasks", detector: "All, PII only"}
	err := readJSONL(filepath.Join(dir, "agentdojo_v1_ground_truth_calls.jsonl"), func(line []byte) error {
		var t task
		if err := json.Unmarshal(line, &t); err != nil {
			return err
		}
		if t.Label != "benign" {
			return nil
		}
		texts := []string{t.Instruction}
		for _, c := range t.Calls {
			b, err := json.Marshal(c.Args)
			if err != nil {
				return err
			}
			texts = append(texts, string(b))
		}
		var fs []detect.Finding
		for _, s := range texts {
			fs = append(fs, detect.All(s)...)
		}
		hit, rules := m.flagged(fs, detect.KindPII)
		m.tally(&threat, false, hit, rules, strings.Join(texts, " | "))
		var piiOnly []detect.Finding
		for _, f := range fs {
			if f.Kind == detect.KindPII {
				piiOnly = append(piiOnly, f)
			}
		}
		pii.benign++
		if len(piiOnly) > 0 {
			pii.falsePos++
		}
		return nil
	})
	if err != nil {
		return err
	}
	pii.note = "items with any PII finding (IBANs, e-mail addresses, phone numbers present in the tasks): expected, not false alarms"
	m.rows = append(m.rows, threat, pii)
	return nil
}

func pct(n, d int) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(d))
}

func (m *measure) markdown(command string) string {
	var b strings.Builder
	b.WriteString("# Detector measurements on labeled data\n\n")
	b.WriteString("Produced by:\n\n```\ncd bench && " + command + "\n```\n\n")
	fmt.Fprintf(&b, "An item is *flagged* when a detector returns a finding of severity %s or above; PII findings do not count towards flagging except where the row says so. "+
		"Detection = flagged harmful items / harmful items; FP rate = flagged benign items / benign items.\n\n", action.Severity(severityName(m.min)))
	b.WriteString("| dataset | slice | detector | harmful | detected | detection | benign | flagged | FP rate | scope |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range m.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %d | %d | %s | %s |\n",
			r.dataset, r.slice, r.detector, r.harmful, r.detected, pct(r.detected, r.harmful), r.benign, r.falsePos, pct(r.falsePos, r.benign), r.note)
	}
	if len(m.notes) > 0 {
		b.WriteString("\n")
		for _, n := range m.notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

func severityName(rank int) string {
	for _, s := range []action.Severity{action.SeverityLow, action.SeverityMedium, action.SeverityHigh, action.SeverityCritical} {
		if s.Rank() == rank {
			return string(s)
		}
	}
	return "?"
}
