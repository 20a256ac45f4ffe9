// Command injectionflag measures the built-in pack's injection-phrasing flag
// (rule result-addresses-the-model, which makes the rest of a session
// stricter) on labeled text from shared/datasets: how often it flags
// content that holds an injection, and how often it flags benign content
// as a tool's result. Each text is decided alone, as the result of a tool
// in a fresh session.
//
//	cd bench && go run ./injectionflag -data ../../shared/datasets -policies ../policies
//
// This is a measurement, not a test: nothing here is asserted, and the rule
// must never be tuned to these strings.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/provenance"
	"github.com/agentgov/agentgov/replay"
)

const rule = "result-addresses-the-model"

// corpus is one row of the table: texts and whether they hold an injection.
type corpus struct {
	name      string
	injection bool
	texts     []string
}

func main() {
	data := flag.String("data", "../../shared/datasets", "directory holding the datasets")
	pol := flag.String("policies", "../policies", "policy directory to measure")
	verbose := flag.Bool("v", false, "print every flagged benign text and every missed injection on stderr")
	flag.Parse()
	set, err := policy.Load(*pol)
	if err != nil {
		fmt.Fprintln(os.Stderr, "injectionflag:", err)
		os.Exit(1)
	}
	corpora, err := load(*data)
	if err != nil {
		fmt.Fprintln(os.Stderr, "injectionflag:", err)
		os.Exit(1)
	}
	eng := govern.New(set, govern.WithProvenance(provenance.New(provenance.Config{})))
	fmt.Printf("`cd bench && go run ./injectionflag %s`\n\n", strings.Join(os.Args[1:], " "))
	fmt.Println("| content | holds an injection | flagged |")
	fmt.Println("|---|---|---|")
	for i, c := range corpora {
		n := 0
		for j, t := range c.texts {
			d, err := eng.Decide(context.Background(), action.Action{
				Agent: action.Agent{ID: "bench"}, Session: fmt.Sprintf("s-%d-%d", i, j),
				Point: action.PostToolCall, Tool: action.Tool{Name: "read"}, Content: t,
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, "injectionflag:", err)
				os.Exit(1)
			}
			flagged := slices.Contains(d.Rules, rule)
			if flagged {
				n++
			}
			if *verbose && flagged != c.injection {
				fmt.Fprintf(os.Stderr, "%s: flagged=%v: %.300q\n", c.name, flagged, t)
			}
		}
		fmt.Printf("| %s | %v | %d/%d (%.1f%%) |\n", c.name, yesNo(c.injection), n, len(c.texts), 100*float64(n)/float64(max(len(c.texts), 1)))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func load(dir string) ([]corpus, error) {
	var out []corpus
	// AgentDojo's recorded runs: every distinct tool result of the benign
	// runs; every distinct injected text of the attacks, as recorded.
	runsFile := filepath.Join(dir, "agentdojo-runs", "gpt-4o-2024-05-13.jsonl")
	f, err := os.Open(runsFile)
	if err != nil {
		return nil, err
	}
	runs, err := replay.ReadAgentDojo(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", runsFile, err)
	}
	var results, injected []string
	for _, r := range runs {
		switch r.Kind() {
		case replay.Benign:
			for _, m := range r.Messages {
				var s string
				if m.Role == "tool" && json.Unmarshal(m.Content, &s) == nil && s != "" && !slices.Contains(results, s) {
					results = append(results, s)
				}
			}
		case replay.Attack:
			var inj map[string]string
			json.Unmarshal(r.Injections, &inj)
			for _, t := range inj {
				if !slices.Contains(injected, t) {
					injected = append(injected, t)
				}
			}
		}
	}
	out = append(out, corpus{"AgentDojo benign runs: tool results", false, results})
	out = append(out, corpus{"AgentDojo attacks: injected texts as recorded", true, injected})

	// AgentDojo's tasks: the users' requests (imperatives that are not
	// injections: a colleague's mail may quote one), and the injection
	// goals bare and in each phrasing of replay-runs --perturb.
	var users, goals []string
	err = eachLine(filepath.Join(dir, "agentdojo", "agentdojo_v1_ground_truth_calls.jsonl"), func(b []byte) error {
		var t struct {
			TaskKind    string `json:"task_kind"`
			Instruction string `json:"instruction"`
		}
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		if t.TaskKind == "injection_task" {
			goals = append(goals, t.Instruction)
		} else {
			users = append(users, t.Instruction)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out = append(out, corpus{"AgentDojo user tasks' requests", false, users})
	for _, p := range replay.Phrasings() {
		var ts []string
		for _, g := range goals {
			t, _ := replay.Phrase(p, g)
			ts = append(ts, t)
		}
		out = append(out, corpus{"AgentDojo injection goals, phrasing " + p, true, ts})
	}

	// ATR's cases on tool responses.
	var atrBenign, atrMal []string
	err = eachLine(filepath.Join(dir, "atr-agent-threat-rules", "atr_v4.0.0_tool_field_test_cases.jsonl"), func(b []byte) error {
		var c struct {
			Label string `json:"label"`
			Case  struct {
				ToolResponse string `json:"tool_response"`
			} `json:"case"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return err
		}
		if c.Case.ToolResponse == "" {
			return nil
		}
		if c.Label == "benign" {
			atrBenign = append(atrBenign, c.Case.ToolResponse)
		} else {
			atrMal = append(atrMal, c.Case.ToolResponse)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out = append(out, corpus{"ATR tool responses, benign", false, atrBenign})
	out = append(out, corpus{"ATR tool responses, malicious (all categories)", true, atrMal})

	// The AGT red team's prompts, as if a tool returned them.
	raw, err := os.ReadFile(filepath.Join(dir, "agt-red-team", "red_team_60.json"))
	if err != nil {
		return nil, err
	}
	var agt struct {
		Prompts []struct {
			Prompt, Category string
		} `json:"prompts"`
	}
	if err := json.Unmarshal(raw, &agt); err != nil {
		return nil, err
	}
	var valid, inj []string
	for _, p := range agt.Prompts {
		switch p.Category {
		case "valid_request":
			valid = append(valid, p.Prompt)
		case "prompt_injection":
			inj = append(inj, p.Prompt)
		}
	}
	out = append(out, corpus{"AGT red team: valid requests", false, valid})
	out = append(out, corpus{"AGT red team: prompt injections", true, inj})

	// ASB's normal tools: what they are described to do.
	var asb []string
	err = eachLine(filepath.Join(dir, "asb", "all_normal_tools.jsonl"), func(b []byte) error {
		var t map[string]any
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		asb = append(asb, fmt.Sprint(t["Description"])+"\n"+fmt.Sprint(t["Expected Achievements"]))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out = append(out, corpus{"ASB normal tools: descriptions", false, asb})
	return out, nil
}

func eachLine(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return sc.Err()
}
