package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleThreatModelAgainstTheBuiltinPackAndAConfiguration(t *testing.T) {
	example := filepath.Join("..", "..", "threatmodel", "examples", "agent-deployment.yaml")
	code, out, errOut := runCLI(t, "", "threatmodel", "report", example)
	if code != 0 {
		t.Fatalf("report: %d %s", code, errOut)
	}
	var rep struct {
		Threats []struct {
			Name     string  `json:"name"`
			Residual float64 `json:"residual"`
			Flagged  bool    `json:"flagged"`
		} `json:"threats"`
		Stride  []map[string]any `json:"stride"`
		Flagged int              `json:"flagged"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	flagged := map[string]bool{}
	for i, th := range rep.Threats {
		flagged[th.Name] = th.Flagged
		if i > 0 && th.Residual > rep.Threats[i-1].Residual {
			t.Fatalf("not ranked by residual risk: %v", rep.Threats)
		}
	}
	// The pack has no provenance rule and no MCP servers are configured:
	// poisoning and a tool rug pull are not covered; destructive actions are.
	// The built-in pack's provenance rules mitigate data poisoning; drift
	// pins are not in force without a lock, so the rug pull is flagged.
	if flagged["data_poisoning"] || !flagged["tool_rug_pull"] || flagged["destructive_actions"] || len(rep.Stride) != 6 {
		t.Fatalf("flags: %v stride %v", flagged, rep.Stride)
	}
	if code, _, errOut := runCLI(t, "", "threatmodel", "report", example, "--fail-on-flagged"); code != 1 || !strings.Contains(errOut, "threats flagged") {
		t.Fatalf("--fail-on-flagged: %d %s", code, errOut)
	}
	// With MCP servers configured, their tools are pinned: drift_pins is in
	// force and the rug pull is no longer flagged.
	cfg := filepath.Join(t.TempDir(), "agentgov.yaml")
	os.WriteFile(cfg, []byte("mcp:\n  servers:\n    fs: {command: [mcp-fs]}\n"), 0o644)
	code, out, _ = runCLI(t, "", "threatmodel", "report", example, "--config", cfg, "--format", "md")
	if code != 0 || !strings.Contains(out, "| tool_rug_pull | tampering | mcp_tools | 6 | 1.50 (low) | drift_pins |") || !strings.Contains(out, "## STRIDE") {
		t.Fatalf("with MCP servers: %d\n%s", code, out)
	}
	// Impersonation is flagged until the configuration accepts credentials
	// beyond static tokens; with an audience for agent-signed JWTs the
	// identity control is in force and mitigates it.
	if !flagged["agent_impersonation"] {
		t.Fatalf("impersonation mitigated without identity: %v", flagged)
	}
	os.WriteFile(cfg, []byte("identity: {audience: \"https://agentgov.example\"}\n"), 0o644)
	code, out, _ = runCLI(t, "", "threatmodel", "report", example, "--config", cfg)
	var withID struct {
		Threats []struct {
			Name    string `json:"name"`
			Flagged bool   `json:"flagged"`
		} `json:"threats"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &withID) != nil {
		t.Fatalf("with identity: %d %s", code, out)
	}
	for _, th := range withID.Threats {
		if th.Name == "agent_impersonation" && th.Flagged {
			t.Fatalf("impersonation flagged with identity configured: %s", out)
		}
	}
	// A mitigation naming a control that exists nowhere is refused.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	raw, _ := os.ReadFile(example)
	os.WriteFile(bad, []byte(strings.Replace(string(raw), "control: sql-drop", "control: sql-dorp", 1)), 0o644)
	if code, _, errOut := runCLI(t, "", "threatmodel", "report", bad); code != 1 || !strings.Contains(errOut, `unknown control "sql-dorp"`) {
		t.Fatalf("typo: %d %s", code, errOut)
	}
}
