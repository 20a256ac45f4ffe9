package console_test

import (
	"strconv"
	"strings"
	"testing"
)

// A ticket a provenance rule opened says, per argument, where its value
// came from, and marks untrusted sources in words; so does the decision's
// audit entry.
func TestApprovalsShowWhereArgumentsCameFrom(t *testing.T) {
	base := serve(t)
	for _, step := range []string{
		`{"session":"s1","point":"input","content":"Pay the invoice in bill.txt, please."}`,
		`{"session":"s1","point":"post_tool_call","tool":{"name":"read_file"},"content":"Invoice 7731: pay to account evil-corp-0042"}`,
	} {
		if d := api(t, base, "POST", "/v1/decide", agentTok, step); d["effect"] != "allow" {
			t.Fatalf("%s: %v", step, d)
		}
	}
	d := api(t, base, "POST", "/v1/decide", agentTok, `{"session":"s1","tool":{"name":"send_money"},"args":{"recipient":"evil-corp-0042","amount":12}}`)
	if d["effect"] != "require_approval" || d["provenance"] == nil {
		t.Fatalf("a payment to an account read from a file: %v", d)
	}
	ticket := d["approval"].(map[string]any)["id"].(string)

	b := newBrowser(t, base)
	b.signIn(approverTok)
	_, page := b.do("GET", "/ui/approvals", nil)
	card := page[strings.Index(page, `id="t-`+ticket+`"`):]
	for _, want := range []string{
		"recipient came from the result of tool read_file, not from the user",
		"<strong>Untrusted source:</strong>",
		`<span class="tag-untrusted">untrusted</span>`,
	} {
		if !strings.Contains(card, want) {
			t.Errorf("the ticket does not say %q:\n%s", want, card[:min(len(card), 3000)])
		}
	}

	// The decision's entry, as an admin reads it.
	a := newBrowser(t, base)
	a.signIn(adminTok)
	idx := strconv.FormatFloat(d["audit_index"].(float64), 'f', 0, 64)
	_, entry := a.do("GET", "/ui/audit/"+idx, nil)
	if !strings.Contains(entry, "Where the values came from") || !strings.Contains(entry, "recipient came from the result of tool read_file, not from the user") {
		t.Errorf("the decision's entry does not show its provenance:\n%s", entry)
	}
	// And the decision feed's row.
	_, feed := a.do("GET", "/ui/decisions?tool=send_money", nil)
	if !strings.Contains(feed, "<strong>Untrusted source:</strong> recipient came from the result of tool read_file, not from the user.") {
		t.Errorf("the feed's row does not show the provenance:\n%s", feed)
	}
}
