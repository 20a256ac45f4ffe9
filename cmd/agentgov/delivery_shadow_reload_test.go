package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentgov/agentgov/policy"
)

const (
	shadowDenyAll = "version: agentgov/v1\nname: shadow\ndefault: deny\n"
	shadowAllow   = "version: agentgov/v1\nname: shadow\ndefault: allow\n"
)

// The shadow set is reloaded with the live one, without a restart: by the
// reload API and by SIGHUP, each load audited as a policy load (event
// shadow, with the digest it replaces); from the next decision on the
// differences are the new set's. A shadow directory that does not compile
// refuses the whole reload, audited, and both sets in force stay.
func TestShadowSetIsReloadedWithTheLiveSet(t *testing.T) {
	in := startDeliveryServer(t, func(c string) string { return "policies_shadow: " + c + "\n" })
	cand := filepath.Join(in.dir, "candidate")
	digest := func() string {
		t.Helper()
		set, err := policy.Load(cand)
		if err != nil {
			t.Fatal(err)
		}
		return set.Digest()
	}
	first := digest()
	read := `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`
	diffs := func() []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, e := range in.auditEntries() {
			if e["kind"] == "shadow.diff" {
				out = append(out, e["record"].(map[string]any))
			}
		}
		return out
	}
	decideRead := func() {
		t.Helper()
		if code, d := in.call("POST", "/v1/decide", "a1-tok", read); code != 200 || d["effect"] != "allow" {
			t.Fatalf("the live set's answer: %d %v", code, d)
		}
	}
	decideRead()
	if n := len(diffs()); n != 0 {
		t.Fatalf("the first shadow set (it allows /tmp reads) differed: %v", diffs())
	}

	// The reload API brings a shadow set that denies everything.
	os.WriteFile(filepath.Join(cand, "test.yaml"), []byte(shadowDenyAll), 0o644)
	second := digest()
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	decideRead()
	if d := diffs(); len(d) != 1 || d[0]["shadow"] != "deny" || d[0]["shadow_policy"] != second {
		t.Fatalf("after the reload: %v", d)
	}

	// SIGHUP brings one that allows again.
	os.WriteFile(filepath.Join(cand, "test.yaml"), []byte(shadowAllow), 0o644)
	third := digest()
	in.cmd.Process.Signal(syscall.SIGHUP)
	var loads []map[string]any
	for range 500 {
		loads = loads[:0]
		for _, e := range in.auditEntries() {
			if rec, _ := e["record"].(map[string]any); e["kind"] == "policy_load" && rec["event"] == "shadow" {
				loads = append(loads, rec)
			}
		}
		if len(loads) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(loads) != 2 || loads[0]["previous"] != first || loads[0]["digest"] != second || loads[1]["previous"] != second || loads[1]["digest"] != third {
		t.Fatalf("shadow loads in the audit log: %v", loads)
	}
	decideRead()
	if d := diffs(); len(d) != 1 {
		t.Fatalf("a decision after SIGHUP differed under an allowing shadow: %v", d)
	}

	// A broken shadow directory: the reload is refused, nothing changes.
	os.WriteFile(filepath.Join(cand, "test.yaml"), []byte("version: agentgov/v1\nname: shadow\ndefault: sometimes\n"), 0o644)
	code, m := in.call("POST", "/v1/policies/reload", "admin-tok", "")
	if code != 422 || !strings.Contains(errMsg(m), "policies_shadow") {
		t.Fatalf("reload with a broken shadow: %d %v", code, m)
	}
	decideRead()
	if d := diffs(); len(d) != 1 {
		t.Fatalf("the broken reload changed the shadow: %v", d)
	}
	var refused, liveLoads int
	for _, e := range in.auditEntries() {
		rec, _ := json.Marshal(e["record"])
		if e["kind"] != "policy_load" {
			continue
		}
		switch r := string(rec); {
		case strings.Contains(r, `"event":"refused"`) && strings.Contains(r, `"source":"reload policies_shadow"`):
			refused++
		case !strings.Contains(r, `"event"`):
			liveLoads++ // a live reload's entry has no event
		}
	}
	if refused != 1 || liveLoads != 2 {
		t.Fatalf("policy_load entries: %d refused, %d live reloads; want 1 and 2", refused, liveLoads)
	}
}
