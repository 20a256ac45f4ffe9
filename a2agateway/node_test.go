package a2agateway

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/a2agateway/a2anodetest"
)

// The JavaScript SDK on both sides: its client calls its server through
// the gateway. The card it reads points at the gateway; an allowed message
// comes back; a reply carrying a credential is withheld with the reason; a
// message that needs approval is refused naming why; a streamed task
// arrives with its artifact whole; a credential split across the chunks
// of a streamed artifact never arrives.
func TestNodeSDKClientAndAgentThroughGateway(t *testing.T) {
	a2anodetest.Need(t)
	upstream := a2anodetest.StartAgent(t)
	h := start(t, httptest.NewUnstartedServer(nil), func(c *Config) { c.URL = upstream })
	cmd := exec.Command("node", "client.mjs", h.url(), "agent:caller")
	cmd.Dir = a2anodetest.Dir()
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("client.mjs: %v\n%s", err, raw)
	}
	var out struct {
		CardURL       string           `json:"card_url"`
		Interfaces    []map[string]any `json:"card_interfaces"`
		Echo          string           `json:"echo"`
		Leak          string           `json:"leak"`
		LeakError     string           `json:"leak_error"`
		ApprovalError string           `json:"approval_error"`
		Stream        []string         `json:"stream"`
		StreamSecret  []string         `json:"stream_secret"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("client.mjs printed %s: %v", raw, err)
	}
	if out.CardURL != h.url() || len(out.Interfaces) != 1 || out.Interfaces[0]["url"] != h.url() {
		t.Errorf("card url %q, interfaces %v; want the gateway's %s", out.CardURL, out.Interfaces, h.url())
	}
	if out.Echo != "hello from node" {
		t.Errorf("echo = %q", out.Echo)
	}
	if out.Leak != "" || !strings.Contains(out.LeakError, "a reply carries a credential") {
		t.Errorf("leak: reply %q, error %q", out.Leak, out.LeakError)
	}
	if !strings.Contains(out.ApprovalError, "needs a person's approval") {
		t.Errorf("approval error = %q", out.ApprovalError)
	}
	if !slices.Contains(out.Stream, "artifact:the quarterly report") || !slices.Contains(out.Stream, "status:completed") {
		t.Errorf("stream = %v", out.Stream)
	}
	for _, ev := range out.StreamSecret {
		if strings.HasPrefix(ev, "artifact:") {
			t.Errorf("part of a secret reached the client: %v", out.StreamSecret)
		}
	}
	if last := out.StreamSecret[len(out.StreamSecret)-1]; !strings.Contains(last, "a reply carries a credential") {
		t.Errorf("stream with a secret ended with %q", last)
	}
}
