package console_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// The agents page shows each agent's trust score and tier, and its ring,
// from the API; registered agents without recent decisions are listed.
func TestAgentsPageShowsTrustAndRing(t *testing.T) {
	base := serve(t)
	api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"search"},"args":{"q":"x"}}`)
	if reg := api(t, base, "POST", "/v1/agents", adminTok, `{"id":"planner-7","type":"assistant","ring":2,"keys":[{"kid":"k1","public_key":"`+pubKey(t)+`"}]}`); reg["id"] != "planner-7" {
		t.Fatalf("register: %v", reg)
	}
	b := newBrowser(t, base)
	b.signIn(adminTok)
	_, page := b.do("GET", "/ui/agents", nil)
	row := func(id string) string {
		m := regexp.MustCompile(`(?s)<tr><th scope="row"><a href="/ui/decisions\?agent=` + id + `">.*?</tr>`).FindString(page)
		if m == "" {
			t.Fatalf("no row for %s:\n%s", id, page)
		}
		return m
	}
	trust := api(t, base, "GET", "/v1/agents/a1/trust", adminTok, "")
	a1 := row("a1")
	if score := fmt.Sprintf("<strong>%v</strong>", trust["score"]); !strings.Contains(a1, score) || !strings.Contains(a1, ">"+trust["tier"].(string)+"</span>") {
		t.Fatalf("a1's row does not show its trust %v:\n%s", trust, a1)
	}
	if p7 := row("planner-7"); !strings.Contains(p7, "registered") || !strings.Contains(p7, "ring 2") || !strings.Contains(p7, "never") {
		t.Fatalf("the registered agent's row:\n%s", p7)
	}
}

func pubKey(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(pub)
}
