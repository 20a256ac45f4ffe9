package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The identity control (ASI03) is in force exactly when the server's
// configuration accepts credentials beyond static tokens: an audience for
// agent-signed JWTs (the registry's keys), OIDC issuers or SPIFFE. Given
// that configuration, the OWASP report lists it under ASI03 and nowhere
// else; without it, or without --config, ASI03 is a gap. The EU AI Act and
// SOC 2 reports carry it as evidence, with the refused credentials counted
// from the log, number by number.
func TestReportIdentityControlFollowsTheConfiguration(t *testing.T) {
	in := startIdentityServer(t)
	// Two refused credentials: a JWT-looking token of nobody, and an
	// unknown static token.
	for _, tok := range []string{"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", "no-such-token"} {
		if code, m := in.call("POST", "/v1/decide", tok, `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`); code != 401 {
			t.Fatalf("refused credential: %d %v", code, m)
		}
	}
	if code, m := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`); code != 200 {
		t.Fatalf("decide: %d %v", code, m)
	}
	in.stop()
	refused := 0
	for _, r := range auditRecords(t, in.data) {
		if r.Kind == "credential_refused" {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("the log holds %d refused credentials, want 2", refused)
	}

	withIdentity := filepath.Join(in.dir, "agentgov.yaml")
	b, _ := os.ReadFile(withIdentity)
	if !strings.Contains(string(b), "identity: {audience:") {
		t.Fatalf("the test's configuration has no identity: %s", b)
	}
	without := filepath.Join(in.dir, "no-identity.yaml")
	var kept []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "identity:") {
			kept = append(kept, l)
		}
	}
	os.WriteFile(without, []byte(strings.Join(kept, "\n")), 0o644)
	pol := filepath.Join(in.dir, "policies")

	for _, c := range []struct {
		name    string
		args    []string
		inForce bool
	}{
		{"with identity", []string{"--config", withIdentity, "--policies", pol}, true},
		{"without identity", []string{"--config", without, "--policies", pol}, false},
		{"without a configuration", []string{"--policies", pol}, false},
	} {
		code, out := agentgov(t, append([]string{"report", "owasp", "--data", in.data}, c.args...)...)
		if code != 0 {
			t.Fatalf("%s: report: %d %s", c.name, code, out)
		}
		var rep map[string]riskReport
		json.Unmarshal([]byte(out), &rep)
		for id, r := range rep {
			if !strings.HasPrefix(id, "ASI") {
				continue
			}
			if has := contains(r.Controls, "identity"); has != (c.inForce && id == "ASI03") {
				t.Errorf("%s: %s controls %v", c.name, id, r.Controls)
			}
		}
		if asi03 := rep["ASI03"]; asi03.Gap == c.inForce || (c.inForce && len(asi03.Controls) != 1) {
			t.Errorf("%s: ASI03 %+v", c.name, asi03)
		}

		for kind, req := range map[string]string{"eu-ai-act": "Art. 12(2)(c)", "soc2": "CC7.2"} {
			code, out := agentgov(t, append([]string{"report", kind, "--data", in.data}, c.args...)...)
			var f struct {
				Requirements []struct {
					ID       string         `json:"id"`
					Evidence map[string]any `json:"evidence"`
				} `json:"requirements"`
			}
			if code != 0 || json.Unmarshal([]byte(out), &f) != nil {
				t.Fatalf("%s: report %s: %d %s", c.name, kind, code, out)
			}
			found := false
			for _, r := range f.Requirements {
				if r.ID != req {
					continue
				}
				found = true
				if r.Evidence["identity"] != c.inForce || r.Evidence["credentials_refused"] != float64(2) {
					t.Errorf("%s: %s %s evidence %v", c.name, kind, req, r.Evidence)
				}
			}
			if !found {
				t.Fatalf("%s: %s has no %s", c.name, kind, req)
			}
		}
	}
}
